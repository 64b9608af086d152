using KimiSharp.Kernels;

namespace KimiSharp.Kernels.Tests;

public sealed class OpsTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        return x;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(515)]
    public void RmsNorm_matches_definition(int n)
    {
        var x = Random(n, n);
        var w = Random(n, n + 1);
        var y = new float[n];
        Ops.RmsNorm(x, w, 1e-5f, y);
        double meanSquare = x.Sum(v => (double)v * v) / n;
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(w[i] * x[i] / Math.Sqrt(meanSquare + 1e-5), y[i], 1e-5);
    }

    [Fact]
    public void RmsNorm_in_place_equals_out_of_place()
    {
        var x = Random(37, 1);
        var w = Random(37, 2);
        var y = new float[37];
        Ops.RmsNorm(x, w, 1e-6f, y);
        Ops.RmsNorm(x, w, 1e-6f, x);
        Assert.Equal(y, x);
    }

    [Fact]
    public void RotatePairs_rotates_interleaved_pairs()
    {
        float[] x = [1, 0, 0, 2, 3, 4];
        float[] cos = [0, 1, MathF.Cos(0.5f)];
        float[] sin = [1, 0, MathF.Sin(0.5f)];
        Ops.RotatePairs(x, cos, sin);
        MatrixKernelsTests.Near(0, x[0], 1e-5);
        MatrixKernelsTests.Near(1, x[1], 1e-5);
        MatrixKernelsTests.Near(0, x[2], 1e-5);
        MatrixKernelsTests.Near(2, x[3], 1e-5);
        MatrixKernelsTests.Near(3 * Math.Cos(0.5) - 4 * Math.Sin(0.5), x[4], 1e-5);
        MatrixKernelsTests.Near(3 * Math.Sin(0.5) + 4 * Math.Cos(0.5), x[5], 1e-5);
        Assert.Throws<ArgumentException>(() => Ops.RotatePairs(new float[3], cos, sin));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    [InlineData(300)]
    public void Softmax_matches_definition_and_survives_large_logits(int n)
    {
        var x = Random(n, n);
        x[0] = 1000; // would overflow exp without the max shift
        var expected = x.Select(v => Math.Exp(v - 1000.0)).ToArray();
        double sum = expected.Sum();
        Ops.Softmax(x);
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(expected[i] / sum, x[i], 1e-5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(255)]
    [InlineData(257)]
    [InlineData(1000)]
    public void SiluMultiply_matches_definition_even_in_place(int n)
    {
        var gate = Random(n, 3);
        var up = Random(n, 4);
        var expected = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
        var output = new float[n];
        Ops.SiluMultiply(gate, up, output);
        for (int i = 0; i < n; i++) MatrixKernelsTests.Near(expected[i], output[i], 1e-5);
        Ops.SiluMultiply(gate, up, gate); // the MLP writes over its gate buffer
        Assert.Equal(output, gate);
    }
}
