using System.Globalization;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Synthesis;

/// <summary>
/// The weights of PARL's shaping terms (reward = λ1·r_parallel + λ2·r_finish + r_perf): their values at the start
/// of the run, and the fraction of the run over which they fall linearly to 0.
/// </summary>
public sealed record ParlRewardOptions
{
    /// <summary>λ1 at the first iteration: the weight of <see cref="ParlTerms.Parallel"/>.</summary>
    public double LambdaParallel { get; init; } = 0.3;

    /// <summary>λ2 at the first iteration: the weight of <see cref="ParlTerms.Finish"/>.</summary>
    public double LambdaFinish { get; init; } = 0.2;

    /// <summary>The fraction of the iterations after which both weights reach 0 (1: at the last iteration).</summary>
    public double AnnealFraction { get; init; } = 1;

    public void Validate()
    {
        if (!(LambdaParallel >= 0) || !double.IsFinite(LambdaParallel)) throw new ArgumentException($"λ1 (parallel) must be a finite number ≥ 0, got {LambdaParallel}");
        if (!(LambdaFinish >= 0) || !double.IsFinite(LambdaFinish)) throw new ArgumentException($"λ2 (finish) must be a finite number ≥ 0, got {LambdaFinish}");
        if (!(AnnealFraction > 0 && AnnealFraction <= 1)) throw new ArgumentException($"the anneal fraction must be in (0, 1], got {AnnealFraction}");
    }

    /// <summary>(λ1, λ2) at iteration <paramref name="iteration"/> (0-based) of <paramref name="iterations"/>.</summary>
    public (double Parallel, double Finish) At(int iteration, int iterations) =>
        (ParlReward.Anneal(LambdaParallel, iteration, iterations, AnnealFraction), ParlReward.Anneal(LambdaFinish, iteration, iterations, AnnealFraction));
}

/// <summary>
/// One orchestrator run scored by PARL's terms.
/// </summary>
/// <param name="Parallel">r_parallel in [0, 1]: 0 for a task that is not wide.</param>
/// <param name="Finish">r_finish in [0, 1]: the share of spawned sub-agents whose reports were used (0 when none were spawned).</param>
/// <param name="Performance">r_perf: 1 when the run answered within budget and the answer is correct, else 0.</param>
/// <param name="SubAgents">Sub-agents spawned over the run.</param>
/// <param name="UsedReports">Of those, the ones whose reports were used (<see cref="ParlReward.ReportsUsed"/>).</param>
/// <param name="Wide">Whether the task was wide (serial collapse is only defined there).</param>
public sealed record ParlTerms(double Parallel, double Finish, double Performance, int SubAgents, int UsedReports, bool Wide)
{
    public double Reward(double lambdaParallel, double lambdaFinish) => lambdaParallel * Parallel + lambdaFinish * Finish + Performance;

    /// <summary>Serial collapse: a wide task done with one sub-agent or none.</summary>
    public bool SerialCollapse => Wide && SubAgents <= 1;

    /// <summary>Spurious spawns: sub-agents whose reports were not used.</summary>
    public int UnusedReports => SubAgents - UsedReports;
}

/// <summary>
/// PARL's reward for an orchestrator (K2.5's parallel-agent RL): r_perf is the outcome; r_parallel pays for splitting
/// a wide task over more than one sub-agent (against serial collapse); r_finish pays for sub-agents whose reports the
/// orchestrator went on to use (against spawning for show). Both shaping weights fall linearly to 0 over the run, so
/// the policy ends optimising the outcome alone.
/// </summary>
public static class ParlReward
{
    /// <summary>
    /// Linear annealing: <paramref name="initial"/> at iteration 0, falling to 0 at iteration
    /// <c>fraction·(iterations − 1)</c> and staying there. A run of one iteration keeps the initial value.
    /// </summary>
    public static double Anneal(double initial, int iteration, int iterations, double fraction = 1)
    {
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), "a run has at least one iteration");
        if (iteration < 0 || iteration >= iterations) throw new ArgumentOutOfRangeException(nameof(iteration), $"iteration {iteration} is outside 0…{iterations - 1}");
        if (!(fraction > 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction), "the anneal fraction must be in (0, 1]");
        if (iterations == 1) return initial;
        double progress = iteration / (fraction * (iterations - 1));
        return initial * Math.Max(0, 1 - progress);
    }

    /// <summary>
    /// r_parallel: (S − 1) / (K − 1) clamped to [0, 1], for S sub-agents spawned on a wide task that its teacher splits
    /// into K ≥ 2 chunks. One sub-agent or none scores 0 (serial collapse); K or more score 1 — spawning beyond the
    /// teacher's split earns nothing more, and r_finish charges for any whose report goes unused.
    /// </summary>
    public static double Parallel(int spawned, int teacherChunks)
    {
        if (spawned < 0) throw new ArgumentOutOfRangeException(nameof(spawned));
        if (teacherChunks < 2) throw new ArgumentOutOfRangeException(nameof(teacherChunks), "a wide task splits into at least 2 chunks");
        return Math.Clamp((spawned - 1) / (double)(teacherChunks - 1), 0, 1);
    }

    /// <summary>r_finish: used / spawned, and 0 when nothing was spawned.</summary>
    public static double Finish(int spawned, int used)
    {
        if (spawned < 0 || used < 0 || used > spawned) throw new ArgumentOutOfRangeException(nameof(used), $"used reports ({used}) must be within 0…{spawned}");
        return spawned == 0 ? 0 : used / (double)spawned;
    }

    /// <summary>
    /// Which sub-agents' reports were used, in the order of <paramref name="subAgents"/>. A report is used when the
    /// sub-agent completed, its answer states a number (the last number in it, thousands separators ignored), and that
    /// number appears as a whole number (<see cref="AnswerText.Mentions"/>) in an orchestrator assistant message after
    /// the tool result that delivered the report — in its tool-call arguments (the calculator call that adds the
    /// reports), its reasoning or its answer. The delivering result is the first tool message holding the report's
    /// <c>"id":"agent-N"</c>; a report that never reached the orchestrator is unused.
    /// </summary>
    public static IReadOnlyList<bool> ReportsUsed(JsonArray orchestratorMessages, IReadOnlyList<SubAgentReport> subAgents)
    {
        ArgumentNullException.ThrowIfNull(orchestratorMessages);
        ArgumentNullException.ThrowIfNull(subAgents);
        var messages = orchestratorMessages.OfType<JsonObject>().ToList();
        var used = new List<bool>(subAgents.Count);
        foreach (var agent in subAgents)
        {
            string? number = agent.Status == SubAgentStatus.Completed ? WideTasks.ReportedNumber(agent.Answer) : null;
            string marker = $"\"id\":\"{agent.Id}\"";
            int delivered = messages.FindIndex(m => AgentMessages.Role(m) == "tool" && AgentMessages.Text(m["content"]).Contains(marker, StringComparison.Ordinal));
            used.Add(number is not null && delivered >= 0 && messages.Skip(delivered + 1)
                .Where(m => AgentMessages.Role(m) == "assistant")
                .Any(m => AnswerText.Mentions(AssistantText(m), number)));
        }
        return used;
    }

    /// <summary>The terms of one orchestrator run. <paramref name="task"/> null: not a wide task (r_parallel 0).</summary>
    public static ParlTerms Terms(WideTask? task, AgentResult result, IReadOnlyList<SubAgentReport> subAgents)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(subAgents);
        var used = ReportsUsed(result.Messages, subAgents);
        int usedCount = used.Count(u => u);
        bool correct = result.StopReason == AgentResult.Answer && (task?.ToAgentTask().IsAnsweredBy(result.FinalAnswer) ?? false);
        return new ParlTerms(task is null ? 0 : Parallel(subAgents.Count, task.Chunks.Count), Finish(subAgents.Count, usedCount),
            correct ? 1 : 0, subAgents.Count, usedCount, task is not null);
    }

    private static string AssistantText(JsonObject message)
    {
        var text = new System.Text.StringBuilder();
        text.Append(AgentMessages.Text(message["reasoning_content"])).Append(' ').Append(AgentMessages.Text(message["content"]));
        if (message["tool_calls"] is JsonArray calls)
            foreach (var call in calls.OfType<JsonObject>())
                text.Append(' ').Append(call["function"]?["arguments"] is JsonValue v && v.TryGetValue(out string? a) ? a : call["function"]?["arguments"]?.ToJsonString());
        return text.ToString();
    }
}

/// <summary>One wide task run by an orchestrator with the swarm: its conversation (the orchestrator's turns only), the swarm's measurements and PARL's terms.</summary>
public sealed record WideRollout(WideTask Task, AgentResult Result, SwarmReport Swarm, ParlTerms Terms, TimeSpan WallClock);

/// <summary>
/// Runs wide tasks through an orchestrator that can spawn sub-agents. The orchestrator's steps come from
/// <c>policy</c>; every sub-agent step comes from <c>subAgents</c>, a separate client (in RL, the frozen starting
/// checkpoint), and the sub-agents' conversations stay inside the swarm: <see cref="WideRollout.Result"/> holds only
/// the orchestrator's messages, which is all that RL renders for the policy gradient.
/// </summary>
public static class WideSwarmRunner
{
    /// <summary>The orchestrator's agent settings for a task of <paramref name="items"/> cities: room for the spawn call that names them all.</summary>
    public static AgentOptions OrchestratorOptions(int items, AgentOptions? baseline = null)
    {
        var options = baseline ?? new AgentOptions();
        return options with
        {
            MaxSteps = Math.Min(options.MaxSteps, 8),
            MaxTokensPerStep = Math.Max(options.MaxTokensPerStep, 256 + 16 * items),
            TokenBudget = Math.Min(options.TokenBudget, 4000L + 48L * items),
        };
    }

    public static async Task<WideRollout> RunAsync(WideTask task, IChatClient policy, IChatClient subAgents, AgentOptions? orchestratorOptions = null,
        AgentOptions? subAgentOptions = null, KnowledgeBase? knowledgeBase = null, int maxConcurrency = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(subAgents);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var swarm = new AgentSwarm(WideTasks.SwarmOptions(subAgents, knowledgeBase, subAgentOptions, maxConcurrency));
        var runner = new AgentRunner(policy, WideTasks.OrchestratorTools(swarm, Toolbox.CreateDefault(knowledgeBase)),
            orchestratorOptions ?? OrchestratorOptions(task.Cities.Count));
        AgentResult? result = null;
        await foreach (var e in swarm.Observe(runner.RunAsync(new JsonArray(AgentMessages.User(task.Prompt)), cancellationToken), cancellationToken).ConfigureAwait(false))
            if (e is AgentEvent.Finished f) result = f.Result;
        if (result is null) throw new InvalidOperationException("the orchestrator's run ended without a result");
        var report = swarm.Report();
        return new WideRollout(task, result, report, ParlReward.Terms(task, result, report.SubAgents), clock.Elapsed);
    }
}
