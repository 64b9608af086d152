using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Tests;

/// <summary>The released Kimi K2.5 config.json: the language model nested under text_config beside vision_config.</summary>
public sealed class K25ConfigTests
{
    /// <summary>The shape of the published K2.5 config.json (values from public dumps of it), the vision part abridged.</summary>
    private const string Released = """
        {
          "architectures": ["KimiK25ForConditionalGeneration"],
          "auto_map": {"AutoConfig": "configuration_kimi_k25.KimiK25Config", "AutoModel": "modeling_kimi_k25.KimiK25ForConditionalGeneration"},
          "bos_token_id": 163584, "eos_token_id": 163585, "pad_token_id": 163839, "ignore_index": -100,
          "media_placeholder_token_id": 163605, "model_type": "kimi_k25", "tie_word_embeddings": false,
          "transformers_version": "4.57.1", "use_unified_vision_chunk": true, "video_placeholder": "<|kimi_k25_video_placeholder|>",
          "text_config": {
            "_name_or_path": "", "add_cross_attention": false, "chunk_size_feed_forward": 0, "is_decoder": false, "pruned_heads": {},
            "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
            "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config"}, "aux_loss_alpha": 0.001,
            "bos_token_id": 163584, "eos_token_id": 163585, "ep_size": 1, "first_k_dense_replace": 1, "hidden_act": "silu",
            "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
            "max_position_embeddings": 262144, "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1,
            "n_group": 1, "n_routed_experts": 384, "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 64,
            "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 64, "num_nextn_predict_layers": 0,
            "pad_token_id": 163839, "pretraining_tp": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
            "quantization_config": {
              "config_groups": {"group_0": {"input_activations": null, "output_activations": null, "targets": ["Linear"],
                "weights": {"actorder": null, "block_structure": null, "dynamic": false, "group_size": 32, "num_bits": 4,
                  "observer": "minmax", "observer_kwargs": {}, "strategy": "group", "symmetric": true, "type": "int"}}},
              "format": "pack-quantized",
              "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
              "kv_cache_scheme": null, "quant_method": "compressed-tensors", "quantization_status": "compressed"
            },
            "rms_norm_eps": 1e-05,
            "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 64.0, "mscale": 1.0, "mscale_all_dim": 1.0,
              "original_max_position_embeddings": 4096, "type": "yarn"},
            "rope_theta": 50000.0, "routed_scaling_factor": 2.827, "scoring_func": "sigmoid", "seq_aux": true,
            "tie_word_embeddings": false, "topk_group": 1, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
            "use_cache": true, "v_head_dim": 128, "vocab_size": 163840
          },
          "vision_config": {"vt_hidden_size": 1152, "vt_num_hidden_layers": 27, "patch_size": 14, "text_hidden_size": 7168}
        }
        """;

    private static string Edit(Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(Released)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    private static JsonObject Text(JsonObject root) => root["text_config"]!.AsObject();

    [Fact]
    public void Reads_the_language_model_of_the_released_config()
    {
        var c = ModelConfig.Parse(Released);
        Assert.Equal(("deepseek_v3", "KimiK25ForConditionalGeneration", "language_model."), (c.ModelType, c.Architecture, c.TensorPrefix));
        Assert.True(c.HasVisionConfig);
        Assert.Equal((163840, 7168, 18432, 2048, 61, 64), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.MoeIntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads));
        Assert.Equal((384, 1, 8, 2.827), (c.NRoutedExperts, c.NSharedExperts, c.NumExpertsPerTok, c.RoutedScalingFactor));
        Assert.Equal(((int?)1536, 512, 128, 64, 128), (c.QLoraRank, c.KvLoraRank, c.QkNopeHeadDim, c.QkRopeHeadDim, c.VHeadDim));
        Assert.Equal((50000.0, 1e-5, 262144), (c.RopeTheta, c.RmsNormEps, c.MaxPositionEmbeddings));
        Assert.Equal(new YarnScaling(64, 4096, 32, 1, 1, 1), c.Yarn);
        Assert.Equal(163584, c.BosTokenId);
        Assert.Equal([163585], c.EosTokenIds);
        Assert.False(c.TieWordEmbeddings);
        Assert.Empty(c.UnknownKeys);

        // quantization_config comes from text_config; its ignore list names modules without the language_model. prefix.
        var q = Assert.IsType<PackQuantization>(c.Quantization);
        Assert.Equal((4, 32), (q.Groups[0].Bits, q.Groups[0].GroupSize));
        Assert.Null(q.GroupFor("lm_head", "language_model.lm_head"));
        Assert.NotNull(q.GroupFor("language_model.lm_head")); // matched on the stored name alone, "lm_head" would not apply
        Assert.Null(q.GroupFor("model.layers.3.self_attn.q_a_proj", "language_model.model.layers.3.self_attn.q_a_proj"));
        Assert.Null(q.GroupFor("model.layers.3.mlp.shared_experts.up_proj", "language_model.model.layers.3.mlp.shared_experts.up_proj"));
        Assert.Null(q.GroupFor("model.layers.0.mlp.down_proj", "language_model.model.layers.0.mlp.down_proj"));
        Assert.NotNull(q.GroupFor("model.layers.3.mlp.experts.7.down_proj", "language_model.model.layers.3.mlp.experts.7.down_proj"));
    }

    [Fact]
    public void A_top_level_copy_of_quantization_config_is_accepted_when_it_agrees()
    {
        // vLLM's and Transformers' K2.5 config classes copy text_config.quantization_config to the top level; a saved copy may have both.
        var both = ModelConfig.Parse(Edit(o => o["quantization_config"] = Text(o)["quantization_config"]!.DeepClone()));
        Assert.IsType<PackQuantization>(both.Quantization);
        var outerOnly = ModelConfig.Parse(Edit(o =>
        {
            o["quantization_config"] = Text(o)["quantization_config"]!.DeepClone();
            Text(o).Remove("quantization_config");
        }));
        Assert.IsType<PackQuantization>(outerOnly.Quantization);
        Assert.Null(ModelConfig.Parse(Edit(o => Text(o).Remove("quantization_config"))).Quantization);
    }

    [Fact]
    public void Token_ids_and_tying_fall_back_to_the_wrapper()
    {
        var c = ModelConfig.Parse(Edit(o =>
        {
            Text(o).Remove("bos_token_id");
            Text(o).Remove("eos_token_id");
            Text(o).Remove("tie_word_embeddings");
            o["eos_token_id"] = new JsonArray(163585, 163586);
            o["tie_word_embeddings"] = true;
        }));
        Assert.Equal((int?)163584, c.BosTokenId);
        Assert.Equal([163585, 163586], c.EosTokenIds);
        Assert.True(c.TieWordEmbeddings);
    }

    [Fact]
    public void Transformers_5_rope_parameters_are_read_when_rope_scaling_is_absent()
    {
        var c = ModelConfig.Parse(Edit(o =>
        {
            var t = Text(o);
            t.Remove("rope_scaling");
            t.Remove("rope_theta");
            t["rope_parameters"] = new JsonObject
            {
                ["beta_fast"] = 32.0, ["beta_slow"] = 1.0, ["factor"] = 64.0, ["mscale"] = 1.0, ["mscale_all_dim"] = 1.0,
                ["original_max_position_embeddings"] = 4096, ["rope_theta"] = 50000.0, ["rope_type"] = "yarn",
            };
        }));
        Assert.Equal(new YarnScaling(64, 4096, 32, 1, 1, 1), c.Yarn);
        Assert.Equal(50000.0, c.RopeTheta);
        Assert.Empty(c.UnknownKeys);
    }

    [Fact]
    public void Unknown_keys_are_reported_with_their_level()
    {
        var c = ModelConfig.Parse(Edit(o =>
        {
            o["wrapper_knob"] = 1;
            Text(o)["text_knob"] = 2;
        }));
        Assert.Equal(["text_config.text_knob", "wrapper_knob"], c.UnknownKeys.Order(StringComparer.Ordinal));
    }

    public static TheoryData<string, Action<JsonObject>> BadTextConfigs() => new()
    {
        { "text_config.kv_lora_rank", o => Text(o)["kv_lora_rank"] = "big" },
        { "text_config.hidden_size", o => Text(o).Remove("hidden_size") },
        { "text_config.model_type 'llama'", o => Text(o)["model_type"] = "llama" },
        { "text_config.qk_rope_head_dim", o => Text(o)["qk_rope_head_dim"] = 7 },
        { "text_config.n_group", o => Text(o)["n_group"] = 5 },
        { "text_config.rope_scaling.type", o => Text(o)["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["factor"] = 2.0 } },
        { "text_config.quantization_config.quant_method", o => Text(o)["quantization_config"] = new JsonObject { ["quant_method"] = "gptq" } },
        { "text_config.quantization_config.config_groups.group_0.weights.num_bits", o =>
            Text(o)["quantization_config"]!["config_groups"]!["group_0"]!["weights"]!["num_bits"] = 3 },
        { "needs a text_config object", o => o.Remove("text_config") },
        { "text_config must be an object", o => o["text_config"] = 3 },
        { "quantization_config and text_config.quantization_config disagree", o =>
            o["quantization_config"] = new JsonObject { ["quant_method"] = "fp8" } },
        { "tie_word_embeddings (true) and text_config.tie_word_embeddings (false) disagree", o => o["tie_word_embeddings"] = true },
        { "text_config.tie_word_embeddings must be true or false", o => Text(o)["tie_word_embeddings"] = "no" },
        { "media_placeholder_token_id must be an integer", o => o["media_placeholder_token_id"] = "<|media_pad|>" },
    };

    [Theory]
    [MemberData(nameof(BadTextConfigs))]
    public void A_bad_text_config_is_an_error_naming_the_key(string expected, Action<JsonObject> edit)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(Edit(edit)));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("config.json: ", e.Message);
    }

    [Fact]
    public void A_text_config_under_another_model_type_is_refused_rather_than_ignored()
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(Edit(o => o["model_type"] = "deepseek_v3")));
        Assert.Contains("text_config", e.Message);
        Assert.Contains("kimi_k25", e.Message);
    }

    [Fact]
    public void A_K2_config_keeps_the_plain_layout()
    {
        var c = ModelConfig.Parse(Text(JsonNode.Parse(Released)!.AsObject()).ToJsonString());
        Assert.Equal(("DeepseekV3ForCausalLM", ""), (c.Architecture, c.TensorPrefix));
        Assert.False(c.HasVisionConfig);
        Assert.Empty(c.UnknownKeys);
    }
}
