using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace KimiSharp.Model.Configuration;

/// <summary>Writes a <see cref="ModelConfig"/> as a Hugging Face DeepSeek-V3 / K2 style <c>config.json</c>.</summary>
public static class ModelConfigJson
{
    /// <param name="extra">Writes further properties (e.g. quantization_config) before the object closes.</param>
    public static byte[] Write(ModelConfig c, string torchDtype = "bfloat16", Action<Utf8JsonWriter>? extra = null)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue("DeepseekV3ForCausalLM");
            w.WriteEndArray();
            w.WriteString("model_type", c.ModelType);
            w.WriteNumber("vocab_size", c.VocabSize);
            w.WriteNumber("hidden_size", c.HiddenSize);
            w.WriteNumber("intermediate_size", c.IntermediateSize);
            w.WriteNumber("moe_intermediate_size", c.MoeIntermediateSize);
            w.WriteNumber("num_hidden_layers", c.NumHiddenLayers);
            w.WriteNumber("num_attention_heads", c.NumAttentionHeads);
            w.WriteNumber("num_key_value_heads", c.NumAttentionHeads);
            w.WriteNumber("n_shared_experts", c.NSharedExperts);
            w.WriteNumber("n_routed_experts", c.NRoutedExperts);
            w.WriteNumber("num_experts_per_tok", c.NumExpertsPerTok);
            w.WriteNumber("n_group", c.NGroup);
            w.WriteNumber("topk_group", c.TopkGroup);
            w.WriteString("topk_method", c.TopkMethod);
            w.WriteString("scoring_func", c.ScoringFunc);
            w.WriteBoolean("norm_topk_prob", c.NormTopkProb);
            WriteDouble(w, "routed_scaling_factor", c.RoutedScalingFactor);
            w.WriteNumber("first_k_dense_replace", c.FirstKDenseReplace);
            w.WriteNumber("moe_layer_freq", c.MoeLayerFreq);
            if (c.QLoraRank is int q) w.WriteNumber("q_lora_rank", q);
            else w.WriteNull("q_lora_rank");
            w.WriteNumber("kv_lora_rank", c.KvLoraRank);
            w.WriteNumber("qk_nope_head_dim", c.QkNopeHeadDim);
            w.WriteNumber("qk_rope_head_dim", c.QkRopeHeadDim);
            w.WriteNumber("v_head_dim", c.VHeadDim);
            w.WriteString("hidden_act", "silu");
            w.WriteNumber("max_position_embeddings", c.MaxPositionEmbeddings);
            WriteDouble(w, "rope_theta", c.RopeTheta);
            if (c.Yarn is { } y)
            {
                w.WriteStartObject("rope_scaling");
                w.WriteString("type", "yarn");
                WriteDouble(w, "factor", y.Factor);
                w.WriteNumber("original_max_position_embeddings", y.OriginalMaxPositionEmbeddings);
                WriteDouble(w, "beta_fast", y.BetaFast);
                WriteDouble(w, "beta_slow", y.BetaSlow);
                WriteDouble(w, "mscale", y.Mscale);
                WriteDouble(w, "mscale_all_dim", y.MscaleAllDim);
                w.WriteEndObject();
            }
            else w.WriteNull("rope_scaling");
            WriteDouble(w, "rms_norm_eps", c.RmsNormEps);
            w.WriteBoolean("attention_bias", c.AttentionBias);
            w.WriteBoolean("tie_word_embeddings", c.TieWordEmbeddings);
            if (c.BosTokenId is int bos) w.WriteNumber("bos_token_id", bos);
            if (c.EosTokenIds.Count == 1) w.WriteNumber("eos_token_id", c.EosTokenIds[0]);
            else if (c.EosTokenIds.Count > 1)
            {
                w.WriteStartArray("eos_token_id");
                foreach (int e in c.EosTokenIds) w.WriteNumberValue(e);
                w.WriteEndArray();
            }
            w.WriteString("torch_dtype", torchDtype);
            extra?.Invoke(w);
            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>Doubles as Python's json writes them: integral values keep ".0" (50000.0, not 50000).</summary>
    public static void WriteDouble(Utf8JsonWriter w, string name, double value)
    {
        if (!double.IsFinite(value)) throw new ArgumentException($"{name} must be finite.");
        string text = value.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
        if (!text.Contains('.', StringComparison.Ordinal) && !text.Contains('e', StringComparison.Ordinal)) text += ".0";
        w.WritePropertyName(name);
        w.WriteRawValue(text);
    }
}
