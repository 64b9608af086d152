using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Server;

namespace KimiSharp.Client.Tests;

/// <summary>
/// The agent runtime on a remote endpoint: the shipped k2-nano behind a real <c>kimi serve</c>, driven over HTTP with
/// its tools, and a stub that holds the client to Moonshot's rules.
/// </summary>
public sealed class AgentOverHttpTests
{
    private static string K2Nano()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) return Path.Combine(dir.FullName, "models", "k2-nano");
        throw new DirectoryNotFoundException("repository root not found");
    }

    private static JsonArray Task(string prompt) => [AgentMessages.User(prompt)];

    [Fact]
    public async Task K2_nano_over_kimi_serve_runs_the_same_agent_turn_as_in_process()
    {
        const string question = "What is 17.5% of 2,340 plus 99?";
        await using var service = KimiChatService.Load(K2Nano(), new EngineOptions { MaxBatchSize = 2 }, modelId: "k2-nano");
        var options = new AgentOptions { MaxSteps = 6 };

        // In process first: the reference trajectory.
        var local = await new AgentRunner(new KimiChatClient(service), Toolbox.CreateDefault().AsFunctions(), options).RunToEndAsync(Task(question));

        await using var server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = "agent-key", ServeUi = false });
        await server.StartAsync();
        using var client = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions
        {
            BaseUrl = server.Urls.First().Replace("[::]", "127.0.0.1") + "/v1", ApiKey = "agent-key", Model = "k2-nano",
            MaxRetries = 1, RequestTimeout = TimeSpan.FromMinutes(2),
        });
        var remote = await new AgentRunner(client, Toolbox.CreateDefault().AsFunctions(), options).RunToEndAsync(Task(question));

        Assert.Equal(AgentResult.Answer, remote.StopReason);
        Assert.Contains("508.5", remote.FinalAnswer);
        Assert.True(remote.ToolCalls >= 1);
        var firstStep = remote.Messages[1]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace(AgentMessages.Text(firstStep["reasoning_content"])));
        Assert.Equal("calculator", firstStep["tool_calls"]![0]!["function"]!["name"]!.GetValue<string>());
        // Greedy decoding over HTTP sees the same prompts as in process, reasoning and tool calls included, so every
        // step comes out the same: the round trip loses nothing the template renders.
        Assert.Equal(local.Steps, remote.Steps);
        for (int i = 0; i < local.Messages.Count; i++)
        {
            var a = local.Messages[i]!;
            var b = remote.Messages[i]!;
            Assert.Equal(AgentMessages.Role(a), AgentMessages.Role(b));
            Assert.Equal(AgentMessages.Text(a["content"]), AgentMessages.Text(b["content"]));
            Assert.Equal(AgentMessages.Text(a["reasoning_content"]), AgentMessages.Text(b["reasoning_content"]));
            Assert.Equal(a["tool_calls"]?[0]?["function"]?["arguments"]?.ToJsonString(), b["tool_calls"]?[0]?["function"]?["arguments"]?.ToJsonString());
        }
    }

    [Fact]
    public async Task An_agent_run_against_moonshots_rules_succeeds_through_a_429_and_keeps_the_reasoning()
    {
        var moonshot = new MoonshotRulesTests.MoonshotStub();
        await using var stub = await StubEndpoint.StartAsync(moonshot.Handle);
        using var client = stub.Client(o => o with { ApiKey = "sk-test", InitialBackoff = TimeSpan.FromMilliseconds(10) });
        var events = new List<AgentEvent>();
        await foreach (var e in new AgentRunner(client, [MoonshotRulesTests.Calculator()], new AgentOptions { Window = ContextWindow.Unlimited })
            .RunAsync(Task("What is 6 times 7?")))
            events.Add(e);
        var result = Assert.IsType<AgentEvent.Finished>(events[^1]).Result;

        Assert.Equal(AgentResult.Answer, result.StopReason);
        Assert.Equal("6 × 7 = 42", result.FinalAnswer);
        Assert.Equal(new AgentEvent.ToolReturned("functions.calculator:0", "calculator", "42", false),
            Assert.Single(events.OfType<AgentEvent.ToolReturned>()) with { Elapsed = TimeSpan.Zero });
        // The 429 was retried by the client; the second step's request carried the first step's reasoning.
        Assert.Equal(3, stub.RequestCount);
        var second = stub.Requests[^1].Messages;
        Assert.Equal("Let me compute 6*7 with the calculator.", second[1]!["reasoning_content"]!.GetValue<string>());
        Assert.Equal(30 + 60, result.Usage.InputTokens);
        Assert.Equal(16 + 30, result.Usage.CachedInputTokens);
    }

    [Fact]
    public async Task A_rejected_request_stops_the_run_with_the_servers_message()
    {
        await using var stub = await StubEndpoint.StartAsync((_, _, context) => StubEndpoint.Error(context, 401, "Invalid Authentication"));
        using var client = stub.Client();
        var error = await Assert.ThrowsAsync<ChatEndpointException>(() =>
            new AgentRunner(client, [MoonshotRulesTests.Calculator()]).RunToEndAsync(Task("hi")));
        Assert.Contains("Invalid Authentication", error.Message);
        Assert.Equal(1, stub.RequestCount);
    }
}
