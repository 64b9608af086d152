using KimiSharp.Testing;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;
using Microsoft.Extensions.AI;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KimiSharp.Agent.Tests;

/// <summary>A random K2-architecture model with a byte-level Kimi tokenizer: noise, but the whole serving path is real.</summary>
public sealed class RandomChatModelFixture : IAsyncLifetime
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("kimi-agent-").FullName;
    public KimiChatService Service { get; private set; } = null!;

    public Task InitializeAsync()
    {
        RandomChatModel.Write(Directory, new RandomCheckpointOptions { HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 8192, Format = CheckpointFormat.Int4, Seed = 11 });
        Service = KimiChatService.Load(Directory);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Service.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

public sealed class AgentRunnerRandomModelTests(RandomChatModelFixture fixture) : IClassFixture<RandomChatModelFixture>
{
    /// <summary>Records what the real service is asked, so prompts can be checked against the window.</summary>
    private sealed class RecordingModel(KimiChatService service) : DelegatingChatClient(new KimiChatClient(service))
    {
        public List<ChatRequest> Requests { get; } = [];
        public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            Requests.Add(((KimiChatClient)InnerClient).ToChatRequest(list, options));
            return base.GetStreamingResponseAsync(list, options, cancellationToken);
        }
    }

    private static JsonArray Task(string prompt) => [new JsonObject { ["role"] = "user", ["content"] = prompt }];

    [Theory]
    [InlineData(0f, 0L)]
    [InlineData(1f, 3L)]
    [InlineData(1.5f, 4L)]
    public async Task A_random_model_run_terminates_and_accounts_for_every_call(float temperature, long seed)
    {
        var options = new AgentOptions
        {
            MaxSteps = 4, MaxTokensPerStep = 32, TokenBudget = 100,
            Sampling = new ChatOptions { Temperature = temperature, Seed = seed },
        };
        var model = new RecordingModel(fixture.Service);
        var runner = new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), options);
        var events = new List<AgentEvent>();
        await foreach (var e in runner.RunAsync(Task("What is 2+2?"), CancellationToken.None)) events.Add(e);
        var result = Assert.IsType<AgentEvent.Finished>(events[^1]).Result;

        Assert.Contains(result.StopReason, new[] { AgentResult.Answer, AgentResult.MaxSteps, AgentResult.TokenBudget, AgentResult.Length });
        Assert.InRange(result.Steps, 1, options.MaxSteps);
        Assert.InRange(result.GeneratedTokens, 1, options.TokenBudget);
        Assert.Equal(result.Steps, model.Requests.Count);
        Assert.Equal(result.StopReason == AgentResult.Answer, result.FinalAnswer is not null);

        // Every call is either run or counted malformed, and each gets exactly one tool message.
        int declaredCalls = result.Messages.Sum(m => m?["tool_calls"] is JsonArray a ? a.Count : 0);
        var toolMessages = result.Messages.Where(m => m!["role"]!.GetValue<string>() == "tool").ToArray();
        Assert.Equal(result.ToolCalls, declaredCalls);
        Assert.Equal(result.ToolCalls, toolMessages.Length);
        Assert.Equal(result.ToolCalls, events.OfType<AgentEvent.ToolCalled>().Count());
        Assert.Equal(result.ToolCalls, events.OfType<AgentEvent.ToolReturned>().Count());
        int flagged = toolMessages.Count(m => m!["content"]!.GetValue<string>() is var c
            && (c.StartsWith("error: malformed call", StringComparison.Ordinal) || c.StartsWith("error: unknown tool", StringComparison.Ordinal)));
        Assert.Equal(result.MalformedCalls, flagged);
        Assert.Equal(result.Steps, result.Messages.Count(m => m!["role"]!.GetValue<string>() == "assistant"));

        // The prompt of each step is the template's rendering of the windowed messages so far.
        int seen = 1;
        for (int i = 0; i < model.Requests.Count; i++)
        {
            var soFar = new JsonArray(result.Messages.Take(seen).Select(m => m!.DeepClone()).ToArray());
            var expected = new ChatRequest { Messages = options.Window.Visible(soFar), Tools = Toolbox.CreateDefault().Declarations() };
            Assert.Equal(fixture.Service.RenderPrompt(expected), fixture.Service.RenderPrompt(model.Requests[i]));
            seen++;
            while (seen < result.Messages.Count && result.Messages[seen]!["role"]!.GetValue<string>() == "tool") seen++;
        }
    }

    [Fact]
    public async Task Cancellation_stops_a_real_run()
    {
        using var cts = new CancellationTokenSource();
        var runner = new AgentRunner(new KimiChatClient(fixture.Service), Toolbox.CreateDefault().AsFunctions(), new AgentOptions
        {
            MaxSteps = 50, MaxTokensPerStep = 200, Sampling = new ChatOptions { Temperature = 1, Seed = 1 },
        });
        int events = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in runner.RunAsync(Task("Count to a thousand."), cts.Token))
            {
                Assert.IsNotType<AgentEvent.Finished>(e);
                events++;
                cts.Cancel();
            }
        });
        Assert.Equal(1, events);
    }
}
