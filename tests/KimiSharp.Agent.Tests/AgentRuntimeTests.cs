using System.Text.Json.Nodes;
using KimiSharp.Agent.Sessions;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

/// <summary>The runtime around the loop: sessions and resume, compaction, repeated calls, retries, endpoint ids, hooks.</summary>
public sealed class AgentRuntimeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimi-sessions-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonArray Task(string prompt) => [AgentMessages.User(prompt)];

    /// <summary>A tool that counts how often it ran for each argument.</summary>
    private sealed class CountingTool
    {
        public Dictionary<int, int> Runs { get; } = [];
        public AIFunction Function => AIFunctionFactory.Create((int item) =>
        {
            Runs[item] = Runs.GetValueOrDefault(item) + 1;
            return $"item {item} done";
        }, "process", "Processes one item.");
    }

    private static ScriptedStep Calls(params int[] items) =>
        new("working", "", items.Select(i => ("process", $$"""{"item":{{i}}}""", (string?)null)).ToArray());

    [Fact]
    public async Task A_run_killed_mid_step_resumes_and_runs_each_call_exactly_once()
    {
        var tool = new CountingTool();
        ScriptedStep Script(int step) => step switch { 0 => Calls(0, 1, 2), 1 => Calls(3, 4), _ => new ScriptedStep("", "all done", []) };
        var first = new ScriptedModel((i, _) => Script(i));
        string path;
        using (var session = AgentSession.Create(_dir, new JsonObject { ["model"] = "scripted" }))
        {
            path = session.Path;
            session.AddMessage(AgentMessages.User("process items 0-4"));
            using var kill = new CancellationTokenSource();
            var runner = new AgentRunner(first, [tool.Function]);
            int results = 0;
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var e in session.Record(runner.RunAsync(session.Messages, kill.Token)))
                    if (e is AgentEvent.ToolReturned && ++results == 2) kill.Cancel(); // dies while the step's third call is pending
            });
        }
        // A process killed while writing leaves half a line.
        File.AppendAllText(path, """{"type":"tool_call","id":"functions.pro""");
        Assert.Equal(new Dictionary<int, int> { [0] = 1, [1] = 1 }, tool.Runs);

        var second = new ScriptedModel((i, _) => Script(i + 1)); // the resumed run starts at the second step
        using (var session = AgentSession.Resume(path))
        {
            Assert.Equal(4, session.Messages.Count); // user, assistant with three calls, two results
            var result = await new AgentRunner(second, [tool.Function]).RunToEndAsync(session.Messages);
            await foreach (var e in session.Record(new AgentRunner(new ScriptedModel(new ScriptedStep("", "nothing left", [])), [tool.Function])
                .RunAsync(AppendUser(session, "anything else?")))) { }
            Assert.Equal("all done", result.FinalAnswer);
        }
        Assert.Equal(Enumerable.Range(0, 5).ToDictionary(i => i, _ => 1), tool.Runs);
    }

    private static JsonArray AppendUser(AgentSession session, string text)
    {
        session.AddMessage(AgentMessages.User(text));
        return session.Messages;
    }

    [Fact]
    public async Task The_session_file_records_every_event_and_resumes_to_the_same_conversation()
    {
        var tool = new CountingTool();
        var model = new ScriptedModel(Calls(7), new ScriptedStep("done thinking", "item 7 is done", []));
        AgentResult result;
        string path;
        using (var session = AgentSession.Create(_dir, new JsonObject { ["model"] = "scripted", ["workspace"] = "/tmp/x" }))
        {
            path = session.Path;
            session.AddMessage(AgentMessages.User("process item 7"));
            result = null!;
            await foreach (var e in session.Record(new AgentRunner(model, [tool.Function]).RunAsync(session.Messages)))
                if (e is AgentEvent.Finished f) result = f.Result;
            Assert.True(JsonNode.DeepEquals(result.Messages, session.Messages));
            Assert.Equal(2, session.Totals.Steps);
            Assert.Equal(200, session.Totals.InputTokens);
            Assert.Equal(PriceTable.Moonshot.Cost(new StepUsage(200, 0, 20)), session.Totals.Cost, 12);
        }
        var (records, torn) = AgentSession.ReadRecords(path);
        Assert.False(torn);
        var types = records.Select(r => r["type"]!.GetValue<string>()).ToArray();
        Assert.Equal(new[] { "session", "message", "message", "step", "tool_call", "message", "tool_result", "message", "step", "run_end" }, types);
        Assert.Equal("/tmp/x", records[0]["workspace"]!.GetValue<string>());
        Assert.Equal("item 7 done", records[6]["content"]!.GetValue<string>());
        using (var resumed = AgentSession.Resume(path))
            Assert.True(JsonNode.DeepEquals(result.Messages, resumed.Messages));

        var text = new StringWriter();
        TraceRenderer.Render(path, text);
        string trace = text.ToString();
        Assert.Contains("▶ user: process item 7", trace);
        Assert.Contains("→ process({\"item\":7})", trace);
        Assert.Contains("← item 7 done", trace);
        Assert.Contains("answer: item 7 is done", trace);
        Assert.Contains("2 steps, 1 tool calls (0 errors)", trace);
    }

    [Fact]
    public void A_corrupt_line_before_the_end_is_an_error_naming_the_line()
    {
        string path = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllText(path, "{\"type\":\"session\",\"id\":\"x\"}\nnot json\n{\"type\":\"run_end\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => AgentSession.Resume(path));
        Assert.Contains("line 2", e.Message);
        File.WriteAllText(path, "{\"type\":\"message\"}\n");
        Assert.Contains("not a KimiSharp session", Assert.Throws<InvalidDataException>(() => AgentSession.Resume(path)).Message);
    }

    [Fact]
    public async Task Identical_repeated_calls_get_reminders_and_stop_the_run_at_twelve()
    {
        var tool = new CountingTool();
        var model = new ScriptedModel((_, _) => Calls(1));
        var events = new List<AgentEvent>();
        await foreach (var e in new AgentRunner(model, [tool.Function]).RunAsync(Task("loop"))) events.Add(e);
        var result = Assert.IsType<AgentEvent.Finished>(events[^1]).Result;
        Assert.Equal(AgentResult.RepeatedCall, result.StopReason);
        Assert.Equal(12, result.ToolCalls);
        var results = events.OfType<AgentEvent.ToolReturned>().ToArray();
        int[] reminded = results.Select((r, i) => (r, i)).Where(x => x.r.Content.Contains("identical call")).Select(x => x.i + 1).ToArray();
        Assert.Equal(new[] { 3, 5, 8 }, reminded);
        Assert.Contains(events.OfType<AgentEvent.Notice>(), n => n.Kind == "repeated-call" && n.Text.StartsWith("stopping", StringComparison.Ordinal));

        // Different arguments reset the count.
        var varied = new ScriptedModel((i, _) => i < 20 ? Calls(i % 2) : new ScriptedStep("", "ok", []));
        var variedResult = await new AgentRunner(varied, [new CountingTool().Function]).RunToEndAsync(Task("alternate"));
        Assert.Equal(AgentResult.Answer, variedResult.StopReason);
    }

    [Fact]
    public async Task Endpoint_call_ids_are_kept_and_only_missing_or_repeated_ones_are_made_up()
    {
        var ids = new[] { "call_abc123", "", "0f8fad5b-d9cb-469f-a165-70867728950e", "call_abc123" };
        var model = new ScriptedModel((i, _) => i < 4 ? Calls(i) : new ScriptedStep("", "done", [])) { CallId = (step, _, _) => ids[step] };
        var result = await new AgentRunner(model, [new CountingTool().Function]).RunToEndAsync(Task("go"));
        var callIds = result.Messages.Where(m => m?["tool_calls"] is JsonArray).Select(m => m!["tool_calls"]![0]!["id"]!.GetValue<string>()).ToArray();
        Assert.Equal(new[] { "call_abc123", "functions.process:1", "0f8fad5b-d9cb-469f-a165-70867728950e", "functions.process:3" }, callIds);
        var resultIds = result.Messages.Where(m => AgentMessages.Role(m) == "tool").Select(m => m!["tool_call_id"]!.GetValue<string>());
        Assert.Equal(callIds, resultIds);
    }

    [Fact]
    public async Task A_step_that_fails_in_transit_is_retried_and_a_rejected_one_fails_with_the_endpoints_error()
    {
        int failures = 1;
        var flaky = new ScriptedModel((i, _) => i == 0 && failures-- > 0 ? throw new HttpRequestException("connection reset") : new ScriptedStep("", "fine", []));
        var events = new List<AgentEvent>();
        await foreach (var e in new AgentRunner(flaky, [new CountingTool().Function]).RunAsync(Task("hi"))) events.Add(e);
        Assert.Equal("fine", Assert.IsType<AgentEvent.Finished>(events[^1]).Result.FinalAnswer);
        Assert.Contains(events.OfType<AgentEvent.Notice>(), n => n.Kind == "retry" && n.Text.Contains("connection reset"));

        var rejecting = new ScriptedModel((_, _) => throw new InvalidOperationException("400: thinking is enabled but reasoning_content is missing"));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => new AgentRunner(rejecting, [new CountingTool().Function]).RunToEndAsync(Task("hi")));
        Assert.Contains("reasoning_content is missing", error.Message);
        Assert.Single(rejecting.Requests);
    }

    [Fact]
    public async Task The_context_is_compacted_by_summary_before_it_fills_and_a_long_run_never_overflows()
    {
        const int context = 4096;
        int summaries = 0, workSteps = 0;
        var model = new ScriptedModel((i, request) =>
        {
            int tokens = request.Messages.ToJsonString().Length / 4;
            Assert.True(tokens < context, $"request {i} holds {tokens} tokens, over the {context}-token context");
            if (request.Options.Tools is null or { Count: 0 })
            {
                summaries++;
                return new ScriptedStep("", "Processed items so far; continue with the next one.", []);
            }
            int step = workSteps++;
            return step < 300 ? Calls(step) : new ScriptedStep("", "all 300 done", []);
        });
        var options = new AgentOptions
        {
            Window = ContextWindow.Unlimited,
            Compaction = new CompactionOptions { ContextTokens = context, ReservedTokens = 512, SummaryMaxTokens = 256 },
        };
        var events = new List<AgentEvent>();
        var bigTool = AIFunctionFactory.Create((int item) => new string('x', 400) + $" item {item}", "process", "Processes one item.");
        await foreach (var e in new AgentRunner(new UsageReportingModel(model), [bigTool], options).RunAsync(Task("process 300 items"))) events.Add(e);
        var result = Assert.IsType<AgentEvent.Finished>(events[^1]).Result;
        Assert.Equal(AgentResult.Answer, result.StopReason);
        Assert.Equal(300, result.ToolCalls);
        int compactions = events.OfType<AgentEvent.Compacted>().Count();
        Assert.True(compactions >= 10, $"{compactions} compactions");
        Assert.Equal(compactions, summaries);
        // After compaction the conversation is: the task, the summary, then the latest steps.
        var compacted = events.OfType<AgentEvent.Compacted>().Last().Messages;
        Assert.Equal("process 300 items", compacted[0]!["content"]!.GetValue<string>());
        Assert.StartsWith("[Context compacted", compacted[1]!["content"]!.GetValue<string>());
    }

    /// <summary>Reports each request's size as its input tokens, as an endpoint's usage would.</summary>
    private sealed class UsageReportingModel(ScriptedModel inner) : DelegatingChatClient(inner)
    {
        public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            long input = ScriptedModel.ToJson(list).ToJsonString().Length / 4;
            await foreach (var update in base.GetStreamingResponseAsync(list, options, cancellationToken))
            {
                if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage) usage.Details.InputTokenCount = input;
                yield return update;
            }
        }
    }

    [Fact]
    public async Task A_stop_hook_can_send_the_model_back_to_work()
    {
        var model = new ScriptedModel((i, _) => new ScriptedStep("", i == 0 ? "done (untested)" : "done, tests pass", []));
        int hooks = 0;
        var options = new AgentOptions
        {
            OnStop = (result, _) => ValueTask.FromResult(hooks++ == 0 ? "The tests were not run. Run them before you finish." : null),
        };
        var result = await new AgentRunner(model, [new CountingTool().Function], options).RunToEndAsync(Task("fix it"));
        Assert.Equal("done, tests pass", result.FinalAnswer);
        Assert.Equal(2, result.Steps);
        Assert.Equal("The tests were not run. Run them before you finish.", result.Messages[2]!["content"]!.GetValue<string>());
    }

    [Fact]
    public void Price_tables_load_from_json_with_clear_errors()
    {
        string path = Path.Combine(_dir, "prices.json");
        File.WriteAllText(path, """{"input_cache_hit": 0.1, "input_cache_miss": 1, "output": 4, "per_search": 0.01}""");
        var table = PriceTable.Load(path);
        Assert.Equal((0.1 * 50 + 1 * 50 + 4 * 10) / 1e6, table.Cost(new StepUsage(100, 50, 10)), 12);
        File.WriteAllText(path, """{"input_cache_hit": 0.1, "input_cache_miss": 1, "output": 4, "outptu": 3}""");
        Assert.Contains("unknown key 'outptu'", Assert.Throws<InvalidDataException>(() => PriceTable.Load(path)).Message);
        File.WriteAllText(path, """{"input_cache_hit": -1, "input_cache_miss": 1, "output": 4}""");
        Assert.Contains("'input_cache_hit' must be a non-negative number", Assert.Throws<InvalidDataException>(() => PriceTable.Load(path)).Message);
    }
}
