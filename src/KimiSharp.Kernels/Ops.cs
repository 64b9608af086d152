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

    /// <summary>y = (x − mean) / sqrt(var + eps) ⊙ weight + bias, the biased variance of torch's LayerNorm. <paramref name="y"/> may alias x.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> y)
    {
        int n = x.Length;
        if (weight.Length != n || bias.Length != n || y.Length < n)
            throw new ArgumentException($"LayerNorm over {n} values needs a weight and bias of the same length (got {weight.Length}, {bias.Length}) and room for the output ({y.Length})");
        float mean = Reductions.Sum(x) / n;
        // Two passes: the centred sum of squares does not cancel the way E[x²] − mean² does.
        float sumSquares = 0;
        for (int i = 0; i < n; i++)
        {
            float d = x[i] - mean;
            sumSquares += d * d;
        }
        float inverse = 1f / MathF.Sqrt(sumSquares / n + eps);
        TensorPrimitives.Subtract(x, mean, y);
        TensorPrimitives.Multiply(y[..n], inverse, y);
        TensorPrimitives.FusedMultiplyAdd(y[..n], weight, bias, y);
    }

    /// <summary>In-place tanh-approximate GELU (torch <c>gelu(approximate="tanh")</c>): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static void GeluTanh(Span<float> x)
    {
        const float c = 0.7978845608028654f; // √(2/π)
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            x[i] = 0.5f * v * (1f + MathF.Tanh(c * (v + 0.044715f * v * v * v)));
        }
    }

    /// <summary>In-place exact GELU (torch <c>nn.GELU()</c>): 0.5·x·(1 + erf(x/√2)).</summary>
    public static void Gelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            x[i] = (float)(0.5 * v * (1 + Erf(v * 0.70710678118654752)));
        }
    }

    /// <summary>
    /// The error function to double precision: its Maclaurin series below 2.5 (at most ~4 digits lost to
    /// cancellation there) and the Laplace continued fraction of erfc above, which converges fast for large |x|.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double a = Math.Abs(x);
        double result;
        if (a < 2.5)
        {
            // erf(x) = 2/√π · Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
            double term = a, sum = a, square = a * a;
            for (int n = 1; n < 80; n++)
            {
                term *= -square / n;
                double next = term / (2 * n + 1);
                sum += next;
                if (Math.Abs(next) < 1e-17 * Math.Abs(sum)) break;
            }
            result = sum * 1.1283791670955126; // 2/√π
        }
        else if (a > 6.5)
        {
            result = 1;
        }
        else
        {
            // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated from the tail.
            double fraction = a;
            for (int k = 60; k >= 1; k--) fraction = a + k * 0.5 / fraction;
            result = 1 - Math.Exp(-a * a) / (1.7724538509055160 * fraction);
        }
        return x < 0 ? -result : result;
    }

    public static void Sigmoid(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Sigmoid(x, y);
}
