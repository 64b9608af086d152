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
    /// One row product in the format's fixed reduction order. MatMul calls exactly this for every (row, token), so a
    /// token's result does not depend on how many share the batch, how rows are split across threads, or alignment.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotRowUnchecked(WeightMatrix w, int row, float* x)
    {
        switch (w.Format)
        {
            case WeightFormat.F32:
                return DotChunked((float*)(w.Data + row * w.RowBytes), x, w.Cols);
            case WeightFormat.BF16:
                return FusedKernels.DotBf16((ushort*)(w.Data + row * w.RowBytes), x, w.Cols);
            case WeightFormat.Fp8Block:
                return FusedKernels.DotFp8Block(w, row, x);
            case WeightFormat.PackedInt when Int4Kernels.Handles(w):
                return Int4Kernels.Dot(w, row, x);
        }
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

    /// <summary>Σ over chunks of <see cref="ChunkColumns"/> of the chunk dot products: the order every F32 row product uses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotChunked(float* row, float* x, int cols)
    {
        float sum = 0;
        for (int c = 0; c < cols; c += ChunkColumns)
            sum += Reductions.Dot(row + c, x + c, Math.Min(ChunkColumns, cols - c));
        return sum;
    }

    /// <summary>
    /// y[i] = w[firstRow + i, :] · x for i &lt; y.Length on the calling thread: a block of rows, each the row product
    /// <see cref="DotRow"/> computes (INT4 rows two at a time, sharing the loads of x).
    /// </summary>
    public static void DotRows(WeightMatrix w, int firstRow, ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length == 0) return;
        CheckRows(w, firstRow, y.Length);
        if (x.Length < w.Cols) throw new ArgumentException($"input has {x.Length} values, the weight has {w.Cols} columns");
        fixed (float* px = x)
        fixed (float* py = y)
        {
            int r = 0, count = y.Length;
            if (Int4Kernels.Handles(w))
                for (; r + 2 <= count; r += 2) Int4Kernels.DotRows2(w, firstRow + r, px, py + r, py + r + 1);
            for (; r < count; r++) py[r] = DotRowUnchecked(w, firstRow + r, px);
        }
    }

    /// <summary>
    /// y[i] = w[firstRow + i, :] · x for a <see cref="WeightFormat.PackedInt4Rows16"/> weight on the calling thread, with
    /// x quantized to int8 per 32-column block first: whole 16-row blocks, each exactly as the batched int8 product
    /// (<see cref="MatMul"/> with <see cref="KernelSettings.Int8Activations"/>) computes it for the same input.
    /// </summary>
    public static void DotRowsInt8(WeightMatrix w, int firstRow, ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length == 0) return;
        if (w.Format != WeightFormat.PackedInt4Rows16) throw new ArgumentException($"a {w.Format} weight has no int8 row-block product; repack it with RepackRows16", nameof(w));
        const int block = Int4Rows16Kernels.Rows;
        if (firstRow % block != 0 || y.Length % block != 0)
            throw new ArgumentException($"rows {firstRow}…{firstRow + y.Length - 1} are not whole blocks of {block}");
        CheckRows(w, firstRow, y.Length);
        if (x.Length != w.Cols) throw new ArgumentException($"input has {x.Length} values, the weight has {w.Cols} columns");
        var quantized = t_rowsInput ??= new QuantizedActivations();
        fixed (float* px = x) quantized.Quantize(px, 1, w.Cols);
        fixed (float* py = y)
            for (int b = 0; b < y.Length / block; b++)
                Int4Rows16Kernels.Block(w, firstRow / block + b, quantized, 0, 1, py + b * block, 1);
    }

    [ThreadStatic] private static QuantizedActivations? t_rowsInput;

    /// <summary>Writes w[row, :] as float32 into <paramref name="destination"/>.</summary>
    public static void DecodeRow(WeightMatrix w, int row, Span<float> destination)
    {
        CheckRow(w, row);
        if (destination.Length < w.Cols) throw new ArgumentException($"destination has {destination.Length} values, the weight has {w.Cols} columns");
        fixed (float* d = destination) DecodeRange(w, row, 0, w.Cols, d);
    }

    /// <summary>y[c] = fma(alpha, w[row, c], y[c]): one row of <see cref="AddScaledRows"/>.</summary>
    public static void AddScaledRow(WeightMatrix w, int row, float alpha, Span<float> y) =>
        AddScaledRows(w, row, new ReadOnlySpan<float>(in alpha), y);

    /// <summary>
    /// y[c] = fma(alphas[d], w[firstRow + d, c], y[c]) for d = 0, 1, … in turn, every column c: y += Σ_d α_d·w[firstRow + d, :]
    /// (a transposed product over a block of rows, as when kv_b_proj is folded into a head's query). Each chunk of y stays
    /// in L1 while the rows pass over it; the per-element order is the same on every path.
    /// </summary>
    public static void AddScaledRows(WeightMatrix w, int firstRow, ReadOnlySpan<float> alphas, Span<float> y)
    {
        if (alphas.Length == 0) return;
        CheckRows(w, firstRow, alphas.Length);
        if (y.Length < w.Cols) throw new ArgumentException($"output has {y.Length} values, the weight has {w.Cols} columns");
        fixed (float* pa = alphas)
        fixed (float* py = y)
            AddScaledRowsUnchecked(w, firstRow, pa, alphas.Length, py);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddScaledRowsUnchecked(WeightMatrix w, int firstRow, float* alphas, int count, float* y)
    {
        if (Int4Kernels.Handles(w) && Int4Kernels.Level == 2 && w.Cols % 64 == 0)
        {
            Int4Kernels.AddScaledRows512(w, firstRow, alphas, count, y);
            return;
        }
        float* chunk = stackalloc float[ChunkColumns];
        for (int c = 0; c < w.Cols; c += ChunkColumns)
        {
            int n = Math.Min(ChunkColumns, w.Cols - c);
            float* target = y + c;
            for (int d = 0; d < count; d++)
            {
                DecodeRange(w, firstRow + d, c, n, chunk);
                float alpha = alphas[d];
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    var a = Vector512.Create(alpha);
                    for (; i + 16 <= n; i += 16)
                        Vector512.FusedMultiplyAdd(a, Vector512.Load(chunk + i), Vector512.Load(target + i)).Store(target + i);
                }
                else if (Vector256.IsHardwareAccelerated)
                {
                    var a = Vector256.Create(alpha);
                    for (; i + 8 <= n; i += 8)
                        Vector256.FusedMultiplyAdd(a, Vector256.Load(chunk + i), Vector256.Load(target + i)).Store(target + i);
                }
                for (; i < n; i++) target[i] = MathF.FusedMultiplyAdd(alpha, chunk[i], target[i]);
            }
        }
    }

    /// <summary>
    /// Tokens whose activations are reused against one row before moving on. Four keeps them in L1 (4 × 8 KB of
    /// float32, or 4 × 6.5 KB quantized, at hidden 2048); with 16 they spill to L2 and prefill ran 1.5–1.7× slower.
    /// </summary>
    private const int TokenBlock = 4;

    /// <summary>Rows a batch product finishes for every token before moving on (about 128 KB of INT4 weights at 2048 columns).</summary>
    private const int RowChunk = 256;

    /// <summary>
    /// y[t, r] = Σ_c w[r, c] · x[t, c] for <paramref name="tokens"/> rows of x: a linear layer applied to a batch.
    /// Rows of w are split across up to <see cref="KernelSettings.MaxThreads"/> threads; each row is read once per block
    /// of tokens. INT4 weights multiply int8-quantized activations where <paramref name="settings"/> say so.
    /// </summary>
    public static void MatMul(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens, KernelSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (tokens <= 0) return;
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"input holds {x.Length} values, need {tokens}×{w.Cols}");
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"output holds {y.Length} values, need {tokens}×{w.Rows}");
        fixed (float* px = x)
        fixed (float* py = y)
            Run(w, py, null, null, px, tokens, settings);
    }

    /// <summary>
    /// Two linear layers of the same input (gate and up, or q and kv_a) as one parallel job: y1 = x·w1ᵀ, y2 = x·w2ᵀ.
    /// Every element is the row product <see cref="MatMul"/> computes, so results are identical to two calls.
    /// </summary>
    public static void MatMulPair(WeightMatrix w1, WeightMatrix w2, ReadOnlySpan<float> x, Span<float> y1, Span<float> y2, int tokens,
        KernelSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (tokens <= 0) return;
        if (w1.Cols != w2.Cols) throw new ArgumentException($"a pair shares its input: {w1.Cols} vs {w2.Cols} columns");
        if (x.Length < (long)tokens * w1.Cols) throw new ArgumentException($"input holds {x.Length} values, need {tokens}×{w1.Cols}");
        if (y1.Length < (long)tokens * w1.Rows) throw new ArgumentException($"output holds {y1.Length} values, need {tokens}×{w1.Rows}");
        if (y2.Length < (long)tokens * w2.Rows) throw new ArgumentException($"output holds {y2.Length} values, need {tokens}×{w2.Rows}");
        fixed (float* px = x)
        fixed (float* py1 = y1)
        fixed (float* py2 = y2)
            Run(w1, py1, w2, py2, px, tokens, settings);
    }

    private static void Run(WeightMatrix w1, float* y1, WeightMatrix? w2, float* y2, float* x, int tokens, KernelSettings settings)
    {
        var job = MatMulJob.ForThread();
        job.Set(w1, y1, w2, y2, x, tokens, settings);
        try
        {
            int rows = w1.Rows + (w2?.Rows ?? 0);
            long work = (long)rows * w1.Cols * tokens;
            int parts = KernelThreading.PartsFor(work, rows, settings.MaxThreads);
            if (parts <= 1) job.Run(0, rows);
            else KernelThreading.ParallelRows(rows, parts, job, settings.MaxThreads, taper: tokens == 1);
        }
        finally
        {
            job.Clear();
        }
    }

    /// <summary>One reusable job per calling thread, so a matrix product allocates nothing.</summary>
    private sealed class MatMulJob : IRowJob
    {
        [ThreadStatic] private static MatMulJob? t_job;
        public static MatMulJob ForThread() => t_job ??= new MatMulJob();

        private WeightMatrix? _w1, _w2;
        private float* _x, _y1, _y2;
        private int _tokens;
        private QuantizedActivations? _q;

        public void Set(WeightMatrix w1, float* y1, WeightMatrix? w2, float* y2, float* x, int tokens, KernelSettings settings)
        {
            _w1 = w1; _y1 = y1; _w2 = w2; _y2 = y2; _x = x; _tokens = tokens;
            _q = null;
            if (settings.Int8Activations && (Int4Kernels.HandlesInt8(w1) || (w2 is not null && Int4Kernels.HandlesInt8(w2))))
            {
                _q = QuantizedActivations.ForThread();
                _q.Quantize(x, tokens, w1.Cols, settings.MaxThreads);
            }
        }

        public void Clear() { _w1 = null; _w2 = null; _q = null; }

        public void Run(int rowStart, int rowEnd)
        {
            int split = _w1!.Rows;
            if (rowStart < split) RunChunked(_w1, _y1, rowStart, Math.Min(rowEnd, split));
            if (rowEnd > split) RunChunked(_w2!, _y2, Math.Max(rowStart, split) - split, rowEnd - split);
        }

        /// <summary>
        /// A batch walks its rows in chunks of <see cref="RowChunk"/> (all tokens over one chunk, then the next), so a
        /// large range (a whole matrix run on one thread, as when experts run in parallel) keeps its rows in L2 while
        /// every block of tokens passes over them. Chunk edges are multiples of 16, so 16-row blocks are never split;
        /// no element's arithmetic depends on the chunking.
        /// </summary>
        private void RunChunked(WeightMatrix w, float* y, int rowStart, int rowEnd)
        {
            if (_tokens <= 2 * TokenBlock) { RunRange(w, y, rowStart, rowEnd); return; }
            while (rowStart < rowEnd)
            {
                int end = Math.Min(rowEnd, (rowStart / RowChunk + 1) * RowChunk);
                RunRange(w, y, rowStart, end);
                rowStart = end;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void RunRange(WeightMatrix w, float* y, int rowStart, int rowEnd)
        {
            int tokens = _tokens, rows = w.Rows, cols = w.Cols;
            bool int4 = Int4Kernels.Handles(w), bf16 = w.Format == WeightFormat.BF16;
            if (w.Format == WeightFormat.PackedInt4Rows16 && _q is not null)
            {
                var q16 = _q;
                var (firstBlock, endBlock) = Int4Rows16Kernels.BlocksStartingIn(rowStart, rowEnd);
                // Eight tokens per pass: their int8 activations (8 × 2 KB at hidden 2048) stay in L1 with the 256-byte weight group.
                // Up to eight tokens make one pass, which streams the weights from memory (an expert in batched decoding).
                bool stream = tokens <= 2 * TokenBlock;
                for (int t0 = 0; t0 < tokens; t0 += 2 * TokenBlock)
                {
                    int n = Math.Min(2 * TokenBlock, tokens - t0);
                    for (int b = firstBlock; b < endBlock; b++)
                        Int4Rows16Kernels.Block(w, b, q16, t0, n, y + (long)t0 * rows + b * Int4Rows16Kernels.Rows, rows, stream);
                }
                return;
            }
            var q = int4 ? _q : null;
            if (q is not null && tokens == 1)
            {
                // Decode: two rows at a time share the activation loads (same per-row arithmetic as DotQ8).
                var token = q[0];
                int r = rowStart;
                for (; r + 2 <= rowEnd; r += 2) Int4Kernels.DotQ8Rows2(w, r, token, y + r, y + r + 1);
                if (r < rowEnd) y[r] = Int4Kernels.DotQ8(w, r, token);
                return;
            }
            if (int4 && q is null && tokens == 1)
            {
                int r = rowStart;
                for (; r + 2 <= rowEnd; r += 2) Int4Kernels.DotRows2(w, r, _x, y + r, y + r + 1);
                if (r < rowEnd) y[r] = Int4Kernels.Dot(w, r, _x);
                return;
            }
            for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
            {
                int t1 = Math.Min(tokens, t0 + TokenBlock);
                for (int r = rowStart; r < rowEnd; r++)
                {
                    int t = t0;
                    if (q is not null)
                    {
                        for (; t + 4 <= t1; t += 4) Int4Kernels.DotQ8x4(w, r, q, t, y + (long)t * rows + r, rows);
                        for (; t < t1; t++) y[(long)t * rows + r] = Int4Kernels.DotQ8(w, r, q[t]);
                    }
                    else
                    {
                        if (int4)
                            for (; t + 4 <= t1; t += 4) Int4Kernels.Dot4(w, r, _x + (long)t * cols, cols, y + (long)t * rows + r, rows);
                        else if (bf16)
                            for (; t + 4 <= t1; t += 4) FusedKernels.DotBf16x4((ushort*)(w.Data + r * w.RowBytes), _x + (long)t * cols, cols, cols, y + (long)t * rows + r, rows);
                        for (; t < t1; t++) y[(long)t * rows + r] = DotRowUnchecked(w, r, _x + (long)t * cols);
                    }
                }
            }
        }
    }

    private static void CheckRows(WeightMatrix w, int firstRow, int count)
    {
        CheckRow(w, firstRow);
        CheckRow(w, firstRow + count - 1);
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
            case WeightFormat.PackedInt4Rows16:
                for (int c = col; c < col + count; c++)
                    *destination++ = (Int4Rows16Kernels.Element(w, row, c) - 8) * Int4Rows16Kernels.Scale(w, row, c / Int4Kernels.Group);
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodePackedInt(WeightMatrix w, int row, uint* words, int col, int count, float* destination)
    {
        ushort* scaleRow = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int bits = w.Bits, perWord = 32 / bits, mask = (1 << bits) - 1, offset = 1 << (bits - 1);
        int end = col + count;
        if (Int4Kernels.Handles(w) && Int4Kernels.Level == 2)
        {
            // Whole aligned groups in registers: nibble → signed int → float, times the group's scale (exact, as below).
            while (col % Int4Kernels.Group == 0 && col + Int4Kernels.Group <= end)
            {
                Int4Kernels.DecodeGroup512(words, scaleRow, col / Int4Kernels.Group, destination);
                destination += Int4Kernels.Group;
                col += Int4Kernels.Group;
            }
        }
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
