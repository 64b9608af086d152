using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Synthesis;

/// <summary>Settings of the tool-use evaluation suite.</summary>
public sealed record ToolUseEvalOptions
{
    /// <summary>Planned tool calls per task, one group of tasks each.</summary>
    public IReadOnlyList<int> Horizons { get; init; } = [1, 3, 10, 50, 100, 300];
    /// <summary>Tasks per horizon; null means the default for that horizon (<see cref="DefaultTasks"/>).</summary>
    public int? TasksPerHorizon { get; init; }
    /// <summary>Per-horizon overrides of the number of tasks (take precedence over <see cref="TasksPerHorizon"/>).</summary>
    public IReadOnlyDictionary<int, int>? TasksByHorizon { get; init; }
    /// <summary>Tasks of horizon h come from <c>new TaskGenerator(Seed + h)</c>; keep it apart from training seeds.</summary>
    public int Seed { get; init; } = 777;
    /// <summary>The agent loop's settings (context window, step and token limits, sampling).</summary>
    public AgentOptions Agent { get; init; } = new();

    /// <summary>50 tasks for horizons up to 3, 20 up to 10, 30 up to 50, 10 up to 100, 5 beyond: enough long tasks
    /// that one task more or less moves a rate by a few points, not ten or twenty.</summary>
    public static int DefaultTasks(int horizon) => horizon switch
    {
        <= 3 => 50,
        <= 10 => 20,
        <= 50 => 30,
        <= 100 => 10,
        _ => 5,
    };

    public int TasksFor(int horizon) =>
        TasksByHorizon is not null && TasksByHorizon.TryGetValue(horizon, out int n) ? n : TasksPerHorizon ?? DefaultTasks(horizon);
}

/// <summary>Where a running evaluation is: horizon, task i of n, and successes so far in this horizon.</summary>
public sealed record ToolUseEvalProgress(int Horizon, int Task, int Tasks, int Successes, AgentResult? LastResult, bool LastSucceeded,
    AgentTask? LastTask = null);

/// <summary>The results of one horizon.</summary>
public sealed record HorizonResult(int Horizon, int Tasks, int Successes, double AvgToolCalls, int ToolCalls, int MalformedCalls,
    double AvgGeneratedTokens, double Seconds, IReadOnlyDictionary<string, int> StopReasons)
{
    public double SuccessRate => Tasks == 0 ? 0 : (double)Successes / Tasks;
}

/// <summary>The report of a tool-use evaluation.</summary>
public sealed record ToolUseEvalReport(string Model, int Seed, IReadOnlyList<HorizonResult> Horizons)
{
    public int ToolCalls => Horizons.Sum(h => h.ToolCalls);
    public int MalformedCalls => Horizons.Sum(h => h.MalformedCalls);
    /// <summary>Malformed calls over all calls (0 when no call was made).</summary>
    public double MalformedCallRate => ToolCalls == 0 ? 0 : (double)MalformedCalls / ToolCalls;

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Tool-use evaluation — {Model} (seed {Seed})");
        sb.AppendLine();
        sb.AppendLine("| horizon | tasks | success | rate | avg calls | malformed | avg tokens | seconds |");
        sb.AppendLine("|--------:|------:|--------:|-----:|----------:|----------:|-----------:|--------:|");
        foreach (var h in Horizons)
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {h.Horizon} | {h.Tasks} | {h.Successes} | {h.SuccessRate * 100:F1}% | {h.AvgToolCalls:F1} | {h.MalformedCalls} | {h.AvgGeneratedTokens:F0} | {h.Seconds:F1} |");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Malformed-call rate: {MalformedCalls}/{ToolCalls} = {MalformedCallRate * 100:F2}%");
        return sb.ToString();
    }

    public string ToJson()
    {
        var horizons = new JsonArray();
        foreach (var h in Horizons)
        {
            var reasons = new JsonObject();
            foreach (var (k, v) in h.StopReasons.OrderBy(p => p.Key, StringComparer.Ordinal)) reasons[k] = v;
            horizons.Add(new JsonObject
            {
                ["horizon"] = h.Horizon, ["tasks"] = h.Tasks, ["successes"] = h.Successes, ["success_rate"] = h.SuccessRate,
                ["avg_tool_calls"] = h.AvgToolCalls, ["tool_calls"] = h.ToolCalls, ["malformed_calls"] = h.MalformedCalls,
                ["avg_generated_tokens"] = h.AvgGeneratedTokens, ["seconds"] = h.Seconds, ["stop_reasons"] = reasons,
            });
        }
        var root = new JsonObject
        {
            ["suite"] = "tool-use", ["model"] = Model, ["seed"] = Seed, ["horizons"] = horizons,
            ["tool_calls"] = ToolCalls, ["malformed_calls"] = MalformedCalls, ["malformed_call_rate"] = MalformedCallRate,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>
/// Held-out tool-use tasks by horizon (planned number of tool calls), each run through the <see cref="AgentRunner"/>
/// with fresh tools; a task succeeds when the model answers and the answer states every expected value.
/// </summary>
public static class ToolUseEvaluation
{
    public static Task<ToolUseEvalReport> RunAsync(KimiChatService service, ToolUseEvalOptions options,
        IProgress<ToolUseEvalProgress>? progress = null, CancellationToken cancellationToken = default, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(service);
        return RunAsync(new KimiChatClient(service), service.ModelId, options, progress, cancellationToken, logger);
    }

    /// <summary>Runs the suite on any step model (tests script one).</summary>
    public static async Task<ToolUseEvalReport> RunAsync(Microsoft.Extensions.AI.IChatClient model, string modelName, ToolUseEvalOptions options,
        IProgress<ToolUseEvalProgress>? progress = null, CancellationToken cancellationToken = default, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var results = new List<HorizonResult>();
        foreach (int horizon in options.Horizons)
        {
            if (horizon < 1) throw new ArgumentException($"horizons must be at least 1, got {horizon}");
            int tasks = options.TasksFor(horizon);
            var generator = new TaskGenerator(options.Seed + horizon);
            int successes = 0, calls = 0, malformed = 0;
            long tokens = 0;
            var reasons = new Dictionary<string, int>(StringComparer.Ordinal);
            var clock = Stopwatch.StartNew();
            progress?.Report(new ToolUseEvalProgress(horizon, 0, tasks, 0, null, false));
            for (int i = 0; i < tasks; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                AgentTask task = generator.WithHorizon(horizon).Task;
                // A task's budget grows with its horizon: a run that wanders far past the calls the task needs has failed.
                var agent = options.Agent with
                {
                    MaxSteps = Math.Min(options.Agent.MaxSteps, 2 * horizon + 6),
                    TokenBudget = Math.Min(options.Agent.TokenBudget, 200L * (horizon + 2)),
                };
                var runner = new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), agent, logger);
                var conversation = new JsonArray { new JsonObject { ["role"] = "user", ["content"] = task.Prompt } };
                AgentResult result = await runner.RunToEndAsync(conversation, cancellationToken).ConfigureAwait(false);
                bool ok = result.StopReason == AgentResult.Answer && task.IsAnsweredBy(result.FinalAnswer);
                if (ok) successes++;
                calls += result.ToolCalls;
                malformed += result.MalformedCalls;
                tokens += result.GeneratedTokens;
                reasons[result.StopReason] = reasons.GetValueOrDefault(result.StopReason) + 1;
                progress?.Report(new ToolUseEvalProgress(horizon, i + 1, tasks, successes, result, ok, task));
            }
            results.Add(new HorizonResult(horizon, tasks, successes, tasks == 0 ? 0 : (double)calls / tasks, calls, malformed,
                tasks == 0 ? 0 : (double)tokens / tasks, clock.Elapsed.TotalSeconds, reasons));
        }
        return new ToolUseEvalReport(modelName, options.Seed, results);
    }
}
