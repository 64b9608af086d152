using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Tests.Reference;

namespace KimiSharp.Model.Tests;

public sealed class ConfigTests
{
    private static string GoldenConfig(string name = "tiny-a-bf16") =>
        File.ReadAllText(Path.Combine(GoldenCase.Root, name, "config.json"));

    private static string Edit(string json, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    [Fact]
    public void Reads_every_architectural_key_of_the_golden_config()
    {
        var c = ModelConfig.Parse(GoldenConfig());
        Assert.Equal("deepseek_v3", c.ModelType);
        Assert.Equal((512, 64, 128, 32, 3, 4), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.MoeIntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads));
        Assert.Equal((8, 1, 2, 1, 1), (c.NRoutedExperts, c.NSharedExperts, c.NumExpertsPerTok, c.NGroup, c.TopkGroup));
        Assert.Equal(("noaux_tc", "sigmoid", true, 2.446), (c.TopkMethod, c.ScoringFunc, c.NormTopkProb, c.RoutedScalingFactor));
        Assert.Equal((1, 1, (int?)null, 32, 16, 8, 16), (c.FirstKDenseReplace, c.MoeLayerFreq, c.QLoraRank, c.KvLoraRank, c.QkNopeHeadDim, c.QkRopeHeadDim, c.VHeadDim));
        Assert.Equal((50000.0, 1e-5, 8192, false), (c.RopeTheta, c.RmsNormEps, c.MaxPositionEmbeddings, c.TieWordEmbeddings));
        Assert.Null(c.Yarn);
        Assert.Null(c.Quantization);
        Assert.Empty(c.UnknownKeys);
        Assert.False(c.IsMoeLayer(0));
        Assert.True(c.IsMoeLayer(1));
    }

    [Fact]
    public void Reads_yarn_q_lora_groups_and_both_quantization_methods()
    {
        var c = ModelConfig.Parse(Edit(GoldenConfig("tiny-a-int4"), o =>
        {
            o["q_lora_rank"] = 24;
            o["n_group"] = 4;
            o["topk_group"] = 2;
            o["moe_layer_freq"] = 2;
            o["eos_token_id"] = new JsonArray(1, 7);
            o["rope_scaling"] = new JsonObject
            {
                ["type"] = "yarn", ["factor"] = 40.0, ["original_max_position_embeddings"] = 4096,
                ["beta_fast"] = 32, ["beta_slow"] = 1, ["mscale"] = 1.0, ["mscale_all_dim"] = 0.707,
            };
        }));
        Assert.Equal(24, c.QLoraRank);
        Assert.Equal(new YarnScaling(40, 4096, 32, 1, 1.0, 0.707), c.Yarn);
        Assert.Equal([1, 7], c.EosTokenIds);
        Assert.False(c.IsMoeLayer(1)); // moe_layer_freq 2: odd layers stay dense
        Assert.True(c.IsMoeLayer(2));
        var pack = Assert.IsType<PackQuantization>(c.Quantization);
        Assert.Equal(4, pack.Groups[0].Bits);
        Assert.Equal(32, pack.Groups[0].GroupSize);
        Assert.NotNull(pack.GroupFor("model.layers.1.mlp.experts.3.down_proj"));
        Assert.Null(pack.GroupFor("model.layers.0.mlp.down_proj"));
        Assert.Null(pack.GroupFor("model.layers.1.mlp.shared_experts.up_proj"));
        Assert.Null(pack.GroupFor("model.layers.1.self_attn.q_proj"));
        Assert.Null(pack.GroupFor("lm_head"));

        var fp8 = Assert.IsType<Fp8BlockQuantization>(ModelConfig.Parse(GoldenConfig("tiny-a-fp8")).Quantization);
        Assert.Equal(new Fp8BlockQuantization(128, 128), fp8);
    }

    [Fact]
    public void Yarn_frequencies_and_softmax_scale_follow_the_deepseek_formulas()
    {
        // DeepSeek-V3: theta 10000, factor 40, beta 32/1, mscale_all_dim 1 over 64 rope dims.
        var c = ModelConfig.Parse(Edit(GoldenConfig(), o =>
        {
            o["qk_rope_head_dim"] = 64;
            o["qk_nope_head_dim"] = 128;
            o["rope_theta"] = 10000.0;
            o["rope_scaling"] = new JsonObject
            {
                ["type"] = "yarn", ["factor"] = 40, ["original_max_position_embeddings"] = 4096,
                ["beta_fast"] = 32, ["beta_slow"] = 1, ["mscale"] = 1.0, ["mscale_all_dim"] = 1.0,
            };
        }));
        var rope = new RotaryEmbedding(c);
        Assert.Equal(0.1352338, rope.SoftmaxScale, 6);
        Assert.Equal(1.0, rope.CosSinScale, 12);
        // Correction range is [10, 23]: pairs below 10 keep their frequency, pairs from 23 on are divided by 40.
        for (int i = 0; i < 32; i++)
        {
            double original = 1 / Math.Pow(10000, 2.0 * i / 64);
            double keep = 1 - Math.Clamp((i - 10) / 13.0, 0, 1);
            Assert.Equal(original / 40 * (1 - keep) + original * keep, rope.InverseFrequencies[i], 12);
        }
        Assert.Equal(1 / Math.Pow(10000, 2.0 * 5 / 64), rope.InverseFrequencies[5], 15);
        Assert.Equal(1 / Math.Pow(10000, 2.0 * 30 / 64) / 40, rope.InverseFrequencies[30], 15);

        // Kimi K2 Thinking: factor 64 → softmax scale 0.1446796 with 192-dim heads.
        var k2 = c with { RopeTheta = 50000, Yarn = new YarnScaling(64, 4096, 1, 1, 1, 1) };
        Assert.Equal(0.1446796, new RotaryEmbedding(k2).SoftmaxScale, 6);
    }

    public static TheoryData<string, Action<JsonObject>> Unsupported() => new()
    {
        { "scoring_func", o => o["scoring_func"] = "softmax" },
        { "topk_method", o => o["topk_method"] = "greedy" },
        { "rope_scaling.type", o => o["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["factor"] = 2.0 } },
        { "model_type", o => o["model_type"] = "llama" },
        { "hidden_act", o => o["hidden_act"] = "gelu" },
        { "qk_rope_head_dim", o => o["qk_rope_head_dim"] = 7 },
        { "n_group", o => o["n_group"] = 3 },
        { "topk_group", o => { o["n_group"] = 2; o["topk_group"] = 3; } },
        { "num_experts_per_tok", o => { o["n_group"] = 4; o["topk_group"] = 1; o["num_experts_per_tok"] = 3; } },
        { "hidden_size", o => o.Remove("hidden_size") },
        { "kv_lora_rank", o => o["kv_lora_rank"] = "big" },
        { "rope_scaling.factor", o => o["rope_scaling"] = new JsonObject { ["type"] = "yarn" } },
        { "quantization_config.quant_method", o => o["quantization_config"] = new JsonObject { ["quant_method"] = "gptq" } },
        { "max_position_embeddings", o => o["max_position_embeddings"] = 2_000_000_000 },
        { "rope_scaling.original_max_position_embeddings", o => o["rope_scaling"] = new JsonObject
            { ["type"] = "yarn", ["factor"] = 2.0, ["original_max_position_embeddings"] = 1 << 30 } },
        { "quantization_config.format", o => o["quantization_config"] = new JsonObject { ["quant_method"] = "compressed-tensors", ["format"] = "int-quantized" } },
    };

    [Theory]
    [MemberData(nameof(Unsupported))]
    public void Unsupported_or_invalid_values_are_errors_naming_the_key(string key, Action<JsonObject> edit)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(Edit(GoldenConfig(), edit)));
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void A_context_written_in_exponent_form_is_bounded_too()
    {
        string json = System.Text.RegularExpressions.Regex.Replace(GoldenConfig(), "\"max_position_embeddings\"\\s*:\\s*\\d+", "\"max_position_embeddings\": 2e9");
        Assert.Contains("2e9", json);
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json));
        Assert.Contains("max_position_embeddings", e.Message);
    }

    [Fact]
    public void Malformed_json_is_an_error_naming_config_json()
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("{\"hidden_size\": 64,"));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void Unknown_keys_are_reported_and_known_bookkeeping_keys_are_not()
    {
        var c = ModelConfig.Parse(Edit(GoldenConfig(), o =>
        {
            o["my_new_knob"] = 3;
            o["transformers_version"] = "4.48.0";
            o["num_nextn_predict_layers"] = 1;
        }));
        Assert.Equal(["my_new_knob"], c.UnknownKeys);
    }

    [Fact]
    public void Missing_config_json_is_an_error_naming_the_file()
    {
        using var dir = new TempModelDir();
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("config.json", e.Message);
    }
}
