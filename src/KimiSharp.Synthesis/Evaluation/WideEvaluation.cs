using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Model.Layers;
using Microsoft.Extensions.AI;

namespace KimiSharp.Synthesis.Evaluation;

/// <summary>Settings of the wide-task suite.</summary>
public sealed record WideEvalOptions
{
    /// <summary>Cities per task, one group of tasks each.</summary>
    public IReadOnlyList<int> Items { get; init; } = [10, 40, 100];

    /// <summary>Held-out tasks per size; sums and maxima alternate.</summary>
    public int TasksPerSize { get; init; } = 4;

    /// <summary>Tasks of size n come from <c>new WideTaskGenerator(Seed + n, heldOut: true)</c>.</summary>
    public int Seed { get; init; } = 9100;

    /// <summary>The agent settings of both runs (sampling, window); step and token limits are set per task size.</summary>
    public AgentOptions Agent { get; init; } = new();

    /// <summary>Sub-agents running at once at most.</summary>
    public int MaxConcurrency { get; init; } = 100;

    /// <summary>Also run each task by the single agent (RL's before/after check runs the orchestrator alone).</summary>
    public bool SingleAgent { get; init; } = true;

    public void Validate()
    {
        if (Items.Count == 0) throw new ArgumentException("the wide suite needs at least one task size");
        foreach (int n in Items)
            if (n < WideTasks.MinItems || n > WideTasks.MaxItems)
                throw new ArgumentException($"task sizes are {WideTasks.MinItems} to {WideTasks.MaxItems} cities, got {n}");
        if (TasksPerSize < 1) throw new ArgumentException("at least one task per size");
        if (MaxConcurrency < 1) throw new ArgumentException("at least one sub-agent at a time");
    }
}

/// <summary>One task run one way. Single-agent runs have no sub-agents; their critical steps are their steps.</summary>
public sealed record WideRun(int Items, string Mode, WideTask Task, bool Success, int CriticalSteps, int TotalSteps, TimeSpan WallClock,
    int SubAgents, int UnusedReports, bool SerialCollapse, AgentResult Result);

/// <summary>One row of the table: one task size run one way.</summary>
public sealed record WideEvalRow(int Items, string Mode, int Tasks, int Successes, double AvgCriticalSteps, double AvgTotalSteps, double AvgSeconds,
    int SerialCollapses, int SubAgents, int UnusedReports)
{
    public double SuccessRate => Tasks == 0 ? 0 : (double)Successes / Tasks;

    /// <summary>Runs that spawned one sub-agent or none, over the runs (swarm rows only).</summary>
    public double SerialCollapseRate => Tasks == 0 ? 0 : (double)SerialCollapses / Tasks;

    /// <summary>Sub-agents whose reports went unused, over the sub-agents spawned (0 when none were).</summary>
    public double SpuriousSpawnRate => SubAgents == 0 ? 0 : (double)UnusedReports / SubAgents;
}

/// <summary>The wide suite's report: per size, the single agent and the swarm orchestrator side by side.</summary>
public sealed record WideEvalReport(string Model, int Seed, IReadOnlyList<WideEvalRow> Rows)
{
    public const string Single = "single", Swarm = "swarm";

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Wide tasks (held-out cities) — {Model} (seed {Seed}): single agent (no spawn tool) vs orchestrator with the swarm");
        sb.AppendLine();
        sb.AppendLine("| items | mode | tasks | success | avg critical steps | avg total steps | avg wall-clock s | serial collapse | sub-agents | spurious spawns |");
        sb.AppendLine("|------:|:-----|------:|--------:|-------------------:|----------------:|-----------------:|----------------:|-----------:|----------------:|");
        foreach (var r in Rows)
        {
            bool swarm = r.Mode == Swarm;
            string spawning = swarm
                ? string.Create(CultureInfo.InvariantCulture, $"{r.SerialCollapses}/{r.Tasks} ({r.SerialCollapseRate * 100:F0}%) | {r.SubAgents} | {r.UnusedReports}/{r.SubAgents} ({r.SpuriousSpawnRate * 100:F0}%) |")
                : "— | — | — |";
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Items} | {r.Mode} | {r.Tasks} | {r.Successes}/{r.Tasks} ({r.SuccessRate * 100:F0}%) | {r.AvgCriticalSteps:F1} | {r.AvgTotalSteps:F1} | {r.AvgSeconds:F2} | {spawning}");
        }
        sb.AppendLine();
        sb.AppendLine("Critical steps: Σ over orchestrator steps of (1 + the slowest sub-agent it spawned); a single agent's are its steps. " +
            "Serial collapse: a swarm run that spawned one sub-agent or none. Spurious spawn: a sub-agent whose report's number never appears in a later orchestrator call, reasoning or answer.");
        return sb.ToString();
    }

    public string ToJson()
    {
        var rows = new JsonArray();
        foreach (var r in Rows)
            rows.Add(new JsonObject
            {
                ["items"] = r.Items, ["mode"] = r.Mode, ["tasks"] = r.Tasks, ["successes"] = r.Successes, ["success_rate"] = r.SuccessRate,
                ["avg_critical_steps"] = r.AvgCriticalSteps, ["avg_total_steps"] = r.AvgTotalSteps, ["avg_seconds"] = r.AvgSeconds,
                ["serial_collapses"] = r.SerialCollapses, ["serial_collapse_rate"] = r.SerialCollapseRate,
                ["sub_agents"] = r.SubAgents, ["unused_reports"] = r.UnusedReports, ["spurious_spawn_rate"] = r.SpuriousSpawnRate,
            });
        return new JsonObject { ["suite"] = "wide", ["model"] = Model, ["seed"] = Seed, ["rows"] = rows }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>
/// Held-out wide tasks (cities never in wide training data) run two ways on the same model: (a) the single agent with
/// the default toolbox and no spawn tool; (b) the orchestrator with <c>spawn_agents</c>, its sub-agents on the
/// sub-agent model. A run succeeds when it answers and the answer states the total (or names the city).
/// </summary>
public static class WideEvaluation
{
    public static async Task<WideEvalReport> RunAsync(IChatClient model, string modelName, WideEvalOptions options, IChatClient? subAgentModel = null,
        IProgress<WideRun>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var rows = new List<WideEvalRow>();
        foreach (int items in options.Items)
        {
            var generator = new WideTaskGenerator(options.Seed + items, heldOut: true);
            var single = new List<WideRun>();
            var swarm = new List<WideRun>();
            for (int i = 0; i < options.TasksPerSize; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var task = generator.NextTask(items, i % 2 == 0 ? WideAggregate.Sum : WideAggregate.Max);

                if (options.SingleAgent)
                    single.Add(await RunSingleAsync(model, task, items, options, progress, cancellationToken).ConfigureAwait(false));

                var clock = Stopwatch.StartNew();
                WideRun run;
                try
                {
                    var rollout = await WideSwarmRunner.RunAsync(task, model, subAgentModel ?? model, WideSwarmRunner.OrchestratorOptions(items, options.Agent),
                        options.Agent, maxConcurrency: options.MaxConcurrency, cancellationToken: cancellationToken).ConfigureAwait(false);
                    run = new WideRun(items, WideEvalReport.Swarm, task, rollout.Terms.Performance > 0, rollout.Swarm.CriticalSteps, rollout.Swarm.TotalSteps,
                        rollout.WallClock, rollout.Terms.SubAgents, rollout.Terms.UnusedReports, rollout.Terms.SerialCollapse, rollout.Result);
                }
                catch (ContextLengthExceededException e) { run = OutOfContext(items, WideEvalReport.Swarm, task, clock.Elapsed, e); }
                swarm.Add(run);
                progress?.Report(run);
            }
            if (options.SingleAgent) rows.Add(Row(items, WideEvalReport.Single, single));
            rows.Add(Row(items, WideEvalReport.Swarm, swarm));
        }
        return new WideEvalReport(modelName, options.Seed, rows);
    }

    private static async Task<WideRun> RunSingleAsync(IChatClient model, WideTask task, int items, WideEvalOptions options, IProgress<WideRun>? progress,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        // The single agent's budget: three calls a city (the memory-queue way it was trained on) and some slack.
        var agent = options.Agent with
        {
            MaxSteps = Math.Min(options.Agent.MaxSteps, 3 * items + 10),
            TokenBudget = Math.Min(options.Agent.TokenBudget, 200L * (3 * items + 10)),
        };
        var runner = new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), agent);
        WideRun run;
        try
        {
            var result = await runner.RunToEndAsync(new JsonArray(AgentMessages.User(task.Prompt)), cancellationToken).ConfigureAwait(false);
            bool ok = result.StopReason == AgentResult.Answer && task.ToAgentTask().IsAnsweredBy(result.FinalAnswer);
            run = new WideRun(items, WideEvalReport.Single, task, ok, result.Steps, result.Steps, clock.Elapsed, 0, 0, false, result);
        }
        catch (ContextLengthExceededException e) { run = OutOfContext(items, WideEvalReport.Single, task, clock.Elapsed, e); }
        progress?.Report(run);
        return run;
    }

    /// <summary>Stop reason of a run whose conversation outgrew the model's context: a failed task, not a failed evaluation.</summary>
    public const string ContextLimit = "context-limit";

    private static WideRun OutOfContext(int items, string mode, WideTask task, TimeSpan elapsed, ContextLengthExceededException e) =>
        new(items, mode, task, false, 0, 0, elapsed, 0, 0, false,
            new AgentResult(null, new JsonArray(AgentMessages.User(task.Prompt), new JsonObject { ["role"] = "error", ["content"] = e.Message }), 0, 0, 0, 0, ContextLimit));

    /// <summary>Aggregates one size's runs of one mode.</summary>
    public static WideEvalRow Row(int items, string mode, IReadOnlyList<WideRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        int n = runs.Count;
        return new WideEvalRow(items, mode, n, runs.Count(r => r.Success),
            n == 0 ? 0 : runs.Average(r => r.CriticalSteps), n == 0 ? 0 : runs.Average(r => r.TotalSteps), n == 0 ? 0 : runs.Average(r => r.WallClock.TotalSeconds),
            runs.Count(r => r.SerialCollapse), runs.Sum(r => r.SubAgents), runs.Sum(r => r.UnusedReports));
    }
}
