using System.Text.Json;

namespace KimiSharp.Model.Tests.Reference;

/// <summary>YaRN parameters from <c>rope_scaling</c>.</summary>
public sealed record RefYarn(double Factor, int OriginalMaxPositionEmbeddings, double BetaFast, double BetaSlow, double Mscale, double MscaleAllDim);

/// <summary>The config.json fields the reference model needs, read with System.Text.Json.</summary>
public sealed record RefConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MoeIntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NRoutedExperts { get; init; }
    public required int NSharedExperts { get; init; }
    public required int NumExpertsPerTok { get; init; }
    public required int NGroup { get; init; }
    public required int TopkGroup { get; init; }
    public required double RoutedScalingFactor { get; init; }
    public required bool NormTopkProb { get; init; }
    public required int FirstKDenseReplace { get; init; }
    public required int MoeLayerFreq { get; init; }
    public required int? QLoraRank { get; init; }
    public required int KvLoraRank { get; init; }
    public required int QkNopeHeadDim { get; init; }
    public required int QkRopeHeadDim { get; init; }
    public required int VHeadDim { get; init; }
    public required double RopeTheta { get; init; }
    public required RefYarn? Yarn { get; init; }
    public required double RmsNormEps { get; init; }
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>FP8 weight_block_size, or null when the checkpoint is not FP8.</summary>
    public required int[]? Fp8BlockSize { get; init; }

    /// <summary>compressed-tensors group size, or null when the checkpoint is not pack-quantized.</summary>
    public required int? Int4GroupSize { get; init; }

    public bool IsMoeLayer(int layer) => NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;

    public static RefConfig Load(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;

        string modelType = String(root, "model_type") ?? "";
        if (modelType is not ("deepseek_v3" or "kimi_k2"))
            throw new NotSupportedException($"model_type '{modelType}' is not DeepSeek-V3 shaped.");
        if ((String(root, "scoring_func") ?? "sigmoid") != "sigmoid") throw new NotSupportedException("Only sigmoid scoring is implemented.");
        if ((String(root, "topk_method") ?? "noaux_tc") != "noaux_tc") throw new NotSupportedException("Only noaux_tc routing is implemented.");
        if ((String(root, "hidden_act") ?? "silu") != "silu") throw new NotSupportedException("Only silu is implemented.");
        if (Bool(root, "attention_bias") == true) throw new NotSupportedException("attention_bias is not implemented.");

        RefYarn? yarn = null;
        if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            string type = String(rs, "type") ?? String(rs, "rope_type") ?? "";
            if (type != "yarn") throw new NotSupportedException($"rope_scaling type '{type}' is not implemented.");
            yarn = new RefYarn(
                Double(rs, "factor") ?? 1,
                Int(rs, "original_max_position_embeddings") ?? 4096,
                Double(rs, "beta_fast") ?? 32,
                Double(rs, "beta_slow") ?? 1,
                Double(rs, "mscale") ?? 1,
                Double(rs, "mscale_all_dim") ?? 0);
        }

        int[]? blockSize = null;
        int? groupSize = null;
        if (root.TryGetProperty("quantization_config", out var qc) && qc.ValueKind == JsonValueKind.Object)
        {
            string method = String(qc, "quant_method") ?? "";
            if (method == "fp8")
            {
                blockSize = qc.TryGetProperty("weight_block_size", out var wbs)
                    ? wbs.EnumerateArray().Select(e => e.GetInt32()).ToArray()
                    : [128, 128];
            }
            else if (method == "compressed-tensors")
            {
                foreach (var group in qc.GetProperty("config_groups").EnumerateObject())
                {
                    var weights = group.Value.GetProperty("weights");
                    if (Int(weights, "num_bits") != 4 || Bool(weights, "symmetric") != true || String(weights, "strategy") != "group")
                        throw new NotSupportedException("Only symmetric 4-bit group quantization is implemented.");
                    int g = Int(weights, "group_size") ?? throw new InvalidDataException("group_size missing.");
                    if (groupSize is int other && other != g) throw new NotSupportedException("Mixed group sizes.");
                    groupSize = g;
                }
            }
            else
            {
                throw new NotSupportedException($"quant_method '{method}' is not implemented.");
            }
        }

        int Req(string name) => Int(root, name) ?? throw new InvalidDataException($"config.json lacks '{name}'.");
        return new RefConfig
        {
            VocabSize = Req("vocab_size"),
            HiddenSize = Req("hidden_size"),
            IntermediateSize = Int(root, "intermediate_size") ?? 0,
            MoeIntermediateSize = Int(root, "moe_intermediate_size") ?? 0,
            NumHiddenLayers = Req("num_hidden_layers"),
            NumAttentionHeads = Req("num_attention_heads"),
            NRoutedExperts = Int(root, "n_routed_experts") ?? 0,
            NSharedExperts = Int(root, "n_shared_experts") ?? 0,
            NumExpertsPerTok = Int(root, "num_experts_per_tok") ?? 0,
            NGroup = Int(root, "n_group") ?? 1,
            TopkGroup = Int(root, "topk_group") ?? 1,
            RoutedScalingFactor = Double(root, "routed_scaling_factor") ?? 1,
            NormTopkProb = Bool(root, "norm_topk_prob") ?? false,
            FirstKDenseReplace = Int(root, "first_k_dense_replace") ?? 0,
            MoeLayerFreq = Int(root, "moe_layer_freq") ?? 1,
            QLoraRank = Int(root, "q_lora_rank"),
            KvLoraRank = Req("kv_lora_rank"),
            QkNopeHeadDim = Req("qk_nope_head_dim"),
            QkRopeHeadDim = Req("qk_rope_head_dim"),
            VHeadDim = Req("v_head_dim"),
            RopeTheta = Double(root, "rope_theta") ?? 10000,
            Yarn = yarn,
            RmsNormEps = Double(root, "rms_norm_eps") ?? 1e-6,
            TieWordEmbeddings = Bool(root, "tie_word_embeddings") ?? false,
            Fp8BlockSize = blockSize,
            Int4GroupSize = groupSize,
        };
    }

    private static bool Present(JsonElement e, string name, out JsonElement value) =>
        e.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static int? Int(JsonElement e, string name) => Present(e, name, out var v) ? v.GetInt32() : null;

    private static double? Double(JsonElement e, string name) => Present(e, name, out var v) ? v.GetDouble() : null;

    private static bool? Bool(JsonElement e, string name) => Present(e, name, out var v) ? v.GetBoolean() : null;

    private static string? String(JsonElement e, string name) => Present(e, name, out var v) ? v.GetString() : null;
}
