using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Synthesis.Evaluation;

/// <summary>Settings of the natural-phrasing suite.</summary>
public sealed record NaturalEvalOptions
{
    /// <summary>The questions to run; null runs the whole suite (<see cref="NaturalSuite.Items"/>).</summary>
    public IReadOnlyList<NaturalItem>? Items { get; init; }
    /// <summary>The agent loop's settings; each question gets at most 8 steps and 3,000 tokens besides.</summary>
    public AgentOptions Agent { get; init; } = new();

    /// <summary>The suite cut to <paramref name="categories"/> (all when null or empty) and the first <paramref name="perCategory"/> of each.</summary>
    public static IReadOnlyList<NaturalItem> Select(IReadOnlyCollection<string>? categories, int? perCategory)
    {
        if (categories is { Count: > 0 })
            foreach (string c in categories)
                if (!NaturalSuite.Categories.Contains(c))
                    throw new ArgumentException($"unknown category '{c}' (known: {string.Join(", ", NaturalSuite.Categories)})", nameof(categories));
        if (perCategory < 1) throw new ArgumentOutOfRangeException(nameof(perCategory), "at least one question per category");
        return NaturalSuite.Items
            .Where(i => categories is not { Count: > 0 } || categories.Contains(i.Category))
            .GroupBy(i => i.Category).SelectMany(g => perCategory is int n ? g.Take(n) : g).ToArray();
    }
}

/// <summary>One answered question: the item, the run, and why it failed (null when it passed).</summary>
public sealed record NaturalOutcome(NaturalItem Item, AgentResult Result, string? Failure)
{
    public bool Passed => Failure is null;
}

/// <summary>Where a running evaluation is: question <c>Index</c> of <c>Total</c>, passes so far, and the last outcome.</summary>
public sealed record NaturalEvalProgress(int Index, int Total, int Passes, NaturalOutcome? Last);

/// <summary>The results of one category.</summary>
public sealed record NaturalCategoryResult(string Category, int Items, int Passes, int ToolCalls, int MalformedCalls, double AvgGeneratedTokens, double Seconds)
{
    public double Rate => Items == 0 ? 0 : (double)Passes / Items;
}

/// <summary>The report of a natural-phrasing evaluation: accuracy by category and overall.</summary>
public sealed record NaturalEvalReport(string Model, IReadOnlyList<NaturalCategoryResult> Categories)
{
    public int Items => Categories.Sum(c => c.Items);
    public int Passes => Categories.Sum(c => c.Passes);
    public double Rate => Items == 0 ? 0 : (double)Passes / Items;

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Natural-phrasing evaluation — {Model}");
        sb.AppendLine();
        sb.AppendLine("| category | questions | correct | accuracy | tool calls | malformed | avg tokens | seconds |");
        sb.AppendLine("|:---------|----------:|--------:|---------:|-----------:|----------:|-----------:|--------:|");
        foreach (var c in Categories)
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Category} | {c.Items} | {c.Passes} | {c.Rate * 100:F1}% | {c.ToolCalls} | {c.MalformedCalls} | {c.AvgGeneratedTokens:F0} | {c.Seconds:F1} |");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"| **overall** | {Items} | {Passes} | **{Rate * 100:F1}%** | {Categories.Sum(c => c.ToolCalls)} | {Categories.Sum(c => c.MalformedCalls)} | | {Categories.Sum(c => c.Seconds):F1} |");
        return sb.ToString();
    }

    public string ToJson()
    {
        var categories = new JsonArray();
        foreach (var c in Categories)
            categories.Add(new JsonObject
            {
                ["category"] = c.Category, ["questions"] = c.Items, ["correct"] = c.Passes, ["accuracy"] = c.Rate,
                ["tool_calls"] = c.ToolCalls, ["malformed_calls"] = c.MalformedCalls, ["avg_generated_tokens"] = c.AvgGeneratedTokens,
                ["seconds"] = c.Seconds,
            });
        var root = new JsonObject
        {
            ["suite"] = "natural", ["model"] = Model, ["questions"] = Items, ["correct"] = Passes, ["accuracy"] = Rate, ["categories"] = categories,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>
/// Runs the natural-phrasing questions through the <see cref="AgentRunner"/> (fresh tools each, greedy as in
/// <c>kimi chat</c>) and judges each answer by its item's <see cref="AnswerRule"/>.
/// </summary>
public static class NaturalEvaluation
{
    public static Task<NaturalEvalReport> RunAsync(KimiChatService service, NaturalEvalOptions options,
        IProgress<NaturalEvalProgress>? progress = null, CancellationToken cancellationToken = default, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(service);
        return RunAsync(new KimiChatClient(service), service.ModelId, options, progress, cancellationToken, logger);
    }

    /// <summary>Runs the suite on any step model (tests script one).</summary>
    public static async Task<NaturalEvalReport> RunAsync(Microsoft.Extensions.AI.IChatClient model, string modelName, NaturalEvalOptions options,
        IProgress<NaturalEvalProgress>? progress = null, CancellationToken cancellationToken = default, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var items = options.Items ?? NaturalSuite.Items;
        var agent = options.Agent with
        {
            // A question needs a few calls at most: a run far past that has failed already.
            MaxSteps = Math.Min(options.Agent.MaxSteps, 8),
            TokenBudget = Math.Min(options.Agent.TokenBudget, 3000),
        };
        var byCategory = new Dictionary<string, (int Items, int Passes, int Calls, int Malformed, long Tokens, double Seconds)>(StringComparer.Ordinal);
        int passes = 0;
        progress?.Report(new NaturalEvalProgress(0, items.Count, 0, null));
        for (int i = 0; i < items.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var item = items[i];
            var clock = Stopwatch.StartNew();
            var runner = new AgentRunner(model, Toolbox.CreateDefault().AsFunctions(), agent, logger);
            var conversation = new JsonArray { new JsonObject { ["role"] = "user", ["content"] = item.Prompt } };
            AgentResult result = await runner.RunToEndAsync(conversation, cancellationToken).ConfigureAwait(false);
            string? failure = result.StopReason != AgentResult.Answer ? $"stopped: {result.StopReason}"
                : item.Expect.Judge(result.FinalAnswer, result.Messages);
            var outcome = new NaturalOutcome(item, result, failure);
            if (outcome.Passed) passes++;
            var c = byCategory.GetValueOrDefault(item.Category);
            byCategory[item.Category] = (c.Items + 1, c.Passes + (outcome.Passed ? 1 : 0), c.Calls + result.ToolCalls,
                c.Malformed + result.MalformedCalls, c.Tokens + result.GeneratedTokens, c.Seconds + clock.Elapsed.TotalSeconds);
            progress?.Report(new NaturalEvalProgress(i + 1, items.Count, passes, outcome));
        }
        var ordered = byCategory.Keys.OrderBy(k => NaturalSuite.Categories.IndexOf(k) is int at && at >= 0 ? at : int.MaxValue).ThenBy(k => k, StringComparer.Ordinal);
        return new NaturalEvalReport(modelName, ordered.Select(k =>
        {
            var c = byCategory[k];
            return new NaturalCategoryResult(k, c.Items, c.Passes, c.Calls, c.Malformed, (double)c.Tokens / c.Items, c.Seconds);
        }).ToArray());
    }

    private static int IndexOf(this IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }
}
