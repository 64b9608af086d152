using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KimiSharp.Kernels;

/// <summary>
/// Fused kernels for compressed-tensors INT4 rows with one bfloat16 scale per 32 columns (the K2 Thinking layout):
/// the nibbles are unpacked in registers and never written out as floats.
/// <para>
/// Float activations: per group g, t = Σ q·x over its 32 columns (two 16-lane products), then acc += t·scale_g, with
/// even and odd groups in two accumulators, a fixed horizontal sum, and the partial last group added last.
/// Int8 activations (opt-in): x is quantized per token in blocks of 32 (see <see cref="QuantizedActivations"/>), the
/// integer products are exact, and each 8-column lane's integer sum is scaled by scale_g·dx_g into float accumulators.
/// Either way every row product follows one fixed order, whichever path (single token or batch) calls it.
/// </para>
/// </summary>
internal static unsafe class Int4Kernels
{
    public const int Group = 32;

    /// <summary>Whether the fused paths handle <paramref name="w"/> (4-bit, group size 32).</summary>
    public static bool Handles(WeightMatrix w) => w.Format == WeightFormat.PackedInt && w.Bits == 4 && w.BlockCols == Group;

    /// <summary>Whether int8 activations apply to <paramref name="w"/>: a <see cref="Handles"/> matrix or one in 16-row blocks.</summary>
    public static bool HandlesInt8(WeightMatrix w) => Handles(w) || w.Format == WeightFormat.PackedInt4Rows16;

    /// <summary>
    /// Decode streams each weight once from DRAM; without help one core waits on every miss and then computes, so
    /// the row kernels prefetch this many bytes ahead (measured best between 6 and 10 KB: 2-2.4x the single-thread
    /// matrix x vector rate from DRAM). Prefill re-reads rows from cache and gains nothing from it.
    /// </summary>
    internal const int PrefetchDistance = 8192;

    /// <summary>Vector path in use: 2 = Vector512, 1 = Vector256, 0 = portable. Tests may lower it.</summary>
    internal static int Level = Avx512F.IsSupported && Avx512BW.IsSupported ? 2 : Avx2.IsSupported && Fma.IsSupported ? 1 : 0;

    // ---------------------------------------------------------------- float activations

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(WeightMatrix w, int row, float* x)
    {
        uint* words = (uint*)(w.Data + row * w.RowBytes);
        ushort* scales = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int full = w.Cols / Group;
        float sum = Level switch
        {
            2 => DotFull512(words, scales, x, full),
            1 => DotFull256(words, scales, x, full),
            _ => DotFullScalar(words, scales, x, full),
        };
        return PartialGroup(words, scales, x, w.Cols, sum);
    }

    /// <summary>
    /// Four tokens against one row, sharing the nibble unpacking: each token's arithmetic is exactly that of
    /// <see cref="Dot"/> (same operations, same order), so the results are bit-identical to four single calls.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4(WeightMatrix w, int row, float* x, long xStride, float* y, long yStride)
    {
        if (Level != 2)
        {
            for (int t = 0; t < 4; t++) y[t * yStride] = Dot(w, row, x + t * xStride);
            return;
        }
        uint* words = (uint*)(w.Data + row * w.RowBytes);
        ushort* scales = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int groups = w.Cols / Group;
        var idxLo = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var idxHi = Vector512.Create(2u, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* x0 = x, x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride;
        for (int g = 0; g < groups; g++)
        {
            var packed = Vector128.Load(words + 4 * g).ToVector256Unsafe().ToVector512Unsafe();
            var lo = Nibbles(packed, idxLo);
            var hi = Nibbles(packed, idxHi);
            var scale = Vector512.Create(Scale(scales, g));
            int c = g * Group;
            var t0 = Vector512.FusedMultiplyAdd(hi, Vector512.Load(x0 + c + 16), lo * Vector512.Load(x0 + c));
            var t1 = Vector512.FusedMultiplyAdd(hi, Vector512.Load(x1 + c + 16), lo * Vector512.Load(x1 + c));
            var t2 = Vector512.FusedMultiplyAdd(hi, Vector512.Load(x2 + c + 16), lo * Vector512.Load(x2 + c));
            var t3 = Vector512.FusedMultiplyAdd(hi, Vector512.Load(x3 + c + 16), lo * Vector512.Load(x3 + c));
            if ((g & 1) == 0)
            {
                a00 = Vector512.FusedMultiplyAdd(t0, scale, a00);
                a10 = Vector512.FusedMultiplyAdd(t1, scale, a10);
                a20 = Vector512.FusedMultiplyAdd(t2, scale, a20);
                a30 = Vector512.FusedMultiplyAdd(t3, scale, a30);
            }
            else
            {
                a01 = Vector512.FusedMultiplyAdd(t0, scale, a01);
                a11 = Vector512.FusedMultiplyAdd(t1, scale, a11);
                a21 = Vector512.FusedMultiplyAdd(t2, scale, a21);
                a31 = Vector512.FusedMultiplyAdd(t3, scale, a31);
            }
        }
        y[0] = PartialGroup(words, scales, x0, w.Cols, groups == 0 ? 0 : Vector512.Sum(a00 + a01));
        y[yStride] = PartialGroup(words, scales, x1, w.Cols, groups == 0 ? 0 : Vector512.Sum(a10 + a11));
        y[2 * yStride] = PartialGroup(words, scales, x2, w.Cols, groups == 0 ? 0 : Vector512.Sum(a20 + a21));
        y[3 * yStride] = PartialGroup(words, scales, x3, w.Cols, groups == 0 ? 0 : Vector512.Sum(a30 + a31));
    }

    /// <summary>Two rows against one token (decode), sharing the activation loads; per row exactly <see cref="Dot"/>'s arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRows2(WeightMatrix w, int row, float* x, float* y0, float* y1)
    {
        if (Level != 2)
        {
            *y0 = Dot(w, row, x);
            *y1 = Dot(w, row + 1, x);
            return;
        }
        uint* words0 = (uint*)(w.Data + row * w.RowBytes), words1 = (uint*)((byte*)words0 + w.RowBytes);
        ushort* scales0 = (ushort*)w.Scales + (long)row * w.ScaleStride, scales1 = scales0 + w.ScaleStride;
        int groups = w.Cols / Group;
        var idxLo = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var idxHi = Vector512.Create(2u, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
        for (int g = 0; g < groups; g++)
        {
            float* xg = x + g * Group;
            if ((g & 3) == 0)
            {
                Sse.Prefetch0((byte*)(words0 + 4 * g) + PrefetchDistance);
                Sse.Prefetch0((byte*)(words1 + 4 * g) + PrefetchDistance);
            }
            var xl = Vector512.Load(xg);
            var xh = Vector512.Load(xg + 16);
            var p0 = Vector128.Load(words0 + 4 * g).ToVector256Unsafe().ToVector512Unsafe();
            var p1 = Vector128.Load(words1 + 4 * g).ToVector256Unsafe().ToVector512Unsafe();
            var lo0 = Nibbles(p0, idxLo);
            var hi0 = Nibbles(p0, idxHi);
            var lo1 = Nibbles(p1, idxLo);
            var hi1 = Nibbles(p1, idxHi);
            var t0 = Vector512.FusedMultiplyAdd(hi0, xh, lo0 * xl);
            var t1 = Vector512.FusedMultiplyAdd(hi1, xh, lo1 * xl);
            if ((g & 1) == 0)
            {
                a00 = Vector512.FusedMultiplyAdd(t0, Vector512.Create(Scale(scales0, g)), a00);
                a10 = Vector512.FusedMultiplyAdd(t1, Vector512.Create(Scale(scales1, g)), a10);
            }
            else
            {
                a01 = Vector512.FusedMultiplyAdd(t0, Vector512.Create(Scale(scales0, g)), a01);
                a11 = Vector512.FusedMultiplyAdd(t1, Vector512.Create(Scale(scales1, g)), a11);
            }
        }
        *y0 = PartialGroup(words0, scales0, x, w.Cols, groups == 0 ? 0 : Vector512.Sum(a00 + a01));
        *y1 = PartialGroup(words1, scales1, x, w.Cols, groups == 0 ? 0 : Vector512.Sum(a10 + a11));
    }

    /// <summary>Adds the last, partial group (cols not a multiple of 32) after the full groups' sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float PartialGroup(uint* words, ushort* scales, float* x, int cols, float sum)
    {
        int full = cols / Group, rest = cols - full * Group;
        if (rest == 0) return sum;
        int c0 = full * Group;
        float t = 0;
        for (int c = c0; c < cols; c++)
            t = MathF.FusedMultiplyAdd(Nibble(words, c), x[c], t);
        return MathF.FusedMultiplyAdd(t, Scale(scales, full), sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Nibble(uint* words, int c) => (int)((words[c >> 3] >> (4 * (c & 7))) & 0xF) - 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(ushort* scales, int g) => BitConverter.Int32BitsToSingle(scales[g] << 16);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotFullScalar(uint* words, ushort* scales, float* x, int groups)
    {
        float acc0 = 0, acc1 = 0;
        for (int g = 0; g < groups; g++)
        {
            float t = 0;
            int c0 = g * Group;
            for (int c = c0; c < c0 + Group; c++) t = MathF.FusedMultiplyAdd(Nibble(words, c), x[c], t);
            if ((g & 1) == 0) acc0 = MathF.FusedMultiplyAdd(t, Scale(scales, g), acc0);
            else acc1 = MathF.FusedMultiplyAdd(t, Scale(scales, g), acc1);
        }
        return acc0 + acc1;
    }

    /// <summary>
    /// 16 weights as floats: lane i takes word <paramref name="index"/>[i] of <paramref name="packed"/> shifted right by
    /// 4·(i mod 8), and its low nibble (stored q + 8) picks q from a 16-entry table: two permutes and a shift for 16
    /// values, with exactly the floats a sign extension and conversion would give.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Nibbles(Vector512<uint> packed, Vector512<uint> index) =>
        Avx512F.PermuteVar16x32(Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f),
            Avx512F.ShiftRightLogicalVariable(Avx512F.PermuteVar16x32(packed, index),
                Vector512.Create(0u, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28)).AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotFull512(uint* words, ushort* scales, float* x, int groups)
    {
        if (groups == 0) return 0;
        var idxLo = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var idxHi = Vector512.Create(2u, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        Vector512<float> acc0 = default, acc1 = default;
        int g = 0;
        for (; g + 2 <= groups; g += 2)
        {
            if ((g & 3) == 0) Sse.Prefetch0((byte*)(words + 4 * g) + PrefetchDistance);
            acc0 = Group512(words, scales, x, g, idxLo, idxHi, acc0);
            acc1 = Group512(words, scales, x, g + 1, idxLo, idxHi, acc1);
        }
        if (g < groups) acc0 = Group512(words, scales, x, g, idxLo, idxHi, acc0);
        return Vector512.Sum(acc0 + acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Group512(uint* words, ushort* scales, float* x, int g,
        Vector512<uint> idxLo, Vector512<uint> idxHi, Vector512<float> acc)
    {
        var packed = Vector128.Load(words + 4 * g).ToVector256Unsafe().ToVector512Unsafe();
        float* xg = x + g * Group;
        var t = Nibbles(packed, idxLo) * Vector512.Load(xg);
        t = Vector512.FusedMultiplyAdd(Nibbles(packed, idxHi), Vector512.Load(xg + 16), t);
        return Vector512.FusedMultiplyAdd(t, Vector512.Create(Scale(scales, g)), acc);
    }

    /// <summary>
    /// y[c] = fma(alphas[d], q[d, c]·scale[d, c/32], y[c]) for rows firstRow + d, d = 0, 1, … in turn, 64 columns at a time
    /// with the chunk of y in registers (Vector512; <paramref name="w"/> is <see cref="Handles"/> with Cols a multiple of 64).
    /// Each element's arithmetic is that of decoding the row (q·scale) and then one fused multiply-add per row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddScaledRows512(WeightMatrix w, int firstRow, float* alphas, int count, float* y)
    {
        var idxLo = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var idxHi = Vector512.Create(2u, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        // The rows are read 64 columns at a time, so each row's lines are wanted again and again: fetch whole rows
        // (and their scales) a few rows ahead during the first pass, so the later passes find them in cache.
        const int Ahead = 8;
        long rowBytes = w.RowBytes, scaleBytes = (long)w.ScaleStride * sizeof(ushort);
        for (int d = 0; d < Math.Min(Ahead, count); d++) PrefetchRow(w, firstRow + d, rowBytes, scaleBytes);
        for (int c = 0; c < w.Cols; c += 64)
        {
            int g = c / Group;
            var y0 = Vector512.Load(y + c); var y1 = Vector512.Load(y + c + 16);
            var y2 = Vector512.Load(y + c + 32); var y3 = Vector512.Load(y + c + 48);
            for (int d = 0; d < count; d++)
            {
                int row = firstRow + d;
                if (c == 0 && d + Ahead < count) PrefetchRow(w, row + Ahead, rowBytes, scaleBytes);
                uint* words = (uint*)(w.Data + row * w.RowBytes) + 4 * g;
                ushort* scales = (ushort*)w.Scales + (long)row * w.ScaleStride + g;
                var a = Vector512.Create(alphas[d]);
                var p0 = Vector128.Load(words).ToVector256Unsafe().ToVector512Unsafe();
                var p1 = Vector128.Load(words + 4).ToVector256Unsafe().ToVector512Unsafe();
                var s0 = Vector512.Create(Scale(scales, 0));
                var s1 = Vector512.Create(Scale(scales, 1));
                var v0 = Nibbles(p0, idxLo) * s0;
                var v1 = Nibbles(p0, idxHi) * s0;
                var v2 = Nibbles(p1, idxLo) * s1;
                var v3 = Nibbles(p1, idxHi) * s1;
                y0 = Vector512.FusedMultiplyAdd(a, v0, y0); y1 = Vector512.FusedMultiplyAdd(a, v1, y1);
                y2 = Vector512.FusedMultiplyAdd(a, v2, y2); y3 = Vector512.FusedMultiplyAdd(a, v3, y3);
            }
            y0.Store(y + c); y1.Store(y + c + 16); y2.Store(y + c + 32); y3.Store(y + c + 48);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(WeightMatrix w, int row, long rowBytes, long scaleBytes)
    {
        byte* data = w.Data + row * rowBytes;
        for (long b = 0; b < rowBytes; b += 64) Sse.Prefetch0(data + b);
        byte* scales = (byte*)((ushort*)w.Scales + (long)row * w.ScaleStride);
        for (long b = 0; b < scaleBytes; b += 64) Sse.Prefetch0(scales + b);
    }

    /// <summary>Writes the 32 float values (q·scale) of group <paramref name="g"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeGroup512(uint* words, ushort* scales, int g, float* destination)
    {
        var idxLo = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var idxHi = Vector512.Create(2u, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var packed = Vector128.Load(words + 4 * g).ToVector256Unsafe().ToVector512Unsafe();
        var scale = Vector512.Create(Scale(scales, g));
        (Nibbles(packed, idxLo) * scale).Store(destination);
        (Nibbles(packed, idxHi) * scale).Store(destination + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotFull256(uint* words, ushort* scales, float* x, int groups)
    {
        var toTop = Vector256.Create(28u, 24, 20, 16, 12, 8, 4, 0);
        Vector256<float> acc0 = default, acc1 = default;
        for (int g = 0; g < groups; g++)
        {
            float* xg = x + g * Group;
            uint* wg = words + 4 * g;
            Vector256<float> t = default;
            for (int k = 0; k < 4; k++)
            {
                var word = Vector256.Create(wg[k] ^ 0x88888888u);
                var q = Avx2.ShiftRightArithmetic(Avx2.ShiftLeftLogicalVariable(word, toTop).AsInt32(), 28);
                t = k == 0 ? Avx.ConvertToVector256Single(q) * Vector256.Load(xg)
                           : Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(q), Vector256.Load(xg + 8 * k), t);
            }
            if ((g & 1) == 0) acc0 = Vector256.FusedMultiplyAdd(t, Vector256.Create(Scale(scales, g)), acc0);
            else acc1 = Vector256.FusedMultiplyAdd(t, Vector256.Create(Scale(scales, g)), acc1);
        }
        return Vector256.Sum(acc0 + acc1);
    }

    // ---------------------------------------------------------------- int8 activations

    /// <summary>
    /// Dot of an INT4 row with one token's quantized activations. Full 128-column superblocks run in integer registers
    /// (Vector512); the remaining groups (and everything on the portable path) use exact per-group integer sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8(WeightMatrix w, int row, QuantizedActivations.Token xq)
    {
        byte* bytes = w.Data + row * w.RowBytes;
        ushort* scales = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int superblocks = Level == 2 ? w.Cols / 128 : 0;
        float sum = superblocks > 0 ? DotQ8Superblocks512(bytes, scales, xq, superblocks) : 0;
        return Q8Tail(bytes, scales, xq, w.Cols, superblocks * 4, sum);
    }

    /// <summary>
    /// Two rows against one token's quantized activations, sharing the activation loads; each row's arithmetic is
    /// exactly that of <see cref="DotQ8"/>, so the results equal two single calls bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotQ8Rows2(WeightMatrix w, int row, QuantizedActivations.Token xq, float* y0, float* y1)
    {
        if (Level != 2 || w.Cols < 128)
        {
            *y0 = DotQ8(w, row, xq);
            *y1 = DotQ8(w, row + 1, xq);
            return;
        }
        byte* bytes0 = w.Data + row * w.RowBytes, bytes1 = bytes0 + w.RowBytes;
        ushort* scales0 = (ushort*)w.Scales + (long)row * w.ScaleStride, scales1 = scales0 + w.ScaleStride;
        int superblocks = w.Cols / 128;
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        var spread = Vector512.Create(
            (ushort)32, 0, 32, 0, 32, 0, 32, 0, 32, 1, 32, 1, 32, 1, 32, 1,
            32, 2, 32, 2, 32, 2, 32, 2, 32, 3, 32, 3, 32, 3, 32, 3);
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
        byte* block = xq.Blocks;
        for (int s = 0; s < superblocks; s++, block += QuantizedActivations.SuperblockBytes)
        {
            var xe = Vector512.Load((sbyte*)block);
            var xo = Vector512.Load((sbyte*)block + 64);
            var offsets = Vector512.Load((int*)(block + 128));
            var dx = Vector512.Load((float*)(block + 192));
            Sse.Prefetch0(bytes0 + 64 * s + PrefetchDistance);
            Sse.Prefetch0(bytes1 + 64 * s + PrefetchDistance);
            var w0 = Vector512.Load(bytes0 + 64 * s);
            var w1 = Vector512.Load(bytes1 + 64 * s);
            var l0 = Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(w0 & nibble, xe),
                Avx512BW.MultiplyAddAdjacent(Avx512BW.ShiftRightLogical(w0.AsUInt16(), 4).AsByte() & nibble, xo)), ones) - offsets;
            var l1 = Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(w1 & nibble, xe),
                Avx512BW.MultiplyAddAdjacent(Avx512BW.ShiftRightLogical(w1.AsUInt16(), 4).AsByte() & nibble, xo)), ones) - offsets;
            var sc0 = Avx512BW.PermuteVar32x16x2(Vector128.CreateScalar(*(ulong*)(scales0 + 4 * s)).AsUInt16().ToVector256Unsafe().ToVector512Unsafe(), spread, Vector512<ushort>.Zero).AsSingle() * dx;
            var sc1 = Avx512BW.PermuteVar32x16x2(Vector128.CreateScalar(*(ulong*)(scales1 + 4 * s)).AsUInt16().ToVector256Unsafe().ToVector512Unsafe(), spread, Vector512<ushort>.Zero).AsSingle() * dx;
            if ((s & 1) == 0)
            {
                a00 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(l0), sc0, a00);
                a10 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(l1), sc1, a10);
            }
            else
            {
                a01 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(l0), sc0, a01);
                a11 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(l1), sc1, a11);
            }
        }
        *y0 = Q8Tail(bytes0, scales0, xq, w.Cols, superblocks * 4, Vector512.Sum(a00 + a01));
        *y1 = Q8Tail(bytes1, scales1, xq, w.Cols, superblocks * 4, Vector512.Sum(a10 + a11));
    }

    /// <summary>Groups from <paramref name="firstGroup"/> on, one exact integer sum each, added in order.</summary>
    private static float Q8Tail(byte* bytes, ushort* scales, QuantizedActivations.Token xq, int cols, int firstGroup, float sum)
    {
        int groups = (cols + Group - 1) / Group;
        for (int g = firstGroup; g < groups; g++)
        {
            int c0 = g * Group, c1 = Math.Min(cols, c0 + Group), isum = 0;
            for (int c = c0; c < c1; c++)
                isum += ((bytes[c >> 1] >> (4 * (c & 1))) & 0xF) * xq.Natural[c];
            isum -= xq.GroupOffsets[g];
            sum = MathF.FusedMultiplyAdd(isum, Scale(scales, g) * xq.GroupScales[g], sum);
        }
        return sum;
    }

    /// <summary>Four tokens' int8 products with one row, sharing the unpacked nibbles and scales; bit-identical to four <see cref="DotQ8"/> calls.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotQ8x4(WeightMatrix w, int row, QuantizedActivations q, int token, float* y, long yStride)
    {
        if (Level != 2)
        {
            for (int t = 0; t < 4; t++) y[t * yStride] = DotQ8(w, row, q[token + t]);
            return;
        }
        byte* bytes = w.Data + row * w.RowBytes;
        ushort* scales = (ushort*)w.Scales + (long)row * w.ScaleStride;
        int superblocks = w.Cols / 128;
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        var spread = Vector512.Create(
            (ushort)32, 0, 32, 0, 32, 0, 32, 0, 32, 1, 32, 1, 32, 1, 32, 1,
            32, 2, 32, 2, 32, 2, 32, 2, 32, 3, 32, 3, 32, 3, 32, 3);
        var q0 = q[token]; var q1 = q[token + 1]; var q2 = q[token + 2]; var q3 = q[token + 3];
        byte* b0 = q0.Blocks, b1 = q1.Blocks, b2 = q2.Blocks, b3 = q3.Blocks;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        for (int s = 0; s < superblocks; s++)
        {
            long o = (long)s * QuantizedActivations.SuperblockBytes;
            var wv = Vector512.Load(bytes + 64 * s);
            var lo = wv & nibble;
            var hi = Avx512BW.ShiftRightLogical(wv.AsUInt16(), 4).AsByte() & nibble;
            var wScale = Avx512BW.PermuteVar32x16x2(Vector128.CreateScalar(*(ulong*)(scales + 4 * s)).AsUInt16().ToVector256Unsafe().ToVector512Unsafe(), spread, Vector512<ushort>.Zero).AsSingle();
            var l0 = Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)(b0 + o))), Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)(b0 + o + 64)))), ones) - Vector512.Load((int*)(b0 + o + 128)));
            var l1 = Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)(b1 + o))), Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)(b1 + o + 64)))), ones) - Vector512.Load((int*)(b1 + o + 128)));
            var l2 = Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)(b2 + o))), Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)(b2 + o + 64)))), ones) - Vector512.Load((int*)(b2 + o + 128)));
            var l3 = Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)(b3 + o))), Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)(b3 + o + 64)))), ones) - Vector512.Load((int*)(b3 + o + 128)));
            if ((s & 1) == 0)
            {
                a00 = Vector512.FusedMultiplyAdd(l0, wScale * Vector512.Load((float*)(b0 + o + 192)), a00);
                a10 = Vector512.FusedMultiplyAdd(l1, wScale * Vector512.Load((float*)(b1 + o + 192)), a10);
                a20 = Vector512.FusedMultiplyAdd(l2, wScale * Vector512.Load((float*)(b2 + o + 192)), a20);
                a30 = Vector512.FusedMultiplyAdd(l3, wScale * Vector512.Load((float*)(b3 + o + 192)), a30);
            }
            else
            {
                a01 = Vector512.FusedMultiplyAdd(l0, wScale * Vector512.Load((float*)(b0 + o + 192)), a01);
                a11 = Vector512.FusedMultiplyAdd(l1, wScale * Vector512.Load((float*)(b1 + o + 192)), a11);
                a21 = Vector512.FusedMultiplyAdd(l2, wScale * Vector512.Load((float*)(b2 + o + 192)), a21);
                a31 = Vector512.FusedMultiplyAdd(l3, wScale * Vector512.Load((float*)(b3 + o + 192)), a31);
            }
        }
        int first = superblocks * 4;
        y[0] = Q8Tail(bytes, scales, q0, w.Cols, first, superblocks > 0 ? Vector512.Sum(a00 + a01) : 0);
        y[yStride] = Q8Tail(bytes, scales, q1, w.Cols, first, superblocks > 0 ? Vector512.Sum(a10 + a11) : 0);
        y[2 * yStride] = Q8Tail(bytes, scales, q2, w.Cols, first, superblocks > 0 ? Vector512.Sum(a20 + a21) : 0);
        y[3 * yStride] = Q8Tail(bytes, scales, q3, w.Cols, first, superblocks > 0 ? Vector512.Sum(a30 + a31) : 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotQ8Superblocks512(byte* bytes, ushort* scales, QuantizedActivations.Token xq, int superblocks)
    {
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        // Word 2i of each dword lane takes 0 (from the zero table), word 2i+1 takes scale i/4: the bf16 scale becomes a float.
        var spread = Vector512.Create(
            (ushort)32, 0, 32, 0, 32, 0, 32, 0, 32, 1, 32, 1, 32, 1, 32, 1,
            32, 2, 32, 2, 32, 2, 32, 2, 32, 3, 32, 3, 32, 3, 32, 3);
        Vector512<float> acc0 = default, acc1 = default;
        byte* block = xq.Blocks;
        for (int s = 0; s < superblocks; s++, block += QuantizedActivations.SuperblockBytes)
        {
            Sse.Prefetch0(bytes + 64 * s + PrefetchDistance);
            var wv = Vector512.Load(bytes + 64 * s);
            var lo = wv & nibble;
            var hi = Avx512BW.ShiftRightLogical(wv.AsUInt16(), 4).AsByte() & nibble;
            var pairs = Avx512BW.Add(
                Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)block)),
                Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)block + 64)));
            var lanes = Avx512BW.MultiplyAddAdjacent(pairs, ones) - Vector512.Load((int*)(block + 128));
            var wScale = Avx512BW.PermuteVar32x16x2(Vector128.CreateScalar(*(ulong*)(scales + 4 * s)).AsUInt16().ToVector256Unsafe().ToVector512Unsafe(), spread, Vector512<ushort>.Zero);
            var scale = wScale.AsSingle() * Vector512.Load((float*)(block + 192));
            if ((s & 1) == 0) acc0 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(lanes), scale, acc0);
            else acc1 = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(lanes), scale, acc1);
        }
        return Vector512.Sum(acc0 + acc1);
    }
}

/// <summary>
/// Tokens' activations quantized to int8 per block of 32 columns (dx = max|x|/127, xq = round_even(x/dx)), in the two
/// layouts the INT4 kernels read: natural order with per-group scales and sums, and per 128-column superblock the even
/// and odd columns of its four groups (matching low and high nibbles), the −8·Σxq offset of each 8-column lane and the
/// lane's dx. A token's quantization depends only on its own values, so batching never changes it.
/// </summary>
internal sealed unsafe class QuantizedActivations : IDisposable, IRowJob
{
    public const int SuperblockBytes = 256;

    /// <summary>Quantizes with Vector512 and rearranges superblocks with AVX-512 VBMI byte permutes (else scalar, same bytes). Tests may switch it off.</summary>
    internal static bool UseVectors = Avx512Vbmi.IsSupported && Avx512BW.IsSupported;

    /// <summary>Bytes per token (the layout's stride).</summary>
    internal long Stride => _stride;

    public readonly struct Token(byte* blocks, sbyte* natural, float* groupScales, int* groupOffsets)
    {
        public readonly byte* Blocks = blocks;
        public readonly sbyte* Natural = natural;
        public readonly float* GroupScales = groupScales;
        /// <summary>8·Σ xq over group g: what the weights' +8 nibble offset adds to the group's integer sum.</summary>
        public readonly int* GroupOffsets = groupOffsets;
    }

    private byte* _memory;
    private long _capacity;
    private int _cols, _groups, _superblocks;
    private long _stride;

    [ThreadStatic] private static QuantizedActivations? t_instance;

    /// <summary>The calling thread's buffer (reused across calls; grown when needed, never shrunk).</summary>
    public static QuantizedActivations ForThread() => t_instance ??= new QuantizedActivations();

    public Token this[int token]
    {
        get
        {
            byte* p = _memory + token * _stride;
            byte* natural = p + (long)_superblocks * SuperblockBytes;
            int naturalBytes = (_cols + 63) / 64 * 64;
            float* groupScales = (float*)(natural + naturalBytes);
            return new Token(p, (sbyte*)natural, groupScales, (int*)(groupScales + _groups));
        }
    }

    /// <summary>Quantizes <paramref name="tokens"/> rows of <paramref name="cols"/> values, on up to <paramref name="threads"/> threads.</summary>
    public void Quantize(float* x, int tokens, int cols, int threads = 1)
    {
        _cols = cols;
        _groups = (cols + Int4Kernels.Group - 1) / Int4Kernels.Group;
        _superblocks = cols / 128;
        _stride = (long)_superblocks * SuperblockBytes + (cols + 63) / 64 * 64 + 8L * _groups;
        _stride = (_stride + 63) / 64 * 64;
        long need = _stride * tokens;
        if (need > _capacity)
        {
            if (_memory is not null) NativeMemory.AlignedFree(_memory);
            _capacity = Math.Max(need, 2 * _capacity);
            _memory = (byte*)NativeMemory.AlignedAlloc((nuint)_capacity, 64);
        }
        // Tokens are independent, so a batch is quantized across the worker pool (the same bytes whichever thread does one).
        _source = x;
        try
        {
            long work = (long)tokens * cols * 8;
            int parts = tokens >= 8 ? KernelThreading.PartsFor(work, tokens, threads) : 1;
            if (parts <= 1) Run(0, tokens);
            else KernelThreading.ParallelRows(tokens, parts, this, threads);
        }
        finally
        {
            _source = null;
        }
    }

    private float* _source;

    /// <summary>Quantizes tokens [start, end) of the batch being quantized (an <see cref="IRowJob"/> over tokens).</summary>
    public void Run(int start, int end)
    {
        for (int t = start; t < end; t++) QuantizeToken(_source + (long)t * _cols, this[t]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void QuantizeToken(float* x, Token token)
    {
        int cols = _cols;
        for (int g = 0; g < _groups; g++)
        {
            int c0 = g * Int4Kernels.Group, n = Math.Min(Int4Kernels.Group, cols - c0);
            float amax = 0;
            int sum = 0;
            if (n == Int4Kernels.Group && UseVectors)
            {
                var a = Vector512.Load(x + c0);
                var b = Vector512.Load(x + c0 + 16);
                amax = Vector512.Max(Vector512.Abs(a), Vector512.Abs(b)).ToScalarMax();
                float inv = amax > 0 ? 127f / amax : 0f;
                var qa = Vector512.Clamp(Vector512.ConvertToInt32Native(Vector512.Round(a * inv)), Vector512.Create(-127), Vector512.Create(127));
                var qb = Vector512.Clamp(Vector512.ConvertToInt32Native(Vector512.Round(b * inv)), Vector512.Create(-127), Vector512.Create(127));
                sum = (qa + qb).ExactSum();
                Avx512F.ConvertToVector128SByte(qa).Store(token.Natural + c0);
                Avx512F.ConvertToVector128SByte(qb).Store(token.Natural + c0 + 16);
            }
            else
            {
                for (int i = 0; i < n; i++) amax = Math.Max(amax, Math.Abs(x[c0 + i]));
                float inv = amax > 0 ? 127f / amax : 0f;
                for (int i = 0; i < n; i++)
                {
                    int q = Math.Clamp((int)MathF.Round(x[c0 + i] * inv, MidpointRounding.ToEven), -127, 127);
                    token.Natural[c0 + i] = (sbyte)q;
                    sum += q;
                }
            }
            token.GroupScales[g] = amax / 127f;
            token.GroupOffsets[g] = 8 * sum;
        }
        int first = 0;
        if (UseVectors && _superblocks > 0)
        {
            var evenIndex = Vector512.CreateSequence((byte)0, (byte)2);
            var oddIndex = Vector512.CreateSequence((byte)1, (byte)2);
            var bias = Vector512.Create((byte)0x80);
            var spread = Vector512.Create(0u, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
            for (int s = 0; s < _superblocks; s++)
            {
                byte* block = token.Blocks + (long)s * SuperblockBytes;
                byte* src = (byte*)token.Natural + 128 * s;
                var a = Vector512.Load(src);
                var b = Vector512.Load(src + 64);
                Avx512Vbmi.PermuteVar64x8x2(a, evenIndex, b).Store(block);
                Avx512Vbmi.PermuteVar64x8x2(a, oddIndex, b).Store(block + 64);
                // Sums of 8 consecutive bytes: (xq+128) summed against zero, minus 8·128.
                var sa = Avx512BW.SumAbsoluteDifferences(a ^ bias, Vector512<byte>.Zero).AsInt64();
                var sb = Avx512BW.SumAbsoluteDifferences(b ^ bias, Vector512<byte>.Zero).AsInt64();
                var sums = Vector512.Create(Avx512F.ConvertToVector256Int32(sa), Avx512F.ConvertToVector256Int32(sb));
                ((sums - Vector512.Create(1024)) * 8).Store((int*)(block + 128));
                var groupScales = Vector128.Load(token.GroupScales + 4 * s).AsUInt32().ToVector256Unsafe().ToVector512Unsafe();
                Avx512F.PermuteVar16x32(groupScales, spread).AsSingle().Store((float*)(block + 192));
            }
            first = _superblocks;
        }
        for (int s = first; s < _superblocks; s++)
        {
            byte* block = token.Blocks + (long)s * SuperblockBytes;
            sbyte* even = (sbyte*)block, odd = (sbyte*)block + 64;
            int* offsets = (int*)(block + 128);
            float* laneScales = (float*)(block + 192);
            sbyte* src = token.Natural + 128 * s;
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 16; j++)
                {
                    even[16 * k + j] = src[32 * k + 2 * j];
                    odd[16 * k + j] = src[32 * k + 2 * j + 1];
                }
            for (int lane = 0; lane < 16; lane++)
            {
                int g = 4 * s + lane / 4, c0 = 32 * (lane / 4) + 8 * (lane % 4), lsum = 0;
                for (int i = 0; i < 8; i++) lsum += src[c0 + i];
                offsets[lane] = 8 * lsum;
                laneScales[lane] = token.GroupScales[g];
            }
        }
    }

    public void Dispose()
    {
        if (_memory is not null) NativeMemory.AlignedFree(_memory);
        _memory = null;
        _capacity = 0;
    }
}

internal static class VectorExtensions
{
    /// <summary>The sum of integer lanes (exact in any order), in 6 instructions instead of Vector512.Sum's per-quarter reduction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ExactSum(this Vector512<int> v)
    {
        var h = v.GetLower() + v.GetUpper();
        var q = h.GetLower() + h.GetUpper();
        q += Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1));
        q += Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2));
        return q.ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToScalarMax(this Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var m2 = Vector128.Max(m.GetLower(), m.GetUpper());
        m2 = Vector128.Max(m2, Vector128.Shuffle(m2, Vector128.Create(2, 3, 0, 1)));
        m2 = Vector128.Max(m2, Vector128.Shuffle(m2, Vector128.Create(1, 0, 3, 1)));
        return m2.ToScalar();
    }
}
