using Xunit.Abstractions;
using KimiSharp.Training.Optimizers;
using static KimiSharp.Training.Tests.Optimizers.OptimizerTestUtil;

namespace KimiSharp.Training.Tests.Optimizers;

public class OptimizerTests(ITestOutputHelper output)
{
    [Fact]
    public void AdamWMatchesHandComputationForThreeSteps()
    {
        var w = new Parameter("w", [2], ParameterKind.Matrix);
        var g = new Parameter("g", [1], ParameterKind.Norm);
        w.Data[0] = 1.0f; w.Data[1] = -2.0f;
        g.Data[0] = 0.5f;
        var opt = new AdamW([w, g], new AdamWOptions { Beta1 = 0.9f, Beta2 = 0.99f, Epsilon = 1e-8f, WeightDecay = 0.1f });
        float[][] gradsW = [[0.5f, -1.0f], [0.25f, 0.5f], [-0.1f, 2.0f]];
        float[] gradsG = [1.0f, -3.0f, 0.2f];
        float[] lrs = [0.1f, 0.05f, 0.02f];

        double[] pw = [1.0, -2.0], mw = new double[2], vw = new double[2];
        double pg = 0.5, mg = 0, vg = 0;
        for (int t = 1; t <= 3; t++)
        {
            gradsW[t - 1].CopyTo(w.Grad, 0);
            g.Grad[0] = gradsG[t - 1];
            opt.Step(lrs[t - 1]);

            double lr = lrs[t - 1], c1 = 1 - Math.Pow(0.9, t), c2 = 1 - Math.Pow(0.99, t);
            for (int j = 0; j < 2; j++)
            {
                double gr = gradsW[t - 1][j];
                mw[j] = 0.9 * mw[j] + 0.1 * gr;
                vw[j] = 0.99 * vw[j] + 0.01 * gr * gr;
                pw[j] = pw[j] * (1 - lr * 0.1) - lr * (mw[j] / c1) / (Math.Sqrt(vw[j] / c2) + 1e-8);
            }
            double gg = gradsG[t - 1];
            mg = 0.9 * mg + 0.1 * gg;
            vg = 0.99 * vg + 0.01 * gg * gg;
            pg -= lr * (mg / c1) / (Math.Sqrt(vg / c2) + 1e-8); // Norm: no weight decay

            Assert.Equal(pw[0], w.Data[0], 1e-6);
            Assert.Equal(pw[1], w.Data[1], 1e-6);
            Assert.Equal(pg, g.Data[0], 1e-6);
        }
        Assert.Equal(3, opt.StepCount);
    }

    [Theory]
    [InlineData(64, 256)]
    [InlineData(256, 64)]
    [InlineData(96, 96)]
    public void MuonUpdateRmsMatchesMoonlightRule(int rows, int cols)
    {
        var rng = new Random(rows * 31 + cols);
        var p = Make("w", ParameterKind.Matrix, [rows, cols], rng, 0.02f);
        Gaussian(rng, p.Grad.Length).CopyTo(p.Grad, 0);
        var before = (float[])p.Data.Clone();
        var muon = new Muon([p], new MuonOptions { WeightDecay = 0f });
        Assert.Equal(0.2f * MathF.Sqrt(Math.Max(rows, cols)), muon.UpdateScale(rows, cols), 5);
        float lr = 1e-2f;
        muon.Step(lr);
        double sumSq = 0;
        for (int i = 0; i < before.Length; i++) { double d = p.Data[i] - before[i]; sumSq += d * d; }
        double rms = Math.Sqrt(sumSq / before.Length) / lr;
        output.WriteLine($"{rows}×{cols}: RMS(ΔW)/lr = {rms:F4}");
        // Lemma 1: RMS(O) = √(1/max(A,B)) for an exactly orthogonal O, so RMS(ΔW)/lr = 0.2 up to NS5's
        // singular values (≈ 0.68 … 1.14).
        Assert.InRange(rms, 0.2 * 0.75, 0.2 * 1.1);
    }

    [Fact]
    public void MuonWeightDecayIsDecoupled()
    {
        var p = new Parameter("w", [4, 8], ParameterKind.Matrix);
        Array.Fill(p.Data, 2f);
        var muon = new Muon([p], new MuonOptions { WeightDecay = 0.5f });
        muon.Step(0.1f); // zero gradient → zero update, only decay
        Assert.All(p.Data, v => Assert.Equal(2f * (1 - 0.05f), v, 6));
    }

    [Fact]
    public void MuonRejectsVectors()
    {
        Assert.Throws<ArgumentException>(() => new Muon([new Parameter("b", [4], ParameterKind.Bias)]));
    }

    /// <summary>min ‖W·X − Y‖² for a 12×20 W (Muon) and a bias-free AdamW twin; both must cut the loss by 100×.</summary>
    [Theory]
    [InlineData("muon")]
    [InlineData("adamw")]
    [InlineData("muonclip")]
    public void MinimizesLeastSquares(string which)
    {
        var rng = new Random(99);
        int outDim = 12, inDim = 20, samples = 64;
        var target = Gaussian(rng, outDim * inDim, 0.5f);
        var x = Gaussian(rng, inDim * samples);
        var y = MatMul(target, x, outDim, inDim, samples);
        var w = new Parameter("model.layers.0.mlp.up_proj.weight", [outDim, inDim], ParameterKind.Matrix);
        var norm = new Parameter("model.norm.weight", [outDim], ParameterKind.Norm); // y_hat = norm ⊙ (W x)
        Array.Fill(norm.Data, 1f);
        IOptimizer opt = which switch
        {
            "muon" => new Muon([w], new MuonOptions { WeightDecay = 0 }),
            "adamw" => new AdamW([w, norm], new AdamWOptions { WeightDecay = 0 }),
            _ => new MuonClip([w, norm], null, new MuonOptions { WeightDecay = 0 }, new AdamWOptions { WeightDecay = 0 }),
        };

        double Loss(bool grad)
        {
            var pred = MatMul(w.Data, x, outDim, inDim, samples);
            double loss = 0;
            if (grad) { w.ZeroGrad(); norm.ZeroGrad(); }
            for (int i = 0; i < outDim; i++)
                for (int s = 0; s < samples; s++)
                {
                    double r = norm.Data[i] * pred[i * samples + s] - y[i * samples + s];
                    loss += r * r / samples;
                    if (!grad) continue;
                    double dr = 2 * r / samples;
                    norm.Grad[i] += (float)(dr * pred[i * samples + s]);
                    for (int j = 0; j < inDim; j++) w.Grad[i * inDim + j] += (float)(dr * norm.Data[i] * x[j * samples + s]);
                }
            return loss;
        }

        double initial = Loss(false);
        var schedule = LearningRateSchedule.Cosine(0.05f, 10, 400, 0.01f);
        for (int step = 0; step < 400; step++)
        {
            Loss(true);
            opt.Step(schedule.At(step));
        }
        double final = Loss(false);
        output.WriteLine($"{which}: loss {initial:G4} → {final:G4}");
        Assert.True(final < initial / 100, $"{which}: loss {initial} → {final}");
    }

    private static List<Parameter> ResumeParameters()
    {
        var rng = new Random(5);
        return
        [
            Make("model.embed_tokens.weight", ParameterKind.Embedding, [10, 8], rng),
            Make("model.layers.0.self_attn.q_proj.weight", ParameterKind.Matrix, [12, 8], rng),
            Make("model.layers.0.mlp.down_proj.weight", ParameterKind.Matrix, [8, 20], rng),
            Make("model.layers.0.input_layernorm.weight", ParameterKind.Norm, [8], rng),
            Make("lm_head.weight", ParameterKind.Head, [10, 8], rng),
        ];
    }

    private static void FillGrads(IReadOnlyList<Parameter> ps, int step)
    {
        for (int i = 0; i < ps.Count; i++)
            Gaussian(new Random(1000 * step + i), ps[i].Grad.Length).CopyTo(ps[i].Grad, 0);
    }

    public static TheoryData<string> Kinds => new() { "adamw", "muon", "muonclip" };

    private static IOptimizer Create(string kind, List<Parameter> ps) => kind switch
    {
        "adamw" => new AdamW(ps),
        "muon" => new Muon(ps.Where(p => p.Kind == ParameterKind.Matrix)),
        _ => new MuonClip(ps, null),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SaveLoadResumeIsBitIdentical(string kind)
    {
        var schedule = LearningRateSchedule.WarmupStableDecay(0.01f, 2, 8, 0.5f);
        var straight = ResumeParameters();
        var a = Create(kind, straight);
        for (int s = 0; s < 8; s++) { FillGrads(straight, s); a.Step(schedule.At(s)); }

        var first = ResumeParameters();
        var b = Create(kind, first);
        for (int s = 0; s < 4; s++) { FillGrads(first, s); b.Step(schedule.At(s)); }
        using var stream = new MemoryStream();
        b.SaveState(stream);
        byte[] saved = stream.ToArray();

        var resumed = ResumeParameters();
        for (int i = 0; i < resumed.Count; i++) first[i].Data.CopyTo(resumed[i].Data, 0); // weights from the checkpoint
        var c = Create(kind, resumed);
        c.LoadState(new MemoryStream(saved));
        Assert.Equal(4, c.StepCount);
        for (int s = 4; s < 8; s++) { FillGrads(resumed, s); c.Step(schedule.At(s)); }

        for (int i = 0; i < straight.Count; i++)
            Assert.Equal(straight[i].Data, resumed[i].Data); // exact float equality
        Assert.Equal(8, c.StepCount);
    }

    [Fact]
    public void LoadRejectsMismatchedState()
    {
        var ps = ResumeParameters();
        var adam = new AdamW(ps);
        using var stream = new MemoryStream();
        adam.SaveState(stream);
        var muon = new Muon(ps.Where(p => p.Kind == ParameterKind.Matrix));
        Assert.Throws<OptimizerStateException>(() => muon.LoadState(new MemoryStream(stream.ToArray())));
        var other = new AdamW(ps.Take(2));
        Assert.Throws<OptimizerStateException>(() => other.LoadState(new MemoryStream(stream.ToArray())));
        Assert.Throws<OptimizerStateException>(() => adam.LoadState(new MemoryStream(stream.ToArray()[..20])));
    }

    [Fact]
    public void MuonClipRoutesByKind()
    {
        var ps = ResumeParameters();
        var opt = new MuonClip(ps, null);
        Assert.Equal(ps.Where(p => p.Kind == ParameterKind.Matrix).Select(p => p.Name), opt.Muon.Parameters.Select(p => p.Name));
        Assert.Equal(ps.Where(p => p.Kind != ParameterKind.Matrix).Select(p => p.Name), opt.AdamW.Parameters.Select(p => p.Name));
    }
}
