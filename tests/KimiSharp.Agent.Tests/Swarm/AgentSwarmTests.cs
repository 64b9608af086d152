using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Swarm;

public sealed class AgentSwarmTests
{
    /// <summary>A tool that takes a fixed time and counts how many of its calls overlap.</summary>
    private sealed class SleepTool
    {
        private int _active;
        public int Peak;
        public int Calls;
        /// <summary>When set, each call waits (up to 3 s) until this many calls are running at once.</summary>
        public int WaitForCompany;
        private readonly TaskCompletionSource _company = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>Calls wait for this before they sleep (open unless a test closes it).</summary>
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public bool Gated;

        public AIFunction Function => AIFunctionFactory.Create(async (int ms, CancellationToken ct) =>
        {
            int now = Interlocked.Increment(ref _active);
            Interlocked.Increment(ref Calls);
            int peak;
            while ((peak = Volatile.Read(ref Peak)) < now && Interlocked.CompareExchange(ref Peak, now, peak) != peak) { }
            try
            {
                if (WaitForCompany > 0)
                {
                    if (now >= WaitForCompany) _company.TrySetResult();
                    await _company.Task.WaitAsync(TimeSpan.FromSeconds(3), ct).ContinueWith(_ => { }, TaskScheduler.Default);
                }
                if (Gated) await Gate.Task.WaitAsync(ct);
                await Task.Delay(ms, ct);
                return "slept " + ms + " ms";
            }
            finally { Interlocked.Decrement(ref _active); }
        }, "sleep", "Waits the given milliseconds.");
    }

    private static AgentSwarm NewSwarm(IChatClient model, Func<IReadOnlyList<AIFunction>> tools, int limit = 100, Action<SwarmEvent>? onEvent = null,
        string? sessions = null) => new(new SwarmOptions
        {
            Model = model, CreateTools = tools, MaxConcurrency = limit, OnEvent = onEvent, SessionsDirectory = sessions,
            AgentOptions = new AgentOptions { Window = ContextWindow.Unlimited },
        });

    private static async Task<(string Content, bool IsError)> Invoke(AIFunction tool, string argumentsJson, CancellationToken ct = default)
    {
        var arguments = new AIFunctionArguments();
        using (var doc = JsonDocument.Parse(argumentsJson))
            foreach (var p in doc.RootElement.EnumerateObject()) arguments[p.Name] = p.Value.Clone();
        var result = await ((IToolResultFunction)tool).InvokeForResultAsync(arguments, ct);
        return (result.Content, result.IsError);
    }

    private static string Tasks(IEnumerable<string> tasks, string extra = "") =>
        new JsonObject { ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode)JsonNode.Parse($$"""{"task":{{JsonSerializer.Serialize(t)}}{{extra}}}""")!).ToArray()) }.ToJsonString();

    /// <summary>Each sub-agent sleeps once, then answers with its task.</summary>
    private static SwarmTestModel SleepThenAnswer(int ms) => new(r => r.Step == 0
        ? SwarmTestModel.Call("sleep", $$"""{"ms":{{ms}}}""")
        : SwarmTestModel.Answer("done: " + r.Task));

    private static JsonArray Reports(string content) => JsonNode.Parse(content)!["reports"]!.AsArray();

    [Fact]
    public async Task Ten_sub_agents_run_at_once_and_finish_in_far_less_than_ten_times_one()
    {
        var sleep = new SleepTool { WaitForCompany = 10 };
        await using var swarm = NewSwarm(SleepThenAnswer(150), () => [sleep.Function]);
        var clock = Stopwatch.StartNew();
        var (content, isError) = await Invoke(swarm.SpawnTool, Tasks(Enumerable.Range(1, 10).Select(i => $"job {i}")));
        clock.Stop();

        Assert.False(isError, content);
        var reports = Reports(content);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => $"done: job {i}"), reports.Select(r => r!["answer"]!.GetValue<string>()));
        Assert.All(reports, r => Assert.Equal("completed", r!["status"]!.GetValue<string>()));
        Assert.Equal(10, sleep.Peak);
        // One after another would take at least 10 × 150 ms (and, each waiting for the others in vain, 10 × 3 s).
        Assert.True(clock.ElapsedMilliseconds < 1400, $"took {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task The_concurrency_limit_holds_the_rest_back()
    {
        var sleep = new SleepTool();
        await using var swarm = NewSwarm(SleepThenAnswer(80), () => [sleep.Function], limit: 3);
        var (content, _) = await Invoke(swarm.SpawnTool, Tasks(Enumerable.Range(1, 9).Select(i => $"job {i}")));
        Assert.Equal(9, Reports(content).Count(r => r!["status"]!.GetValue<string>() == "completed"));
        Assert.Equal(9, sleep.Calls);
        Assert.Equal(3, sleep.Peak);
    }

    [Fact]
    public async Task A_sub_agent_sees_only_its_task_and_only_reports_reach_the_orchestrator()
    {
        const string secret = "ORCHESTRATOR-SECRET-7731";
        var subModel = new SwarmTestModel(r => r.Step == 0
            ? SwarmTestModel.Call("lookup", """{"entity":"Fengard","attribute":"population"}""")
            : SwarmTestModel.Answer("REPORT(" + r.Task + ")"));
        var created = new ConcurrentBag<object>();
        await using var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = subModel,
            CreateTools = () =>
            {
                var tools = Toolbox.CreateDefault().AsFunctions();
                foreach (var t in tools) created.Add(t.Tool);
                return tools;
            },
            AgentOptions = new AgentOptions { Window = ContextWindow.Unlimited },
        });
        var orchestratorModel = new SwarmTestModel(r => r.Step == 0
            ? SwarmTestModel.Call(AgentSwarm.SpawnToolName, """{"tasks":[{"task":"alpha task","instructions":"You are alpha.","tools":["lookup"]},{"task":"beta task"}]}""")
            : SwarmTestModel.Answer("combined"));
        var orchestrator = new AgentRunner(orchestratorModel, swarm.Tools,
            new AgentOptions { Window = ContextWindow.Unlimited });
        var conversation = new JsonArray(AgentMessages.System("Orchestrate. " + secret), AgentMessages.User("Do alpha and beta. " + secret));
        AgentResult? result = null;
        await foreach (var e in swarm.Observe(orchestrator.RunAsync(conversation)))
            if (e is AgentEvent.Finished f) result = f.Result;

        Assert.Equal("combined", result!.FinalAnswer);
        var byTask = subModel.Requests.GroupBy(r => r.Task).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(["alpha task", "beta task"], byTask.Keys.Order());
        // Alpha's first request: its instructions and its task, nothing else; its declared tools: only lookup.
        var alphaFirst = byTask["alpha task"].Single(r => r.Step == 0);
        Assert.True(JsonNode.DeepEquals(new JsonArray(AgentMessages.System("You are alpha."), AgentMessages.User("alpha task")), alphaFirst.Messages),
            alphaFirst.Messages.ToJsonString());
        Assert.Equal(["lookup"], alphaFirst.ToolNames);
        var betaFirst = byTask["beta task"].Single(r => r.Step == 0);
        Assert.True(JsonNode.DeepEquals(new JsonArray(AgentMessages.User("beta task")), betaFirst.Messages));
        Assert.Equal(Toolbox.CreateDefault().Tools.Select(t => t.Name), betaFirst.ToolNames);
        foreach (var request in subModel.Requests)
        {
            string seen = request.Messages.ToJsonString();
            Assert.DoesNotContain(secret, seen);
            Assert.DoesNotContain(request.Task == "alpha task" ? "beta" : "alpha", seen);
        }
        // Each sub-agent had fresh tool instances (5 per set: one set for the names, one per sub-agent).
        Assert.Equal(15, created.Distinct().Count());

        // The orchestrator's second step saw one tool result: the two reports, without the sub-agents' own tool results.
        var second = orchestratorModel.Requests.Single(r => r.Step == 1);
        string spawnResult = second.LastToolResult;
        var reports = Reports(spawnResult);
        Assert.Equal(["REPORT(alpha task)", "REPORT(beta task)"], reports.Select(r => r!["answer"]!.GetValue<string>()));
        string fengard = subModel.Requests.First(r => r.Step == 1).LastToolResult;
        Assert.DoesNotContain(fengard, second.Messages.ToJsonString());
        Assert.Equal(3, second.Messages.Count(m => AgentMessages.Role(m) is "system" or "user" or "tool"));
    }

    [Fact]
    public async Task Sub_agents_do_not_share_a_memory_scratchpad()
    {
        var wrote = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var model = new SwarmTestModel(async (r, ct) =>
        {
            if (r.Task == "writer")
            {
                if (r.Step == 0) return SwarmTestModel.Call("memory", """{"action":"write","key":"secret","value":"42"}""");
                wrote.TrySetResult();
                return SwarmTestModel.Answer("written");
            }
            if (r.Step == 0)
            {
                await wrote.Task.WaitAsync(TimeSpan.FromSeconds(5), ct);
                return SwarmTestModel.Call("memory", """{"action":"list"}""");
            }
            return SwarmTestModel.Answer("notes: " + r.LastToolResult);
        });
        await using var swarm = NewSwarm(model, () => Toolbox.CreateDefault().AsFunctions());
        var (content, _) = await Invoke(swarm.SpawnTool, Tasks(["writer", "reader"]));
        Assert.Equal(["written", "notes: (empty)"], Reports(content).Select(r => r!["answer"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_crashing_and_a_hanging_sub_agent_yield_error_reports_within_their_limits_while_the_others_answer()
    {
        var model = new SwarmTestModel(async (r, ct) =>
        {
            switch (r.Task)
            {
                case "crash": throw new InvalidOperationException("the model fell over");
                case "hang": await Task.Delay(Timeout.Infinite, ct); break;
                // Ignores cancellation altogether: the swarm must not wait for it.
                case "deaf": await Task.Delay(TimeSpan.FromSeconds(6), CancellationToken.None); break;
                case "loop": return SwarmTestModel.Call("sleep", """{"ms":1}""");
            }
            return r.Step == 0 ? SwarmTestModel.Call("sleep", """{"ms":20}""") : SwarmTestModel.Answer("ok: " + r.Task);
        });
        var sleep = new SleepTool();
        await using var swarm = NewSwarm(model, () => [sleep.Function]);
        var clock = Stopwatch.StartNew();
        var (content, isError) = await Invoke(swarm.SpawnTool, """
            {"tasks":[{"task":"fine one"},{"task":"crash"},{"task":"hang","timeout_seconds":0.3},{"task":"deaf","timeout_seconds":0.3},
                      {"task":"loop","max_steps":3},{"task":"fine two"}]}
            """);
        clock.Stop();

        Assert.False(isError, content);
        var reports = Reports(content);
        Assert.Equal(["completed", "failed", "timed_out", "timed_out", "budget_exhausted", "completed"],
            reports.Select(r => r!["status"]!.GetValue<string>()));
        Assert.Equal("ok: fine one", reports[0]!["answer"]!.GetValue<string>());
        Assert.Equal("ok: fine two", reports[5]!["answer"]!.GetValue<string>());
        Assert.Contains("the model fell over", reports[1]!["error"]!.GetValue<string>());
        Assert.StartsWith("timed out after 0.3 s", reports[2]!["error"]!.GetValue<string>());
        Assert.StartsWith("timed out after 0.3 s", reports[3]!["error"]!.GetValue<string>());
        Assert.StartsWith("ran out of steps (3)", reports[4]!["error"]!.GetValue<string>());
        Assert.Equal(3, reports[4]!["steps"]!.GetValue<int>());
        // The deaf one is abandoned a second after its deadline, long before it would have answered (6 s).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Cancelling_the_orchestrator_cancels_its_sub_agents()
    {
        int started = 0, sawCancellation = 0;
        using var cts = new CancellationTokenSource();
        var subModel = new SwarmTestModel(async (r, ct) =>
        {
            Interlocked.Increment(ref started);
            try { await Task.Delay(Timeout.Infinite, ct); }
            catch (OperationCanceledException) { Interlocked.Increment(ref sawCancellation); throw; }
            return SwarmTestModel.Answer("never");
        });
        await using var swarm = NewSwarm(subModel, () => []);
        var orchestratorModel = new SwarmTestModel(r => SwarmTestModel.Call(AgentSwarm.SpawnToolName, Tasks(["a", "b", "c"])));
        var orchestrator = new AgentRunner(orchestratorModel, swarm.Tools, new AgentOptions { Window = ContextWindow.Unlimited });
        var clock = Stopwatch.StartNew();
        var run = Task.Run(async () =>
        {
            await foreach (var _ in swarm.Observe(orchestrator.RunAsync(new JsonArray(AgentMessages.User("go")), cts.Token))) { }
        });
        while (Volatile.Read(ref started) < 3 && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        // The dispatcher gives up on the spawn call at once; the sub-agents wind down right after.
        while (swarm.Finished.Count < 3 && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3));
        Assert.Equal(3, sawCancellation);
        Assert.Equal(3, swarm.Finished.Count);
        Assert.All(swarm.Finished, r => Assert.Equal(SubAgentStatus.Cancelled, r.Status));
    }

    [Fact]
    public void Critical_steps_count_each_orchestrator_step_plus_its_slowest_sub_agent()
    {
        // Step 1 spawned sub-agents of 2 and 5 steps, step 3 one of 1 step; step 2 and 4 spawned nothing.
        Assert.Equal(4 + 5 + 1, SwarmMetrics.CriticalSteps(4, [(1, 2), (1, 5), (3, 1)]));
        Assert.Equal(7, SwarmMetrics.CriticalSteps(7, []));
        var stages = SwarmMetrics.Stages([(3, 1, "agent-3"), (1, 2, "agent-1"), (1, 5, "agent-2")]);
        Assert.Equal([new SwarmStage(1, 5, "agent-2", 2), new SwarmStage(3, 1, "agent-3", 1)], stages);
        Assert.Equal(6, stages[0].CriticalSteps);
    }

    [Fact]
    public async Task The_report_measures_critical_and_total_steps_of_a_live_run()
    {
        // Sub-agent "sN" takes N steps: N-1 tool calls, then an answer.
        var subModel = new SwarmTestModel(r =>
        {
            int n = int.Parse(r.Task[1..]);
            return r.Step < n - 1 ? SwarmTestModel.Call("sleep", """{"ms":1}""") : SwarmTestModel.Answer("done " + r.Task);
        });
        var sleep = new SleepTool();
        await using var swarm = NewSwarm(subModel, () => [sleep.Function]);
        var orchestratorModel = new SwarmTestModel(r => r.Step switch
        {
            0 => SwarmTestModel.Call(AgentSwarm.SpawnToolName, Tasks(["s1", "s3"])),
            1 => SwarmTestModel.Call(AgentSwarm.SpawnToolName, Tasks(["s2"])),
            _ => SwarmTestModel.Answer("all done"),
        });
        var orchestrator = new AgentRunner(orchestratorModel, swarm.Tools, new AgentOptions { Window = ContextWindow.Unlimited });
        await foreach (var _ in swarm.Observe(orchestrator.RunAsync(new JsonArray(AgentMessages.User("go"))))) { }

        var report = swarm.Report();
        Assert.Equal(3, report.OrchestratorSteps);
        Assert.Equal(3 + 3 + 2, report.CriticalSteps);
        Assert.Equal(3 + 1 + 3 + 2, report.TotalSteps);
        Assert.Equal(2 + 0 + 2 + 1, report.ToolCalls);
        Assert.Equal(9 * 50, report.Usage.InputTokens);
        Assert.Equal([1, 1, 2], report.SubAgents.Select(a => a.Stage));
        Assert.Equal(2, report.Stages.Count);
        Assert.Equal("agent-2", report.Stages[0].SlowestAgentId);
        // Sub-agents name the orchestrator call that spawned them.
        var spawnCalls = orchestratorModel.Requests.Single(r => r.Step == 2).Messages
            .Where(m => m?["tool_calls"] is JsonArray).Select(m => m!["tool_calls"]![0]!["id"]!.GetValue<string>()).ToList();
        Assert.Equal([spawnCalls[0], spawnCalls[0], spawnCalls[1]], report.SubAgents.Select(a => a.ParentCallId));
        Assert.True(report.WallClock > TimeSpan.Zero);
    }

    [Fact]
    public async Task Background_sub_agents_return_ids_at_once_and_are_collected_later()
    {
        // The sub-agents' tool holds until the test opens the gate, so "still running" does not depend on timing.
        var sleep = new SleepTool { Gated = true };
        await using var swarm = NewSwarm(SleepThenAnswer(10), () => [sleep.Function]);
        var clock = Stopwatch.StartNew();
        var (content, isError) = await Invoke(swarm.SpawnTool, Tasks(["bg one", "bg two"], ""","run_in_background":true"""));
        Assert.False(isError, content);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"spawning took {clock.ElapsedMilliseconds} ms");
        var started = JsonNode.Parse(content)!["background"]!.AsArray().Select(b => b!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(["agent-1", "agent-2"], started);
        Assert.Null(JsonNode.Parse(content)!["reports"]);

        var (early, _) = await Invoke(swarm.CollectTool, """{"wait":false}""");
        Assert.Equal(started, JsonNode.Parse(early)!["running"]!.AsArray().Select(i => i!.GetValue<string>()));
        Assert.Empty(Reports(early));
        sleep.Gate.SetResult();

        var (late, _) = await Invoke(swarm.CollectTool, """{}""");
        Assert.Equal(["done: bg one", "done: bg two"], Reports(late).Select(r => r!["answer"]!.GetValue<string>()));
        var (again, _) = await Invoke(swarm.CollectTool, """{"wait":false}""");
        Assert.Equal("no background sub-agents to collect", JsonNode.Parse(again)!["note"]!.GetValue<string>());
        // Named explicitly, a collected report comes back again; an unknown id is an error naming the known ones.
        var (named, _) = await Invoke(swarm.CollectTool, """{"ids":["agent-2"]}""");
        Assert.Equal("done: bg two", Reports(named).Single()!["answer"]!.GetValue<string>());
        var (unknown, unknownIsError) = await Invoke(swarm.CollectTool, """{"ids":["agent-9"]}""");
        Assert.True(unknownIsError);
        Assert.Contains("no background sub-agent 'agent-9' (known: agent-1, agent-2)", unknown);
    }

    [Fact]
    public async Task Disposing_the_swarm_cancels_background_sub_agents()
    {
        var model = new SwarmTestModel(async (r, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return SwarmTestModel.Answer("never");
        });
        var swarm = NewSwarm(model, () => []);
        await Invoke(swarm.SpawnTool, Tasks(["forever"], ""","run_in_background":true"""));
        await swarm.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(SubAgentStatus.Cancelled, Assert.Single(swarm.Finished).Status);
    }

    [Fact]
    public async Task Bad_sub_task_specs_are_refused_with_errors_naming_the_problem()
    {
        await using var swarm = NewSwarm(SleepThenAnswer(1), () => [new SleepTool().Function]);
        var (content, isError) = await Invoke(swarm.SpawnTool, """{"tasks":[{"task":"x","tools":["shell"]},{"instructions":"y"},{"task":"z","max_steps":0,"colour":"red"}]}""");
        Assert.True(isError);
        Assert.Contains("tasks[0]: unknown tool 'shell' (available: sleep)", content);
        Assert.Contains("tasks[1]: 'task' is required", content);
        Assert.Contains("tasks[2]: unknown field 'colour'", content);
        Assert.Contains("tasks[2]: 'max_steps' must be a whole number", content);
        (content, isError) = await Invoke(swarm.SpawnTool, """{"tasks":[]}""");
        Assert.True(isError);
        Assert.Contains("non-empty", content);
        Assert.Empty(swarm.Finished);

        // Through the dispatcher the schema catches it first, with the same kind of message.
        var dispatcher = new ToolDispatcher(swarm.Tools);
        var outcome = await dispatcher.DispatchAsync(AgentSwarm.SpawnToolName, """{"tasks":[{"task":"x","model":"other"}]}""", default);
        Assert.True(outcome.IsError);
        Assert.Contains("model", outcome.Content);
    }
}
