namespace KimiSharp.Kernels;

/// <summary>How activations enter the INT4 matrix products.</summary>
public enum ActivationPrecision
{
    /// <summary>Exact: weights are decoded to float32 and multiplied with float32 activations (the reference path).</summary>
    Float32,
    /// <summary>
    /// Fast: each token's activations are quantized to int8 per 32 columns and multiplied with integer dot products;
    /// within quantization error (about 1e-2 relative on the tiny goldens) of <see cref="Float32"/>.
    /// </summary>
    Int8,
}
