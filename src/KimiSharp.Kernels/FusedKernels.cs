using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KimiSharp.Kernels;

/// <summary>
/// Row dot products that convert BF16 and FP8 weights in registers (no float copy of the row). Each has a fixed
/// reduction order that depends only on the row length (and, for FP8, the block width).
/// </summary>
internal static unsafe class FusedKernels
{
    /// <summary>Vector path in use: 2 = Vector512, 1 = Vector256, 0 = portable. Tests may lower it.</summary>
    internal static int Level = Vector512.IsHardwareAccelerated ? 2 : Vector256.IsHardwareAccelerated ? 1 : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>
    /// BF16 row · x: four 16-lane accumulators over 64 columns, then 16 at a time into the first, a fixed horizontal
    /// sum, then the scalar tail in order (Vector256: the same with 8 lanes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotBf16(ushort* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (Level == 2 && n >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 64 <= n; i += 64)
            {
                // Decode streams the row from DRAM: prefetch ahead (see Int4Kernels.PrefetchDistance).
                Sse.Prefetch0((byte*)(w + i) + Int4Kernels.PrefetchDistance);
                Sse.Prefetch0((byte*)(w + i) + Int4Kernels.PrefetchDistance + 64);
                var (l0, h0) = Vector512.Widen(Vector512.Load(w + i));
                var (l1, h1) = Vector512.Widen(Vector512.Load(w + i + 32));
                a0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(l0, 16).AsSingle(), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(h0, 16).AsSingle(), Vector512.Load(x + i + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(l1, 16).AsSingle(), Vector512.Load(x + i + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(h1, 16).AsSingle(), Vector512.Load(x + i + 48), a3);
            }
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector512.WidenLower(Vector256.Load(w + i).ToVector512Unsafe());
                a0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(v, 16).AsSingle(), Vector512.Load(x + i), a0);
            }
            sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (Level >= 1 && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= n; i += 32)
            {
                var (l0, h0) = Vector256.Widen(Vector256.Load(w + i));
                var (l1, h1) = Vector256.Widen(Vector256.Load(w + i + 16));
                a0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(l0, 16).AsSingle(), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(h0, 16).AsSingle(), Vector256.Load(x + i + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(l1, 16).AsSingle(), Vector256.Load(x + i + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(h1, 16).AsSingle(), Vector256.Load(x + i + 24), a3);
            }
            for (; i + 8 <= n; i += 8)
            {
                var v = Vector256.WidenLower(Vector128.Load(w + i).ToVector256Unsafe());
                a0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(v, 16).AsSingle(), Vector256.Load(x + i), a0);
            }
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(Bf16(w[i]), x[i], sum);
        return sum;
    }

    /// <summary>
    /// Four tokens against one BF16 row, converting each weight vector once; per token exactly the operations and
    /// order of <see cref="DotBf16"/>, so the results equal four single calls bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotBf16x4(ushort* w, float* x, long xStride, int n, float* y, long yStride)
    {
        if (Level != 2 || n < 16)
        {
            for (int t = 0; t < 4; t++) y[t * yStride] = DotBf16(w, x + t * xStride, n);
            return;
        }
        float* x0 = x, x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int i = 0;
        for (; i + 64 <= n; i += 64)
        {
            var (l0, h0) = Vector512.Widen(Vector512.Load(w + i));
            var (l1, h1) = Vector512.Widen(Vector512.Load(w + i + 32));
            var w0 = Vector512.ShiftLeft(l0, 16).AsSingle();
            var w1 = Vector512.ShiftLeft(h0, 16).AsSingle();
            var w2 = Vector512.ShiftLeft(l1, 16).AsSingle();
            var w3 = Vector512.ShiftLeft(h1, 16).AsSingle();
            a00 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x0 + i), a00);
            a01 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x0 + i + 16), a01);
            a02 = Vector512.FusedMultiplyAdd(w2, Vector512.Load(x0 + i + 32), a02);
            a03 = Vector512.FusedMultiplyAdd(w3, Vector512.Load(x0 + i + 48), a03);
            a10 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x1 + i), a10);
            a11 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x1 + i + 16), a11);
            a12 = Vector512.FusedMultiplyAdd(w2, Vector512.Load(x1 + i + 32), a12);
            a13 = Vector512.FusedMultiplyAdd(w3, Vector512.Load(x1 + i + 48), a13);
            a20 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x2 + i), a20);
            a21 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x2 + i + 16), a21);
            a22 = Vector512.FusedMultiplyAdd(w2, Vector512.Load(x2 + i + 32), a22);
            a23 = Vector512.FusedMultiplyAdd(w3, Vector512.Load(x2 + i + 48), a23);
            a30 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x3 + i), a30);
            a31 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x3 + i + 16), a31);
            a32 = Vector512.FusedMultiplyAdd(w2, Vector512.Load(x3 + i + 32), a32);
            a33 = Vector512.FusedMultiplyAdd(w3, Vector512.Load(x3 + i + 48), a33);
        }
        for (; i + 16 <= n; i += 16)
        {
            var v = Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(w + i).ToVector512Unsafe()), 16).AsSingle();
            a00 = Vector512.FusedMultiplyAdd(v, Vector512.Load(x0 + i), a00);
            a10 = Vector512.FusedMultiplyAdd(v, Vector512.Load(x1 + i), a10);
            a20 = Vector512.FusedMultiplyAdd(v, Vector512.Load(x2 + i), a20);
            a30 = Vector512.FusedMultiplyAdd(v, Vector512.Load(x3 + i), a30);
        }
        float s0 = Vector512.Sum((a00 + a01) + (a02 + a03));
        float s1 = Vector512.Sum((a10 + a11) + (a12 + a13));
        float s2 = Vector512.Sum((a20 + a21) + (a22 + a23));
        float s3 = Vector512.Sum((a30 + a31) + (a32 + a33));
        for (; i < n; i++)
        {
            float wi = Bf16(w[i]);
            s0 = MathF.FusedMultiplyAdd(wi, x0[i], s0);
            s1 = MathF.FusedMultiplyAdd(wi, x1[i], s1);
            s2 = MathF.FusedMultiplyAdd(wi, x2[i], s2);
            s3 = MathF.FusedMultiplyAdd(wi, x3[i], s3);
        }
        y[0] = s0; y[yStride] = s1; y[2 * yStride] = s2; y[3 * yStride] = s3;
    }

    /// <summary>
    /// FP8 E4M3 row · x with block scales: within each scale block, 16 (or 8) columns at a time into one accumulator
    /// (weights decoded as magnitude·2^120·scale | sign), the block's scalar tail into a running scalar; at the end
    /// the vector sum plus the scalar part.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotFp8Block(WeightMatrix w, int row, float* x)
    {
        byte* data = w.Data + row * w.RowBytes;
        float* scaleRow = (float*)w.Scales + (long)(row / w.BlockRows) * w.ScaleStride;
        int cols = w.Cols, blockCols = w.BlockCols;
        float tail = 0;
        var table = NumberFormats.Fp8E4M3Table;
        if (Level == 2)
        {
            Vector512<float> acc = default;
            for (int c0 = 0, b = 0; c0 < cols; c0 += blockCols, b++)
            {
                int c1 = Math.Min(cols, c0 + blockCols), c = c0;
                float scale = scaleRow[b];
                var rebias = Vector512.Create(BitConverter.Int32BitsToSingle(247 << 23) * scale);
                for (; c + 16 <= c1; c += 16)
                {
                    var bytes = Vector512.WidenLower(Vector512.WidenLower(Vector128.Load(data + c).ToVector256().ToVector512()));
                    var magnitude = Vector512.ShiftLeft(bytes & Vector512.Create(0x7Fu), 20).AsSingle() * rebias;
                    var sign = Vector512.ShiftLeft(bytes & Vector512.Create(0x80u), 24).AsSingle();
                    acc = Vector512.FusedMultiplyAdd(magnitude | sign, Vector512.Load(x + c), acc);
                }
                for (; c < c1; c++) tail = MathF.FusedMultiplyAdd(table[data[c]] * scale, x[c], tail);
            }
            return Vector512.Sum(acc) + tail;
        }
        if (Level == 1)
        {
            Vector256<float> acc = default;
            for (int c0 = 0, b = 0; c0 < cols; c0 += blockCols, b++)
            {
                int c1 = Math.Min(cols, c0 + blockCols), c = c0;
                float scale = scaleRow[b];
                var rebias = Vector256.Create(BitConverter.Int32BitsToSingle(247 << 23) * scale);
                for (; c + 8 <= c1; c += 8)
                {
                    var bytes = Vector256.WidenLower(Vector256.WidenLower(Vector128.CreateScalar(*(ulong*)(data + c)).AsByte().ToVector256()));
                    var magnitude = Vector256.ShiftLeft(bytes & Vector256.Create(0x7Fu), 20).AsSingle() * rebias;
                    var sign = Vector256.ShiftLeft(bytes & Vector256.Create(0x80u), 24).AsSingle();
                    acc = Vector256.FusedMultiplyAdd(magnitude | sign, Vector256.Load(x + c), acc);
                }
                for (; c < c1; c++) tail = MathF.FusedMultiplyAdd(table[data[c]] * scale, x[c], tail);
            }
            return Vector256.Sum(acc) + tail;
        }
        float sum = 0;
        for (int c0 = 0, b = 0; c0 < cols; c0 += blockCols, b++)
        {
            int c1 = Math.Min(cols, c0 + blockCols);
            float scale = scaleRow[b];
            for (int c = c0; c < c1; c++) sum = MathF.FusedMultiplyAdd(table[data[c]] * scale, x[c], sum);
        }
        return sum;
    }
}
