namespace KimiSharp.Cli.Tests;

/// <summary>The kimi command run in-process with its output captured, and a small model shape for CLI tests.</summary>
internal static class Kimi
{
    public static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A 3-layer config.json (one dense layer, then MoE with 8 experts top-3 and 2 shared; MLA with kv_lora 64).</summary>
    public static string SmallConfig(int moeIntermediateSize) => $$"""
        {
          "vocab_size": 300, "hidden_size": 96, "intermediate_size": 160, "moe_intermediate_size": {{moeIntermediateSize}},
          "num_hidden_layers": 3, "num_attention_heads": 4, "n_shared_experts": 2, "n_routed_experts": 8,
          "num_experts_per_tok": 3, "n_group": 1, "topk_group": 1, "routed_scaling_factor": 2.446,
          "norm_topk_prob": true, "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": null,
          "kv_lora_rank": 64, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
          "max_position_embeddings": 256, "rope_theta": 50000.0, "rope_scaling": null, "rms_norm_eps": 1e-05,
          "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1
        }
        """;
}
