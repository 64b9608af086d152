using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;
using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Tests.Runs;

/// <summary><c>init_from</c> (a second phase or an RL stage starting from an earlier run) and <c>--export-state</c>.</summary>
public sealed class InitFromTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimi-init-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly ModelConfig Tiny = ModelConfig.Parse("""
        {"model_type":"deepseek_v3","vocab_size":512,"hidden_size":32,"intermediate_size":64,"moe_intermediate_size":16,
         "num_hidden_layers":2,"num_attention_heads":2,"n_shared_experts":1,"n_routed_experts":4,"num_experts_per_tok":2,
         "n_group":1,"topk_group":1,"topk_method":"noaux_tc","scoring_func":"sigmoid","norm_topk_prob":true,
         "routed_scaling_factor":2.0,"first_k_dense_replace":1,"moe_layer_freq":1,"q_lora_rank":null,"kv_lora_rank":16,
         "qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":8,"max_position_embeddings":256,"rope_theta":10000.0,
         "rms_norm_eps":1e-5,"tie_word_embeddings":false}
        """);

    [Fact]
    public void SecondPhaseStartsFromTheFirstPhasesWeights()
    {
        string text = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Range(0, 300).Select(i => $"the cat sat on mat number {i % 13}. ")));
        var first = new TrainConfig
        {
            Model = Tiny, TextFiles = [text], TokenizerRanks = 300, BatchSize = 2, SequenceLength = 32, Steps = 3,
            WarmupSteps = 1, Seed = 3, OutputDirectory = Path.Combine(_dir, "first"), CheckpointEvery = 3,
        };
        new Trainer(first).Run(resume: false);

        // Exporting the saved state gives the same tensors as the finished run's export.
        string exported = Path.Combine(_dir, "exported");
        Assert.Equal(2, Trainer.ExportState(first, exported));
        using (var a = SafetensorsFile.Open(Path.Combine(exported, "model.safetensors")))
        using (var b = SafetensorsFile.Open(Path.Combine(_dir, "first", "final", "model.safetensors")))
            foreach (var (name, info) in a.Tensors) Assert.True(a.Bytes(info).SequenceEqual(b.Bytes(b.Tensors[name])), name);

        // A zero-learning-rate second phase from the first keeps its weights: they were loaded, not re-initialized.
        var second = first with
        {
            InitFrom = first.OutputDirectory, TokenizerDirectory = Path.Combine(_dir, "first", "tokenizer"), Steps = 1, Schedule = "constant",
            WarmupSteps = 0, LearningRate = 1e-30f, AdamLearningRate = 1e-30f, WeightDecay = 0, Seed = 99, OutputDirectory = Path.Combine(_dir, "second"),
        };
        new Trainer(second).Run(resume: false);
        using var x = SafetensorsFile.Open(Path.Combine(_dir, "first", "final", "model.safetensors"));
        using var y = SafetensorsFile.Open(Path.Combine(_dir, "second", "final", "model.safetensors"));
        var embed = x.Tensors["model.embed_tokens.weight"];
        var before = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(x.Bytes(embed)).ToArray();
        var after = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(y.Bytes(y.Tensors["model.embed_tokens.weight"])).ToArray();
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], after[i], 1e-6f);

        // A Hugging Face folder works too: the exported F32 model exactly, and a BF16 copy of it to bfloat16 precision.
        var fromExport = second with { InitFrom = Path.Combine(_dir, "first", "final"), OutputDirectory = Path.Combine(_dir, "fromExport") };
        new Trainer(fromExport).Run(resume: false);
        string bf16 = Path.Combine(_dir, "bf16");
        Directory.CreateDirectory(bf16);
        var writer = new KimiSharp.Model.Checkpoints.SafetensorsWriter();
        foreach (var (name, info) in x.Tensors)
            writer.AddFloats(name, SafetensorsDType.BF16, info.Shape.ToArray(),
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(x.Bytes(info)).ToArray());
        writer.Save(Path.Combine(bf16, "model.safetensors"));
        var fromBf16 = second with { InitFrom = bf16, OutputDirectory = Path.Combine(_dir, "fromBf16") };
        new Trainer(fromBf16).Run(resume: false);
        foreach (var (run, tolerance) in new[] { ("fromExport", 1e-6f), ("fromBf16", 1e-2f) })
        {
            using var z = SafetensorsFile.Open(Path.Combine(_dir, run, "final", "model.safetensors"));
            var loaded = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(z.Bytes(z.Tensors["model.embed_tokens.weight"])).ToArray();
            for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], loaded[i], tolerance);
            Assert.NotEqual(0f, loaded.Max(MathF.Abs));
        }

        // A K2.5 release's layout: config under text_config, tensors under language_model., split into shards with an index.
        string k25 = Path.Combine(_dir, "k25");
        Directory.CreateDirectory(k25);
        var textConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "first", "final", "config.json")))!;
        File.WriteAllText(Path.Combine(k25, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("KimiK25ForConditionalGeneration"), ["model_type"] = "kimi_k25", ["text_config"] = textConfig,
        }.ToJsonString());
        var shards = new[] { new KimiSharp.Model.Checkpoints.SafetensorsWriter(), new KimiSharp.Model.Checkpoints.SafetensorsWriter() };
        var weightMap = new JsonObject();
        int n = 0;
        foreach (var (name, info) in x.Tensors)
        {
            int shard = n++ % 2;
            shards[shard].AddFloats(ModelConfig.K25TensorPrefix + name, SafetensorsDType.F32, info.Shape.ToArray(),
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(x.Bytes(info)).ToArray());
            weightMap[ModelConfig.K25TensorPrefix + name] = $"model-0000{shard + 1}-of-00002.safetensors";
        }
        for (int k = 0; k < 2; k++) shards[k].Save(Path.Combine(k25, $"model-0000{k + 1}-of-00002.safetensors"));
        File.WriteAllText(Path.Combine(k25, CheckpointTensors.IndexFileName), new JsonObject { ["weight_map"] = weightMap }.ToJsonString());
        new Trainer(second with { InitFrom = k25, OutputDirectory = Path.Combine(_dir, "fromK25") }).Run(resume: false);
        using (var z = SafetensorsFile.Open(Path.Combine(_dir, "fromK25", "final", "model.safetensors")))
        {
            var loaded = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(z.Bytes(z.Tensors["model.embed_tokens.weight"])).ToArray();
            for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], loaded[i], 1e-6f);
        }

        var missing = first with { InitFrom = Path.Combine(_dir, "nowhere"), OutputDirectory = Path.Combine(_dir, "third"), TokenizerDirectory = Path.Combine(_dir, "first", "tokenizer") };
        Assert.Contains("init_from", Assert.Throws<FileNotFoundException>(() => new Trainer(missing).Run(resume: false)).Message);
    }
}
