using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KimiSharp.Kernels;

namespace KimiSharp.Kernels.Tests;

/// <summary>
/// Tests that force the vector path (FusedKernels.Level, Int4Kernels.Level: a process-wide test hook that picks the
/// instruction set, not a kernel setting) run alone.
/// </summary>
[CollectionDefinition(nameof(VectorPathCollection), DisableParallelization = true)]
public sealed class VectorPathCollection;

/// <summary>
/// Every vector path of the fused kernels (Vector512, Vector256, portable) against a float64 scalar reference on odd
/// sizes (tails, single rows), batch invariance on each path, the int8-activation INT4 path and the worker pool.
/// </summary>
[Collection(nameof(VectorPathCollection))]
public sealed unsafe class KernelPathsTests : IDisposable
{
    private readonly List<nint> _allocations = [];

    private T* Alloc<T>(long count) where T : unmanaged
    {
        var p = (T*)NativeMemory.AllocZeroed((nuint)Math.Max(1, count * sizeof(T)));
        _allocations.Add((nint)p);
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _allocations) NativeMemory.Free((void*)p);
    }

    public static IEnumerable<int> SupportedLevels()
    {
        yield return 0;
        if (Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported) yield return 1;
        if (Vector512.IsHardwareAccelerated && Avx512BW.IsSupported) yield return 2;
    }

    private static void WithLevel(int level, Action action)
    {
        int fused = FusedKernels.Level, int4 = Int4Kernels.Level;
        try
        {
            FusedKernels.Level = level;
            Int4Kernels.Level = level;
            action();
        }
        finally
        {
            FusedKernels.Level = fused;
            Int4Kernels.Level = int4;
        }
    }

    private (WeightMatrix W, double[] Values) Make(WeightFormat format, int rows, int cols, Random rng)
    {
        var values = new double[(long)rows * cols];
        switch (format)
        {
            case WeightFormat.BF16:
            {
                var data = Alloc<ushort>((long)rows * cols);
                for (long i = 0; i < values.Length; i++)
                {
                    data[i] = (ushort)(BitConverter.SingleToInt32Bits((float)(rng.NextDouble() * 2 - 1)) >>> 16);
                    values[i] = BitConverter.Int32BitsToSingle(data[i] << 16);
                }
                return (WeightMatrix.FromBFloat16(data, rows, cols), values);
            }
            case WeightFormat.Fp8Block:
            {
                const int blockRows = 2, blockCols = 48;
                var data = Alloc<byte>((long)rows * cols);
                int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                var scales = Alloc<float>((long)scaleRows * scaleCols);
                for (int i = 0; i < scaleRows * scaleCols; i++) scales[i] = (float)(0.001 + rng.NextDouble() * 0.01);
                var table = NumberFormats.Fp8E4M3Table;
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                    {
                        byte b;
                        do b = (byte)rng.Next(256); while ((b & 0x7F) == 0x7F);
                        data[(long)r * cols + c] = b;
                        values[(long)r * cols + c] = (double)table[b] * scales[(r / blockRows) * scaleCols + c / blockCols];
                    }
                return (WeightMatrix.FromFp8Block(data, scales, rows, cols, blockRows, blockCols), values);
            }
            case WeightFormat.PackedInt:
            {
                int words = WeightMatrix.PackedWordsPerRow(cols, 4), groups = (cols + 31) / 32;
                var packed = Alloc<int>((long)rows * words);
                var scales = Alloc<ushort>((long)rows * groups);
                for (int r = 0; r < rows; r++)
                {
                    for (int g = 0; g < groups; g++)
                        scales[r * groups + g] = (ushort)(BitConverter.SingleToInt32Bits((float)(0.01 + rng.NextDouble() * 0.1)) >>> 16);
                    for (int c = 0; c < cols; c++)
                    {
                        int q = rng.Next(-8, 8);
                        ((uint*)packed)[(long)r * words + c / 8] |= (uint)(q + 8) << (4 * (c % 8));
                        values[(long)r * cols + c] = q * (double)BitConverter.Int32BitsToSingle(scales[r * groups + c / 32] << 16);
                    }
                }
                return (WeightMatrix.FromPackedInt(packed, scales, rows, cols, 4, 32), values);
            }
            default: throw new ArgumentOutOfRangeException(nameof(format));
        }
    }

    private static float[] RandomVector(int n, Random rng)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    public static TheoryData<WeightFormat, int, int> Shapes()
    {
        var data = new TheoryData<WeightFormat, int, int>();
        foreach (var format in new[] { WeightFormat.BF16, WeightFormat.Fp8Block, WeightFormat.PackedInt })
            foreach (var (rows, cols) in new[] { (1, 1), (1, 15), (3, 31), (2, 33), (5, 100), (1, 129), (3, 257), (2, 1000), (3, 2048 + 96 + 7) })
                data.Add(format, rows, cols);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_vector_path_matches_the_scalar_reference_and_is_batch_invariant(WeightFormat format, int rows, int cols)
    {
        var rng = new Random(rows * 7919 + cols + 31 * (int)format);
        var (w, values) = Make(format, rows, cols, rng);
        const int tokens = 5;
        var x = RandomVector(tokens * cols, rng);
        foreach (int level in SupportedLevels())
            WithLevel(level, () =>
            {
                var batch = new float[tokens * rows];
                MatrixKernels.MatMul(w, x, batch, tokens, KernelSettings.Default);
                var solo = new float[rows];
                for (int t = 0; t < tokens; t++)
                {
                    MatrixKernels.MatMul(w, x.AsSpan(t * cols, cols), solo, 1, KernelSettings.Default);
                    for (int r = 0; r < rows; r++)
                    {
                        double expected = 0, magnitude = 0;
                        for (int c = 0; c < cols; c++)
                        {
                            expected += values[(long)r * cols + c] * x[t * cols + c];
                            magnitude += Math.Abs(values[(long)r * cols + c] * x[t * cols + c]);
                        }
                        double tolerance = 1e-6 * Math.Max(1, magnitude);
                        Assert.True(Math.Abs(expected - batch[t * rows + r]) <= tolerance,
                            $"level {level} {format} [{rows}x{cols}] row {r} token {t}: expected {expected}, got {batch[t * rows + r]}");
                        Assert.Equal(batch[t * rows + r], solo[r]);
                    }
                }
                var decoded = new float[cols];
                MatrixKernels.DecodeRow(w, rows - 1, decoded);
                for (int c = 0; c < cols; c++) Assert.Equal((float)values[(long)(rows - 1) * cols + c], decoded[c]);
            });
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(3, 33)]
    [InlineData(2, 128)]
    [InlineData(4, 200)]
    [InlineData(1, 256 + 64 + 5)]
    [InlineData(3, 2048)]
    public void Int8_activations_stay_within_quantization_error_and_are_batch_invariant(int rows, int cols)
    {
        var rng = new Random(rows * 31 + cols);
        var (w, values) = Make(WeightFormat.PackedInt, rows, cols, rng);
        const int tokens = 4;
        var x = RandomVector(tokens * cols, rng);
        var int8 = new KernelSettings { Activations = ActivationPrecision.Int8 };
        {
            var results = new List<float[]>();
            foreach (int level in SupportedLevels())
                WithLevel(level, () =>
                {
                    var batch = new float[tokens * rows];
                    MatrixKernels.MatMul(w, x, batch, tokens, int8);
                    var solo = new float[rows];
                    for (int t = 0; t < tokens; t++)
                    {
                        MatrixKernels.MatMul(w, x.AsSpan(t * cols, cols), solo, 1, int8);
                        for (int r = 0; r < rows; r++)
                        {
                            Assert.Equal(batch[t * rows + r], solo[r]);
                            // Each activation moves by at most half a step (max|x| over its group / 254).
                            double expected = 0, bound = 1e-5;
                            for (int c = 0; c < cols; c++)
                            {
                                int g0 = c / 32 * 32;
                                double amax = 0;
                                for (int k = g0; k < Math.Min(cols, g0 + 32); k++) amax = Math.Max(amax, Math.Abs(x[t * cols + k]));
                                expected += values[(long)r * cols + c] * x[t * cols + c];
                                bound += Math.Abs(values[(long)r * cols + c]) * (amax / 254 * 1.001 + 1e-7);
                            }
                            Assert.True(Math.Abs(expected - batch[t * rows + r]) <= bound,
                                $"level {level} [{rows}x{cols}] row {r} token {t}: expected {expected}, got {batch[t * rows + r]} (bound {bound})");
                        }
                    }
                    results.Add(batch);
                });
            // The integer sums are exact on every path; only the float combination order may differ.
            for (int i = 1; i < results.Count; i++)
                for (int j = 0; j < results[0].Length; j++)
                    Assert.True(Math.Abs(results[0][j] - results[i][j]) <= 1e-4 * (1 + Math.Abs(results[0][j])));
        }
    }

    [Theory]
    [InlineData(32, 32, 32, 1)]     // one block, one group of columns
    [InlineData(96, 96, 64, 2)]     // blocks with a gap between them (stride past the block)
    [InlineData(256, 160, 128, 2)]  // kv_b_proj's shape per head pair: key rows 0…127 of every 256
    [InlineData(64, 64, 64, 3)]     // blocks back to back
    public void Transposed_row_blocks_multiply_within_int8_error_of_the_exact_product(int rowStride, int cols, int rows, int blocks)
    {
        var rng = new Random(rowStride * 13 + cols + rows);
        int totalRows = 16 + (blocks - 1) * rowStride + rows + 16; // first block at row 16, some rows after the last
        // Integers and scales kept, so the bound below can use them.
        int words = WeightMatrix.PackedWordsPerRow(cols, 4), groups = cols / 32;
        var packedWords = Alloc<int>((long)totalRows * words);
        var stored = Alloc<ushort>((long)totalRows * groups);
        var ints = new int[totalRows * cols];
        var scales = new double[totalRows * groups];
        for (int r = 0; r < totalRows; r++)
        {
            for (int g = 0; g < groups; g++)
            {
                stored[r * groups + g] = (ushort)(BitConverter.SingleToInt32Bits((float)(0.01 + rng.NextDouble() * 0.1)) >>> 16);
                scales[r * groups + g] = BitConverter.Int32BitsToSingle(stored[r * groups + g] << 16);
            }
            for (int c = 0; c < cols; c++)
            {
                ints[r * cols + c] = rng.Next(-8, 8);
                ((uint*)packedWords)[(long)r * words + c / 8] |= (uint)(ints[r * cols + c] + 8) << (4 * (c % 8));
            }
        }
        var w = WeightMatrix.FromPackedInt(packedWords, stored, totalRows, cols, 4, 32).RepackRows16(); // in place
        var packed = WeightMatrix.FromPackedInt(Alloc<int>((long)totalRows * words), stored, totalRows, cols, 4, 32); // unrepacked, for an error case
        using var arena = new NativeArena(1 << 20);
        var t = TransposedRowBlocks.Create(w, 16, rowStride, rows, blocks, arena);
        Assert.Equal((long)blocks * cols * rows / 2 + 2L * blocks * cols * (rows / 32), t.StoredBytes);
        foreach (int level in SupportedLevels())
            WithLevel(level, () =>
            {
                for (int b = 0; b < blocks; b++)
                {
                    var alphas = RandomVector(rows, rng);
                    var y = new float[cols];
                    t.TransposeMultiplyInt8(b, alphas, y);
                    int first = 16 + b * rowStride;
                    for (int c = 0; c < cols; c++)
                    {
                        // Each factor α_r·s moves by at most half an int8 step of its 32-row group's largest factor.
                        double expected = 0, bound = 1e-5;
                        for (int r0 = 0; r0 < rows; r0 += 32)
                        {
                            double amax = 0;
                            for (int r = r0; r < r0 + 32; r++) amax = Math.Max(amax, Math.Abs(alphas[r] * scales[(first + r) * groups + c / 32]));
                            for (int r = r0; r < r0 + 32; r++)
                            {
                                int q = ints[(first + r) * cols + c];
                                expected += alphas[r] * scales[(first + r) * groups + c / 32] * q;
                                bound += Math.Abs(q) * (amax / 254 * 1.001 + 1e-7);
                            }
                        }
                        Assert.True(Math.Abs(expected - y[c]) <= bound, $"level {level} block {b} column {c}: expected {expected}, got {y[c]} (bound {bound})");
                    }
                    // The same call on another thread's buffers gives the same bits.
                    var again = new float[cols];
                    Task.Run(() => t.TransposeMultiplyInt8(b, alphas, again)).Wait();
                    Assert.Equal(y, again);
                }
            });

        // Bad arguments name the problem.
        Assert.Contains("RepackRows16", Assert.Throws<ArgumentException>(() => TransposedRowBlocks.Create(packed, 0, rowStride, rows, 1, arena)).Message);
        Assert.Contains("multiple of 32", Assert.Throws<ArgumentException>(() => TransposedRowBlocks.Create(w, 0, rowStride, 24, 1, arena)).Message);
        Assert.Contains("16-row boundaries", Assert.Throws<ArgumentException>(() => TransposedRowBlocks.Create(w, 8, rowStride, rows, 1, arena)).Message);
        Assert.Contains("do not fit", Assert.Throws<ArgumentException>(() => TransposedRowBlocks.Create(w, 16, rowStride, rows, blocks + 2, arena)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TransposeMultiplyInt8(blocks, new float[rows], new float[cols]));
        Assert.Contains("factors", Assert.Throws<ArgumentException>(() => t.TransposeMultiplyInt8(0, new float[rows + 1], new float[cols])).Message);
    }

    [Theory]
    [InlineData(16, 32, 1)]
    [InlineData(32, 96, 7)]
    [InlineData(48, 160, 5)]
    [InlineData(16, 2048, 4)]
    [InlineData(160, 64, 9)]
    [InlineData(16, 96, 13)]   // 8 + 4 + 1 tokens
    [InlineData(544, 64, 20)]  // rows past one 256-row chunk of a batch
    [InlineData(32, 128, 2)]   // the two- and three-token kernels (routed experts in batched decoding), streamed
    [InlineData(16, 64, 3)]
    [InlineData(32, 64, 6)]    // 4 + 2
    [InlineData(16, 96, 11)]   // 8 + 3
    public void Rows16_repack_keeps_every_element_and_its_int8_products_match_the_scalar_reference_bit_for_bit(int rows, int cols, int tokens)
    {
        var rng = new Random(rows * 7 + cols);
        var (packed, values) = Make(WeightFormat.PackedInt, rows, cols, rng);
        Assert.True(packed.CanRepackRows16);
        var w = packed.RepackRows16();
        Assert.Equal(WeightFormat.PackedInt4Rows16, w.Format);
        Assert.Equal(packed.StoredBytes, w.StoredBytes);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            fixed (float* pr = row) MatrixKernels.DecodeRange(w, r, 0, cols, pr);
            for (int c = 0; c < cols; c++) Assert.Equal((float)values[(long)r * cols + c], row[c]);
        }

        var x = RandomVector(tokens * cols, rng);
        var q = new QuantizedActivations();
        var reference = new float[tokens * rows];
        fixed (float* px = x) q.Quantize(px, tokens, cols);
        fixed (float* py = reference)
            for (int b = 0; b < rows / 16; b++) Int4Rows16Kernels.BlockScalar(w, b, q, 0, tokens, py + 16 * b, rows);

        {
            foreach (int level in SupportedLevels())
                foreach (int threads in new[] { 1, 2 })
                    WithLevel(level, () =>
                    {
                        var int8 = new KernelSettings { Activations = ActivationPrecision.Int8, MaxThreads = threads };
                        var batch = new float[tokens * rows];
                        MatrixKernels.MatMul(w, x, batch, tokens, int8);
                        Assert.Equal(reference, batch);
                        var solo = new float[rows];
                        for (int t = 0; t < tokens; t++)
                        {
                            MatrixKernels.MatMul(w, x.AsSpan(t * cols, cols), solo, 1, int8);
                            Assert.Equal(reference.AsSpan(t * rows, rows).ToArray(), solo);
                        }
                        // A decode batch mixing it with an unrepacked matrix computes the same products.
                        var batchOfOne = new MatVecBatch();
                        var other = Make(WeightFormat.PackedInt, 3, cols, new Random(1)).W;
                        var y1 = new float[rows];
                        var y2 = new float[3];
                        var expected2 = new float[3];
                        MatrixKernels.MatMul(other, x.AsSpan(0, cols), expected2, 1, int8);
                        fixed (float* px = x)
                        fixed (float* p1 = y1)
                        fixed (float* p2 = y2)
                        {
                            batchOfOne.Add(other, px, p2);
                            batchOfOne.Add(w, px, p1);
                            batchOfOne.Run(int8);
                        }
                        Assert.Equal(reference.AsSpan(0, rows).ToArray(), y1);
                        Assert.Equal(expected2, y2);
                        // Row blocks on the calling thread (as decode attention projects values): the same bits, from any first block.
                        for (int t = 0; t < tokens; t++)
                        {
                            int first = rows > 16 ? 16 : 0, count = rows - first;
                            var part = new float[count];
                            MatrixKernels.DotRowsInt8(w, first, x.AsSpan(t * cols, cols), part);
                            Assert.Equal(reference.AsSpan(t * rows + first, count).ToArray(), part);
                        }
                    });
        }

        // Within quantization error of the exact product, and float activations still work (through the decode).
        var exact = new float[tokens * rows];
        MatrixKernels.MatMul(w, x, exact, tokens, KernelSettings.Default);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double expected = 0, magnitude = 0;
                for (int c = 0; c < cols; c++)
                {
                    expected += values[(long)r * cols + c] * x[t * cols + c];
                    magnitude += Math.Abs(values[(long)r * cols + c] * x[t * cols + c]);
                }
                Assert.True(Math.Abs(expected - exact[t * rows + r]) <= 1e-5 * (1 + magnitude), $"float path row {r} token {t}");
                Assert.True(Math.Abs(expected - reference[t * rows + r]) <= 1e-2 * (1 + magnitude), $"int8 path row {r} token {t}");
            }
    }

    [Fact]
    public void Rows16_repack_refuses_shapes_it_cannot_block()
    {
        var rng = new Random(3);
        Assert.False(Make(WeightFormat.PackedInt, 17, 64, rng).W.CanRepackRows16);
        Assert.False(Make(WeightFormat.PackedInt, 16, 40, rng).W.CanRepackRows16);
        Assert.False(Make(WeightFormat.BF16, 16, 64, rng).W.CanRepackRows16);
        var e = Assert.Throws<ArgumentException>(() => Make(WeightFormat.PackedInt, 17, 64, rng).W.RepackRows16());
        Assert.Contains("16-row blocks", e.Message);
    }

    [Theory]
    [InlineData(128)]
    [InlineData(3 * 128 + 37)]
    [InlineData(2048)]
    public void Vectorized_activation_quantization_equals_the_scalar_one(int cols)
    {
        var rng = new Random(cols);
        var x = RandomVector(3 * cols, rng);
        x[5] = 0; x[cols + 1] = 3.5f; // a zero and an outlier
        using var vector = new QuantizedActivations();
        using var scalar = new QuantizedActivations();
        bool saved = QuantizedActivations.UseVectors;
        try
        {
            fixed (float* px = x)
            {
                vector.Quantize(px, 3, cols);
                QuantizedActivations.UseVectors = false;
                scalar.Quantize(px, 3, cols);
            }
        }
        finally
        {
            QuantizedActivations.UseVectors = saved;
        }
        for (int t = 0; t < 3; t++)
        {
            var a = vector[t];
            var b = scalar[t];
            long superblockBytes = cols / 128 * (long)QuantizedActivations.SuperblockBytes;
            Assert.True(new ReadOnlySpan<byte>(a.Blocks, (int)superblockBytes).SequenceEqual(new ReadOnlySpan<byte>(b.Blocks, (int)superblockBytes)));
            Assert.True(new ReadOnlySpan<sbyte>(a.Natural, cols).SequenceEqual(new ReadOnlySpan<sbyte>(b.Natural, cols)));
            for (int c = 0; c < cols; c++)
            {
                int g = c / 32;
                Assert.InRange(a.Natural[c], -127, 127);
                Assert.True(Math.Abs(a.Natural[c] * a.GroupScales[g] - x[t * cols + c]) <= a.GroupScales[g] * 0.5001 + 1e-7);
            }
        }
    }

    private sealed class SumJob(long[] output) : IRowJob
    {
        public void Run(int rowStart, int rowEnd)
        {
            for (int r = rowStart; r < rowEnd; r++) output[r] += (long)r * r + 1;
        }
    }

    private sealed class FailingJob : IRowJob
    {
        public void Run(int rowStart, int rowEnd)
        {
            if (rowStart == 0) throw new InvalidOperationException("boom");
        }
    }

    [Fact]
    public void The_worker_pool_runs_every_row_exactly_once_and_reports_failures()
    {
        foreach (int threads in new[] { 1, 2, 3 })
        {
            for (int round = 0; round < 200; round++)
            {
                int rows = 1 + round % 37;
                var output = new long[rows];
                KernelThreading.ParallelRows(rows, Math.Min(rows, 1 + round % 9), new SumJob(output), threads, taper: round % 2 == 1);
                for (int r = 0; r < rows; r++) Assert.Equal((long)r * r + 1, output[r]);
            }
            if (threads > 1)
                Assert.ThrowsAny<Exception>(() => KernelThreading.ParallelRows(8, 4, new FailingJob(), threads));
            var after = new long[10];
            KernelThreading.ParallelRows(10, 5, new SumJob(after), threads);
            Assert.Equal(82, after[^1]);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 7)]
    [InlineData(100, 32)]
    [InlineData(22528, 32)]
    [InlineData(163840, 32)]
    public void Tapered_parts_cover_the_rows_in_order_and_shrink_toward_the_end(int rows, int parts)
    {
        int previous = 0, previousSize = rows;
        for (int p = 1; p <= parts; p++)
        {
            int start = KernelThreading.PartStart(rows, p - 1, parts, taper: true), end = KernelThreading.PartStart(rows, p, parts, taper: true);
            Assert.Equal(previous, start);
            Assert.True(end >= start);
            // Sizes never grow (up to one row of rounding).
            Assert.True(end - start <= previousSize + 1, $"part {p - 1}: {end - start} rows after {previousSize}");
            previous = end;
            previousSize = end - start;
        }
        Assert.Equal(rows, previous);
        if (rows >= 1000)
        {
            // The first part is about twice the mean, the last about 1/parts of the mean.
            double mean = (double)rows / parts;
            Assert.InRange(KernelThreading.PartStart(rows, 1, parts, taper: true), 1.8 * mean, 2.0 * mean);
            Assert.InRange(rows - KernelThreading.PartStart(rows, parts - 1, parts, taper: true), 0.5 * mean / parts, 2.0 * mean / parts);
        }
    }

    [Fact]
    public void Concurrent_callers_get_the_same_results_as_serial_ones()
    {
        var rng = new Random(3);
        var (w, _) = Make(WeightFormat.PackedInt, 300, 640, rng);
        var x = RandomVector(640 * 3, rng);
        var expected = new float[900];
        MatrixKernels.MatMul(w, x, expected, 3, KernelSettings.Default);
        Parallel.For(0, 8, _ =>
        {
            var y = new float[900];
            for (int i = 0; i < 20; i++)
            {
                MatrixKernels.MatMul(w, x, y, 3, KernelSettings.Default);
                Assert.Equal(expected, y);
            }
        });
    }

    [Fact]
    public void Memory_bandwidth_probe_reports_a_positive_rate()
    {
        double rate = MemoryBandwidth.Measure(8 << 20, 2, passes: 3);
        Assert.True(rate > 0.1 && rate < 10_000, $"rate {rate} GB/s");
    }
}
