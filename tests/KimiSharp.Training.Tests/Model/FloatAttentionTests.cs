namespace KimiSharp.Training.Tests.Model;

/// <summary>The float32 GEMM path of a causal MLA attention head (forward and backward) against the generic float64 path.</summary>
public sealed class FloatAttentionTests
{
    [Theory]
    [InlineData(1, 1, 8, 4, 8)]
    [InlineData(2, 3, 32, 16, 32)]
    [InlineData(2, 2, 12, 6, 10)]
    public void Float_head_matches_the_float64_reference(int batch, int heads, int nope, int rope, int vd)
    {
        const int S = 37;
        var shape = new TrainOps.AttentionShape(S, heads, nope, rope, vd, 1 / Math.Sqrt(nope + rope));
        var r = new Random(batch * 100 + heads * 10 + nope);
        int n = batch * S;
        double[] q = Rand(r, n * heads * (nope + rope)), kvb = Rand(r, n * shape.KvbWidth), kr = Rand(r, n * rope), dOut = Rand(r, n * heads * vd);
        double[] dq0 = Rand(r, q.Length), dkvb0 = Rand(r, kvb.Length), dkr0 = Rand(r, kr.Length);

        var probs = new double[batch * heads * S * S]; var output = new double[n * heads * vd];
        var probsF = new float[probs.Length]; var outputF = new float[output.Length];
        var dq = (double[])dq0.Clone(); var dkvb = (double[])dkvb0.Clone(); var dkr = (double[])dkr0.Clone();
        float[] dqF = F(dq0), dkvbF = F(dkvb0), dkrF = F(dkr0);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                double max = TrainOps.AttentionHead(shape, b, h, q, kvb, kr, probs, output);
                float maxF = TrainOps.AttentionHead(shape, b, h, F(q), F(kvb), F(kr), probsF, outputF);
                Assert.Equal(max, maxF, 1e-4);
                TrainOps.AttentionHeadBackward(shape, b, h, q, kvb, kr, probs, dOut, dq, dkvb, dkr);
                TrainOps.AttentionHeadBackward(shape, b, h, F(q), F(kvb), F(kr), probsF, F(dOut), dqF, dkvbF, dkrF);
            }
        AssertClose(probs, probsF, "probs");
        AssertClose(output, outputF, "output");
        AssertClose(dq, dqF, "dq");
        AssertClose(dkvb, dkvbF, "dkvb");
        AssertClose(dkr, dkrF, "dkr");
        Assert.Equal(0f, probsF[1]); // row 0 sees only key 0: the causal mask holds
    }

    private static double[] Rand(Random r, int n) => Enumerable.Range(0, n).Select(_ => r.NextDouble() * 2 - 1).ToArray();

    private static float[] F(double[] a) => Array.ConvertAll(a, v => (float)v);

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * (1 + Math.Abs(expected[i])),
                $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }
}
