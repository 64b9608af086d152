using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using KimiSharp.Synthesis.Evaluation;
using Microsoft.Extensions.AI;

namespace KimiSharp.Synthesis.Tests;

/// <summary>
/// The wide suite's arithmetic on a scripted model: the tasks are the suite's own held-out ones; the single agent
/// looks each city up in its own step; the orchestrator of the sum task spawns one sub-agent too many and ignores its
/// report, the orchestrator of the max task collapses into one sub-agent.
/// </summary>
public sealed class WideEvaluationTests
{
    /// <summary>Requests that offer spawn_agents go to the orchestrator's script; the rest (single agent, sub-agents) to the other.</summary>
    private sealed class ByTools(IChatClient orchestrator, IChatClient others) : IChatClient
    {
        private IChatClient Pick(ChatOptions? options) =>
            options?.Tools?.Any(t => t.Name == AgentSwarm.SpawnToolName) == true ? orchestrator : others;

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            Pick(options).GetResponseAsync(messages, options, cancellationToken);

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            Pick(options).GetStreamingResponseAsync(messages, options, cancellationToken);

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }

    /// <summary>The single agent's script: one lookup per step, then the sum with the calculator (or the answer straight away for a max).</summary>
    private static JsonArray SingleAgent(WideTask task)
    {
        var b = new TrajectoryBuilder(Toolbox.CreateDefault());
        b.User(task.Prompt);
        var values = task.Cities.Select(c => b.Step($"Look up {c}.", ("lookup", new JsonObject { ["entity"] = c, ["attribute"] = task.Attribute }))[0].Content).ToList();
        if (task.Aggregate == WideAggregate.Sum)
        {
            string total = b.Step("Add.", ("calculator", new JsonObject { ["expression"] = string.Join("+", values) }))[0].Content;
            b.Final("done", $"The total is {total}.");
        }
        else b.Final("done", $"{task.Expected} is highest.");
        return b.Messages;
    }

    [Fact]
    public async Task Metrics_of_both_modes_add_up_on_a_scripted_model()
    {
        // The replay counts steps from the request, so it needs every step in context (the suite passes these settings on).
        var options = new WideEvalOptions { Items = [10], TasksPerSize = 2, Agent = new AgentOptions { Window = ContextWindow.Unlimited } };
        // The suite's own tasks: the same generator, seed and aggregates it uses.
        var generator = new WideTaskGenerator(options.Seed + 10, heldOut: true);
        var sum = generator.NextTask(10, WideAggregate.Sum);
        var max = generator.NextTask(10, WideAggregate.Max);

        var orchestrators = new TeacherReplayClient();
        var others = new TeacherReplayClient();
        others.Add(SingleAgent(sum));
        others.Add(SingleAgent(max));

        // Sum: the teacher's two chunks plus a third sub-agent whose report is never used.
        var chunks = sum.Chunks.Select(c => WideTaskGenerator.SubAgent(sum.Aggregate, sum.Attribute, c)).ToList();
        var extra = WideTaskGenerator.SubAgent(sum.Aggregate, sum.Attribute, [sum.Cities[0], sum.Cities[1]]);
        foreach (var s in chunks.Append(extra)) others.Add(s.Messages);
        orchestrators.Add(Scripted.Conversation(sum.Prompt,
            Scripted.Spawn(chunks[0].Task.Prompt, chunks[1].Task.Prompt, extra.Task.Prompt),
            Scripted.Call("add", ("calculator", new JsonObject { ["expression"] = $"{Scripted.Reported(chunks[0])}+{Scripted.Reported(chunks[1])}" })),
            Scripted.Answer("done", $"The total is {sum.Expected}.")));

        // Max: everything in one sub-agent (serial collapse), answered right.
        var whole = WideTaskGenerator.SubAgent(max.Aggregate, max.Attribute, max.Cities);
        others.Add(whole.Messages);
        orchestrators.Add(Scripted.Conversation(max.Prompt, Scripted.Spawn(whole.Task.Prompt),
            Scripted.Answer($"One report: {Scripted.Reported(whole)}.", $"{max.Expected} is highest.")));

        var runs = new List<WideRun>();
        var report = await WideEvaluation.RunAsync(new ByTools(orchestrators, others), "scripted", options, progress: new SyncProgress(runs.Add));

        Assert.Equal(4, runs.Count);
        Assert.Equal([sum.Prompt, sum.Prompt, max.Prompt, max.Prompt], runs.Select(r => r.Task.Prompt));
        var single = Assert.Single(report.Rows, r => r.Mode == WideEvalReport.Single);
        var swarm = Assert.Single(report.Rows, r => r.Mode == WideEvalReport.Swarm);

        // Single agent: 10 lookup steps + calculator + answer = 12 for the sum, 10 + answer = 11 for the max.
        Assert.Equal((10, 2, 2), (single.Items, single.Tasks, single.Successes));
        Assert.Equal(11.5, single.AvgCriticalSteps, 10);
        Assert.Equal(11.5, single.AvgTotalSteps, 10);
        Assert.Equal((0, 0, 0), (single.SerialCollapses, single.SubAgents, single.UnusedReports));

        // Swarm: sum = 3 orchestrator steps + slowest sub-agent 3 = 6 critical, 3 + 3·3 = 12 total;
        // max = 2 + 2 = 4 critical and total (one sub-agent: lookups, then the answer).
        Assert.Equal(2, swarm.Successes);
        Assert.Equal(5, swarm.AvgCriticalSteps, 10);
        Assert.Equal(8, swarm.AvgTotalSteps, 10);
        Assert.Equal(1, swarm.SerialCollapses);
        Assert.Equal(0.5, swarm.SerialCollapseRate, 10);
        Assert.Equal(4, swarm.SubAgents);
        Assert.Equal(1, swarm.UnusedReports);
        Assert.Equal(0.25, swarm.SpuriousSpawnRate, 10);
        Assert.All(runs, r => Assert.True(r.WallClock > TimeSpan.Zero));

        string markdown = report.ToMarkdown();
        Assert.Contains("| 10 | single | 2 | 2/2 (100%) | 11.5 | 11.5 |", markdown);
        Assert.Contains("| 10 | swarm | 2 | 2/2 (100%) | 5.0 | 8.0 |", markdown);
        Assert.Contains("| 1/2 (50%) | 4 | 1/4 (25%) |", markdown);
        var json = JsonNode.Parse(report.ToJson())!;
        Assert.Equal("wide", json["suite"]!.GetValue<string>());
        Assert.Equal(0.25, json["rows"]![1]!["spurious_spawn_rate"]!.GetValue<double>(), 10);
    }

    [Fact]
    public async Task A_wrong_answer_fails_and_bad_sizes_are_refused()
    {
        var options = new WideEvalOptions { Items = [5], TasksPerSize = 1 };
        var task = new WideTaskGenerator(options.Seed + 5, heldOut: true).NextTask(5, WideAggregate.Sum);
        var others = new TeacherReplayClient();
        others.Add(Scripted.Conversation(task.Prompt, Scripted.Answer("guess", "The total is 1.")));
        var orchestrators = new TeacherReplayClient();
        orchestrators.Add(Scripted.Conversation(task.Prompt, Scripted.Answer("guess", "The total is 2.")));
        var report = await WideEvaluation.RunAsync(new ByTools(orchestrators, others), "scripted", options);
        Assert.All(report.Rows, r => Assert.Equal(0, r.Successes));
        var swarm = report.Rows.Single(r => r.Mode == WideEvalReport.Swarm);
        // No spawn at all on a wide task is serial collapse too; with no sub-agents the spurious rate is 0, not NaN.
        Assert.Equal((1, 0, 0.0), (swarm.SerialCollapses, swarm.SubAgents, swarm.SpuriousSpawnRate));
        Assert.Equal(1, swarm.AvgCriticalSteps);

        await Assert.ThrowsAsync<ArgumentException>(() => WideEvaluation.RunAsync(others, "x", new WideEvalOptions { Items = [101] }));
        await Assert.ThrowsAsync<ArgumentException>(() => WideEvaluation.RunAsync(others, "x", new WideEvalOptions { TasksPerSize = 0 }));
    }

    /// <summary>A model whose every request is over its context limit (as the in-process engine refuses one).</summary>
    private sealed class OutOfContext : IChatClient
    {
        private static KimiSharp.Model.Layers.ContextLengthExceededException Error() =>
            new("the prompt has 8239 tokens; the model's context limit is 8192 (max_position_embeddings), leaving no room to generate", 8239, 8192);

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw Error();

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw Error();

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }

    [Fact]
    public async Task A_run_that_outgrows_the_context_is_a_failed_task_and_the_evaluation_goes_on()
    {
        var runs = new List<WideRun>();
        var report = await WideEvaluation.RunAsync(new OutOfContext(), "small", new WideEvalOptions { Items = [5, 10], TasksPerSize = 2 },
            progress: new SyncProgress(runs.Add));

        Assert.Equal(8, runs.Count); // 2 sizes × 2 tasks × (single, swarm)
        Assert.All(runs, r =>
        {
            Assert.False(r.Success);
            Assert.Equal(WideEvaluation.ContextLimit, r.Result.StopReason);
            Assert.Contains("context limit is 8192", r.Result.Messages[^1]!["content"]!.GetValue<string>());
        });
        Assert.All(report.Rows, r => Assert.Equal((2, 0), (r.Tasks, r.Successes)));
    }

    private sealed class SyncProgress(Action<WideRun> report) : IProgress<WideRun>
    {
        public void Report(WideRun value) => report(value);
    }
}
