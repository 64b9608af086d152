using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Model.Configuration;
using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Tests.Runs;

/// <summary>End-to-end training runs on a tiny K2 model: loss falls, checkpoints load in the engine, resume is exact.</summary>
public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimi-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly ModelConfig Tiny = ModelConfig.Parse("""
        {"model_type":"deepseek_v3","vocab_size":512,"hidden_size":32,"intermediate_size":64,"moe_intermediate_size":16,
         "num_hidden_layers":2,"num_attention_heads":2,"n_shared_experts":1,"n_routed_experts":4,"num_experts_per_tok":2,
         "n_group":1,"topk_group":1,"topk_method":"noaux_tc","scoring_func":"sigmoid","norm_topk_prob":true,
         "routed_scaling_factor":2.0,"first_k_dense_replace":1,"moe_layer_freq":1,"q_lora_rank":16,"kv_lora_rank":16,
         "qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":8,"max_position_embeddings":256,"rope_theta":10000.0,
         "rms_norm_eps":1e-5,"tie_word_embeddings":false}
        """);

    private TrainConfig Config(string name, int steps, string optimizer = "muonclip")
    {
        string text = Path.Combine(_dir, "corpus.txt");
        if (!File.Exists(text))
            File.WriteAllText(text, string.Concat(Enumerable.Range(0, 400).Select(i => $"the cat sat on mat number {i % 17}. ")));
        string chats = Path.Combine(_dir, "chats.jsonl");
        if (!File.Exists(chats))
            File.WriteAllLines(chats, Enumerable.Range(0, 20).Select(i => new JsonObject
            {
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = $"add {i} and 1" },
                    new JsonObject { ["role"] = "assistant", ["content"] = $"{i + 1}" }),
            }.ToJsonString()));
        return new TrainConfig
        {
            Model = Tiny, TextFiles = [text], ConversationFiles = [chats], TokenizerRanks = 300, BatchSize = 4,
            SequenceLength = 32, Steps = steps, Optimizer = optimizer, LearningRate = 0.01f, AdamLearningRate = 0.003f,
            WarmupSteps = 2, Seed = 5, OutputDirectory = Path.Combine(_dir, name), CheckpointEvery = 3,
        };
    }

    [Fact]
    public void Training_lowers_the_loss_and_the_checkpoint_loads_in_the_engine_with_the_same_logits()
    {
        var losses = new List<float>();
        var trainer = new Trainer(Config("run", 30), new Progress(m => losses.Add(m.Loss)));
        Assert.Equal(29, trainer.Run(resume: false));
        Assert.True(losses.TakeLast(5).Average() < losses.Take(5).Average() * 0.8, $"loss {losses[0]} → {losses[^1]}");
        Assert.Equal(31, File.ReadAllLines(trainer.MetricsPath).Length); // header + 30 steps

        using var engine = KimiModel.Load(trainer.FinalDirectory);
        int[] tokens = [3, 50, 7, 99, 12, 260, 5];
        trainer.Model!.Forward(tokens, 1, tokens.Length, null);
        var expected = trainer.Model.Logits;
        var actual = engine.Logits(tokens);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < actual.Length; i++) { maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i])); maxRef = Math.Max(maxRef, Math.Abs(expected[i])); }
        Assert.True(maxDiff <= 1e-4 * maxRef, $"engine vs trainer logits differ by {maxDiff / maxRef:E2}");
        Assert.True(File.Exists(Path.Combine(trainer.FinalDirectory, "tiktoken.model")));
    }

    [Fact]
    public void Snapshots_export_the_model_at_their_steps_and_leave_the_run_unchanged()
    {
        var plain = new Trainer(Config("plain", 9));
        plain.Run(resume: false);
        // The model after 4 steps, as a run that stops there exports it.
        using var stop = new CancellationTokenSource();
        var early = new Trainer(Config("early", 9), new Progress(m => { if (m.Step == 3) stop.Cancel(); }));
        early.Run(resume: false, stop.Token);

        var snapshotting = new Trainer(Config("snap", 9) with { SnapshotEvery = 4 });
        snapshotting.Run(resume: false);
        Assert.True(File.Exists(Path.Combine(snapshotting.SnapshotDirectory(4), "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(snapshotting.SnapshotDirectory(8), "tiktoken.model")));
        Assert.False(Directory.Exists(snapshotting.SnapshotDirectory(9)));   // the last step is the final folder
        foreach (var (a, b) in plain.Model!.Parameters.Zip(snapshotting.Model!.Parameters))
            Assert.True(a.Data.AsSpan().SequenceEqual(b.Data), $"{a.Name} differs when snapshots are taken");

        int[] tokens = [3, 50, 7, 99];
        using var snapshot = KimiModel.Load(snapshotting.SnapshotDirectory(4));
        early.Model!.Forward(tokens, 1, tokens.Length, null);
        var expected = early.Model.Logits;
        var actual = snapshot.Logits(tokens);
        for (int i = 0; i < actual.Length; i++) Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4f * (1 + Math.Abs(expected[i])), $"logit {i}");
    }

    [Theory]
    [InlineData("muonclip")]
    [InlineData("adamw")]
    public void A_run_stopped_mid_way_and_resumed_ends_with_the_same_weights(string optimizer)
    {
        var straight = new Trainer(Config("straight-" + optimizer, 10, optimizer));
        straight.Run(resume: false);

        using var stop = new CancellationTokenSource();
        var interrupted = new Trainer(Config("resumed-" + optimizer, 10, optimizer), new Progress(m => { if (m.Step == 4) stop.Cancel(); }));
        Assert.Equal(4, interrupted.Run(resume: false, stop.Token));
        var resumed = new Trainer(Config("resumed-" + optimizer, 10, optimizer));
        Assert.Equal(9, resumed.Run(resume: true));

        foreach (var (a, b) in straight.Model!.Parameters.Zip(resumed.Model!.Parameters))
            Assert.True(a.Data.AsSpan().SequenceEqual(b.Data), $"{a.Name} differs after resume");
        Assert.Equal(File.ReadAllLines(straight.MetricsPath).Select(l => l.Split(',')[1]), File.ReadAllLines(resumed.MetricsPath).Select(l => l.Split(',')[1]));
    }

    [Fact]
    public void Bad_configs_are_rejected_with_the_key_named()
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, """{"model_config":"x/config.json","lerning_rate":0.1}""");
        var e = Assert.Throws<FormatException>(() => TrainConfig.Load(path));
        Assert.Contains("lerning_rate", e.Message);
    }

    private sealed class Progress(Action<StepMetrics> report) : IProgress<StepMetrics>
    {
        public void Report(StepMetrics value) => report(value);
    }
}
