using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KimiSharp.Kernels;

/// <summary>
/// Matrix products over weights in their stored format. Quantized rows are decoded in small chunks on the
/// fly (never into a float copy of the matrix) and accumulated in float32.
/// </summary>
public static unsafe class MatrixKernels
{
    /// <summary>Columns decoded at a time when a row is consumed chunk by chunk; a multiple of every block size we meet.</summary>
    private const int ChunkColumns = 256;

    /// <summary>w[row, :] · x.</summary>
    public static float DotRow(WeightMatrix w, int row, ReadOnlySpan<float> x)
    {
        CheckRow(w, row);
        if (x.Length < w.Cols) throw new ArgumentException($"input has {x.Length} values, the weight has {w.Cols} columns");
        fixed (float* px = x) return DotRowUnchecked(w, row, px);
    }

    /// <summary>
    /// Decodes the row a chunk at a time and accumulates chunk dot products in order. MatMul reuses exactly
    /// these steps for every token, so a token's result does not depend on how many share the batch.
    /// </summary>
    internal static float DotRowUnchecked(WeightMatrix w, int row, float* x)
    {
        if (w.Format == WeightFormat.F32)
            return DotChunked((float*)(w.Data + row * w.RowBytes), x, w.Cols);
        float sum = 0;
        float* chunk = stackalloc float[ChunkColumns];
        for (int c = 0; c < w.Cols; c += ChunkColumns)
        {
            int n = Math.Min(ChunkColumns, w.Cols - c);
            DecodeRange(w, row, c, n, chunk);
            sum += Reductions.Dot(chunk, x + c, n);
        }
        return sum;
    }

    /// <summary>Σ over chunks of <see cref="ChunkColumns"/> of the chunk dot products: the order every row product uses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotChunked(float* row, float* x, int cols)
    {
        float sum = 0;
        for (int c = 0; c < cols; c += ChunkColumns)
            sum += Reductions.Dot(row + c, x + c, Math.Min(ChunkColumns, cols - c));
        return sum;
    }

    /// <summary>Writes w[row, :] as float32 into <paramref name="destination"/>.</summary>
    public static void DecodeRow(WeightMatrix w, int row, Span<float> destination)
    {
        CheckRow(w, row);
        if (destination.Length < w.Cols) throw new ArgumentException($"destination has {destination.Length} values, the weight has {w.Cols} columns");
        fixed (float* d = destination) DecodeRange(w, row, 0, w.Cols, d);
    }

    /// <summary>y += alpha · w[row, :] (a column of wᵀ; used to fold a projection into the query side).</summary>
    public static void AddScaledRow(WeightMatrix w, int row, float alpha, Span<float> y)
    {
        CheckRow(w, row);
        if (y.Length < w.Cols) throw new ArgumentException($"output has {y.Length} values, the weight has {w.Cols} columns");
        float* chunk = stackalloc float[ChunkColumns];
        for (int c = 0; c < w.Cols; c += ChunkColumns)
        {
            int n = Math.Min(ChunkColumns, w.Cols - c);
            DecodeRange(w, row, c, n, chunk);
            var target = y.Slice(c, n);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(chunk, n), alpha, target, target);
        }
    }

    /// <summary>
    /// y[t, r] = Σ_c w[r, c] · x[t, c] for <paramref name="tokens"/> rows of x: a linear layer applied to a batch.
    /// Rows of w are split across threads; each decoded row is reused for every token.
    /// </summary>
    public static void MatMul(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (tokens <= 0) return;
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"input holds {x.Length} values, need {tokens}×{w.Cols}");
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"output holds {y.Length} values, need {tokens}×{w.Rows}");
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var job = new MatMulJob(w, px, py, tokens);
            long work = (long)w.Rows * w.Cols * tokens;
            int parts = KernelThreading.PartsFor(work, w.Rows);
            if (parts <= 1) job.Run(0, w.Rows);
            else KernelThreading.ParallelRows(w.Rows, parts, job);
        }
    }

    private sealed class MatMulJob(WeightMatrix w, float* x, float* y, int tokens) : IRowJob
    {
        [ThreadStatic] private static float[]? t_rowBuffer;

        public void Run(int rowStart, int rowEnd)
        {
            if (tokens == 1 || w.Format == WeightFormat.F32)
            {
                for (int r = rowStart; r < rowEnd; r++)
                    for (int t = 0; t < tokens; t++)
                        y[(long)t * w.Rows + r] = DotRowUnchecked(w, r, x + (long)t * w.Cols);
                return;
            }
            var buffer = t_rowBuffer;
            if (buffer is null || buffer.Length < w.Cols) t_rowBuffer = buffer = new float[Math.Max(w.Cols, 1024)];
            fixed (float* row = buffer)
            {
                for (int r = rowStart; r < rowEnd; r++)
                {
                    DecodeRange(w, r, 0, w.Cols, row);
                    for (int t = 0; t < tokens; t++)
                        y[(long)t * w.Rows + r] = DotChunked(row, x + (long)t * w.Cols, w.Cols);
                }
            }
        }
    }

    private static void CheckRow(WeightMatrix w, int row)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"the weight has {w.Rows} rows");
    }

    /// <summary>Decodes w[row, col .. col+count) into float32.</summary>
    internal static void DecodeRange(WeightMatrix w, int row, int col, int count, float* destination)
    {
        byte* rowData = w.Data + row * w.RowBytes;
        switch (w.Format)
        {
            case WeightFormat.F32:
                new ReadOnlySpan<float>((float*)rowData + col, count).CopyTo(new Span<float>(destination, count));
                break;
            case WeightFormat.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)rowData + col, count), new Span<float>(destination, count));
                break;
            case WeightFormat.BF16:
                DecodeBf16((ushort*)rowData + col, destination, count);
                break;
            case WeightFormat.Fp8Block:
                DecodeFp8Block(w, row, rowData, col, count, destination);
                break;
            case WeightFormat.PackedInt:
                DecodePackedInt(w, row, (uint*)rowData, col, count, destination);
                break;
            default:
                throw new NotSupportedException($"weight format {w.Format}");
        }
    }

    private static void DecodeFp8Block(WeightMatrix w, int row, byte* rowData, int col, int count, float* destination)
    {
        float* scaleRow = (float*)w.Scales + (long)(row / w.BlockRows) * w.ScaleStride;
        int end = col + count;
        while (col < end)
        {
            int block = col / w.BlockCols;
            int blockEnd = Math.Min(end, (block + 1) * w.BlockCols);
            int n = blockEnd - col;
            DecodeFp8(rowData + col, destination, n, scaleRow[block]);
            destination += n;
            col = blockEnd;
        }
    }

    private static void DecodePackedInt(WeightMatrix w, int row, uint* words, int col, int count, float* destination)
    {
        ushort* scaleRow = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int bits = w.Bits, perWord = 32 / bits, mask = (1 << bits) - 1, offset = 1 << (bits - 1);
        int end = col + count;
        while (col < end)
        {
            int group = col / w.BlockCols;
            int groupEnd = Math.Min(end, (group + 1) * w.BlockCols);
            float scale = NumberFormats.Bf16ToFloat(scaleRow[group]);
            for (; col < groupEnd; col++)
            {
                uint word = words[col / perWord];
                int q = (int)((word >> (bits * (col % perWord))) & (uint)mask) - offset;
                *destination++ = q * scale;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecodeBf16(ushort* source, float* destination, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= count; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(source + i));
                Vector512.ShiftLeft(lo, 16).AsSingle().Store(destination + i);
                Vector512.ShiftLeft(hi, 16).AsSingle().Store(destination + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= count; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(source + i));
                Vector256.ShiftLeft(lo, 16).AsSingle().Store(destination + i);
                Vector256.ShiftLeft(hi, 16).AsSingle().Store(destination + i + 8);
            }
        }
        for (; i < count; i++) destination[i] = NumberFormats.Bf16ToFloat(source[i]);
    }

    /// <summary>
    /// E4M3 to float32 by moving the 7 magnitude bits to the top of a float's exponent/mantissa and
    /// multiplying by 2^(127−7) to re-bias; float denormals make E4M3 subnormals come out right too.
    /// </summary>
    private static void DecodeFp8(byte* source, float* destination, int count, float scale)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var rebias = Vector512.Create(BitConverter.Int32BitsToSingle(247 << 23) * scale); // 2^120 · scale
            for (; i + 16 <= count; i += 16)
            {
                var bytes = Vector512.WidenLower(Vector512.WidenLower(Vector128.Load(source + i).ToVector256().ToVector512()));
                var magnitude = Vector512.ShiftLeft(bytes & Vector512.Create(0x7Fu), 20).AsSingle() * rebias;
                var sign = Vector512.ShiftLeft(bytes & Vector512.Create(0x80u), 24).AsSingle();
                (magnitude | sign).Store(destination + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var rebias = Vector256.Create(BitConverter.Int32BitsToSingle(247 << 23) * scale);
            for (; i + 8 <= count; i += 8)
            {
                var bytes = Vector256.WidenLower(Vector256.WidenLower(Vector128.CreateScalar(*(ulong*)(source + i)).AsByte().ToVector256()));
                var magnitude = Vector256.ShiftLeft(bytes & Vector256.Create(0x7Fu), 20).AsSingle() * rebias;
                var sign = Vector256.ShiftLeft(bytes & Vector256.Create(0x80u), 24).AsSingle();
                (magnitude | sign).Store(destination + i);
            }
        }
        var table = NumberFormats.Fp8E4M3Table;
        for (; i < count; i++) destination[i] = table[source[i]] * scale;
    }
}
