using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KimiSharp.Kernels;

/// <summary>
/// Sums and dot products with a fixed reduction order: the result depends only on the values and the
/// length, never on where the buffers sit in memory or which thread runs them. (TensorPrimitives peels to
/// alignment, so its rounding varies with buffer addresses.) This is what makes a sequence's logits
/// bit-identical whether it runs alone, in a batch, or after a cached prefix.
/// </summary>
public static unsafe class Reductions
{
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"dot product of lengths {a.Length} and {b.Length}");
        fixed (float* pa = a)
        fixed (float* pb = b)
            return Dot(pa, pb, a.Length);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            for (; i + 64 <= n; i += 64)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
                acc2 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 32), Vector512.Load(b + i + 32), acc2);
                acc3 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 48), Vector512.Load(b + i + 48), acc3);
            }
            for (; i + 16 <= n; i += 16)
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
            sum = Vector512.Sum((acc0 + acc1) + (acc2 + acc3));
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
                acc2 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), acc2);
                acc3 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), acc3);
            }
            for (; i + 8 <= n; i += 8)
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
            sum = Vector256.Sum((acc0 + acc1) + (acc2 + acc3));
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }

    public static float Sum(ReadOnlySpan<float> x)
    {
        int i = 0, n = x.Length;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> acc = default;
            for (; i + 8 <= n; i += 8) acc += Vector256.Create(x.Slice(i, 8));
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++) sum += x[i];
        return sum;
    }

    public static float SumOfSquares(ReadOnlySpan<float> x)
    {
        fixed (float* p = x) return Dot(p, p, x.Length);
    }
}
