using System.Runtime.InteropServices;
using KimiSharp.Kernels;

namespace KimiSharp.Kernels.Tests;

/// <summary>Every weight format's kernels against a scalar, double-precision reading of the same bytes.</summary>
public sealed unsafe class MatrixKernelsTests : IDisposable
{
    private readonly List<nint> _allocations = [];

    private T* Alloc<T>(long count) where T : unmanaged
    {
        var p = (T*)NativeMemory.AllocZeroed((nuint)(count * sizeof(T)));
        _allocations.Add((nint)p);
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _allocations) NativeMemory.Free((void*)p);
    }

    /// <summary>A random matrix in the given format plus its exact float64 values.</summary>
    private (WeightMatrix Matrix, double[] Values) Make(WeightFormat format, int rows, int cols, Random rng,
        int blockRows = 128, int blockCols = 128, int bits = 4, int groupSize = 32)
    {
        if (format == WeightFormat.PackedInt4Rows16)
        {
            var (packedInt, packedValues) = Make(WeightFormat.PackedInt, rows, cols, rng);
            return (packedInt.RepackRows16(), packedValues);
        }
        var values = new double[(long)rows * cols];
        switch (format)
        {
            case WeightFormat.F32:
            {
                var data = Alloc<float>((long)rows * cols);
                for (long i = 0; i < values.Length; i++) values[i] = data[i] = (float)(rng.NextDouble() * 2 - 1);
                return (WeightMatrix.FromFloat32(data, rows, cols), values);
            }
            case WeightFormat.F16:
            {
                var data = Alloc<Half>((long)rows * cols);
                for (long i = 0; i < values.Length; i++) { data[i] = (Half)(rng.NextDouble() * 2 - 1); values[i] = (double)data[i]; }
                return (WeightMatrix.FromFloat16(data, rows, cols), values);
            }
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
                var data = Alloc<byte>((long)rows * cols);
                int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                var scales = Alloc<float>((long)scaleRows * scaleCols);
                for (int i = 0; i < scaleRows * scaleCols; i++) scales[i] = (float)(0.001 + rng.NextDouble() * 0.01);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                    {
                        byte b;
                        do b = (byte)rng.Next(256); while ((b & 0x7F) == 0x7F); // skip the NaN codes
                        data[(long)r * cols + c] = b;
                        values[(long)r * cols + c] = ReferenceFp8(b) * scales[(r / blockRows) * scaleCols + c / blockCols];
                    }
                return (WeightMatrix.FromFp8Block(data, scales, rows, cols, blockRows, blockCols), values);
            }
            case WeightFormat.PackedInt:
            {
                int words = WeightMatrix.PackedWordsPerRow(cols, bits), groups = (cols + groupSize - 1) / groupSize;
                var packed = Alloc<int>((long)rows * words);
                var scales = Alloc<ushort>((long)rows * groups);
                for (int r = 0; r < rows; r++)
                {
                    for (int g = 0; g < groups; g++)
                        scales[r * groups + g] = (ushort)(BitConverter.SingleToInt32Bits((float)(0.01 + rng.NextDouble() * 0.1)) >>> 16);
                    for (int c = 0; c < cols; c++)
                    {
                        int q = rng.Next(-(1 << (bits - 1)), 1 << (bits - 1));
                        int perWord = 32 / bits;
                        uint stored = (uint)(q + (1 << (bits - 1)));
                        ((uint*)packed)[(long)r * words + c / perWord] |= stored << (bits * (c % perWord));
                        values[(long)r * cols + c] = q * (double)BitConverter.Int32BitsToSingle(scales[r * groups + c / groupSize] << 16);
                    }
                }
                return (WeightMatrix.FromPackedInt(packed, scales, rows, cols, bits, groupSize), values);
            }
            default: throw new ArgumentOutOfRangeException(nameof(format));
        }
    }

    /// <summary>E4M3FN by its definition, independent of the kernels' table and bit trick.</summary>
    private static double ReferenceFp8(byte b)
    {
        int sign = b >> 7, exponent = (b >> 3) & 15, mantissa = b & 7;
        double magnitude = exponent == 0 ? mantissa / 8.0 * Math.Pow(2, -6) : (1 + mantissa / 8.0) * Math.Pow(2, exponent - 7);
        return sign == 1 ? -magnitude : magnitude;
    }

    public static TheoryData<WeightFormat, int, int> Shapes()
    {
        var data = new TheoryData<WeightFormat, int, int>();
        foreach (var format in Enum.GetValues<WeightFormat>())
            // The 16-row layout exists only for whole blocks of 16 rows and 32 columns.
            foreach (var (rows, cols) in format == WeightFormat.PackedInt4Rows16
                ? new[] { (16, 32), (32, 96), (48, 288), (16, 1056) }
                : new[] { (1, 1), (1, 7), (3, 31), (5, 33), (2, 130), (6, 192), (7, 257), (4, 300), (3, 1031) })
                data.Add(format, rows, cols);
        return data;
    }

    private static float[] RandomVector(int n, Random rng, int count = 1)
    {
        var x = new float[n * count];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>Equal up to float32 rounding of the result.</summary>
    internal static void Near(double expected, double actual, double relative = 1e-6, double absolute = 1e-6)
    {
        double tolerance = absolute + relative * Math.Abs(expected);
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"expected {expected}, got {actual} (tolerance {tolerance})");
    }

    private static void AssertClose(double expected, double actual, double scale, string what)
    {
        double tolerance = 1e-5 * Math.Max(1, scale);
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected}, got {actual} (tolerance {tolerance})");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void DotRow_MatMul_DecodeRow_AddScaledRow_match_the_scalar_reference(WeightFormat format, int rows, int cols)
    {
        var rng = new Random(rows * 1000 + cols + (int)format);
        var (w, values) = Make(format, rows, cols, rng, blockRows: 2, blockCols: 16, groupSize: 32);
        const int tokens = 3;
        var x = RandomVector(cols, rng, tokens);
        var y = new float[tokens * rows];
        MatrixKernels.MatMul(w, x, y, tokens, KernelSettings.Default);
        var decoded = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            MatrixKernels.DecodeRow(w, r, decoded);
            for (int c = 0; c < cols; c++) Near(values[(long)r * cols + c], decoded[c]);
            for (int t = 0; t < tokens; t++)
            {
                double expected = 0, magnitude = 0;
                for (int c = 0; c < cols; c++)
                {
                    expected += values[(long)r * cols + c] * x[t * cols + c];
                    magnitude += Math.Abs(values[(long)r * cols + c] * x[t * cols + c]);
                }
                AssertClose(expected, y[t * rows + r], magnitude, $"{format} [{rows}x{cols}] MatMul row {r} token {t}");
                AssertClose(expected, MatrixKernels.DotRow(w, r, x.AsSpan(t * cols, cols)), magnitude, $"{format} DotRow {r}");
            }
        }
        var acc = RandomVector(cols, rng);
        var before = (float[])acc.Clone();
        MatrixKernels.AddScaledRow(w, rows - 1, 0.75f, acc);
        for (int c = 0; c < cols; c++)
            AssertClose(before[c] + 0.75 * values[(long)(rows - 1) * cols + c], acc[c], 1, $"{format} AddScaledRow col {c}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AddScaledRows_and_DotRows_match_row_by_row_arithmetic(WeightFormat format, int rows, int cols)
    {
        var rng = new Random(rows * 997 + cols + (int)format);
        var (w, values) = Make(format, rows, cols, rng, blockRows: 2, blockCols: 16, groupSize: 32);
        var alphas = RandomVector(rows, rng);
        var acc = RandomVector(cols, rng);
        var expected = (float[])acc.Clone();
        var decoded = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            // The documented arithmetic: the decoded row, then one fused multiply-add per row, rows in order.
            MatrixKernels.DecodeRow(w, r, decoded);
            for (int c = 0; c < cols; c++) expected[c] = MathF.FusedMultiplyAdd(alphas[r], decoded[c], expected[c]);
        }
        var before = (float[])acc.Clone();
        MatrixKernels.AddScaledRows(w, 0, alphas, acc);
        for (int c = 0; c < cols; c++)
        {
            double reference = before[c], magnitude = Math.Abs(before[c]);
            for (int r = 0; r < rows; r++) { reference += alphas[r] * values[(long)r * cols + c]; magnitude += Math.Abs(alphas[r] * values[(long)r * cols + c]); }
            Assert.Equal(expected[c], acc[c]);
            AssertClose(reference, acc[c], magnitude, $"{format} AddScaledRows col {c}");
        }

        var x = RandomVector(cols, rng);
        var y = new float[rows];
        MatrixKernels.DotRows(w, 0, x, y);
        for (int r = 0; r < rows; r++) Assert.Equal(MatrixKernels.DotRow(w, r, x), y[r]);
        if (rows > 1)
        {
            // A block starting at an odd row pairs the rows differently; every row product is still DotRow's.
            var tail = new float[rows - 1];
            MatrixKernels.DotRows(w, 1, x, tail);
            for (int r = 1; r < rows; r++) Assert.Equal(y[r], tail[r - 1]);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => MatrixKernels.AddScaledRows(w, rows - 1, new float[2], new float[cols]));
    }

    [Theory]
    [InlineData(WeightFormat.PackedInt)]
    [InlineData(WeightFormat.BF16)]
    [InlineData(WeightFormat.F32)]
    public void Batches_walked_in_row_chunks_give_each_row_product_bit_for_bit(WeightFormat format)
    {
        // 600 rows × 11 tokens: several 256-row chunks and a token tail, on one thread and on two.
        var rng = new Random(600 + (int)format);
        var (w, _) = Make(format, 600, 96, rng, blockRows: 2, blockCols: 16, groupSize: 32);
        const int tokens = 11;
        var x = RandomVector(96, rng, tokens);
        foreach (int threads in new[] { 1, 2 })
        {
            var y = new float[tokens * 600];
            MatrixKernels.MatMul(w, x, y, tokens, new KernelSettings { MaxThreads = threads });
            for (int t = 0; t < tokens; t++)
                for (int r = 0; r < 600; r++)
                    Assert.Equal(MatrixKernels.DotRow(w, r, x.AsSpan(t * 96, 96)), y[t * 600 + r]);
        }
    }

    [Theory]
    [InlineData(128, 128, 300, 260)]
    [InlineData(3, 5, 10, 23)]
    [InlineData(1, 1, 4, 9)]
    public void Fp8_block_scales_apply_per_block(int blockRows, int blockCols, int rows, int cols)
    {
        var rng = new Random(blockRows * 7 + blockCols);
        var (w, values) = Make(WeightFormat.Fp8Block, rows, cols, rng, blockRows, blockCols);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            MatrixKernels.DecodeRow(w, r, row);
            for (int c = 0; c < cols; c++) Near(values[(long)r * cols + c], row[c]);
        }
    }

    [Theory]
    [InlineData(4, 32, 100)]
    [InlineData(4, 7, 45)]
    [InlineData(8, 16, 37)]
    [InlineData(4, 32, 3)]
    public void Packed_integers_unpack_little_nibble_first_with_offset(int bits, int groupSize, int cols)
    {
        var rng = new Random(bits * 100 + groupSize + cols);
        var (w, values) = Make(WeightFormat.PackedInt, 3, cols, rng, bits: bits, groupSize: groupSize);
        var row = new float[cols];
        for (int r = 0; r < 3; r++)
        {
            MatrixKernels.DecodeRow(w, r, row);
            for (int c = 0; c < cols; c++) Near(values[(long)r * cols + c], row[c]);
        }
    }

    [Fact]
    public void Packed_int4_layout_is_the_compressed_tensors_one()
    {
        // One row, eight columns: q = -8..7 step 2 → nibbles 0,2,4,..,14 at bits 0,4,..,28 of one word; scale 1.
        int* packed = Alloc<int>(1);
        ushort* scale = Alloc<ushort>(1);
        *scale = 0x3F80; // bf16 1.0
        uint word = 0;
        for (int c = 0; c < 8; c++) word |= (uint)(2 * c) << (4 * c);
        *(uint*)packed = word;
        var w = WeightMatrix.FromPackedInt(packed, scale, 1, 8, 4, 32);
        var row = new float[8];
        MatrixKernels.DecodeRow(w, 0, row);
        Assert.Equal([-8f, -6f, -4f, -2f, 0f, 2f, 4f, 6f], row);
    }

    [Fact]
    public void Fp8_table_matches_the_format_definition_for_every_byte()
    {
        for (int b = 0; b < 256; b++)
        {
            double expected = (b & 0x7F) == 0x7F ? double.NaN : ReferenceFp8((byte)b);
            float actual = NumberFormats.Fp8E4M3ToFloat((byte)b);
            if (double.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"byte {b:X2} should be NaN");
            else Assert.Equal(expected, actual);
        }
        Assert.Equal(448f, NumberFormats.Fp8E4M3ToFloat(0x7E));
        Assert.Equal(MathF.Pow(2, -9), NumberFormats.Fp8E4M3ToFloat(0x01));
    }

    [Fact]
    public void Vectorized_fp8_decode_agrees_with_the_table_on_every_non_nan_byte()
    {
        var bytes = Alloc<byte>(256);
        int n = 0;
        for (int b = 0; b < 256; b++) if ((b & 0x7F) != 0x7F) bytes[n++] = (byte)b;
        var scale = Alloc<float>(1);
        *scale = 1f;
        var w = WeightMatrix.FromFp8Block(bytes, scale, 1, n, 128, 1024);
        var row = new float[n];
        MatrixKernels.DecodeRow(w, 0, row);
        for (int i = 0; i < n; i++) Assert.Equal(NumberFormats.Fp8E4M3ToFloat(bytes[i]), row[i]);
    }

    [Fact]
    public void Kernel_settings_reject_what_they_cannot_run()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelSettings { MaxThreads = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelSettings { Activations = (ActivationPrecision)7 });
        Assert.Equal(ActivationPrecision.Float32, KernelSettings.Default.Activations);
        Assert.Equal(Environment.ProcessorCount, KernelSettings.Default.MaxThreads);
        var (w, _) = Make(WeightFormat.F32, 2, 3, new Random(1));
        Assert.Throws<ArgumentNullException>(() => MatrixKernels.MatMul(w, new float[3], new float[2], 1, null!));
    }

    [Fact]
    public void Callers_with_different_settings_at_once_each_get_their_own_products()
    {
        // Int8 and float32 products of one INT4 matrix, on one, two and three threads, from eight callers at once: each
        // result is what its own settings compute alone. (A process-wide setting would mix them up.)
        var rng = new Random(17);
        var (w, _) = Make(WeightFormat.PackedInt, 320, 640, rng);
        var x = RandomVector(640, rng, 3);
        KernelSettings[] settings =
        [
            new() { Activations = ActivationPrecision.Float32, MaxThreads = 1 },
            new() { Activations = ActivationPrecision.Int8, MaxThreads = 2 },
            new() { Activations = ActivationPrecision.Float32, MaxThreads = 3 },
            new() { Activations = ActivationPrecision.Int8, MaxThreads = 1 },
        ];
        var expected = settings.Select(k =>
        {
            var y = new float[3 * 320];
            MatrixKernels.MatMul(w, x, y, 3, k);
            return y;
        }).ToArray();
        Assert.NotEqual(expected[0], expected[1]); // the two precisions really differ here
        Assert.Equal(expected[0], expected[2]);    // and the thread count never changes a result
        Assert.Equal(expected[1], expected[3]);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var y = new float[3 * 320];
            for (int round = 0; round < 10; round++)
            {
                MatrixKernels.MatMul(w, x, y, 3, settings[i % settings.Length]);
                Assert.Equal(expected[i % settings.Length], y);
            }
        });
    }

    [Fact]
    public void MatMul_splits_large_work_across_threads_without_changing_results()
    {
        var rng = new Random(5);
        var (w, _) = Make(WeightFormat.BF16, 257, 515, rng);
        var x = RandomVector(515, rng, 4);
        var parallel = new float[4 * 257];
        var serial = new float[4 * 257];
        MatrixKernels.MatMul(w, x, parallel, 4, new KernelSettings { MaxThreads = 4 });
        MatrixKernels.MatMul(w, x, serial, 4, new KernelSettings { MaxThreads = 1 });
        Assert.Equal(serial, parallel);
    }

    /// <summary>
    /// Batch invariance: a token's output is bit-identical whether it is multiplied alone or with others, in any
    /// thread split. The engine's guarantee that batching and prefix caching never change results rests on it.
    /// </summary>
    [Theory]
    [InlineData(WeightFormat.BF16)]
    [InlineData(WeightFormat.Fp8Block)]
    [InlineData(WeightFormat.PackedInt)]
    [InlineData(WeightFormat.F32)]
    public void Each_token_of_a_batch_equals_its_solo_product_bit_for_bit(WeightFormat format)
    {
        var rng = new Random(11);
        var (w, _) = Make(format, 301, 777, rng, blockRows: 128, blockCols: 128);
        const int tokens = 7;
        var x = RandomVector(777, rng, tokens);
        var batch = new float[tokens * 301];
        MatrixKernels.MatMul(w, x, batch, tokens, KernelSettings.Default);
        var solo = new float[301];
        for (int t = 0; t < tokens; t++)
        {
            MatrixKernels.MatMul(w, x.AsSpan(t * 777, 777), solo, 1, KernelSettings.Default);
            for (int r = 0; r < 301; r++)
            {
                Assert.Equal(solo[r], batch[t * 301 + r]);
                Assert.Equal(solo[r], MatrixKernels.DotRow(w, r, x.AsSpan(t * 777, 777)));
            }
        }
        // The same numbers from a copy of the input at another address (alignment must not matter).
        var shifted = new float[777 + 3];
        x.AsSpan(0, 777).CopyTo(shifted.AsSpan(3));
        MatrixKernels.MatMul(w, shifted.AsSpan(3, 777), solo, 1, KernelSettings.Default);
        for (int r = 0; r < 301; r++) Assert.Equal(batch[r], solo[r]);
    }

    [Fact]
    public void Bad_arguments_are_rejected_with_a_message()
    {
        var rng = new Random(1);
        var (w, _) = Make(WeightFormat.F32, 2, 4, rng);
        Assert.Throws<ArgumentOutOfRangeException>(() => MatrixKernels.DotRow(w, 2, new float[4]));
        var e = Assert.Throws<ArgumentException>(() => MatrixKernels.MatMul(w, new float[3], new float[2], 1, KernelSettings.Default));
        Assert.Contains("need 1×4", e.Message);
        Assert.Throws<ArgumentException>(() => WeightMatrix.FromPackedInt(null, null, 1, 8, 3, 32));

        // The int8 row-block product: only the 16-row layout, whole blocks, an input of the weight's width.
        e = Assert.Throws<ArgumentException>(() => MatrixKernels.DotRowsInt8(w, 0, new float[4], new float[2]));
        Assert.Contains("RepackRows16", e.Message);
        var (w16, _) = Make(WeightFormat.PackedInt4Rows16, 32, 64, rng);
        e = Assert.Throws<ArgumentException>(() => MatrixKernels.DotRowsInt8(w16, 8, new float[64], new float[16]));
        Assert.Contains("whole blocks of 16", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatrixKernels.DotRowsInt8(w16, 0, new float[32], new float[16]));
        Assert.Contains("64 columns", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => MatrixKernels.DotRowsInt8(w16, 16, new float[64], new float[32]));
    }
}
