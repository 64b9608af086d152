using KimiSharp.Model;
using KimiSharp.Model.Configuration;
using KimiSharp.Training.Optimizers;
using Xunit.Abstractions;

namespace KimiSharp.Training.Tests.Model;

public sealed class TrainableModelTests(ITestOutputHelper output)
{
    private const int Batch = 2, Seq = 5;

    private static (int[] Tokens, int[] Targets, float[] Mask) Data(ModelConfig c, int seed)
    {
        var tokens = TinyConfigs.RandomTokens(Batch * Seq, c.VocabSize, seed);
        var targets = TinyConfigs.RandomTokens(Batch * Seq, c.VocabSize, seed + 1);
        var mask = Enumerable.Range(0, Batch * Seq).Select(i => i % 4 == 1 ? 0f : 1f).ToArray();
        return (tokens, targets, mask);
    }

    /// <summary>
    /// Whole-model gradient in float64 against central differences for every parameter entry. Init std 0.3 keeps the
    /// routing margins (gaps between the k-th and (k+1)-th biased scores, and between groups) far above the step h = 1e-5.
    /// </summary>
    [Theory]
    [InlineData(true, 8, false, 0.0)]
    [InlineData(false, null, true, 0.0)]
    [InlineData(true, 8, false, 0.01)]
    public void WholeModelGradientMatchesFiniteDifferences(bool yarn, int? qLora, bool tied, double alpha)
    {
        var config = TinyConfigs.Tiny(yarn, qLora, tied);
        var model = new TrainableModel(config, seed: 3, initStd: 0.3) { BalanceLossAlpha = alpha };
        model.ExpertBias[1]![2] = 0.05f;
        var (tokens, targets, mask) = Data(config, 11);
        var net = model.ToDouble();
        double loss0 = net.Forward(tokens, Batch, Seq, targets, mask);
        var load0 = net.ExpertLoad[1]!.ToArray();
        double margin = net.RoutingMargin;
        Assert.True(margin > 1e-3, $"routing margin {margin:E2} too small for the finite-difference step");
        net.Backward();
        const double h = 1e-5;
        double worstOverall = 0;
        foreach (var w in net.Weights)
        {
            double worst = 0, norm = 0;
            var numeric = new double[w.W.Length];
            for (int i = 0; i < w.W.Length; i++)
            {
                double saved = w.W[i];
                w.W[i] = saved + h; double plus = net.Forward(tokens, Batch, Seq, targets, mask);
                w.W[i] = saved - h; double minus = net.Forward(tokens, Batch, Seq, targets, mask);
                w.W[i] = saved;
                numeric[i] = (plus - minus) / (2 * h);
                norm = Math.Max(norm, Math.Max(Math.Abs(numeric[i]), Math.Abs(w.G[i])));
            }
            for (int i = 0; i < w.W.Length; i++) worst = Math.Max(worst, Math.Abs(numeric[i] - w.G[i]));
            double rel = worst / Math.Max(norm, 1e-8);
            worstOverall = Math.Max(worstOverall, rel);
            output.WriteLine($"{w.Name,-50} max|g| {norm:E2}  max err/max|g| {rel:E2}");
            Assert.True(rel < 1e-5, $"{w.Name}: relative gradient error {rel:E2}");
            Assert.True(norm > 0, $"{w.Name}: zero gradient");
        }
        output.WriteLine($"loss {loss0:F6}, worst relative error {worstOverall:E2}, layer-1 load [{string.Join(",", load0)}], routing margin {margin:E2}");

        // The float32 model's gradients agree with the float64 ones.
        model.ZeroGrad();
        float loss32 = model.Forward(tokens, Batch, Seq, targets, mask);
        model.Backward();
        Assert.Equal(loss0, loss32, 4);
        for (int p = 0; p < model.Parameters.Count; p++)
        {
            var g32 = model.Parameters[p].Grad; var g64 = net.Weights[p].G;
            double err = 0, scale = 1e-6;
            for (int i = 0; i < g32.Length; i++) { err = Math.Max(err, Math.Abs(g32[i] - g64[i])); scale = Math.Max(scale, Math.Abs(g64[i])); }
            Assert.True(err / scale < 2e-3, $"{model.Parameters[p].Name}: float32 vs float64 gradient {err / scale:E2}");
        }
    }

    [Fact]
    public void ParameterNamesFollowHuggingFace()
    {
        var model = new TrainableModel(TinyConfigs.Tiny());
        var names = model.Parameters.Select(p => p.Name).ToHashSet();
        string[] expected =
        [
            "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight", "model.layers.0.self_attn.q_b_proj.weight",
            "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "model.layers.0.self_attn.kv_a_layernorm.weight",
            "model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.self_attn.o_proj.weight",
            "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
            "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
            "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.experts.3.down_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight",
        ];
        foreach (var name in expected) Assert.Contains(name, names);
        Assert.Equal(ParameterKind.Router, model["model.layers.1.mlp.gate.weight"].Kind);
        Assert.Equal([24, 16], model["model.layers.0.mlp.gate_proj.weight"].Shape);
        Assert.Null(model.ExpertBias[0]);
        Assert.Equal(4, model.ExpertBias[1]!.Length);
        Assert.All(model["model.norm.weight"].Data, v => Assert.Equal(1f, v));
    }

    [Fact]
    public void ForwardRecordsMaxLogitsAndExpertLoad()
    {
        var config = TinyConfigs.Tiny();
        var model = new TrainableModel(config, seed: 1, initStd: 0.3);
        var (tokens, targets, _) = Data(config, 5);
        model.Forward(tokens, Batch, Seq, targets);
        Assert.Equal(2, model.MaxAttentionLogits.Length);
        Assert.All(model.MaxAttentionLogits, l => Assert.Equal(2, l.Length));
        Assert.All(model.MaxAttentionLogits.SelectMany(l => l), v => Assert.True(float.IsFinite(v)));
        Assert.Null(model.ExpertLoad[0]);
        Assert.Equal(Batch * Seq * config.NumExpertsPerTok, model.ExpertLoad[1]!.Sum());
    }

    [Theory]
    [InlineData(true, 8, false)]
    [InlineData(false, null, true)]
    public void SavedCheckpointGivesEngineLogits(bool yarn, int? qLora, bool tied)
    {
        var config = TinyConfigs.Tiny(yarn, qLora, tied);
        var model = new TrainableModel(config, seed: 7, initStd: 0.2);
        model.ExpertBias[1]![1] = 0.1f;
        var tokens = TinyConfigs.RandomTokens(Seq, config.VocabSize, 3);
        model.Forward(tokens, 1, Seq, null);
        var expected = model.Logits.ToArray();
        string dir = Path.Combine(Path.GetTempPath(), "kimisharp-train-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.SaveCheckpoint(dir, float32: true);
            using var engine = KimiModel.Load(dir);
            Assert.Equal(config with { UnknownKeys = [], EosTokenIds = [] }, engine.Config with { UnknownKeys = [], EosTokenIds = [] });
            var logits = engine.Logits(tokens, KimiSharp.Model.Layers.AttentionMode.Expanded);
            double scale = expected.Max(v => Math.Abs(v)), worst = 0;
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - logits[i]));
            output.WriteLine($"max |trainer − engine| / max|logit| = {worst / scale:E2}");
            Assert.True(worst / scale < 1e-4, $"engine logits differ: {worst / scale:E2}");

            model.SaveCheckpoint(dir); // BF16 also loads
            using var bf16 = KimiModel.Load(dir);
            Assert.Equal(expected.Length, bf16.Logits(tokens).Length);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void LongSequencesGiveEngineLogitsToo()
    {
        // k2-nano's shape (plain q_proj, YaRN, 8 experts top-2 + shared) over 300 positions in 2 rows.
        var config = ModelConfig.Parse("""
            {"model_type":"kimi_k2","hidden_size":40,"intermediate_size":64,"moe_intermediate_size":24,"num_hidden_layers":3,
             "num_attention_heads":4,"n_shared_experts":1,"n_routed_experts":8,"num_experts_per_tok":2,"n_group":1,"topk_group":1,
             "topk_method":"noaux_tc","scoring_func":"sigmoid","norm_topk_prob":true,"routed_scaling_factor":2.5,
             "first_k_dense_replace":1,"moe_layer_freq":1,"q_lora_rank":null,"kv_lora_rank":16,"qk_nope_head_dim":8,
             "qk_rope_head_dim":4,"v_head_dim":8,"max_position_embeddings":8192,"rope_theta":50000.0,
             "rope_scaling":{"type":"yarn","factor":4.0,"original_max_position_embeddings":2048,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0},
             "rms_norm_eps":1e-6,"tie_word_embeddings":false,"vocab_size":97}
            """);
        const int seq = 300;
        var model = new TrainableModel(config, seed: 5, initStd: 0.3);
        var tokens = TinyConfigs.RandomTokens(2 * seq, config.VocabSize, 9);
        model.Forward(tokens, 2, seq, null);
        var expected = model.Logits.ToArray();
        string dir = Path.Combine(Path.GetTempPath(), "kimisharp-train-long-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.SaveCheckpoint(dir, float32: true);
            using var engine = KimiModel.Load(dir);
            for (int row = 0; row < 2; row++)
            {
                var logits = engine.Logits(tokens.AsSpan(row * seq, seq).ToArray(), KimiSharp.Model.Layers.AttentionMode.Expanded);
                var want = expected.AsSpan(row * seq * config.VocabSize, seq * config.VocabSize).ToArray();
                double scale = want.Max(v => Math.Abs(v)), worst = 0;
                for (int i = 0; i < want.Length; i++) worst = Math.Max(worst, Math.Abs(want[i] - logits[i]));
                output.WriteLine($"row {row}: max |trainer − engine| / max|logit| = {worst / scale:E2}");
                Assert.True(worst / scale < 1e-4, $"row {row}: engine logits differ: {worst / scale:E2}");
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void SgdStepsDecreaseTheLoss()
    {
        var config = TinyConfigs.Tiny();
        var model = new TrainableModel(config, seed: 2, initStd: 0.1);
        var (tokens, targets, mask) = Data(config, 21);
        float first = 0, last = 0;
        for (int step = 0; step < 30; step++)
        {
            model.ZeroGrad();
            last = model.Forward(tokens, Batch, Seq, targets, mask);
            if (step == 0) first = last;
            model.Backward();
            foreach (var p in model.Parameters)
                for (int i = 0; i < p.Data.Length; i++) p.Data[i] -= 0.5f * p.Grad[i];
        }
        output.WriteLine($"loss {first:F4} → {last:F4}");
        Assert.True(last < first * 0.7f, $"loss {first} → {last}");
    }

    [Fact]
    public void ForwardAndBackwardAreDeterministic()
    {
        var config = TinyConfigs.Tiny() with { HiddenSize = 64, IntermediateSize = 128, MoeIntermediateSize = 64, VocabSize = 256, KvLoraRank = 32 };
        float[][] Run()
        {
            var model = new TrainableModel(config, seed: 4);
            var tokens = TinyConfigs.RandomTokens(4 * 48, config.VocabSize, 1);
            var targets = TinyConfigs.RandomTokens(4 * 48, config.VocabSize, 2);
            model.Forward(tokens, 4, 48, targets);
            model.Backward();
            return model.Parameters.Select(p => p.Grad.ToArray()).ToArray();
        }
        var a = Run();
        var b = Run();
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i]);
    }
}

public sealed class TrainableModelIntegrationTests
{
    [Fact]
    public void QkClipBringsRecordedMaxLogitsDownToTau()
    {
        var config = TinyConfigs.Tiny();
        var model = new TrainableModel(config, seed: 5, initStd: 0.5);
        var tokens = TinyConfigs.RandomTokens(2 * 6, config.VocabSize, 9);
        model.Forward(tokens, 2, 6, null);
        float before = model.MaxAttentionLogits.SelectMany(l => l).Max();
        float tau = before * 0.5f;
        var report = QkClip.Apply(model.Parameters, config, model.MaxAttentionLogits, tau);
        Assert.True(report.HeadsClipped > 0);
        model.Forward(tokens, 2, 6, null);
        // Layer 0's inputs are unchanged by the clip, so its logits land on τ exactly (up to float rounding).
        Assert.All(model.MaxAttentionLogits[0], v => Assert.True(v <= tau * 1.0001f, $"{v} > {tau}"));
        Assert.Contains(model.MaxAttentionLogits[0], v => Math.Abs(v - tau) <= tau * 1e-4f);
    }

    [Fact]
    public void BalancerUpdatesTheRoutingBiasBuffers()
    {
        var config = TinyConfigs.Tiny();
        var model = new TrainableModel(config, seed: 5, initStd: 0.3);
        Assert.Equal(["model.layers.1.mlp.gate.e_score_correction_bias"], model.Buffers.Select(b => b.Name));
        Assert.DoesNotContain(model.Parameters, p => p.Name.EndsWith("e_score_correction_bias", StringComparison.Ordinal));
        model.Forward(TinyConfigs.RandomTokens(10, config.VocabSize, 1), 2, 5, null);
        var loads = model.ExpertLoadsByLayer();
        Assert.Equal([1], loads.Keys);
        new ExpertBiasBalancer(0.01f).Update(model.Buffers, config, loads);
        Assert.Contains(model.ExpertBias[1]!, v => v != 0);
        Assert.Same(model.Buffers[0].Data, model.ExpertBias[1]);
    }
}
