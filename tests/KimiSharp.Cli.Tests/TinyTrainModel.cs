using System.Text.Json.Nodes;

namespace KimiSharp.Cli.Tests;

/// <summary>The smallest K2-architecture model config the `kimi train` tests use (2 layers, the first dense, 4 experts).</summary>
internal static class TinyTrainModel
{
    public static JsonNode Config() => JsonNode.Parse("""
        {"model_type":"deepseek_v3","hidden_size":32,"intermediate_size":64,"moe_intermediate_size":16,"num_hidden_layers":2,
         "num_attention_heads":2,"n_shared_experts":1,"n_routed_experts":4,"num_experts_per_tok":2,"first_k_dense_replace":1,
         "norm_topk_prob":true,"q_lora_rank":null,"kv_lora_rank":16,"qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":8,
         "max_position_embeddings":128,"vocab_size":600}
        """)!;
}
