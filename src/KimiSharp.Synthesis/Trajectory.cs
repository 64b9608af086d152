using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis;

/// <summary>A task with a verifiable answer: the prompt, the planned number of tool calls, and what the answer must state.</summary>
public sealed record AgentTask(string Kind, int Horizon, string Prompt, IReadOnlyList<string> Expected, bool NeedsTools = true)
{
    /// <summary>True when every expected value appears in the answer (numbers compared without thousands separators).</summary>
    public bool IsAnsweredBy(string? answer) => answer is not null && Expected.All(e => AnswerText.Mentions(answer, e));
}

/// <summary>A task and one conversation that solves it (OpenAI-shaped messages, user first, final answer last).</summary>
public sealed record Trajectory(AgentTask Task, JsonArray Messages)
{
    /// <summary>Tool calls made, in order, as (name, arguments JSON).</summary>
    public IEnumerable<(string Name, string Arguments)> Calls() =>
        Messages.OfType<JsonObject>().Where(m => m["tool_calls"] is JsonArray)
            .SelectMany(m => m["tool_calls"]!.AsArray().OfType<JsonObject>())
            .Select(c => (c["function"]!["name"]!.GetValue<string>(), c["function"]!["arguments"]!.GetValue<string>()));

    /// <summary>The final assistant answer (content of the last message when it calls no tool).</summary>
    public string? FinalAnswer => Messages.Count > 0 && Messages[^1] is JsonObject last && last["role"]?.GetValue<string>() == "assistant"
        && last["tool_calls"] is null ? last["content"]?.GetValue<string>() : null;
}

/// <summary>
/// Builds a trajectory by actually calling the tool environments, so every tool result in it is real. Tools the
/// toolbox does not have (the swarm's <c>spawn_agents</c>) go to <paramref name="otherTools"/> when given.
/// </summary>
public sealed class TrajectoryBuilder(Toolbox tools, Func<string, JsonObject, ToolResult>? otherTools = null)
{
    internal static readonly JsonSerializerOptions ArgumentJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly JsonArray _messages = [];
    private int _calls;

    public JsonArray Messages => _messages;

    public void User(string text) => _messages.Add(new JsonObject { ["role"] = "user", ["content"] = text });

    /// <summary>One assistant step: reasoning, then the calls (made in parallel); returns the tool results in order.</summary>
    public IReadOnlyList<ToolResult> Step(string reasoning, params (string Name, JsonObject Arguments)[] calls)
    {
        var toolCalls = new JsonArray();
        var ids = new List<string>();
        foreach (var (name, arguments) in calls)
        {
            string id = $"functions.{name}:{_calls++}";
            ids.Add(id);
            toolCalls.Add(new JsonObject
            {
                ["id"] = id, ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = name, ["arguments"] = arguments.ToJsonString(ArgumentJson) },
            });
        }
        _messages.Add(new JsonObject { ["role"] = "assistant", ["reasoning_content"] = reasoning, ["content"] = "", ["tool_calls"] = toolCalls });
        var results = new List<ToolResult>();
        for (int i = 0; i < calls.Length; i++)
        {
            var result = otherTools is not null && tools.Find(calls[i].Name) is null
                ? otherTools(calls[i].Name, calls[i].Arguments)
                : tools.Invoke(calls[i].Name, calls[i].Arguments.ToJsonString(ArgumentJson));
            results.Add(result);
            _messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = ids[i], ["name"] = calls[i].Name, ["content"] = result.Content });
        }
        return results;
    }

    public void Final(string reasoning, string content) =>
        _messages.Add(new JsonObject { ["role"] = "assistant", ["reasoning_content"] = reasoning, ["content"] = content });
}

/// <summary>Comparisons of answers with expected values.</summary>
public static class AnswerText
{
    /// <summary>
    /// Whether <paramref name="answer"/> states <paramref name="expected"/>: a number must appear as a whole number
    /// (thousands separators ignored, "508.5" does not match "1508.5" or "508.57"); text must appear case-insensitively.
    /// </summary>
    public static bool Mentions(string answer, string expected)
    {
        string a = StripThousands(answer).ToLowerInvariant(), e = StripThousands(expected).ToLowerInvariant();
        for (int at = a.IndexOf(e, StringComparison.Ordinal); at >= 0; at = a.IndexOf(e, at + 1, StringComparison.Ordinal))
        {
            bool numeric = e.Length > 0 && (char.IsDigit(e[0]) || char.IsDigit(e[^1]));
            if (!numeric) return true;
            bool before = at > 0 && (char.IsDigit(a[at - 1]) || (a[at - 1] == '.' && at > 1 && char.IsDigit(a[at - 2])) || (a[at - 1] == '-' && !e.StartsWith('-')));
            int end = at + e.Length;
            bool after = end < a.Length && (char.IsDigit(a[end]) || (a[end] == '.' && end + 1 < a.Length && char.IsDigit(a[end + 1])));
            if (!before && !after) return true;
        }
        return false;
    }

    /// <summary>Removes commas between digits ("2,340" → "2340").</summary>
    public static string StripThousands(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == ',' && i > 0 && i + 1 < text.Length && char.IsDigit(text[i - 1]) && char.IsDigit(text[i + 1])) continue;
            sb.Append(text[i]);
        }
        return sb.ToString();
    }

    /// <summary>The numbers in a text (thousands separators removed), e.g. "2,340 and -3.5" → ["2340", "-3.5"].</summary>
    public static IEnumerable<string> Numbers(string text)
    {
        string t = StripThousands(text);
        for (int i = 0; i < t.Length; i++)
        {
            if (!char.IsDigit(t[i])) continue;
            int start = i;
            while (i < t.Length && (char.IsDigit(t[i]) || (t[i] == '.' && i + 1 < t.Length && char.IsDigit(t[i + 1])))) i++;
            yield return t[start..i];
        }
    }
}
