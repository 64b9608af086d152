using KimiSharp.Model.Configuration;
using KimiSharp.Training.Optimizers;
using static KimiSharp.Training.Tests.Optimizers.OptimizerTestUtil;

namespace KimiSharp.Training.Tests.Optimizers;

public class QkClipTests
{
    private const int Layers = 2, Heads = 3, Nope = 4, Rope = 2, V = 3, KvLora = 5, Hidden = 8, Tokens = 6;

    private sealed record Layout(ModelConfig Config, List<Parameter> Parameters, string QName, int QIn);

    private static Layout Build(int? qLora, int seed)
    {
        var config = TinyMla(Layers, Heads, Nope, Rope, V, KvLora, Hidden, qLora);
        var rng = new Random(seed);
        string qName = qLora is null ? "q_proj" : "q_b_proj";
        int qIn = qLora ?? Hidden;
        var ps = new List<Parameter>();
        for (int l = 0; l < Layers; l++)
        {
            if (qLora is int r) ps.Add(Make($"model.layers.{l}.self_attn.q_a_proj.weight", ParameterKind.Matrix, [r, Hidden], rng, 0.3f));
            ps.Add(Make($"model.layers.{l}.self_attn.{qName}.weight", ParameterKind.Matrix, [Heads * (Nope + Rope), qIn], rng, 0.5f));
            ps.Add(Make($"model.layers.{l}.self_attn.kv_a_proj_with_mqa.weight", ParameterKind.Matrix, [KvLora + Rope, Hidden], rng, 0.5f));
            ps.Add(Make($"model.layers.{l}.self_attn.kv_b_proj.weight", ParameterKind.Matrix, [Heads * (Nope + V), KvLora], rng, 0.5f));
            ps.Add(Make($"model.layers.{l}.self_attn.o_proj.weight", ParameterKind.Matrix, [Hidden, Heads * V], rng, 0.5f));
        }
        return new Layout(config, ps, qName, qIn);
    }

    private static Parameter P(Layout lay, int layer, string proj) =>
        lay.Parameters.Single(p => p.Name == $"model.layers.{layer}.self_attn.{proj}.weight");

    private static double[] Project(Parameter w, int firstRow, int rows, double[] x)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < w.Cols; c++) y[r] += (double)w.Data[(firstRow + r) * w.Cols + c] * x[c];
        return y;
    }

    private static void Rotate(double[] v, int pos)
    {
        for (int d = 0; d < v.Length / 2; d++)
        {
            double angle = pos * Math.Pow(10000, -2.0 * d / v.Length);
            double a = v[2 * d], b = v[2 * d + 1];
            v[2 * d] = a * Math.Cos(angle) - b * Math.Sin(angle);
            v[2 * d + 1] = a * Math.Sin(angle) + b * Math.Cos(angle);
        }
    }

    /// <summary>
    /// Per-head max softmax input of one MLA layer by hand: q from q_proj (or q_b_proj on a given q-LoRA latent),
    /// k_C from kv_b_proj on the kv latent, shared rotary key from the rope rows of kv_a_proj_with_mqa, RoPE on both
    /// rotary parts, scale (nope+rope)^−½, causal j ≤ i. (kv_a_layernorm is omitted: it is shared and unscaled by the clip.)
    /// </summary>
    private static double[] MaxLogits(Layout lay, int layer, double[][] x, double[][] qIn)
    {
        var q = P(lay, layer, lay.QName);
        var kvA = P(lay, layer, "kv_a_proj_with_mqa");
        var kvB = P(lay, layer, "kv_b_proj");
        double scale = 1 / Math.Sqrt(Nope + Rope);
        var result = new double[Heads];
        for (int h = 0; h < Heads; h++)
        {
            double max = double.NegativeInfinity;
            for (int i = 0; i < Tokens; i++)
            {
                var qn = Project(q, h * (Nope + Rope), Nope, qIn[i]);
                var qr = Project(q, h * (Nope + Rope) + Nope, Rope, qIn[i]);
                Rotate(qr, i);
                for (int j = 0; j <= i; j++)
                {
                    var latent = Project(kvA, 0, KvLora, x[j]);
                    var kr = Project(kvA, KvLora, Rope, x[j]);
                    Rotate(kr, j);
                    var kn = Project(kvB, h * (Nope + V), Nope, latent);
                    double s = 0;
                    for (int d = 0; d < Nope; d++) s += qn[d] * kn[d];
                    for (int d = 0; d < Rope; d++) s += qr[d] * kr[d];
                    max = Math.Max(max, s * scale);
                }
            }
            result[h] = max;
        }
        return result;
    }

    [Theory]
    [InlineData(null)]
    [InlineData(6)]
    public void ClippedHeadsLandExactlyOnTauAndEverythingElseIsUntouched(int? qLora)
    {
        var lay = Build(qLora, 42);
        var rng = new Random(8);
        double[][] x = Enumerable.Range(0, Tokens).Select(_ => Gaussian(rng, Hidden).Select(v => (double)v).ToArray()).ToArray();
        double[][] qIn = qLora is null ? x : Enumerable.Range(0, Tokens).Select(_ => Gaussian(rng, lay.QIn).Select(v => (double)v).ToArray()).ToArray();

        // Inflate heads 0 and 2 of layer 0 (q nope and rope rows, k nope rows); shrink head 1.
        var q0 = P(lay, 0, lay.QName);
        var kvB0 = P(lay, 0, "kv_b_proj");
        float[] inflate = [6f, 0.3f, 4f];
        for (int h = 0; h < Heads; h++)
        {
            q0.Data.AsSpan(h * (Nope + Rope) * q0.Cols, (Nope + Rope) * q0.Cols).ToArray().Select(v => v * inflate[h]).ToArray()
                .CopyTo(q0.Data, h * (Nope + Rope) * q0.Cols);
            for (int i = h * (Nope + V) * KvLora; i < (h * (Nope + V) + Nope) * KvLora; i++) kvB0.Data[i] *= inflate[h];
        }

        var before0 = MaxLogits(lay, 0, x, qIn);
        var before1 = MaxLogits(lay, 1, x, qIn);
        Assert.True(before0[0] > before0[1] && before0[2] > before0[1], string.Join(", ", before0));
        Assert.True(before0[1] > 0);
        float tau = (float)((before0[1] + Math.Min(before0[0], before0[2])) / 2);
        Assert.True(before1.Max() < tau, $"layer 1 must stay below τ: {string.Join(", ", before1)} vs {tau}");

        var snapshot = lay.Parameters.ToDictionary(p => p.Name, p => (float[])p.Data.Clone());
        float[][] maxLogits = [before0.Select(v => (float)v).ToArray(), before1.Select(v => (float)v).ToArray()];
        var report = QkClip.Apply(lay.Parameters, lay.Config, maxLogits, tau);

        Assert.Equal(2, report.HeadsClipped);
        Assert.Equal(Layers * Heads, report.HeadsChecked);
        Assert.Equal((float)before0.Max(), report.MaxLogit);
        Assert.Equal(0, report.MaxLayer);
        Assert.Equal(before0[0] > before0[2] ? 0 : 2, report.MaxHead);
        Assert.Equal(tau / (float)before0.Max(), report.MinGamma, 5);

        var after0 = MaxLogits(lay, 0, x, qIn);
        Assert.Equal(tau, after0[0], 1e-4);
        Assert.Equal(tau, after0[2], 1e-4);
        Assert.Equal(before0[1], after0[1]); // untouched head: exactly the same
        Assert.Equal(before1, MaxLogits(lay, 1, x, qIn));

        // Head 1's rows, all v rows, the shared kv_a (incl. the rotary key rows), o_proj, q_a and layer 1: bit-identical.
        int qRows = Nope + Rope, kvRows = Nope + V;
        Assert.Equal(snapshot[q0.Name].AsSpan(1 * qRows * q0.Cols, qRows * q0.Cols).ToArray(), q0.Data.AsSpan(1 * qRows * q0.Cols, qRows * q0.Cols).ToArray());
        for (int h = 0; h < Heads; h++)
        {
            int vStart = (h * kvRows + Nope) * KvLora;
            Assert.Equal(snapshot[kvB0.Name].AsSpan(vStart, V * KvLora).ToArray(), kvB0.Data.AsSpan(vStart, V * KvLora).ToArray());
        }
        var kvA0 = P(lay, 0, "kv_a_proj_with_mqa");
        Assert.Equal(snapshot[kvA0.Name], kvA0.Data);
        foreach (var p in lay.Parameters.Where(p => p.Name != q0.Name && p.Name != kvB0.Name))
            Assert.Equal(snapshot[p.Name], p.Data);

        // The clipped heads' factors: q_C and k_C × √γ, q_R × γ.
        double gamma0 = tau / (float)before0[0];
        Assert.Equal(snapshot[q0.Name][0] * Math.Sqrt(gamma0), q0.Data[0], 1e-5);
        Assert.Equal(snapshot[q0.Name][Nope * q0.Cols] * gamma0, q0.Data[Nope * q0.Cols], 1e-5);
        Assert.Equal(snapshot[kvB0.Name][0] * Math.Sqrt(gamma0), kvB0.Data[0], 1e-5);
    }

    [Fact]
    public void NothingHappensBelowTau()
    {
        var lay = Build(null, 1);
        var snapshot = lay.Parameters.Select(p => (float[])p.Data.Clone()).ToArray();
        var report = QkClip.Apply(lay.Parameters, lay.Config, [[1f, 2f, 3f], [4f, 5f, 99f]], 100f);
        Assert.Equal(0, report.HeadsClipped);
        Assert.Equal(99f, report.MaxLogit);
        Assert.Equal(1f, report.MinGamma);
        for (int i = 0; i < snapshot.Length; i++) Assert.Equal(snapshot[i], lay.Parameters[i].Data);
    }

    [Fact]
    public void RejectsWrongShapes()
    {
        var lay = Build(null, 1);
        Assert.Throws<ArgumentException>(() => QkClip.Apply(lay.Parameters, lay.Config, [[1f, 2f, 3f]], 100f));
        Assert.Throws<ArgumentException>(() => QkClip.Apply(lay.Parameters, lay.Config, [[1f, 2f], [1f, 2f]], 100f));
        var missing = lay.Parameters.Where(p => !p.Name.Contains("kv_b_proj")).ToList();
        Assert.Throws<ArgumentException>(() => QkClip.Apply(missing, lay.Config, [[200f, 2f, 3f], [1f, 2f, 3f]], 100f));
    }

    [Fact]
    public void UniformFormScalesLogitsByEta()
    {
        var rng = new Random(4);
        int d = 6, inDim = 5, tokens = 4;
        var q = Make("q", ParameterKind.Matrix, [d, inDim], rng, 2f);
        var k = Make("k", ParameterKind.Matrix, [d, inDim], rng, 2f);
        var x = Gaussian(rng, inDim * tokens);
        double Max()
        {
            var qs = MatMul(q.Data, x, d, inDim, tokens);
            var ks = MatMul(k.Data, x, d, inDim, tokens);
            double m = double.NegativeInfinity;
            for (int i = 0; i < tokens; i++)
                for (int j = 0; j <= i; j++)
                {
                    double s = 0;
                    for (int r = 0; r < d; r++) s += qs[r * tokens + i] * ks[r * tokens + j];
                    m = Math.Max(m, s);
                }
            return m;
        }
        double before = Max();
        Assert.True(before > 1);
        float tau = (float)(before / 3);
        var qBefore = (float[])q.Data.Clone();
        float eta = QkClip.ApplyUniform(q, k, (float)before, tau, alpha: 0.25f);
        Assert.Equal(tau / before, eta, 5);
        Assert.Equal(tau, Max(), 1e-4);
        Assert.Equal(qBefore[0] * Math.Pow(eta, 0.25), q.Data[0], 1e-5);
        Assert.Equal(1f, QkClip.ApplyUniform(q, k, tau / 2, tau));

        // Per-head MHA form: only the head above τ moves.
        var q2 = Make("q2", ParameterKind.Matrix, [4, 3], rng);
        var k2 = Make("k2", ParameterKind.Matrix, [4, 3], rng);
        var q2Before = (float[])q2.Data.Clone();
        Assert.Equal(1, QkClip.ApplyPerHead(q2, k2, 2, [50f, 200f], 100f));
        Assert.Equal(q2Before.AsSpan(0, 6).ToArray(), q2.Data.AsSpan(0, 6).ToArray());
        Assert.Equal(q2Before[6] * MathF.Sqrt(0.5f), q2.Data[6], 6);
    }

    [Fact]
    public void MuonClipClipsAfterTheStep()
    {
        var lay = Build(null, 3);
        var opt = new MuonClip(lay.Parameters, lay.Config, tau: 10f);
        var report = opt.Step(1e-3f, [[50f, 1f, 1f], [1f, 1f, 1f]]);
        Assert.NotNull(report);
        Assert.Equal(1, report.HeadsClipped);
        Assert.Same(report, opt.LastClip);
        Assert.Null(opt.Step(1e-3f, null));
        Assert.Equal(2, opt.StepCount);
    }
}
