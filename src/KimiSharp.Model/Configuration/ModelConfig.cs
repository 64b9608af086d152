using System.Text.Json;

namespace KimiSharp.Model.Configuration;

/// <summary>config.json is missing, malformed, or asks for something this engine does not implement. The message names the key.</summary>
public sealed class ModelConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>YaRN context extension (rope_scaling with type "yarn").</summary>
public sealed record YarnScaling(
    double Factor,
    int OriginalMaxPositionEmbeddings,
    double BetaFast,
    double BetaSlow,
    double Mscale,
    double MscaleAllDim);

/// <summary>
/// The architectural part of a K2-family config.json (Hugging Face <c>DeepseekV3ForCausalLM</c>,
/// model_type <c>deepseek_v3</c> or <c>kimi_k2</c>).
/// </summary>
public sealed record ModelConfig
{
    public required string ModelType { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MoeIntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    /// <summary>0 when the model has no routed experts (every layer dense).</summary>
    public required int NRoutedExperts { get; init; }
    public required int NSharedExperts { get; init; }
    public required int NumExpertsPerTok { get; init; }
    public required int NGroup { get; init; }
    public required int TopkGroup { get; init; }
    public required string TopkMethod { get; init; }
    public required string ScoringFunc { get; init; }
    public required bool NormTopkProb { get; init; }
    public required double RoutedScalingFactor { get; init; }
    public required int FirstKDenseReplace { get; init; }
    public required int MoeLayerFreq { get; init; }
    /// <summary>null: queries come from one q_proj; otherwise q_a_proj → q_a_layernorm → q_b_proj.</summary>
    public required int? QLoraRank { get; init; }
    public required int KvLoraRank { get; init; }
    public required int QkNopeHeadDim { get; init; }
    public required int QkRopeHeadDim { get; init; }
    public required int VHeadDim { get; init; }
    public required double RopeTheta { get; init; }
    public required YarnScaling? Yarn { get; init; }
    public required double RmsNormEps { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    public required bool AttentionBias { get; init; }
    public required QuantizationConfig? Quantization { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>Keys this engine does not know; they are ignored, and the CLI reports them.</summary>
    public IReadOnlyList<string> UnknownKeys { get; init; } = [];

    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    /// <summary>Layer <paramref name="layer"/> uses the routed-expert block rather than the dense MLP.</summary>
    public bool IsMoeLayer(int layer) =>
        NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;

    public static ModelConfig Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, "config.json");
        // A link that leads nowhere is not a missing file: say that it loops, or where it points.
        if (BrokenLink(new DirectoryInfo(modelDirectory)) is { } folderProblem) throw new ModelConfigException($"{modelDirectory}: {folderProblem}");
        if (BrokenLink(new FileInfo(path)) is { } fileProblem) throw new ModelConfigException($"{path}: {fileProblem}");
        if (!File.Exists(path)) throw new ModelConfigException($"{path}: not found (a model folder needs config.json)");
        return Parse(File.ReadAllText(path));
    }

    /// <summary>Why a symbolic link does not lead to a file or folder (a loop, a missing target); null when it does or is no link.</summary>
    private static string? BrokenLink(FileSystemInfo link)
    {
        try
        {
            if (link.LinkTarget is null) return null;
            return link.ResolveLinkTarget(returnFinalTarget: true) is { Exists: false } target ? $"symbolic link to {target.FullName}, which does not exist" : null;
        }
        catch (IOException) { return "symbolic link loop (too many levels of symbolic links)"; }
    }

    /// <summary>Keys of the K2 family that do not change the forward pass (training, serving and bookkeeping fields).</summary>
    private static readonly HashSet<string> s_ignoredKeys =
    [
        "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype", "use_cache", "pad_token_id",
        "initializer_range", "attention_dropout", "aux_loss_alpha", "seq_aux", "ep_size", "pretraining_tp",
        "num_nextn_predict_layers", "num_key_value_heads", "hidden_act", "rope_interleave", "head_dim",
        "qk_head_dim", "_name_or_path", "model_name", "max_window_layers", "sliding_window", "use_sliding_window",
        "output_router_logits", "router_aux_loss_coef", "tokenizer_class", "bias", "return_dict", "id2label", "label2id",
        "is_encoder_decoder", "output_attentions", "output_hidden_states",
        // K2.5's vision part (KimiSharp.Vision reads it; the text forward does not change).
        "vision_config", "media_placeholder_token_id",
    ];

    public static ModelConfig Parse(string json)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false }); }
        catch (JsonException e) { throw new ModelConfigException($"config.json: not valid JSON ({e.Message})", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelConfigException("config.json: the top level must be an object");
            var reader = new ConfigReader(root);

            string modelType = reader.String("model_type", null);
            if (modelType is not ("deepseek_v3" or "kimi_k2"))
                throw new ModelConfigException($"config.json: model_type '{modelType}' is not supported (deepseek_v3 or kimi_k2)");
            string act = reader.String("hidden_act", "silu");
            if (act != "silu") throw new ModelConfigException($"config.json: hidden_act '{act}' is not supported (silu)");

            int hidden = reader.Positive("hidden_size");
            int heads = reader.Positive("num_attention_heads");
            int nRouted = reader.OptionalInt("n_routed_experts") ?? 0;
            if (nRouted < 0) throw new ModelConfigException($"config.json: n_routed_experts must be ≥ 0, got {nRouted}");

            var config = new ModelConfig
            {
                ModelType = modelType,
                VocabSize = reader.Positive("vocab_size"),
                HiddenSize = hidden,
                IntermediateSize = reader.Positive("intermediate_size"),
                MoeIntermediateSize = nRouted > 0 ? reader.Positive("moe_intermediate_size") : reader.OptionalInt("moe_intermediate_size") ?? 0,
                NumHiddenLayers = reader.Positive("num_hidden_layers"),
                NumAttentionHeads = heads,
                NRoutedExperts = nRouted,
                NSharedExperts = reader.OptionalInt("n_shared_experts") ?? 0,
                NumExpertsPerTok = nRouted > 0 ? reader.Positive("num_experts_per_tok") : reader.OptionalInt("num_experts_per_tok") ?? 0,
                NGroup = reader.OptionalInt("n_group") ?? 1,
                TopkGroup = reader.OptionalInt("topk_group") ?? 1,
                TopkMethod = reader.String("topk_method", "noaux_tc"),
                ScoringFunc = reader.String("scoring_func", "sigmoid"),
                NormTopkProb = reader.Bool("norm_topk_prob", false),
                RoutedScalingFactor = reader.Double("routed_scaling_factor", 1.0),
                FirstKDenseReplace = reader.OptionalInt("first_k_dense_replace") ?? 0,
                MoeLayerFreq = reader.OptionalInt("moe_layer_freq") ?? 1,
                QLoraRank = reader.OptionalInt("q_lora_rank"),
                KvLoraRank = reader.Positive("kv_lora_rank"),
                QkNopeHeadDim = reader.OptionalInt("qk_nope_head_dim") ?? throw Missing("qk_nope_head_dim"),
                QkRopeHeadDim = reader.OptionalInt("qk_rope_head_dim") ?? throw Missing("qk_rope_head_dim"),
                VHeadDim = reader.Positive("v_head_dim"),
                RopeTheta = reader.Double("rope_theta", 10000.0),
                Yarn = ParseRopeScaling(root),
                RmsNormEps = reader.Double("rms_norm_eps", 1e-6),
                MaxPositionEmbeddings = reader.Positive("max_position_embeddings"),
                TieWordEmbeddings = reader.Bool("tie_word_embeddings", false),
                AttentionBias = reader.Bool("attention_bias", false),
                Quantization = root.TryGetProperty("quantization_config", out var q) && q.ValueKind != JsonValueKind.Null
                    ? QuantizationConfig.Parse(q) : null,
                BosTokenId = reader.OptionalInt("bos_token_id"),
                EosTokenIds = reader.IntList("eos_token_id"),
                UnknownKeys = [],
            };
            reader.MarkKnown("rope_scaling", "quantization_config");
            config = config with
            {
                UnknownKeys = root.EnumerateObject().Select(p => p.Name)
                    .Where(k => !reader.Known.Contains(k) && !s_ignoredKeys.Contains(k)).ToArray(),
            };
            config.Validate();
            return config;
        }
    }

    private static ModelConfigException Missing(string key) => new($"config.json: missing required key {key}");

    private static YarnScaling? ParseRopeScaling(JsonElement root)
    {
        if (!root.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null) return null;
        if (s.ValueKind != JsonValueKind.Object) throw new ModelConfigException("config.json: rope_scaling must be an object or null");
        var reader = new ConfigReader(s, "rope_scaling.");
        string type = s.TryGetProperty("type", out _) ? reader.String("type", null) : reader.String("rope_type", null);
        if (type is "default" or "none") return null;
        if (type != "yarn")
            throw new ModelConfigException($"config.json: rope_scaling.type '{type}' is not supported (yarn, or rope_scaling null)");
        var yarn = new YarnScaling(
            Factor: reader.Double("factor", double.NaN),
            OriginalMaxPositionEmbeddings: reader.OptionalInt("original_max_position_embeddings") ?? 4096,
            BetaFast: reader.Double("beta_fast", 32),
            BetaSlow: reader.Double("beta_slow", 1),
            Mscale: reader.Double("mscale", 1),
            MscaleAllDim: reader.Double("mscale_all_dim", 0));
        if (double.IsNaN(yarn.Factor) || yarn.Factor <= 0) throw new ModelConfigException("config.json: rope_scaling.factor must be a positive number");
        if (yarn.OriginalMaxPositionEmbeddings <= 0) throw new ModelConfigException("config.json: rope_scaling.original_max_position_embeddings must be positive");
        if (yarn.BetaFast <= 0 || yarn.BetaSlow <= 0) throw new ModelConfigException("config.json: rope_scaling.beta_fast and beta_slow must be positive");
        return yarn;
    }

    /// <summary>The longest context a config may declare.</summary>
    public const int MaxSupportedPositions = 1 << 24;

    private void Validate()
    {
        static void Require(bool ok, string message) { if (!ok) throw new ModelConfigException("config.json: " + message); }
        Require(QkRopeHeadDim > 0 && QkRopeHeadDim % 2 == 0, $"qk_rope_head_dim must be a positive even number, got {QkRopeHeadDim}");
        Require(QkNopeHeadDim >= 0, $"qk_nope_head_dim must be ≥ 0, got {QkNopeHeadDim}");
        Require(QLoraRank is null or > 0, $"q_lora_rank must be positive or null, got {QLoraRank}");
        Require(RmsNormEps > 0, $"rms_norm_eps must be positive, got {RmsNormEps}");
        Require(RopeTheta > 0, $"rope_theta must be positive, got {RopeTheta}");
        // Positions index rotary tables and size the context the engine offers; 2^24 is 64× Kimi K2's 256K window.
        Require(MaxPositionEmbeddings <= MaxSupportedPositions,
            $"max_position_embeddings {MaxPositionEmbeddings} is beyond the supported {MaxSupportedPositions} positions");
        Require(Yarn is null || Yarn.OriginalMaxPositionEmbeddings <= MaxSupportedPositions,
            $"rope_scaling.original_max_position_embeddings {Yarn?.OriginalMaxPositionEmbeddings} is beyond the supported {MaxSupportedPositions} positions");
        Require(NSharedExperts >= 0, $"n_shared_experts must be ≥ 0, got {NSharedExperts}");
        Require(FirstKDenseReplace >= 0, $"first_k_dense_replace must be ≥ 0, got {FirstKDenseReplace}");
        Require(MoeLayerFreq >= 1, $"moe_layer_freq must be ≥ 1, got {MoeLayerFreq}");
        if (NRoutedExperts == 0) return;
        Require(ScoringFunc == "sigmoid", $"scoring_func '{ScoringFunc}' is not supported (sigmoid)");
        Require(TopkMethod == "noaux_tc", $"topk_method '{TopkMethod}' is not supported (noaux_tc)");
        Require(MoeIntermediateSize > 0, "moe_intermediate_size must be positive");
        Require(NGroup >= 1 && NRoutedExperts % NGroup == 0, $"n_group {NGroup} must divide n_routed_experts {NRoutedExperts}");
        Require(TopkGroup >= 1 && TopkGroup <= NGroup, $"topk_group {TopkGroup} must be between 1 and n_group {NGroup}");
        Require(NGroup == 1 || NRoutedExperts / NGroup >= 2, $"n_group {NGroup} leaves fewer than 2 experts per group, but a group is scored by its top two");
        Require(NumExpertsPerTok >= 1 && NumExpertsPerTok <= TopkGroup * (NRoutedExperts / NGroup),
            $"num_experts_per_tok {NumExpertsPerTok} must be between 1 and the {TopkGroup * (NRoutedExperts / NGroup)} experts of topk_group groups");
        Require(RoutedScalingFactor > 0, $"routed_scaling_factor must be positive, got {RoutedScalingFactor}");
    }

    /// <summary>Reads typed values and names the key in every error.</summary>
    private sealed class ConfigReader(JsonElement obj, string prefix = "")
    {
        public HashSet<string> Known { get; } = [];

        public void MarkKnown(params string[] keys) { foreach (var k in keys) Known.Add(k); }

        private bool TryGet(string key, out JsonElement value)
        {
            Known.Add(key);
            return obj.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;
        }

        private ModelConfigException Wrong(string key, JsonElement value, string expected) =>
            new($"config.json: {prefix}{key} must be {expected}, got {value.GetRawText()}");

        public int? OptionalInt(string key)
        {
            if (!TryGet(key, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
            throw Wrong(key, v, "an integer");
        }

        public int Positive(string key)
        {
            int value = OptionalInt(key) ?? throw new ModelConfigException($"config.json: missing required key {prefix}{key}");
            return value > 0 ? value : throw new ModelConfigException($"config.json: {prefix}{key} must be positive, got {value}");
        }

        public double Double(string key, double fallback)
        {
            if (!TryGet(key, out var v)) return fallback;
            return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Wrong(key, v, "a number");
        }

        public bool Bool(string key, bool fallback)
        {
            if (!TryGet(key, out var v)) return fallback;
            return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Wrong(key, v, "true or false") };
        }

        public string String(string key, string? fallback)
        {
            if (!TryGet(key, out var v))
                return fallback ?? throw new ModelConfigException($"config.json: missing required key {prefix}{key}");
            return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Wrong(key, v, "a string");
        }

        public IReadOnlyList<int> IntList(string key)
        {
            if (!TryGet(key, out var v)) return [];
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int single)) return [single];
            if (v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out _)))
                return v.EnumerateArray().Select(e => e.GetInt32()).ToArray();
            throw Wrong(key, v, "an integer or a list of integers");
        }
    }
}
