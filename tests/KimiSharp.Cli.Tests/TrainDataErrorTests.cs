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
            ["model"] = TinyTrainModel.Config(),
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
