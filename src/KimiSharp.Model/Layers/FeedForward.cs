using KimiSharp.Kernels;

namespace KimiSharp.Model.Layers;

/// <summary>SwiGLU MLP: down(silu(gate·x) ⊙ up·x). The dense layers, each routed expert and the shared experts.</summary>
public sealed class FeedForward(WeightMatrix gate, WeightMatrix up, WeightMatrix down)
{
    public WeightMatrix Gate { get; } = gate;
    public WeightMatrix Up { get; } = up;
    public WeightMatrix Down { get; } = down;
    public int Width => Gate.Rows;

    /// <summary>output[t] = MLP(x[t]) for <paramref name="tokens"/> rows; <paramref name="scratch"/> holds 2·tokens·Width floats.</summary>
    public void Forward(ReadOnlySpan<float> x, Span<float> output, int tokens, Span<float> scratch, KernelSettings kernels)
    {
        int n = tokens * Width;
        var gated = scratch[..n];
        var upped = scratch.Slice(n, n);
        MatrixKernels.MatMulPair(Gate, Up, x, gated, upped, tokens, kernels);
        Ops.SiluMultiply(gated, upped, gated);
        MatrixKernels.MatMul(Down, gated, output, tokens, kernels);
    }
}
