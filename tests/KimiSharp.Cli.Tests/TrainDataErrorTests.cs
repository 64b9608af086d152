using System.Text.Json.Nodes;

namespace KimiSharp.Cli.Tests;

/// <summary>Bad training data found after the config loads ends `kimi train` with an error naming the file and line, not a crash.</summary>
public sealed class TrainDataErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimi-baddata-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_malformed_conversation_line_is_named()
    {
        string data = Path.Combine(_dir, "conversations.jsonl");
        File.WriteAllText(data, """
            {"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello there"}]}
            {"messages": [ this is not json
            """);
        var config = new JsonObject
        {
            ["model"] = JsonNode.Parse("""
                {"model_type":"deepseek_v3","hidden_size":32,"intermediate_size":64,"moe_intermediate_size":16,"num_hidden_layers":2,
                 "num_attention_heads":2,"n_shared_experts":1,"n_routed_experts":4,"num_experts_per_tok":2,"first_k_dense_replace":1,
                 "norm_topk_prob":true,"q_lora_rank":null,"kv_lora_rank":16,"qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":8,
                 "max_position_embeddings":128,"vocab_size":600}
                """),
            ["conversation_files"] = new JsonArray(data), ["tokenizer_ranks"] = 300, ["batch_size"] = 2, ["seq_len"] = 32,
            ["steps"] = 3, ["out"] = Path.Combine(_dir, "run"),
        };
        string path = Path.Combine(_dir, "train.json");
        File.WriteAllText(path, config.ToJsonString());

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync(["train", "--config", path], stdout, stderr);

        Assert.Equal(1, code);
        Assert.Contains("line 2", stderr.ToString());
        Assert.Contains("conversations.jsonl", stderr.ToString());
        Assert.DoesNotContain("   at ", stderr.ToString());
    }
}
