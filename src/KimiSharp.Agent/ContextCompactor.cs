using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent;

/// <summary>When and how the agent summarizes older history (kimi-cli's rule: at 85% of the context, or when less than a reserve is left).</summary>
public sealed record CompactionOptions
{
    /// <summary>The model's context length in tokens.</summary>
    public required int ContextTokens { get; init; }
    /// <summary>Compact once the context holds this fraction of <see cref="ContextTokens"/>.</summary>
    public double TriggerRatio { get; init; } = 0.85;
    /// <summary>...or once fewer than this many tokens are left (room for the next step and its tool results).</summary>
    public int ReservedTokens { get; init; } = 16_384;
    /// <summary>Latest steps kept verbatim after the summary.</summary>
    public int KeepRecentSteps { get; init; } = 2;
    /// <summary>Tokens the summary may take.</summary>
    public int SummaryMaxTokens { get; init; } = 2048;
    /// <summary>Counts the tokens of a text with the model's tokenizer; null estimates four characters per token.</summary>
    public Func<string, int>? CountTokens { get; init; }

    internal void Validate()
    {
        if (ContextTokens < 256) throw new ArgumentException($"Compaction.ContextTokens must be at least 256; got {ContextTokens}");
        if (TriggerRatio is <= 0 or > 1) throw new ArgumentException($"Compaction.TriggerRatio must be in (0, 1]; got {TriggerRatio}");
        if (KeepRecentSteps < 0) throw new ArgumentException("Compaction.KeepRecentSteps must not be negative");
        if (SummaryMaxTokens < 16 || SummaryMaxTokens >= ContextTokens / 2)
            throw new ArgumentException($"Compaction.SummaryMaxTokens must be between 16 and half the context; got {SummaryMaxTokens}");
    }

    /// <summary>Reserve actually applied: never more than a quarter of the context, so small models still get to work.</summary>
    internal long Reserve => Math.Min(ReservedTokens, ContextTokens / 4);

    internal bool ShouldCompact(long tokens) => tokens >= TriggerRatio * ContextTokens || ContextTokens - tokens < Reserve;

    internal long EstimateTokens(long chars) => (chars + 3) / 4;

    internal int Tokens(string text) => CountTokens?.Invoke(text) ?? (int)EstimateTokens(text.Length);
}

/// <summary>The conversation after compaction.</summary>
/// <param name="Messages">System messages, the task, a summary of everything older, then the latest steps verbatim.</param>
/// <param name="Summary">What the model wrote.</param>
/// <param name="EstimatedTokens">Tokens of <paramref name="Messages"/> by <see cref="CompactionOptions.CountTokens"/> (or the estimate).</param>
public sealed record Compacted(JsonArray Messages, string Summary, long EstimatedTokens);

/// <summary>
/// Summarizes older history with the model itself, keeping what a long task needs to go on: the task, decisions and
/// findings, errors met, the state of files touched, and what is left to do. The request is cut to fit the context
/// (oldest tool output clipped first), so compaction itself never overflows it.
/// </summary>
internal sealed class ContextCompactor(IChatClient model, CompactionOptions options, ChatOptions? sampling)
{
    private const string Instructions = """
        You compact the working context of an agent that is partway through a task. Write a summary that lets the agent
        continue without the older history: the user's task and constraints; what has been done and found (exact numbers,
        names, paths); the current state of every file changed; errors met and how they were handled; what remains to do
        next. Be concrete and brief. Do not call tools.
        """;

    /// <summary>Property marking the summary message (clients send only the fields they know).</summary>
    public const string SummaryMarker = "compaction_summary";

    public async Task<Compacted?> CompactAsync(JsonArray conversation, CancellationToken cancellationToken)
    {
        var (prefix, steps) = ContextWindow.Split(conversation);
        int keep = Math.Min(options.KeepRecentSteps, steps.Count);
        // The task is the last user message; earlier turns and older steps are what gets summarized.
        var system = prefix.Where(m => AgentMessages.Role(m) == "system").ToList();
        // A summary from an earlier compaction is a user message too: the task is the last one that is not.
        var task = prefix.LastOrDefault(m => AgentMessages.Role(m) == "user" && m[SummaryMarker] is null);
        var older = prefix.Where(m => AgentMessages.Role(m) != "system" && !ReferenceEquals(m, task)).ToList();
        foreach (var step in steps.Take(steps.Count - keep)) older.AddRange(step);
        if (older.Count == 0) return null;

        string transcript = Transcript(older, Budget(system, task));
        var request = new List<ChatMessage> { new(ChatRole.System, Instructions) };
        request.Add(new ChatMessage(ChatRole.User,
            $"The task:\n{AgentMessages.Text(task?["content"])}\n\nThe history to summarize:\n{transcript}\n\nWrite the summary now."));
        var chatOptions = sampling?.Clone() ?? new ChatOptions { Temperature = 0 };
        chatOptions.Tools = null;
        chatOptions.MaxOutputTokens = options.SummaryMaxTokens;
        var response = await model.GetResponseAsync(request, chatOptions, cancellationToken).ConfigureAwait(false);
        string summary = response.Text.Trim();
        if (summary.Length == 0) throw new InvalidOperationException("the model returned an empty summary");

        var messages = new JsonArray();
        foreach (var m in system) messages.Add(m.DeepClone());
        if (task is not null) messages.Add(task.DeepClone());
        var summaryMessage = AgentMessages.User($"[Context compacted: the earlier history was replaced by this summary.]\n{summary}\n\n" +
            "Continue the task from here.");
        summaryMessage[SummaryMarker] = true;
        messages.Add(summaryMessage);
        foreach (var step in steps.Skip(steps.Count - keep))
            foreach (var m in step) messages.Add(m.DeepClone());

        long tokens = 0;
        foreach (var m in messages) tokens += options.Tokens(m!.ToJsonString());
        return new Compacted(messages, summary, tokens);
    }

    /// <summary>Tokens left for the history once instructions, the task and the summary are counted.</summary>
    private long Budget(List<JsonNode> system, JsonNode? task)
    {
        long used = options.Tokens(Instructions) + options.SummaryMaxTokens + 256;
        if (task is not null) used += options.Tokens(AgentMessages.Text(task["content"]));
        return Math.Max(256, options.ContextTokens - used);
    }

    /// <summary>The history as text that fits <paramref name="budgetTokens"/>: long tool results are clipped, then the oldest entries dropped.</summary>
    private string Transcript(List<JsonNode> messages, long budgetTokens)
    {
        var entries = messages.Select(Entry).ToList();
        for (int clip = 4000; clip >= 200 && Total(entries) > budgetTokens; clip /= 2)
            for (int i = 0; i < entries.Count; i++)
                if (entries[i].Length > clip) entries[i] = entries[i][..clip] + " …[clipped]";
        int dropped = 0;
        while (entries.Count > 1 && Total(entries) > budgetTokens) { entries.RemoveAt(0); dropped++; }
        var sb = new StringBuilder();
        if (dropped > 0) sb.AppendLine($"[{dropped} oldest entries omitted]");
        foreach (var e in entries) sb.AppendLine(e);
        return sb.ToString();
    }

    private long Total(List<string> entries) => entries.Sum(e => (long)options.Tokens(e));

    private static string Entry(JsonNode message)
    {
        string role = AgentMessages.Role(message);
        var sb = new StringBuilder();
        if (role == "tool") sb.Append($"[result of {message["name"]?.GetValue<string>() ?? "tool"}] ");
        else sb.Append('[').Append(role).Append("] ");
        if (message["reasoning_content"] is JsonNode r && AgentMessages.Text(r) is { Length: > 0 } thought) sb.Append("(thought: ").Append(thought).Append(") ");
        sb.Append(AgentMessages.Text(message["content"]));
        if (message["tool_calls"] is JsonArray calls)
            foreach (var c in calls)
                sb.Append($" → {c?["function"]?["name"]}({AgentMessages.Text(c?["function"]?["arguments"])})");
        return sb.ToString();
    }
}
