using Xunit.Abstractions;
using KimiSharp.Training.Optimizers;
using static KimiSharp.Training.Tests.Optimizers.OptimizerTestUtil;

namespace KimiSharp.Training.Tests.Optimizers;

public class NewtonSchulzTests(ITestOutputHelper output)
{
    /// <summary>
    /// Singular values of X (m×n) are the square roots of the eigenvalues of the min-side Gram matrix. Jacobi
    /// eigenvalues in double: enough for a 64×64 Gram.
    /// </summary>
    private static double[] SingularValues(float[] x, int rows, int cols)
    {
        bool wide = rows <= cols;
        int m = wide ? rows : cols, n = wide ? cols : rows;
        var g = new double[m, m];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
            {
                double s = 0;
                for (int p = 0; p < n; p++)
                    s += wide ? (double)x[i * cols + p] * x[j * cols + p] : (double)x[p * cols + i] * x[p * cols + j];
                g[i, j] = s;
            }
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int i = 0; i < m; i++) for (int j = i + 1; j < m; j++) off += g[i, j] * g[i, j];
            if (off < 1e-22) break;
            for (int p = 0; p < m; p++)
                for (int q = p + 1; q < m; q++)
                {
                    if (Math.Abs(g[p, q]) < 1e-300) continue;
                    double theta = (g[q, q] - g[p, p]) / (2 * g[p, q]);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < m; k++)
                    {
                        double gkp = g[k, p], gkq = g[k, q];
                        g[k, p] = c * gkp - s * gkq;
                        g[k, q] = s * gkp + c * gkq;
                    }
                    for (int k = 0; k < m; k++)
                    {
                        double gpk = g[p, k], gqk = g[q, k];
                        g[p, k] = c * gpk - s * gqk;
                        g[q, k] = s * gpk + c * gqk;
                    }
                }
        }
        return Enumerable.Range(0, m).Select(i => Math.Sqrt(Math.Max(0, g[i, i]))).ToArray();
    }

    [Theory]
    [InlineData(64, 256)]
    [InlineData(256, 64)]
    [InlineData(48, 48)]
    [InlineData(33, 70)]
    public void SingularValuesLandInTheNs5Band(int rows, int cols)
    {
        var rng = new Random(1234 + rows * 7 + cols);
        var g = Gaussian(rng, rows * cols);
        var o = NewtonSchulz.Orthogonalize(g, rows, cols);
        var sv = SingularValues(o, rows, cols);
        output.WriteLine($"{rows}×{cols}: singular values in [{sv.Min():F4}, {sv.Max():F4}], mean square {sv.Average(s => s * s):F4}");
        // NS5 with (3.4445, −4.7750, 2.0315) maps [0.01, 1] into ≈ [0.68, 1.14]; small fp32 slack.
        Assert.All(sv, s => Assert.InRange(s, 0.6, 1.2));
        // And XXᵀ ≈ I up to NS5's band: the mean squared singular value stays well away from 0.
        Assert.InRange(sv.Average(s => s * s), 0.6, 1.2);
    }

    [Fact]
    public void TallInputIsTheTransposeOfTheWideResult()
    {
        var rng = new Random(7);
        int rows = 40, cols = 24;
        var g = Gaussian(rng, rows * cols);
        var gt = new float[g.Length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) gt[j * rows + i] = g[i * cols + j];
        var tall = NewtonSchulz.Orthogonalize(g, rows, cols);
        var wide = NewtonSchulz.Orthogonalize(gt, cols, rows);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                Assert.Equal(wide[j * rows + i], tall[i * cols + j]);
    }

    [Fact]
    public void RepeatedRunsAreBitIdentical()
    {
        var g = Gaussian(new Random(21), 130 * 210);
        var first = NewtonSchulz.Orthogonalize(g, 130, 210);
        for (int i = 0; i < 3; i++) Assert.Equal(first, NewtonSchulz.Orthogonalize(g, 130, 210));
    }

    [Fact]
    public void ScaleOfTheInputDoesNotMatter()
    {
        var rng = new Random(3);
        var g = Gaussian(rng, 16 * 32);
        var o1 = NewtonSchulz.Orthogonalize(g, 16, 32);
        var o2 = NewtonSchulz.Orthogonalize(g.Select(v => v * 1000f).ToArray(), 16, 32);
        for (int i = 0; i < o1.Length; i++) Assert.Equal(o1[i], o2[i], 1e-4f);
    }

    [Fact]
    public void GemmMatchesDoubleReferenceAndIsDeterministic()
    {
        var rng = new Random(11);
        int m = 67, k = 130, n = 301; // big enough to take the parallel path
        var a = Gaussian(rng, m * k);
        var b = Gaussian(rng, k * n);
        var c = new float[m * n];
        Gemm.MultiplyNN(a, b, c, m, n, k);
        var reference = MatMul(a, b, m, k, n);
        for (int i = 0; i < c.Length; i++) Assert.Equal(reference[i], c[i], 1e-3);
        var c2 = new float[m * n];
        Gemm.MultiplyNN(a, b, c2, m, n, k);
        Assert.Equal(c, c2);

        var bt = new float[n * k];
        Gemm.Transpose(b, bt, k, n);
        var cnt = new float[m * n];
        Gemm.MultiplyNT(a, bt, cnt, m, n, k);
        for (int i = 0; i < c.Length; i++) Assert.Equal(reference[i], cnt[i], 1e-3);
    }
}
