using System.Buffers;
using KimiSharp.Training.Optimizers;

namespace KimiSharp.Training;

/// <summary>
/// The float32 training path of <see cref="TrainOps.MatMul{T}"/> and <see cref="TrainOps.MatMulBackward{T}"/>:
/// the three products of a linear layer as register-tiled GEMMs (<see cref="Gemm"/>) instead of one dot product
/// per output. Operands that need the other layout are transposed into pooled buffers. Every output element is
/// still summed by one thread in a fixed order, so training stays bit-reproducible.
/// </summary>
internal static class FloatLinear
{
    /// <summary>y[n, out] = x[n, in] · Wᵀ with W [out, in].</summary>
    public static void Forward(float[] x, float[] w, float[] y, int n, int inDim, int outDim)
    {
        float[] wt = ArrayPool<float>.Shared.Rent(inDim * outDim);
        try
        {
            Gemm.Transpose(w, wt, outDim, inDim);            // Wᵀ [in, out]
            Gemm.MultiplyNN(x, wt, y, n, outDim, inDim);
        }
        finally { ArrayPool<float>.Shared.Return(wt); }
    }

    /// <summary>dx += dy · W (when dx is not null); dW += dyᵀ · x.</summary>
    public static void Backward(float[] dy, float[] x, float[] w, float[]? dx, float[] dw, int n, int inDim, int outDim)
    {
        if (dx is not null) Gemm.MultiplyNN(dy, w, dx, n, inDim, outDim, accumulate: true);
        float[] dyt = ArrayPool<float>.Shared.Rent(n * outDim);
        try
        {
            Gemm.Transpose(dy, dyt, n, outDim);               // dyᵀ [out, n]
            Gemm.MultiplyNN(dyt, x, dw, outDim, inDim, n, accumulate: true);
        }
        finally { ArrayPool<float>.Shared.Return(dyt); }
    }
}
