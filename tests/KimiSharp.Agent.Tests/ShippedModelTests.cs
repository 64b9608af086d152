using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Agent.Tests;

/// <summary>The committed default model: its shape and formats, and that the agent loop drives it through real tool calls.</summary>
public class ShippedModelTests
{
    private static string ModelDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) return Path.Combine(dir.FullName, "models", "k2-nano");
        throw new DirectoryNotFoundException("repository root not found");
    }

    [Fact]
    public void IsAK2ArchitectureModelInInt4AndBf16UnderTheSizeLimit()
    {
        string dir = ModelDirectory();
        var int4 = ModelConfig.Load(dir);
        var bf16 = ModelConfig.Load(Path.Combine(dir, "bf16"));
        var packed = Assert.IsType<PackQuantization>(int4.Quantization);
        Assert.Equal(4, packed.Groups.Single().Bits);
        Assert.Null(bf16.Quantization);
        Assert.Equal(1, int4.FirstKDenseReplace);
        Assert.True(int4.NRoutedExperts > 1 && int4.NSharedExperts == 1);
        Assert.True(int4.KvLoraRank > 0);
        Assert.NotNull(int4.Yarn);
        long bytes = new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        Assert.True(bytes < 40L << 20, $"models/k2-nano is {bytes >> 20} MB");
        Assert.True(File.Exists(Path.Combine(dir, "chat_template.jinja")));
    }

    [Fact]
    public async Task AgentLoopGetsWellFormedToolCallsFromIt()
    {
        await using var service = KimiChatService.Load(ModelDirectory());
        var agent = new AgentRunner(new KimiChatClient(service), Toolbox.CreateDefault().AsFunctions(), new AgentOptions { MaxSteps = 3 });
        var result = await agent.RunToEndAsync(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "What is 17.5% of 2,340 plus 99?" }));
        Assert.True(result.ToolCalls >= 1);
        Assert.Equal(0, result.MalformedCalls);
        var first = result.Messages.OfType<JsonObject>().First(m => m["role"]!.GetValue<string>() == "assistant");
        Assert.False(string.IsNullOrWhiteSpace(first["reasoning_content"]?.GetValue<string>()));
        Assert.Contains(result.Messages.OfType<JsonObject>(), m => m["role"]!.GetValue<string>() == "tool");
    }
}
