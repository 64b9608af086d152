using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Swarm;

/// <summary>How a sub-agent ended.</summary>
public enum SubAgentStatus
{
    /// <summary>It answered.</summary>
    Completed,
    /// <summary>Its model or a tool failed in a way the run could not recover from, or it stopped without an answer.</summary>
    Failed,
    /// <summary>It ran past its time limit.</summary>
    TimedOut,
    /// <summary>The orchestrator (or the swarm) was cancelled.</summary>
    Cancelled,
    /// <summary>It used up its steps or tokens before answering.</summary>
    BudgetExhausted,
}

/// <summary>The outcome of one sub-agent, as the orchestrator receives it and as measured.</summary>
/// <param name="Id">The sub-agent's id within its swarm (<c>agent-N</c>).</param>
/// <param name="Answer">Its final answer when <see cref="Status"/> is <see cref="SubAgentStatus.Completed"/>.</param>
/// <param name="Error">Why it ended without an answer, otherwise null.</param>
/// <param name="Stage">The orchestrator step (counted over the swarm's life) whose call spawned it; below zero (one per spawn call) when the
/// orchestrator was not observed. A background sub-agent counts in the stage that spawned it, not the one that collected it.</param>
public sealed record SubAgentReport(string Id, string Task, SubAgentStatus Status, string? Answer, string? Error, int Steps, int ToolCalls,
    StepUsage Usage, double Cost, TimeSpan Elapsed, string? ParentCallId, int Stage, bool Background, string? SessionPath)
{
    public static string StatusName(SubAgentStatus status) => status switch
    {
        SubAgentStatus.Completed => "completed",
        SubAgentStatus.Failed => "failed",
        SubAgentStatus.TimedOut => "timed_out",
        SubAgentStatus.Cancelled => "cancelled",
        SubAgentStatus.BudgetExhausted => "budget_exhausted",
        _ => status.ToString(),
    };

    /// <summary>The report as the orchestrator reads it: the id, the task (clipped), the status and the answer or error.</summary>
    public JsonObject ToJson(int taskClip = 200)
    {
        var json = new JsonObject
        {
            ["id"] = Id, ["task"] = Task.Length > taskClip ? Task[..taskClip] + "…" : Task, ["status"] = StatusName(Status),
        };
        if (Answer is not null) json["answer"] = Answer;
        if (Error is not null) json["error"] = Error;
        json["steps"] = Steps;
        json["tool_calls"] = ToolCalls;
        return json;
    }
}

/// <summary>One stage of the critical path: an orchestrator step and the slowest sub-agent it spawned.</summary>
public sealed record SwarmStage(int Stage, int SlowestSubAgentSteps, string? SlowestAgentId, int SubAgents)
{
    /// <summary>1 orchestrator step + the slowest sub-agent's steps.</summary>
    public int CriticalSteps => 1 + SlowestSubAgentSteps;
}

/// <summary>
/// A swarm run measured: critical steps (the latency the orchestrator and its slowest sub-agents impose, K2.5's
/// Σ_t (S_main(t) + max_i S_sub,i(t))) against total steps (the work), tool calls, tokens, cost and wall-clock.
/// </summary>
public sealed record SwarmReport(int OrchestratorSteps, int CriticalSteps, int TotalSteps, int ToolCalls, StepUsage Usage, double Cost,
    TimeSpan WallClock, IReadOnlyList<SubAgentReport> SubAgents, IReadOnlyList<SwarmStage> Stages)
{
    public int Failed => SubAgents.Count(a => a.Status != SubAgentStatus.Completed);

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{SubAgents.Count} sub-agents ({Failed} failed), {OrchestratorSteps} orchestrator steps, {CriticalSteps} critical steps, {TotalSteps} total steps, {ToolCalls} tool calls, {Usage.InputTokens:N0} in / {Usage.OutputTokens:N0} out tokens, cost {Cost:0.####}, {WallClock.TotalSeconds:0.00} s");
}

/// <summary>The critical-steps arithmetic, shared by the live swarm and the session-file trace.</summary>
public static class SwarmMetrics
{
    /// <summary>
    /// Critical steps of a tree: every orchestrator step counts 1, and a step that spawned sub-agents also counts the
    /// steps of its slowest one (they ran in parallel, so only the slowest delays the orchestrator).
    /// </summary>
    /// <param name="orchestratorSteps">The orchestrator's steps.</param>
    /// <param name="subAgents">Each sub-agent's stage (the orchestrator step that spawned it, 1-based) and its steps.</param>
    public static int CriticalSteps(int orchestratorSteps, IEnumerable<(int Stage, int Steps)> subAgents) =>
        orchestratorSteps + Stages(subAgents.Select(a => (a.Stage, a.Steps, (string?)null))).Sum(s => s.SlowestSubAgentSteps);

    /// <summary>The stages that spawned sub-agents, in order, each with its slowest sub-agent.</summary>
    public static IReadOnlyList<SwarmStage> Stages(IEnumerable<(int Stage, int Steps, string? Id)> subAgents)
    {
        ArgumentNullException.ThrowIfNull(subAgents);
        var stages = new List<SwarmStage>();
        foreach (var group in subAgents.GroupBy(a => a.Stage).OrderBy(g => g.Key))
        {
            var slowest = group.MaxBy(a => a.Steps);
            if (slowest.Steps < 0) throw new ArgumentException("a sub-agent's steps cannot be negative");
            stages.Add(new SwarmStage(group.Key, slowest.Steps, slowest.Id, group.Count()));
        }
        return stages;
    }
}
