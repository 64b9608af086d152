using System.Text.Json.Nodes;
using KimiSharp.Agent.Sessions;
using KimiSharp.Agent.Swarm;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Swarm;

/// <summary>Every agent of a swarm run gets its own session, linked to its parent; the trace draws the tree and the critical path.</summary>
public sealed class SwarmSessionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kimi-swarm-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Sub_agent_sessions_link_to_the_parent_and_the_trace_draws_the_tree_and_critical_path()
    {
        // Sub-agent "sN" takes N steps (N-1 calls to echo, then an answer); "stuck" hangs until its timeout.
        var subModel = new SwarmTestModel(async (r, ct) =>
        {
            if (r.Task == "stuck") await Task.Delay(Timeout.Infinite, ct);
            int n = int.Parse(r.Task[1..]);
            return r.Step < n - 1 ? SwarmTestModel.Call("echo", $$"""{"text":"{{r.Task}}-{{r.Step}}"}""") : SwarmTestModel.Answer("report of " + r.Task);
        });
        var echo = AIFunctionFactory.Create((string text) => "echo " + text, "echo");
        await using var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = subModel, CreateTools = () => [echo], AgentOptions = new AgentOptions { Window = ContextWindow.Unlimited },
        });
        var orchestratorModel = new SwarmTestModel(r => r.Step switch
        {
            0 => SwarmTestModel.Call(AgentSwarm.SpawnToolName, """{"tasks":[{"task":"s1"},{"task":"s3"},{"task":"stuck","timeout_seconds":0.2}]}"""),
            1 => SwarmTestModel.Call(AgentSwarm.SpawnToolName, """{"tasks":[{"task":"s2"}]}"""),
            _ => SwarmTestModel.Answer("all reported"),
        });
        using var session = AgentSession.Create(_dir, new JsonObject { ["model"] = "orchestrator" });
        swarm.ParentSession = session;
        session.AddMessage(AgentMessages.User("split the work"));
        var runner = new AgentRunner(orchestratorModel, swarm.Tools, new AgentOptions { Window = ContextWindow.Unlimited });
        await foreach (var _ in session.Record(swarm.Observe(runner.RunAsync(session.Messages)))) { }

        // One file per sub-agent beside the parent, each naming the parent session and the call that spawned it.
        string folder = AgentSwarm.SubSessionsDirectory(session.Path);
        Assert.Equal(Path.Combine(_dir, session.Id + ".agents"), folder);
        var headers = Directory.GetFiles(folder, "*.jsonl").Select(f => AgentSession.ReadRecords(f).Records[0]).OrderBy(h => h["agent_id"]!.GetValue<string>()).ToList();
        Assert.Equal(["agent-1", "agent-2", "agent-3", "agent-4"], headers.Select(h => h["agent_id"]!.GetValue<string>()));
        Assert.All(headers, h => Assert.Equal(session.Id, h["parent_session"]!.GetValue<string>()));
        var spawnCalls = session.Messages.Where(m => m?["tool_calls"] is JsonArray).Select(m => m!["tool_calls"]![0]!["id"]!.GetValue<string>()).ToList();
        Assert.Equal([spawnCalls[0], spawnCalls[0], spawnCalls[0], spawnCalls[1]], headers.Select(h => h["parent_call_id"]!.GetValue<string>()));
        Assert.Equal(["s1", "s3", "stuck", "s2"], headers.Select(h => h["task"]!.GetValue<string>()));
        // Only the orchestrator's own session is a top-level session (so "latest session" never picks a sub-agent).
        Assert.Equal(session.Path, AgentSession.Latest(_dir));

        var tree = SwarmTrace.Load(session.Path);
        Assert.Equal(3, tree.Steps);
        Assert.Equal([1, 1, 1, 2], tree.Children.Select(c => c.Stage));
        Assert.Equal([1, 3, 0, 2], tree.Children.Select(c => c.Steps));
        Assert.Equal(["answer", "answer", "timed-out", "answer"], tree.Children.Select(c => c.StopReason));
        Assert.Equal(3 + 3 + 2, tree.CriticalSteps);
        Assert.Equal(tree.CriticalSteps, swarm.Report().CriticalSteps);
        Assert.Equal(swarm.Report().TotalSteps, tree.All().Sum(n => n.Steps));

        var text = new StringWriter();
        SwarmTrace.Render(session.Path, text, clip: 200);
        string trace = text.ToString();
        // Sub-agent traces are indented under the spawn call that started them, before the orchestrator's next step.
        int firstSpawnResult = trace.IndexOf("← {\"summary\"", StringComparison.Ordinal);
        int agent2 = trace.IndexOf("┌ agent-2: answer, 3 steps, 2 tool calls", StringComparison.Ordinal);
        int agent4 = trace.IndexOf("┌ agent-4: answer, 2 steps", StringComparison.Ordinal);
        int secondStep = trace.IndexOf("· step 2:", StringComparison.Ordinal);
        Assert.True(firstSpawnResult > 0 && agent2 > firstSpawnResult && agent2 < secondStep && agent4 > secondStep, trace);
        Assert.Contains("    │ ", trace);
        Assert.Contains("→ echo({\"text\":\"s3-1\"})", trace);
        Assert.Contains("┌ agent-3: timed-out, 0 steps", trace);
        Assert.Contains("run ended: timed-out — timed out after 0.2 s", trace);
        Assert.Contains("critical path: 8 critical steps (3 orchestrator steps + 3 + 2)", trace);
        Assert.Contains("step 1: 1 + 3, slowest of 3: agent-2 \"s3\"", trace);
        Assert.Contains("step 2: 1 + 2, slowest of 1: agent-4 \"s2\"", trace);
        Assert.Contains("tree totals: 9 steps, 5 tool calls", trace);
        Assert.Contains("1 sub-agent(s) without an answer", trace);
    }
}
