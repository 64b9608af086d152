namespace KimiSharp.Training.Tests.Model;

/// <summary>
/// The float32 GEMM path of the linear layer (forward, dx and dW, both accumulating) against the generic float64
/// path, on shapes that exercise the vector tiles, the 4-row blocks and the scalar edges.
/// </summary>
public sealed class FloatLinearTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(37, 45, 19)]
    [InlineData(64, 160, 80)]
    [InlineData(300, 33, 272)]
    public void Float_path_matches_the_float64_reference(int n, int inDim, int outDim)
    {
        var r = new Random(n * 1000 + inDim * 10 + outDim);
        double[] x = Rand(r, n * inDim), w = Rand(r, outDim * inDim), dy = Rand(r, n * outDim);
        double[] dx0 = Rand(r, n * inDim), dw0 = Rand(r, outDim * inDim), y0 = Rand(r, n * outDim);

        var y = (double[])y0.Clone(); var dx = (double[])dx0.Clone(); var dw = (double[])dw0.Clone();
        TrainOps.MatMul(x, w, y, n, inDim, outDim);
        TrainOps.MatMulBackward(dy, x, w, dx, dw, n, inDim, outDim);

        var yf = F(y0); var dxf = F(dx0); var dwf = F(dw0);
        TrainOps.MatMul(F(x), F(w), yf, n, inDim, outDim);
        TrainOps.MatMulBackward(F(dy), F(x), F(w), dxf, dwf, n, inDim, outDim);

        AssertClose(y, yf, "y (overwritten)");
        AssertClose(dx, dxf, "dx (accumulated)");
        AssertClose(dw, dwf, "dW (accumulated)");
    }

    [Fact]
    public void Weight_gradient_without_dx_leaves_dx_alone_and_is_reproducible()
    {
        var r = new Random(3);
        float[] x = F(Rand(r, 50 * 24)), w = F(Rand(r, 40 * 24)), dy = F(Rand(r, 50 * 40));
        var a = new float[40 * 24]; var b = new float[40 * 24];
        TrainOps.MatMulBackward(dy, x, w, null, a, 50, 24, 40);
        TrainOps.MatMulBackward(dy, x, w, null, b, 50, 24, 40);
        Assert.Equal(a, b);
        Assert.Contains(a, v => v != 0);
    }

    private static double[] Rand(Random r, int n) => Enumerable.Range(0, n).Select(_ => r.NextDouble() * 2 - 1).ToArray();

    private static float[] F(double[] a) => Array.ConvertAll(a, v => (float)v);

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * (1 + Math.Abs(expected[i])),
                $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }
}
