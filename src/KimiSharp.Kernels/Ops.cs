using System.Numerics.Tensors;

namespace KimiSharp.Kernels;

/// <summary>The element-wise and reduction operators of a transformer layer.</summary>
public static class Ops
{
    /// <summary>y = weight ⊙ x / sqrt(mean(x²) + eps).</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        if (weight.Length != x.Length || y.Length < x.Length)
            throw new ArgumentException($"RMSNorm over {x.Length} values needs a weight of the same length (got {weight.Length}) and room for the output ({y.Length})");
        float meanSquare = Reductions.SumOfSquares(x) / x.Length;
        float inverseRms = 1f / MathF.Sqrt(meanSquare + eps);
        TensorPrimitives.Multiply(x, inverseRms, y);
        TensorPrimitives.Multiply(y[..x.Length], weight, y);
    }

    /// <summary>
    /// Rotates consecutive pairs (x[2i], x[2i+1]) by the angle whose cosine and sine are cos[i], sin[i]
    /// (the interleaved, GPT-J layout DeepSeek-V3 checkpoints are stored in).
    /// </summary>
    public static void RotatePairs(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int pairs = x.Length / 2;
        if (x.Length % 2 != 0 || cos.Length < pairs || sin.Length < pairs)
            throw new ArgumentException($"rotary dimension {x.Length} must be even with {pairs} angles");
        for (int i = 0; i < pairs; i++)
        {
            float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * cos[i] - b * sin[i];
            x[2 * i + 1] = a * sin[i] + b * cos[i];
        }
    }

    /// <summary>In-place numerically stable softmax.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        TensorPrimitives.Divide(x, Reductions.Sum(x), x);
    }

    /// <summary>out = silu(gate) ⊙ up, silu(z) = z·σ(z): the SwiGLU activation. <paramref name="output"/> may alias either input.</summary>
    public static void SiluMultiply(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        if (up.Length != gate.Length || output.Length < gate.Length)
            throw new ArgumentException("SwiGLU halves must have equal lengths");
        Span<float> sigmoid = stackalloc float[256];
        for (int i = 0; i < gate.Length; i += sigmoid.Length)
        {
            int n = Math.Min(sigmoid.Length, gate.Length - i);
            var s = sigmoid[..n];
            TensorPrimitives.Sigmoid(gate.Slice(i, n), s);
            TensorPrimitives.Multiply(s, gate.Slice(i, n), s);
            TensorPrimitives.Multiply(s, up.Slice(i, n), output.Slice(i, n));
        }
    }

    public static void Sigmoid(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Sigmoid(x, y);
}
