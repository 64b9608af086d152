using Xunit.Abstractions;

namespace KimiSharp.Training.Tests.Model;

/// <summary>
/// Each op's backward against central finite differences in float64: the scalar checked is L = Σ G ⊙ op(inputs) with a
/// random upstream gradient G; the analytic gradient of every input is compared with (L(x+h) − L(x−h)) / 2h.
/// </summary>
public sealed class OpGradientTests(ITestOutputHelper output)
{
    private const double H = 1e-6;
    private const double Tolerance = 1e-6;

    private static double[] Rand(Random r, int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (r.NextDouble() * 2 - 1) * scale).ToArray();

    private static double Inner(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>max |analytic − numeric| / max(1, max |numeric|) over the entries of <paramref name="x"/>.</summary>
    private double Check(string name, double[] x, double[] analytic, Func<double> loss)
    {
        double worst = 0, scale = 1;
        var numeric = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + H; double plus = loss();
            x[i] = saved - H; double minus = loss();
            x[i] = saved;
            numeric[i] = (plus - minus) / (2 * H);
            scale = Math.Max(scale, Math.Abs(numeric[i]));
        }
        for (int i = 0; i < x.Length; i++) worst = Math.Max(worst, Math.Abs(analytic[i] - numeric[i]));
        double rel = worst / scale;
        output.WriteLine($"{name}: max error {rel:E2} over {x.Length} entries");
        Assert.True(rel < Tolerance, $"{name}: gradient error {rel:E2}");
        return rel;
    }

    [Fact]
    public void MatMul()
    {
        var r = new Random(1);
        int n = 3, inDim = 5, outDim = 4;
        var x = Rand(r, n * inDim); var w = Rand(r, outDim * inDim); var g = Rand(r, n * outDim);
        double Loss() { var y = new double[n * outDim]; TrainOps.MatMul(x, w, y, n, inDim, outDim); return Inner(y, g); }
        var dx = new double[x.Length]; var dw = new double[w.Length];
        TrainOps.MatMulBackward(g, x, w, dx, dw, n, inDim, outDim);
        Check("matmul dx", x, dx, Loss);
        Check("matmul dW", w, dw, Loss);
    }

    [Fact]
    public void RmsNorm()
    {
        var r = new Random(2);
        int n = 3, d = 6;
        var x = Rand(r, n * d); var w = Rand(r, d); var g = Rand(r, n * d);
        double Loss() { var y = new double[n * d]; TrainOps.RmsNorm(x, w, 1e-6, y, new double[n], n, d); return Inner(y, g); }
        var y0 = new double[n * d]; var rstd = new double[n];
        TrainOps.RmsNorm(x, w, 1e-6, y0, rstd, n, d);
        var dx = new double[x.Length]; var dw = new double[w.Length];
        TrainOps.RmsNormBackward(g, x, w, rstd, dx, dw, n, d);
        Check("rmsnorm dx", x, dx, Loss);
        Check("rmsnorm dw", w, dw, Loss);
    }

    [Fact]
    public void Rope()
    {
        var r = new Random(3);
        int dim = 6, positions = 4;
        var cos = Rand(r, positions * dim / 2); var sin = Rand(r, positions * dim / 2);
        var x = Rand(r, 2 * dim); var g = Rand(r, 2 * dim);
        double Loss()
        {
            var y = (double[])x.Clone();
            TrainOps.Rope(y, dim, dim, cos, sin, 3);
            TrainOps.Rope(y, 0, dim, cos, sin, 1);
            return Inner(y, g);
        }
        var dx = (double[])g.Clone();
        TrainOps.RopeBackward(dx, dim, dim, cos, sin, 3);
        TrainOps.RopeBackward(dx, 0, dim, cos, sin, 1);
        Check("rope dx", x, dx, Loss);
    }

    [Fact]
    public void CausalMlaAttention()
    {
        var r = new Random(4);
        var shape = new TrainOps.AttentionShape(Seq: 4, Heads: 2, Nope: 3, Rope: 2, VDim: 3, Scale: 0.37);
        int B = 2, n = B * shape.Seq;
        var q = Rand(r, n * shape.Heads * shape.QkDim); var kvb = Rand(r, n * shape.KvbWidth); var kr = Rand(r, n * shape.Rope);
        var g = Rand(r, n * shape.Heads * shape.VDim);
        double Loss()
        {
            var o = new double[g.Length];
            var p = new double[B * shape.Heads * shape.Seq * shape.Seq];
            for (int b = 0; b < B; b++) TrainOps.Attention(shape, b, q, kvb, kr, p, o, new double[shape.Heads]);
            return Inner(o, g);
        }
        var probs = new double[B * shape.Heads * shape.Seq * shape.Seq];
        var outp = new double[g.Length];
        var max = new double[B * shape.Heads];
        for (int b = 0; b < B; b++) TrainOps.Attention(shape, b, q, kvb, kr, probs, outp, max.AsSpan(b * shape.Heads, shape.Heads));
        var dq = new double[q.Length]; var dkvb = new double[kvb.Length]; var dkr = new double[kr.Length];
        for (int b = 0; b < B; b++) TrainOps.AttentionBackward(shape, b, q, kvb, kr, probs, g, dq, dkvb, dkr);
        Check("attention dq", q, dq, Loss);
        Check("attention dkvb (k_nope, v)", kvb, dkvb, Loss);
        Check("attention dk_rope (shared)", kr, dkr, Loss);

        // S_max: the largest scaled logit over visible pairs.
        double expected = double.NegativeInfinity;
        for (int t = 0; t < shape.Seq; t++)
            for (int s = 0; s <= t; s++)
            {
                double dot = 0;
                for (int d = 0; d < shape.Nope; d++) dot += q[(t * 2 + 1) * shape.QkDim + d] * kvb[s * shape.KvbWidth + (shape.Nope + shape.VDim) + d];
                for (int d = 0; d < shape.Rope; d++) dot += q[(t * 2 + 1) * shape.QkDim + shape.Nope + d] * kr[s * shape.Rope + d];
                expected = Math.Max(expected, dot * shape.Scale);
            }
        Assert.Equal(expected, max[1], 12);
    }

    /// <summary>The MLA latent path: x → kv_a → RMSNorm(latent) → kv_b → attention, composed from the ops, against FD.</summary>
    [Fact]
    public void MlaLatentPath()
    {
        var r = new Random(9);
        var shape = new TrainOps.AttentionShape(Seq: 3, Heads: 2, Nope: 2, Rope: 2, VDim: 2, Scale: 0.5);
        int n = shape.Seq, hidden = 5, kvl = 3;
        var x = Rand(r, n * hidden); var q = Rand(r, n * shape.Heads * shape.QkDim);
        var wa = Rand(r, (kvl + shape.Rope) * hidden); var norm = Rand(r, kvl); var wb = Rand(r, shape.KvbWidth * kvl);
        var cos = Rand(r, n); var sin = Rand(r, n);
        var g = Rand(r, n * shape.Heads * shape.VDim);
        (double[] kva, double[] lat, double[] latN, double[] rstd, double[] kr, double[] kvb, double[] probs, double[] o) Run()
        {
            var kva = new double[n * (kvl + shape.Rope)];
            TrainOps.MatMul(x, wa, kva, n, hidden, kvl + shape.Rope);
            var lat = new double[n * kvl]; var kr = new double[n * shape.Rope];
            for (int i = 0; i < n; i++)
            {
                Array.Copy(kva, i * (kvl + shape.Rope), lat, i * kvl, kvl);
                Array.Copy(kva, i * (kvl + shape.Rope) + kvl, kr, i * shape.Rope, shape.Rope);
                TrainOps.Rope(kr, i * shape.Rope, shape.Rope, cos, sin, i);
            }
            var latN = new double[lat.Length]; var rstd = new double[n];
            TrainOps.RmsNorm(lat, norm, 1e-6, latN, rstd, n, kvl);
            var kvb = new double[n * shape.KvbWidth];
            TrainOps.MatMul(latN, wb, kvb, n, kvl, shape.KvbWidth);
            var probs = new double[shape.Heads * n * n]; var o = new double[g.Length];
            TrainOps.Attention(shape, 0, q, kvb, kr, probs, o, new double[shape.Heads]);
            return (kva, lat, latN, rstd, kr, kvb, probs, o);
        }
        var f = Run();
        var dq = new double[q.Length]; var dkvb = new double[f.kvb.Length]; var dkr = new double[f.kr.Length];
        TrainOps.AttentionBackward(shape, 0, q, f.kvb, f.kr, f.probs, g, dq, dkvb, dkr);
        var dLatN = new double[f.latN.Length]; var dwb = new double[wb.Length];
        TrainOps.MatMulBackward(dkvb, f.latN, wb, dLatN, dwb, n, kvl, shape.KvbWidth);
        var dLat = new double[f.lat.Length]; var dNorm = new double[kvl];
        TrainOps.RmsNormBackward(dLatN, f.lat, norm, f.rstd, dLat, dNorm, n, kvl);
        var dKva = new double[f.kva.Length];
        for (int i = 0; i < n; i++)
        {
            TrainOps.RopeBackward(dkr, i * shape.Rope, shape.Rope, cos, sin, i);
            Array.Copy(dLat, i * kvl, dKva, i * (kvl + shape.Rope), kvl);
            Array.Copy(dkr, i * shape.Rope, dKva, i * (kvl + shape.Rope) + kvl, shape.Rope);
        }
        var dx = new double[x.Length]; var dwa = new double[wa.Length];
        TrainOps.MatMulBackward(dKva, x, wa, dx, dwa, n, hidden, kvl + shape.Rope);
        double Loss() => Inner(Run().o, g);
        Check("mla dx", x, dx, Loss);
        Check("mla dq", q, dq, Loss);
        Check("mla d kv_a_proj", wa, dwa, Loss);
        Check("mla d kv_a_layernorm", norm, dNorm, Loss);
        Check("mla d kv_b_proj", wb, dwb, Loss);
    }

    [Fact]
    public void SwiGlu()
    {
        var r = new Random(5);
        int n = 10;
        var gate = Rand(r, n, 3); var up = Rand(r, n); var g = Rand(r, n);
        double Loss() { var a = new double[n]; TrainOps.SwiGlu(gate, up, a, n); return Inner(a, g); }
        var dg = new double[n]; var du = new double[n];
        TrainOps.SwiGluBackward(g, gate, up, dg, du, n);
        Check("swiglu dgate", gate, dg, Loss);
        Check("swiglu dup", up, du, Loss);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RouterWeighting(bool normalize)
    {
        var r = new Random(6);
        var shape = new TrainOps.RouterShape(Experts: 8, TopK: 3, Groups: 4, TopkGroup: 2, NormTopkProb: normalize, ScalingFactor: 2.5);
        var logits = Rand(r, 8, 2); var bias = new float[] { 0.1f, -0.2f, 0, 0.3f, 0, 0, -0.1f, 0.05f }; var g = Rand(r, 3);
        int[] chosen0 = new int[3];
        double Loss()
        {
            var w = new double[3]; var c = new int[3];
            TrainOps.Route<double>(shape, logits, bias, c, w, new double[8]);
            Assert.Equal(chosen0, c); // the choice must not flip inside the finite difference
            return Inner(w, g);
        }
        var weights = new double[3]; var scores = new double[8];
        TrainOps.Route<double>(shape, logits, bias, chosen0, weights, scores);
        Assert.Equal(3, chosen0.Distinct().Count());
        var dl = new double[8];
        TrainOps.RouteBackward<double>(shape, chosen0, scores, g, dl);
        Check($"router weights (norm_topk_prob={normalize}) dlogits", logits, dl, Loss);
        for (int e = 0; e < 8; e++)
            if (!chosen0.Contains(e)) Assert.Equal(0, dl[e]);
    }

    [Fact]
    public void EmbeddingScatter()
    {
        var r = new Random(7);
        int vocab = 5, d = 3;
        int[] tokens = [1, 3, 1, 0];
        var table = Rand(r, vocab * d); var g = Rand(r, tokens.Length * d);
        double Loss() { var o = new double[tokens.Length * d]; TrainOps.Embedding(tokens, table, o, d); return Inner(o, g); }
        var dt = new double[table.Length];
        TrainOps.EmbeddingBackward(tokens, g, dt, d);
        Check("embedding dtable", table, dt, Loss);
    }

    [Fact]
    public void LmHeadCrossEntropy()
    {
        var r = new Random(8);
        int n = 4, hidden = 5, vocab = 7;
        var x = Rand(r, n * hidden); var w = Rand(r, vocab * hidden);
        int[] targets = [2, -1, 6, 0];
        float[] mask = [1, 1, 0, 1];
        double Loss()
        {
            var l = new double[n * vocab];
            TrainOps.MatMul(x, w, l, n, hidden, vocab);
            return TrainOps.CrossEntropy(l, targets, mask, new double[n * vocab], n, vocab).Loss;
        }
        var logits = new double[n * vocab]; var probs = new double[n * vocab];
        TrainOps.MatMul(x, w, logits, n, hidden, vocab);
        var (_, weight) = TrainOps.CrossEntropy(logits, targets, mask, probs, n, vocab);
        Assert.Equal(2.0, weight);
        var dl = new double[n * vocab];
        TrainOps.CrossEntropyBackward(probs, targets, mask, weight, 1.0, dl, n, vocab);
        var dx = new double[x.Length]; var dw = new double[w.Length];
        TrainOps.MatMulBackward(dl, x, w, dx, dw, n, hidden, vocab);
        Check("lm_head+CE dx", x, dx, Loss);
        Check("lm_head+CE dW", w, dw, Loss);
    }
}
