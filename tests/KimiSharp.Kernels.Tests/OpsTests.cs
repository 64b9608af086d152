using KimiSharp.Kernels;

namespace KimiSharp.Kernels.Tests;

public sealed class OpsTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        return x;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(515)]
    public void RmsNorm_matches_definition(int n)
    {
        var x = Random(n, n);
        var w = Random(n, n + 1);
        var y = new float[n];
        Ops.RmsNorm(x, w, 1e-5f, y);
        double meanSquare = x.Sum(v => (double)v * v) / n;
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(w[i] * x[i] / Math.Sqrt(meanSquare + 1e-5), y[i], 1e-5);
    }

    [Fact]
    public void RmsNorm_in_place_equals_out_of_place()
    {
        var x = Random(37, 1);
        var w = Random(37, 2);
        var y = new float[37];
        Ops.RmsNorm(x, w, 1e-6f, y);
        Ops.RmsNorm(x, w, 1e-6f, x);
        Assert.Equal(y, x);
    }

    [Fact]
    public void RotatePairs_rotates_interleaved_pairs()
    {
        float[] x = [1, 0, 0, 2, 3, 4];
        float[] cos = [0, 1, MathF.Cos(0.5f)];
        float[] sin = [1, 0, MathF.Sin(0.5f)];
        Ops.RotatePairs(x, cos, sin);
        MatrixKernelsTests.Near(0, x[0], 1e-5);
        MatrixKernelsTests.Near(1, x[1], 1e-5);
        MatrixKernelsTests.Near(0, x[2], 1e-5);
        MatrixKernelsTests.Near(2, x[3], 1e-5);
        MatrixKernelsTests.Near(3 * Math.Cos(0.5) - 4 * Math.Sin(0.5), x[4], 1e-5);
        MatrixKernelsTests.Near(3 * Math.Sin(0.5) + 4 * Math.Cos(0.5), x[5], 1e-5);
        Assert.Throws<ArgumentException>(() => Ops.RotatePairs(new float[3], cos, sin));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    [InlineData(300)]
    public void Softmax_matches_definition_and_survives_large_logits(int n)
    {
        var x = Random(n, n);
        x[0] = 1000; // would overflow exp without the max shift
        var expected = x.Select(v => Math.Exp(v - 1000.0)).ToArray();
        double sum = expected.Sum();
        Ops.Softmax(x);
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(expected[i] / sum, x[i], 1e-5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(255)]
    [InlineData(257)]
    [InlineData(1000)]
    public void SiluMultiply_matches_definition_even_in_place(int n)
    {
        var gate = Random(n, 3);
        var up = Random(n, 4);
        var expected = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
        var output = new float[n];
        Ops.SiluMultiply(gate, up, output);
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(expected[i], output[i], 1e-5);
        Ops.SiluMultiply(gate, up, gate); // the MLP writes over its gate buffer
        Assert.Equal(output, gate);
    }
}

public sealed unsafe class NativeArenaTests
{
    [Fact]
    public void Allocations_are_aligned_disjoint_and_spill_into_new_chunks()
    {
        using var arena = new NativeArena(chunkBytes: 4096);
        var blocks = new List<(nint Start, long Bytes)>();
        foreach (long bytes in new long[] { 1, 100, 4000, 5000, 64, 0, 3000 })
        {
            byte* p = arena.Allocate(bytes);
            Assert.Equal(0, (long)p % 64);
            new Span<byte>(p, (int)bytes).Fill((byte)blocks.Count); // writable, and disjoint from the others (checked below)
            blocks.Add(((nint)p, bytes));
        }
        for (int i = 0; i < blocks.Count; i++)
            for (long k = 0; k < blocks[i].Bytes; k++) Assert.Equal((byte)i, ((byte*)blocks[i].Start)[k]);
        Assert.True(arena.ReservedBytes >= arena.UsedBytes);
        Assert.True(arena.UsedBytes >= 1 + 100 + 4000 + 5000 + 64 + 3000);
        Assert.Throws<ArgumentOutOfRangeException>(() => arena.Allocate(-1));
        arena.Dispose();
        Assert.Throws<ObjectDisposedException>(() => arena.Allocate(1));
    }

    [Fact]
    public void Dropping_mapped_pages_keeps_their_contents_reachable()
    {
        string path = Path.GetTempFileName();
        try
        {
            var bytes = new byte[3 * 4096 + 17];
            new Random(1).NextBytes(bytes);
            File.WriteAllBytes(path, bytes);
            using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            try
            {
                p += view.PointerOffset;
                Assert.Equal(bytes, new ReadOnlySpan<byte>(p, bytes.Length).ToArray());
                MemoryAdvice.DropMappedPages(p + 100, 5000); // not page-aligned: widened to whole pages
                Assert.Equal(bytes, new ReadOnlySpan<byte>(p, bytes.Length).ToArray());
            }
            finally { view.SafeMemoryMappedViewHandle.ReleasePointer(); }
        }
        finally { File.Delete(path); }
    }
}
