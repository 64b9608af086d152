using System.Text.Json;

namespace KimiSharp.Vision;

/// <summary>A <c>vision_config</c> or <c>preprocessor_config.json</c> that the engine cannot run. The message names the key.</summary>
public sealed class VisionConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The K2.5 vision tower (MoonViT-3D) and projector shape, from <c>config.json</c>'s <c>vision_config</c> plus the
/// top-level <c>media_placeholder_token_id</c>. Only the K2.5 variant is accepted: LayerNorm blocks with biased qkv/o,
/// tanh-GELU MLP, bicubic "divided_fixed" position table, 2×2 merge with temporal pooling, "patchmerger" projector.
/// </summary>
public sealed record VisionConfig
{
    public const string FileName = "config.json";

    public int PatchSize { get; init; } = 14;
    /// <summary><c>vt_hidden_size</c>: the tower width D.</summary>
    public int HiddenSize { get; init; } = 1152;
    /// <summary><c>vt_intermediate_size</c>: the block MLP width.</summary>
    public int IntermediateSize { get; init; } = 4304;
    public int NumHiddenLayers { get; init; } = 27;
    public int NumAttentionHeads { get; init; } = 16;
    /// <summary>Rows of the learned position table (<c>init_pos_emb_height</c>).</summary>
    public int PosEmbHeight { get; init; } = 64;
    public int PosEmbWidth { get; init; } = 64;
    /// <summary>Frames a video chunk may hold: the length of the fixed sin-cos time table (<c>init_pos_emb_time</c>).</summary>
    public int PosEmbTime { get; init; } = 4;
    public int MergeKernelHeight { get; init; } = 2;
    public int MergeKernelWidth { get; init; } = 2;
    /// <summary><c>projector_ln_eps</c>: epsilon of the projector's per-sub-patch LayerNorm.</summary>
    public double ProjectorLayerNormEps { get; init; } = 1e-5;
    /// <summary>The language model width the projector writes (<c>text_hidden_size</c>).</summary>
    public int TextHiddenSize { get; init; } = 7168;
    /// <summary>The token id each image's features replace (<c>media_placeholder_token_id</c>, <c>&lt;|media_pad|&gt;</c>); null when absent.</summary>
    public int? MediaPlaceholderTokenId { get; init; }

    /// <summary>Epsilon of the tower's LayerNorms: torch's default, which the published code does not override.</summary>
    public const float TowerLayerNormEps = 1e-5f;
    /// <summary>Rows and columns the 2-D rotary table covers (fixed at 512 × 512 in the published encoder).</summary>
    public const int RopeMaxSide = 512;
    public const double RopeTheta = 10000;

    public int HeadDim => HiddenSize / NumAttentionHeads;
    public int PatchElements => 3 * PatchSize * PatchSize;
    public int MergedWidth => HiddenSize * MergeKernelHeight * MergeKernelWidth;

    /// <summary>Reads <c>config.json</c> in <paramref name="modelDirectory"/>.</summary>
    public static VisionConfig Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, FileName);
        if (!File.Exists(path)) throw new VisionConfigException($"{path}: not found (a K2.5 model folder has config.json with a vision_config)");
        return Parse(File.ReadAllText(path), path);
    }

    public static VisionConfig Parse(string json, string source = FileName)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new VisionConfigException($"{source}: not valid JSON ({e.Message})", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new VisionConfigException($"{source}: expected a JSON object");
            if (!root.TryGetProperty("vision_config", out var v) || v.ValueKind != JsonValueKind.Object)
                throw new VisionConfigException($"{source}: no vision_config object (this is not a K2.5 vision checkpoint)");
            var reader = new JsonReader(v, source + ": vision_config");
            var defaults = new VisionConfig();
            int hidden = reader.Int("vt_hidden_size", defaults.HiddenSize);
            int? textHidden = reader.OptionalInt("text_hidden_size");
            if (textHidden is null)
            {
                // Older dumps leave the projector width to the text model's own hidden_size.
                if (root.TryGetProperty("text_config", out var t) && t.ValueKind == JsonValueKind.Object)
                    textHidden = new JsonReader(t, source + ": text_config").OptionalInt("hidden_size");
                textHidden ??= new JsonReader(root, source).OptionalInt("hidden_size");
            }
            int[] merge = reader.IntPair("merge_kernel_size", [2, 2]);
            var config = new VisionConfig
            {
                PatchSize = reader.Int("patch_size", defaults.PatchSize),
                HiddenSize = hidden,
                IntermediateSize = reader.Int("vt_intermediate_size", defaults.IntermediateSize),
                NumHiddenLayers = reader.Int("vt_num_hidden_layers", defaults.NumHiddenLayers),
                NumAttentionHeads = reader.Int("vt_num_attention_heads", defaults.NumAttentionHeads),
                PosEmbHeight = reader.Int("init_pos_emb_height", defaults.PosEmbHeight),
                PosEmbWidth = reader.Int("init_pos_emb_width", defaults.PosEmbWidth),
                PosEmbTime = reader.Int("init_pos_emb_time", defaults.PosEmbTime),
                MergeKernelHeight = merge[0],
                MergeKernelWidth = merge[1],
                ProjectorLayerNormEps = reader.Double("projector_ln_eps", defaults.ProjectorLayerNormEps),
                TextHiddenSize = textHidden ?? throw new VisionConfigException($"{source}: vision_config has no text_hidden_size and the file has no text_config.hidden_size (the projector's output width)"),
                MediaPlaceholderTokenId = new JsonReader(root, source).OptionalInt("media_placeholder_token_id"),
            };
            // The variant switches of later MoonViT releases (K3's RMSNorm, bias-free linears, bilinear table, patchmergerv2):
            // K2.5 uses the first value of each, and anything else would silently compute another model.
            reader.RequireString("pos_emb_type", "divided_fixed");
            reader.RequireString("merge_type", "sd2_tpool");
            reader.RequireString("video_attn_type", "spatial_temporal");
            reader.RequireString("mm_projector_type", "patchmerger");
            reader.RequireString("projector_hidden_act", "gelu");
            reader.RequireString("pos_emb_interpolation_mode", "bicubic");
            reader.RequireString("norm_type", "layernorm");
            reader.RequireString("mlp_type", "mlp2");
            reader.RequireString("activation_func", "gelu_pytorch_tanh");
            reader.RequireBool("attn_bias", true);
            reader.RequireBool("linear_bias", true);
            reader.RequireBool("patch_embed_proj_bias", true);
            if (reader.OptionalInt("qkv_hidden_size") is int qkv && qkv != hidden)
                throw new VisionConfigException($"{source}: vision_config.qkv_hidden_size {qkv} differs from vt_hidden_size {hidden}; only K2.5's square attention is supported");
            if (reader.OptionalInt("mm_hidden_size") is int mm && mm != hidden)
                throw new VisionConfigException($"{source}: vision_config.mm_hidden_size {mm} must equal vt_hidden_size {hidden} (the projector normalises tower outputs)");
            config.Validate(source);
            return config;
        }
    }

    /// <summary>Throws a <see cref="VisionConfigException"/> naming the first inconsistent value.</summary>
    public void Validate(string source = "vision_config")
    {
        void Positive(string key, int value)
        {
            if (value <= 0) throw new VisionConfigException($"{source}: {key} must be a positive integer, got {value}");
        }
        Positive("patch_size", PatchSize);
        Positive("vt_hidden_size", HiddenSize);
        Positive("vt_intermediate_size", IntermediateSize);
        Positive("vt_num_hidden_layers", NumHiddenLayers);
        Positive("vt_num_attention_heads", NumAttentionHeads);
        Positive("init_pos_emb_height", PosEmbHeight);
        Positive("init_pos_emb_width", PosEmbWidth);
        Positive("init_pos_emb_time", PosEmbTime);
        Positive("merge_kernel_size[0]", MergeKernelHeight);
        Positive("merge_kernel_size[1]", MergeKernelWidth);
        Positive("text_hidden_size", TextHiddenSize);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new VisionConfigException($"{source}: vt_hidden_size {HiddenSize} is not divisible by vt_num_attention_heads {NumAttentionHeads}");
        if (HeadDim % 4 != 0)
            throw new VisionConfigException($"{source}: the head width {HeadDim} (vt_hidden_size / vt_num_attention_heads) must be a multiple of 4 for the 2-D rotary embedding");
        if (HiddenSize % 2 != 0)
            throw new VisionConfigException($"{source}: vt_hidden_size {HiddenSize} must be even for the sin-cos time embedding");
        if (!(ProjectorLayerNormEps > 0) || double.IsInfinity(ProjectorLayerNormEps))
            throw new VisionConfigException($"{source}: projector_ln_eps must be a positive number, got {ProjectorLayerNormEps}");
        if (PatchSize > 64) throw new VisionConfigException($"{source}: patch_size {PatchSize} is implausibly large (K2.5 uses 14)");
    }

    private readonly struct JsonReader(JsonElement element, string where)
    {
        public int? OptionalInt(string key)
        {
            if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return null;
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result))
                throw new VisionConfigException($"{where}.{key} must be an integer, got {value.GetRawText()}");
            return result;
        }

        public int Int(string key, int fallback) => OptionalInt(key) ?? fallback;

        public double Double(string key, double fallback)
        {
            if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
            if (value.ValueKind != JsonValueKind.Number) throw new VisionConfigException($"{where}.{key} must be a number, got {value.GetRawText()}");
            return value.GetDouble();
        }

        public int[] IntPair(string key, int[] fallback)
        {
            if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int single)) return [single, single];
            if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != 2)
                throw new VisionConfigException($"{where}.{key} must be a pair of integers like [2, 2], got {value.GetRawText()}");
            var result = new int[2];
            for (int i = 0; i < 2; i++)
                if (value[i].ValueKind != JsonValueKind.Number || !value[i].TryGetInt32(out result[i]))
                    throw new VisionConfigException($"{where}.{key} must be a pair of integers like [2, 2], got {value.GetRawText()}");
            return result;
        }

        public void RequireString(string key, string supported)
        {
            if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return;
            if (value.ValueKind != JsonValueKind.String || value.GetString() != supported)
                throw new VisionConfigException($"{where}.{key} is {value.GetRawText()}; only \"{supported}\" (the Kimi K2.5 vision tower) is supported");
        }

        public void RequireBool(string key, bool supported)
        {
            if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return;
            if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False) || value.GetBoolean() != supported)
                throw new VisionConfigException($"{where}.{key} is {value.GetRawText()}; only {(supported ? "true" : "false")} (the Kimi K2.5 vision tower) is supported");
        }
    }
}
