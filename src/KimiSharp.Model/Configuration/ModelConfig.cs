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
/// The architectural part of a K2-family config.json: Hugging Face <c>DeepseekV3ForCausalLM</c> (model_type
/// <c>deepseek_v3</c> or <c>kimi_k2</c>), or the language model of a Kimi K2.5 <c>KimiK25ForConditionalGeneration</c>
/// (model_type <c>kimi_k25</c>), whose config nests it under <c>text_config</c> and whose tensors carry the
/// <see cref="TensorPrefix"/> <c>language_model.</c>.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The wrapper model_type of a released Kimi K2.5 checkpoint.</summary>
    public const string K25ModelType = "kimi_k25";
    /// <summary>The architecture a released Kimi K2.5 checkpoint names.</summary>
    public const string K25Architecture = "KimiK25ForConditionalGeneration";
    /// <summary>What K2.5 puts before the K2 tensor names (<c>language_model.model.layers.0…</c>, <c>language_model.lm_head.weight</c>).</summary>
    public const string K25TensorPrefix = "language_model.";

    /// <summary>The language model's model_type (for K2.5, the one inside text_config).</summary>
    public required string ModelType { get; init; }
    /// <summary>The first entry of config.json's <c>architectures</c>, or the one its model_type implies when the list is absent.</summary>
    public string Architecture { get; init; } = "DeepseekV3ForCausalLM";
    /// <summary>
    /// Put before every K2-layout tensor name (<c>model.embed_tokens.weight</c>, <c>lm_head</c>…) to find it in the
    /// checkpoint: empty for K2 / DeepSeek-V3, <see cref="K25TensorPrefix"/> for K2.5.
    /// </summary>
    public string TensorPrefix { get; init; } = "";
    /// <summary>config.json has a <c>vision_config</c> (a K2.5 vision tower; KimiSharp.Vision loads it).</summary>
    public bool HasVisionConfig { get; init; }
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
        // Transformers' PretrainedConfig bookkeeping, which saved configs (K2.5's text_config among them) may carry.
        "add_cross_attention", "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id",
        "finetuning_task", "is_decoder", "prefix", "problem_type", "pruned_heads", "sep_token_id", "task_specific_params",
        "tf_legacy_loss", "tie_encoder_decoder", "torchscript", "use_bfloat16",
        // K2.5's vision part (KimiSharp.Vision reads it; the text forward does not change).
        "vision_config", "media_placeholder_token_id",
    ];

    /// <summary>Keys of the K2.5 wrapper around text_config that do not change the text forward pass.</summary>
    private static readonly HashSet<string> s_k25WrapperKeys =
    [
        "ignore_index", "use_unified_vision_chunk", "video_placeholder",
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
            string? architecture = FirstArchitecture(root);
            bool hasVision = root.TryGetProperty("vision_config", out var vision) && vision.ValueKind == JsonValueKind.Object;
            bool wrapped = root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == K25ModelType;
            if (!wrapped)
            {
                if (root.TryGetProperty("text_config", out _))
                    throw new ModelConfigException($"config.json: has a text_config, but model_type is {(root.TryGetProperty("model_type", out var t) ? t.GetRawText() : "missing")}; a nested language model is only supported for model_type '{K25ModelType}' (Kimi K2.5)");
                var (plain, unknown) = ParseLanguageModel(root, "", root.TryGetProperty("quantization_config", out var q) ? q : default);
                return plain with
                {
                    Architecture = architecture ?? "DeepseekV3ForCausalLM",
                    HasVisionConfig = hasVision,
                    UnknownKeys = unknown.Where(k => !s_ignoredKeys.Contains(k)).ToArray(),
                };
            }
            return ParseK25(root, architecture ?? K25Architecture, hasVision);
        }
    }

    private static string? FirstArchitecture(JsonElement root) =>
        root.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0 && a[0].ValueKind == JsonValueKind.String
            ? a[0].GetString() : null;

    /// <summary>
    /// A released K2.5 config: the DeepSeek-V3 language model under text_config, beside vision_config and the wrapper's
    /// own keys. quantization_config sits in text_config (readers such as vLLM copy it to the top level, so a copy there
    /// is accepted when it agrees); token ids and tie_word_embeddings may sit at either level.
    /// </summary>
    private static ModelConfig ParseK25(JsonElement root, string architecture, bool hasVision)
    {
        if (!root.TryGetProperty("text_config", out var text) || text.ValueKind == JsonValueKind.Null)
            throw new ModelConfigException($"config.json: model_type '{K25ModelType}' needs a text_config object (the language model's config)");
        if (text.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException($"config.json: text_config must be an object, got {text.GetRawText()}");
        const string prefix = "text_config.";

        bool hasInner = text.TryGetProperty("quantization_config", out var innerQuant) && innerQuant.ValueKind != JsonValueKind.Null;
        bool hasOuter = root.TryGetProperty("quantization_config", out var outerQuant) && outerQuant.ValueKind != JsonValueKind.Null;
        if (hasInner && hasOuter && !JsonElement.DeepEquals(innerQuant, outerQuant))
            throw new ModelConfigException("config.json: quantization_config and text_config.quantization_config disagree; keep one (K2.5 puts it in text_config)");
        var (config, unknownInText) = ParseLanguageModel(text, prefix, hasInner ? innerQuant : hasOuter ? outerQuant : default,
            quantizationPrefix: hasInner ? prefix : "", defaultModelType: "deepseek_v3");

        var outer = new ConfigReader(root);
        bool? outerTie = outer.OptionalBool("tie_word_embeddings");
        bool? innerTie = new ConfigReader(text, prefix).OptionalBool("tie_word_embeddings");
        if (outerTie is bool o && innerTie is bool i && o != i)
            throw new ModelConfigException($"config.json: tie_word_embeddings ({(o ? "true" : "false")}) and text_config.tie_word_embeddings ({(i ? "true" : "false")}) disagree");
        int? outerBos = outer.OptionalInt("bos_token_id");
        var outerEos = outer.IntList("eos_token_id");
        _ = outer.OptionalInt("media_placeholder_token_id");
        outer.MarkKnown("model_type", "text_config", "vision_config", "quantization_config");

        var unknown = unknownInText.Where(k => !s_ignoredKeys.Contains(k)).Select(k => prefix + k)
            .Concat(root.EnumerateObject().Select(p => p.Name)
                .Where(k => !outer.Known.Contains(k) && !s_ignoredKeys.Contains(k) && !s_k25WrapperKeys.Contains(k)))
            .ToArray();
        return config with
        {
            Architecture = architecture,
            TensorPrefix = K25TensorPrefix,
            HasVisionConfig = hasVision,
            TieWordEmbeddings = innerTie ?? outerTie ?? false,
            BosTokenId = config.BosTokenId ?? outerBos,
            EosTokenIds = config.EosTokenIds.Count > 0 ? config.EosTokenIds : outerEos,
            UnknownKeys = unknown,
        };
    }

    /// <summary>
    /// The DeepSeek-V3 architecture keys of <paramref name="obj"/> (the top level, or K2.5's text_config, whose errors
    /// name the key as <paramref name="prefix"/>key). Returns the keys it did not read.
    /// </summary>
    private static (ModelConfig Config, string[] Unread) ParseLanguageModel(JsonElement obj, string prefix, JsonElement quantization,
        string? quantizationPrefix = null, string? defaultModelType = null)
    {
        var reader = new ConfigReader(obj, prefix);
        string modelType = reader.String("model_type", defaultModelType);
        if (modelType is not ("deepseek_v3" or "kimi_k2"))
            throw new ModelConfigException($"config.json: {prefix}model_type '{modelType}' is not supported (deepseek_v3 or kimi_k2{(prefix.Length == 0 ? $", or {K25ModelType} with a text_config" : "")})");
        string act = reader.String("hidden_act", "silu");
        if (act != "silu") throw new ModelConfigException($"config.json: {prefix}hidden_act '{act}' is not supported (silu)");

        int hidden = reader.Positive("hidden_size");
        int heads = reader.Positive("num_attention_heads");
        int nRouted = reader.OptionalInt("n_routed_experts") ?? 0;
        if (nRouted < 0) throw new ModelConfigException($"config.json: {prefix}n_routed_experts must be ≥ 0, got {nRouted}");

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
            QkNopeHeadDim = reader.OptionalInt("qk_nope_head_dim") ?? throw Missing(prefix + "qk_nope_head_dim"),
            QkRopeHeadDim = reader.OptionalInt("qk_rope_head_dim") ?? throw Missing(prefix + "qk_rope_head_dim"),
            VHeadDim = reader.Positive("v_head_dim"),
            RopeTheta = reader.Double("rope_theta", RopeThetaOfRopeParameters(obj, prefix) ?? 10000.0),
            Yarn = ParseRopeScaling(obj, prefix),
            RmsNormEps = reader.Double("rms_norm_eps", 1e-6),
            MaxPositionEmbeddings = reader.Positive("max_position_embeddings"),
            TieWordEmbeddings = reader.Bool("tie_word_embeddings", false),
            AttentionBias = reader.Bool("attention_bias", false),
            Quantization = quantization.ValueKind == JsonValueKind.Undefined || quantization.ValueKind == JsonValueKind.Null
                ? null : QuantizationConfig.Parse(quantization, quantizationPrefix ?? prefix),
            BosTokenId = reader.OptionalInt("bos_token_id"),
            EosTokenIds = reader.IntList("eos_token_id"),
            UnknownKeys = [],
        };
        reader.MarkKnown("rope_scaling", "rope_parameters", "quantization_config");
        config.Validate(prefix);
        return (config, obj.EnumerateObject().Select(p => p.Name).Where(k => !reader.Known.Contains(k)).ToArray());
    }

    private static ModelConfigException Missing(string key) => new($"config.json: missing required key {key}");

    private static double? RopeThetaOfRopeParameters(JsonElement obj, string prefix)
    {
        if (!obj.TryGetProperty("rope_parameters", out var p) || p.ValueKind != JsonValueKind.Object) return null;
        double theta = new ConfigReader(p, prefix + "rope_parameters.").Double("rope_theta", double.NaN);
        return double.IsNaN(theta) ? null : theta;
    }

    /// <summary>
    /// rope_scaling, or failing that rope_parameters (how transformers 5 saves the same settings, rope_theta included).
    /// </summary>
    private static YarnScaling? ParseRopeScaling(JsonElement root, string prefix)
    {
        string key = root.TryGetProperty("rope_scaling", out _) ? "rope_scaling" : "rope_parameters";
        if (!root.TryGetProperty(key, out var s) || s.ValueKind == JsonValueKind.Null) return null;
        if (s.ValueKind != JsonValueKind.Object) throw new ModelConfigException($"config.json: {prefix}{key} must be an object or null");
        var reader = new ConfigReader(s, prefix + key + ".");
        string type = s.TryGetProperty("type", out _) ? reader.String("type", null) : reader.String("rope_type", null);
        if (type is "default" or "none") return null;
        if (type != "yarn")
            throw new ModelConfigException($"config.json: {prefix}{key}.type '{type}' is not supported (yarn, or {key} null)");
        var yarn = new YarnScaling(
            Factor: reader.Double("factor", double.NaN),
            OriginalMaxPositionEmbeddings: reader.OptionalInt("original_max_position_embeddings") ?? 4096,
            BetaFast: reader.Double("beta_fast", 32),
            BetaSlow: reader.Double("beta_slow", 1),
            Mscale: reader.Double("mscale", 1),
            MscaleAllDim: reader.Double("mscale_all_dim", 0));
        if (double.IsNaN(yarn.Factor) || yarn.Factor <= 0) throw new ModelConfigException($"config.json: {prefix}{key}.factor must be a positive number");
        if (yarn.OriginalMaxPositionEmbeddings <= 0) throw new ModelConfigException($"config.json: {prefix}{key}.original_max_position_embeddings must be positive");
        if (yarn.BetaFast <= 0 || yarn.BetaSlow <= 0) throw new ModelConfigException($"config.json: {prefix}{key}.beta_fast and beta_slow must be positive");
        return yarn;
    }

    /// <summary>The longest context a config may declare.</summary>
    public const int MaxSupportedPositions = 1 << 24;

    /// <summary>Every message starts with the key it is about, so <paramref name="prefix"/> (text_config. for K2.5) names it in full.</summary>
    private void Validate(string prefix)
    {
        void Require(bool ok, string message) { if (!ok) throw new ModelConfigException("config.json: " + prefix + message); }
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

        public bool? OptionalBool(string key)
        {
            if (!TryGet(key, out var v)) return null;
            return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Wrong(key, v, "true or false") };
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
