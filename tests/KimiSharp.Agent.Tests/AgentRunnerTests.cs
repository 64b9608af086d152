using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

/// <summary>A step the scripted model outputs: reasoning, content, tool calls (name, arguments, parser error) and finish.</summary>
internal sealed record ScriptedStep(string Reasoning, string Content, (string Name, string Arguments, string? Error)[] Calls,
    ChatFinishReason? Finish = null, int Tokens = 10);

/// <summary>What the scripted model was asked: the messages in the OpenAI shape, the declared tools and the options.</summary>
internal sealed record ScriptedRequest(JsonArray Messages, JsonArray Tools, ChatOptions Options)
{
    public int MaxTokens => Options.MaxOutputTokens ?? -1;
}

/// <summary>An <see cref="IChatClient"/> that replays scripted steps (streamed in 3-character pieces) and records every request.</summary>
internal sealed class ScriptedModel(Func<int, ScriptedRequest, ScriptedStep> script) : IChatClient
{
    public List<ScriptedRequest> Requests { get; } = [];
    public Action<int>? BeforeStep { get; init; }
    /// <summary>Ids the scripted endpoint gives its calls; K2 servers number them within the response.</summary>
    public Func<int, int, string, string> CallId { get; init; } = (_, i, name) => $"functions.{name}:{i}";

    public ScriptedModel(params ScriptedStep[] steps) : this((i, _) => steps[i]) { }

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int index = Requests.Count;
        var request = new ScriptedRequest(ToJson(messages), Declarations(options), options?.Clone() ?? new ChatOptions());
        Requests.Add(request);
        BeforeStep?.Invoke(index);
        var step = script(index, request);
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        foreach (var piece in Split(step.Reasoning)) yield return new ChatResponseUpdate(ChatRole.Assistant, [new TextReasoningContent(piece)]);
        foreach (var piece in Split(step.Content)) yield return new ChatResponseUpdate(ChatRole.Assistant, piece);
        for (int i = 0; i < step.Calls.Length; i++)
        {
            var (name, arguments, error) = step.Calls[i];
            var call = new FunctionCallContent(CallId(index, i, name), name)
            {
                AdditionalProperties = new() { [AgentMessages.RawArgumentsKey] = arguments },
                Exception = error is null ? null : new InvalidOperationException(error),
            };
            yield return new ChatResponseUpdate(ChatRole.Assistant, [call]);
        }
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 100, OutputTokenCount = step.Tokens })])
        {
            FinishReason = step.Finish ?? (step.Calls.Length > 0 ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop),
        };
    }

    /// <summary>The messages back in the OpenAI shape the runner keeps (the inverse of <see cref="AgentMessages.ToChatMessages"/>).</summary>
    internal static JsonArray ToJson(IEnumerable<ChatMessage> messages)
    {
        var json = new JsonArray();
        foreach (var m in messages)
        {
            if (m.Role == ChatRole.Tool)
            {
                foreach (var r in m.Contents.OfType<FunctionResultContent>())
                    json.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = r.CallId, ["name"] = m.AuthorName, ["content"] = r.Result?.ToString() });
                continue;
            }
            var item = new JsonObject { ["role"] = m.Role.Value };
            if (m.Contents.OfType<TextReasoningContent>().Any()) item["reasoning_content"] = string.Concat(m.Contents.OfType<TextReasoningContent>().Select(r => r.Text));
            item["content"] = string.Concat(m.Contents.OfType<TextContent>().Select(t => t.Text));
            var calls = m.Contents.OfType<FunctionCallContent>().ToArray();
            if (calls.Length > 0)
                item["tool_calls"] = new JsonArray(calls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.CallId, ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = AgentMessages.RawArguments(c) },
                }).ToArray());
            json.Add(item);
        }
        return json;
    }

    private static JsonArray Declarations(ChatOptions? options) => new(
        (options?.Tools ?? []).OfType<AIFunctionDeclaration>().Select(f => (JsonNode)new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = f.Name, ["description"] = f.Description, ["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText()),
            },
        }).ToArray());

    private static IEnumerable<string> Split(string text)
    {
        for (int i = 0; i < text.Length; i += 3) yield return text.Substring(i, Math.Min(3, text.Length - i));
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose() { }
}

public sealed class AgentRunnerTests
{
    private static JsonArray Task(string prompt) => [new JsonObject { ["role"] = "user", ["content"] = prompt }];

    private static async Task<(List<AgentEvent> Events, AgentResult Result)> Run(AgentRunner runner, JsonArray conversation, CancellationToken ct = default)
    {
        var events = new List<AgentEvent>();
        await foreach (var e in runner.RunAsync(conversation, ct)) events.Add(e);
        return (events, Assert.IsType<AgentEvent.Finished>(events[^1]).Result);
    }

    [Fact]
    public async Task Calls_a_tool_reads_the_result_and_answers()
    {
        var model = new ScriptedModel(
            new ScriptedStep("I need the calculator.", "", [("calculator", """{"expression":"2340*17.5%+99"}""", null)]),
            new ScriptedStep("The result is 508.5.", "It comes to 508.5.", []));
        var conversation = Task("What is 17.5% of 2340 plus 99?");
        var (events, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions()), conversation);

        Assert.Single(conversation); // the input is not changed
        Assert.Equal(AgentResult.Answer, result.StopReason);
        Assert.Equal("It comes to 508.5.", result.FinalAnswer);
        Assert.Equal((1, 0, 2, 20L), (result.ToolCalls, result.MalformedCalls, result.Steps, result.GeneratedTokens));

        Assert.Equal("I need the calculator.", string.Concat(events.Take(8).OfType<AgentEvent.ReasoningDelta>().Select(r => r.Text)));
        var called = Assert.Single(events.OfType<AgentEvent.ToolCalled>());
        Assert.Equal(new AgentEvent.ToolCalled("functions.calculator:0", "calculator", """{"expression":"2340*17.5%+99"}"""), called);
        var returned = Assert.Single(events.OfType<AgentEvent.ToolReturned>());
        Assert.Equal(new AgentEvent.ToolReturned("functions.calculator:0", "calculator", "508.5", false), returned with { Elapsed = TimeSpan.Zero });
        Assert.True(events.IndexOf(called) < events.IndexOf(returned));
        Assert.Equal("It comes to 508.5.", string.Concat(events.OfType<AgentEvent.ContentDelta>().Select(c => c.Text)));

        var expected = JsonNode.Parse("""
            [{"role":"user","content":"What is 17.5% of 2340 plus 99?"},
             {"role":"assistant","reasoning_content":"I need the calculator.","content":"",
              "tool_calls":[{"id":"functions.calculator:0","type":"function","function":{"name":"calculator","arguments":"{\"expression\":\"2340*17.5%+99\"}"}}]},
             {"role":"tool","tool_call_id":"functions.calculator:0","name":"calculator","content":"508.5"},
             {"role":"assistant","reasoning_content":"The result is 508.5.","content":"It comes to 508.5."}]
            """)!;
        Assert.True(JsonNode.DeepEquals(expected, result.Messages), result.Messages.ToJsonString());

        // Each request: the declared tools, greedy, the per-step token limit, and the messages so far.
        Assert.Equal(2, model.Requests.Count);
        foreach (var request in model.Requests)
        {
            Assert.True(JsonNode.DeepEquals(Toolbox.CreateDefault().Declarations(), request.Tools), request.Tools.ToJsonString());
            Assert.Equal(384, request.MaxTokens);
            Assert.Equal(0f, request.Options.Temperature);
        }
        Assert.True(JsonNode.DeepEquals(new JsonArray(expected[0]!.DeepClone()), model.Requests[0].Messages));
        Assert.True(JsonNode.DeepEquals(new JsonArray(expected[0]!.DeepClone(), expected[1]!.DeepClone(), expected[2]!.DeepClone()), model.Requests[1].Messages));
    }

    [Fact]
    public async Task Malformed_arguments_and_unknown_tools_are_answered_with_errors_not_run()
    {
        var model = new ScriptedModel(
            new ScriptedStep("", "", [
                ("memory", """{"action":"write","key":"a",""", "arguments are not valid JSON"),
                ("web_search", """{"q":"x"}""", null),
                ("memory", """{"action":"list"}""", null),
            ]),
            new ScriptedStep("", "done", []));
        var (events, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions()), Task("note a=1"));

        Assert.Equal((3, 2), (result.ToolCalls, result.MalformedCalls));
        var returned = events.OfType<AgentEvent.ToolReturned>().ToArray();
        Assert.Equal(3, returned.Length);
        Assert.True(returned[0].IsError);
        Assert.StartsWith("error: malformed call to 'memory': arguments are not valid JSON", returned[0].Content);
        Assert.True(returned[1].IsError);
        Assert.StartsWith("error: unknown tool 'web_search'", returned[1].Content);
        Assert.Contains("calculator", returned[1].Content);
        // The malformed write did not run: the scratchpad is still empty.
        Assert.Equal(new AgentEvent.ToolReturned("functions.memory:2", "memory", "(empty)", false), returned[2] with { Elapsed = TimeSpan.Zero });

        var tools = result.Messages.Skip(2).Take(3).Select(m => m!["content"]!.GetValue<string>()).ToArray();
        Assert.Equal(returned.Select(r => r.Content), tools);
        Assert.Equal(new[] { "functions.memory:0", "functions.web_search:1", "functions.memory:2" },
            result.Messages[1]!["tool_calls"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()));
        Assert.Equal("done", result.FinalAnswer);
        // The model saw the error messages in its next step.
        Assert.Equal(5, model.Requests[1].Messages.Count);
    }

    [Fact]
    public async Task A_call_cut_off_by_the_token_limit_is_malformed_and_the_run_goes_on()
    {
        var model = new ScriptedModel(
            new ScriptedStep("", "", [("calculator", """{"expression":"1+""", "the call was not terminated")], Finish: ChatFinishReason.Length),
            new ScriptedStep("", "2", []));
        var (_, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions()), Task("1+1?"));
        Assert.Equal((1, 1, AgentResult.Answer), (result.ToolCalls, result.MalformedCalls, result.StopReason));
        Assert.StartsWith("error: malformed call to 'calculator'", result.Messages[2]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Stops_at_max_steps()
    {
        var model = new ScriptedModel((_, _) => new ScriptedStep("", "", [("calculator", """{"expression":"1+1"}""", null)]));
        var (events, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), new AgentOptions { MaxSteps = 3 }), Task("loop"));
        Assert.Equal(AgentResult.MaxSteps, result.StopReason);
        Assert.Null(result.FinalAnswer);
        Assert.Equal((3, 3, 0), (result.Steps, result.ToolCalls, result.MalformedCalls));
        Assert.Equal(3, model.Requests.Count);
        Assert.Equal(7, result.Messages.Count);
        Assert.Equal(3, events.OfType<AgentEvent.ToolReturned>().Count());
    }

    [Fact]
    public async Task Stops_when_a_step_hits_the_token_limit_without_a_call()
    {
        var model = new ScriptedModel(new ScriptedStep("thinking forever", "", [], Finish: ChatFinishReason.Length, Tokens: 384));
        var (_, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions()), Task("?"));
        Assert.Equal(AgentResult.Length, result.StopReason);
        Assert.Null(result.FinalAnswer);
        Assert.Equal((1, 384L), (result.Steps, result.GeneratedTokens));
        Assert.Equal("thinking forever", result.Messages[1]!["reasoning_content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Stops_at_the_token_budget_and_caps_the_last_step()
    {
        var model = new ScriptedModel((_, r) => new ScriptedStep("", "", [("calculator", """{"expression":"1+1"}""", null)], Tokens: Math.Min(100, r.MaxTokens)));
        var options = new AgentOptions { TokenBudget = 250, MaxTokensPerStep = 100 };
        var (_, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), options), Task("loop"));
        Assert.Equal(AgentResult.TokenBudget, result.StopReason);
        Assert.Equal((3, 250L), (result.Steps, result.GeneratedTokens));
        Assert.Equal(new[] { 100, 100, 50 }, model.Requests.Select(r => r.MaxTokens));
    }

    [Fact]
    public async Task Each_step_sees_exactly_the_context_window_of_the_messages_so_far()
    {
        var window = new ContextWindow(4);
        var model = new ScriptedModel((i, _) => i < 13
            ? new ScriptedStep($"step {i}", "", [("memory", $$"""{"action":"write","key":"k{{i}}","value":"{{i}}"}""", null)])
            : new ScriptedStep("done", "13 notes", []));
        JsonArray conversation =
        [
            new JsonObject { ["role"] = "system", ["content"] = "be brief" },
            new JsonObject { ["role"] = "user", ["content"] = "hi" },
            new JsonObject { ["role"] = "assistant", ["content"] = "hello" },
            new JsonObject { ["role"] = "user", ["content"] = "write 13 notes" },
        ];
        var (_, result) = await Run(new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), new AgentOptions { Window = window }), conversation);
        Assert.Equal(14, result.Steps);
        Assert.Equal(4 + 13 * 2 + 1, result.Messages.Count);
        for (int i = 0; i < model.Requests.Count; i++)
        {
            var soFar = new JsonArray(result.Messages.Take(4 + 2 * i).Select(m => m!.DeepClone()).ToArray());
            Assert.True(JsonNode.DeepEquals(window.Visible(soFar), model.Requests[i].Messages), $"step {i}");
            int visibleSteps = model.Requests[i].Messages.Count(m => m!["role"]!.GetValue<string>() == "assistant") - 1; // minus the earlier turn's
            Assert.Equal(i - window.FirstVisibleStep(i), visibleSteps);
        }
        // Step 9 sees steps 4..8 only (the first chunk was dropped), after the whole prefix.
        var step9 = model.Requests[9].Messages;
        Assert.Equal("write 13 notes", step9[3]!["content"]!.GetValue<string>());
        Assert.Equal("step 4", step9[4]!["reasoning_content"]!.GetValue<string>());
        // The full conversation keeps everything, and call ids count the calls of this task.
        Assert.Equal("functions.memory:12", result.Messages[^3]!["tool_calls"]![0]!["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cancellation_stops_the_run()
    {
        using var cts = new CancellationTokenSource();
        var model = new ScriptedModel((_, _) => new ScriptedStep("", "", [("calculator", """{"expression":"1+1"}""", null)]))
        {
            BeforeStep = i => { if (i == 2) cts.Cancel(); },
        };
        var runner = new AgentRunner(model, Toolbox.CreateDefault().AsFunctions());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runner.RunToEndAsync(Task("loop"), cts.Token));
        Assert.Equal(3, model.Requests.Count);
    }

    [Fact]
    public void Rejects_bad_options()
    {
        var model = new ScriptedModel();
        Assert.Throws<ArgumentException>(() => new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), new AgentOptions { MaxSteps = 0 }));
        Assert.Throws<ArgumentException>(() => new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), new AgentOptions { TokenBudget = 0 }));
    }
}
