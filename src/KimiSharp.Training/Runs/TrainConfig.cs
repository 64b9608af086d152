using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Training.Runs;

/// <summary>
/// What <c>kimi train --config FILE</c> reads: model shape, data, batch, schedule and optimizer. Paths are relative to
/// the config file. Unknown keys are errors, so a typo never silently changes a run.
/// </summary>
public sealed record TrainConfig
{
    public required ModelConfig Model { get; init; }
    /// <summary>Plain-text files: trained on every token.</summary>
    public IReadOnlyList<string> TextFiles { get; init; } = [];
    /// <summary>JSONL conversations ({"messages": [...], "tools": [...]}) rendered through the chat template; loss only on assistant turns.</summary>
    public IReadOnlyList<string> ConversationFiles { get; init; } = [];
    /// <summary>An existing tokenizer folder (tiktoken.model + tokenizer_config.json); when null one is trained on the data.</summary>
    public string? TokenizerDirectory { get; init; }
    /// <summary>Ranks of the BPE tokenizer to train when none is given.</summary>
    public int TokenizerRanks { get; init; } = 4096;
    /// <summary>Train the BPE so that no token joins a word to its leading space or punctuation (<see cref="BpeTrainer.BareWords"/>).</summary>
    public bool TokenizerBareWords { get; init; }
    public int BatchSize { get; init; } = 8;
    public int SequenceLength { get; init; } = 128;
    public int Steps { get; init; } = 1000;
    /// <summary>muonclip, muon or adamw.</summary>
    public string Optimizer { get; init; } = "muonclip";
    public float LearningRate { get; init; } = 0.02f;
    /// <summary>Learning rate of the AdamW part (embeddings, head, norms, router) when combined with Muon.</summary>
    public float AdamLearningRate { get; init; } = 0.003f;
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>constant, cosine or wsd.</summary>
    public string Schedule { get; init; } = "cosine";
    public int WarmupSteps { get; init; } = 50;
    public float MinLearningRateFraction { get; init; } = 0.1f;
    public float DecayFraction { get; init; } = 0.2f;
    public float QkClipTau { get; init; } = 100f;
    public float ExpertBiasRate { get; init; } = 1e-3f;
    public double BalanceLossAlpha { get; init; } = 1e-4;
    public int Seed { get; init; } = 1;
    /// <summary>A chat_template.jinja to ship with the model (copied into the tokenizer folder and every export); null keeps the tokenizer's or the built-in one.</summary>
    public string? ChatTemplateFile { get; init; }
    /// <summary>Pack several conversations into one training row (instead of one padded conversation per row).</summary>
    public bool Pack { get; init; }
    /// <summary>
    /// One conversation per row, rows of similar length together, each step's rows × length ≈ batch_size × seq_len
    /// tokens. Unlike packing, every conversation starts at position 0 and attends only to itself, as at inference.
    /// </summary>
    public bool Bucket { get; init; }
    /// <summary>
    /// Start from the weights of an earlier run's output folder (its state/weights.safetensors) or of a Hugging Face model
    /// folder of the same shape (model.safetensors in F32, BF16 or F16) instead of a random init.
    /// </summary>
    public string? InitFrom { get; init; }
    public string OutputDirectory { get; init; } = "runs/train";
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>
    /// Every this many steps, also export the model as a Hugging Face folder out/step-N (0: never), so a recipe can
    /// evaluate points of a learning curve without stopping the run or touching its schedule.
    /// </summary>
    public int SnapshotEvery { get; init; }
    public int LogEvery { get; init; } = 1;

    private static readonly HashSet<string> s_keys =
    [
        "model", "model_config", "text_files", "conversation_files", "tokenizer_dir", "tokenizer_ranks", "tokenizer_bare_words", "batch_size",
        "seq_len", "steps", "optimizer", "lr", "adam_lr", "weight_decay", "schedule", "warmup_steps", "min_lr_fraction",
        "decay_fraction", "qk_clip_tau", "expert_bias_rate", "balance_loss_alpha", "seed", "out", "checkpoint_every", "snapshot_every", "log_every", "pack", "bucket", "init_from", "chat_template",
    ];

    public static TrainConfig Load(string path)
    {
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException($"{path}: the top level must be an object"); }
        catch (JsonException e) { throw new FormatException($"{path}: not valid JSON ({e.Message})", e); }
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string Resolve(string p) => Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(baseDir, p));
        foreach (var (key, _) in root)
            if (!s_keys.Contains(key)) throw new FormatException($"{path}: unknown key '{key}' (known: {string.Join(", ", s_keys.Order())})");

        ModelConfig model = root["model"] is JsonObject m ? ModelConfig.Parse(m.ToJsonString())
            : root["model_config"] is JsonValue mc ? ModelConfig.Load(Path.GetDirectoryName(Resolve(mc.GetValue<string>()))!)
            : throw new FormatException($"{path}: needs 'model' (config.json keys) or 'model_config' (a config.json path)");
        if (model.Quantization is not null) throw new FormatException($"{path}: the model to train must not be quantized (drop quantization_config)");

        T Get<T>(string key, T fallback)
        {
            if (root[key] is not JsonNode node) return fallback;
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            { throw new FormatException($"{path}: '{key}' must be a {typeof(T).Name.ToLowerInvariant()}, got {node.ToJsonString()}"); }
        }
        string[] Files(string key) => root[key] is JsonArray a ? a.Select(x => Resolve(x!.GetValue<string>())).ToArray() : [];

        var config = new TrainConfig
        {
            Model = model,
            TextFiles = Files("text_files"),
            ConversationFiles = Files("conversation_files"),
            TokenizerDirectory = root["tokenizer_dir"] is JsonValue t ? Resolve(t.GetValue<string>()) : null,
            TokenizerRanks = Get("tokenizer_ranks", 4096),
            TokenizerBareWords = Get("tokenizer_bare_words", false),
            BatchSize = Get("batch_size", 8),
            SequenceLength = Get("seq_len", 128),
            Steps = Get("steps", 1000),
            Optimizer = Get("optimizer", "muonclip"),
            LearningRate = (float)Get("lr", 0.02),
            AdamLearningRate = (float)Get("adam_lr", 0.003),
            WeightDecay = (float)Get("weight_decay", 0.1),
            Schedule = Get("schedule", "cosine"),
            WarmupSteps = Get("warmup_steps", 50),
            MinLearningRateFraction = (float)Get("min_lr_fraction", 0.1),
            DecayFraction = (float)Get("decay_fraction", 0.2),
            QkClipTau = (float)Get("qk_clip_tau", 100.0),
            ExpertBiasRate = (float)Get("expert_bias_rate", 1e-3),
            BalanceLossAlpha = Get("balance_loss_alpha", 1e-4),
            Seed = Get("seed", 1),
            Pack = Get("pack", false),
            Bucket = Get("bucket", false),
            ChatTemplateFile = root["chat_template"] is JsonValue ct ? Resolve(ct.GetValue<string>()) : null,
            InitFrom = root["init_from"] is JsonValue init ? Resolve(init.GetValue<string>()) : null,
            OutputDirectory = Resolve(Get("out", "runs/train")),
            CheckpointEvery = Get("checkpoint_every", 100),
            SnapshotEvery = Get("snapshot_every", 0),
            LogEvery = Get("log_every", 1),
        };
        config.Validate(path);
        return config;
    }

    public void Validate(string source = "train config")
    {
        void Check(bool ok, string message) { if (!ok) throw new FormatException($"{source}: {message}"); }
        Check(TextFiles.Count + ConversationFiles.Count > 0, "give text_files and/or conversation_files");
        foreach (var f in TextFiles.Concat(ConversationFiles)) Check(File.Exists(f), $"data file '{f}' does not exist");
        Check(!(Pack && Bucket), "pack and bucket exclude each other");
        Check(ChatTemplateFile is null || File.Exists(ChatTemplateFile), $"chat_template '{ChatTemplateFile}' does not exist");
        Check(BatchSize >= 1 && SequenceLength >= 2 && Steps >= 1, "batch_size, seq_len (≥ 2) and steps must be positive");
        Check(SequenceLength <= Model.MaxPositionEmbeddings, $"seq_len {SequenceLength} exceeds max_position_embeddings {Model.MaxPositionEmbeddings}");
        Check(Optimizer is "muonclip" or "muon" or "adamw", $"optimizer '{Optimizer}' must be muonclip, muon or adamw");
        Check(Schedule is "constant" or "cosine" or "wsd", $"schedule '{Schedule}' must be constant, cosine or wsd");
        Check(LearningRate > 0 && AdamLearningRate > 0, "learning rates must be positive");
        Check(CheckpointEvery >= 1 && LogEvery >= 1, "checkpoint_every and log_every must be positive");
        Check(SnapshotEvery >= 0, "snapshot_every must be 0 (off) or positive");
        Check(TokenizerDirectory is not null || TokenizerRanks >= 256, "tokenizer_ranks must be at least 256");
    }
}
