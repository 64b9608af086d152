using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis;

/// <summary>Why the rubric rejected a trajectory (null reason = kept).</summary>
public sealed record RubricVerdict(bool Keep, string? Reason, string? Detail)
{
    public static readonly RubricVerdict Accept = new(true, null, null);
    public static RubricVerdict Reject(string reason, string detail) => new(false, reason, detail);
}

/// <summary>
/// The rubric-based judge: a trajectory is kept only when its final answer is correct, every call is well formed
/// (a declared tool, arguments a JSON object with the required keys of the declared types), every call is necessary
/// (none repeated, none in a conversation that needs no tool, a failed call never retried unchanged), and nothing is
/// hallucinated (every number the assistant writes appears in the user's message or an earlier tool result).
/// </summary>
public sealed class RubricFilter
{
    private readonly Dictionary<string, JsonObject> _schemas;
    private readonly Dictionary<string, int> _rejections = new(StringComparer.Ordinal);

    public RubricFilter(JsonArray toolDeclarations)
    {
        _schemas = toolDeclarations.OfType<JsonObject>().ToDictionary(
            t => t["function"]!["name"]!.GetValue<string>(), t => (JsonObject)t["function"]!["parameters"]!);
    }

    public int Kept { get; private set; }
    public int Rejected => _rejections.Values.Sum();
    /// <summary>Rejections by reason.</summary>
    public IReadOnlyDictionary<string, int> Rejections => _rejections;

    /// <summary>Judges and counts one trajectory.</summary>
    public RubricVerdict Judge(Trajectory t)
    {
        var verdict = Evaluate(t);
        if (verdict.Keep) Kept++;
        else _rejections[verdict.Reason!] = _rejections.GetValueOrDefault(verdict.Reason!) + 1;
        return verdict;
    }

    /// <summary>Judges without counting.</summary>
    public RubricVerdict Evaluate(Trajectory t)
    {
        var messages = t.Messages.OfType<JsonObject>().ToList();
        if (messages.Count < 2 || messages[0]["role"]?.GetValue<string>() != "user")
            return RubricVerdict.Reject("malformed-trajectory", "must start with the user's message and end with an answer");
        string? answer = t.FinalAnswer;
        if (answer is null) return RubricVerdict.Reject("no-answer", "the last message is not a final answer");

        // Everything the assistant may quote: the user's numbers, then each tool result as it arrives.
        var known = new HashSet<string>(AnswerText.Numbers(messages[0]["content"]!.GetValue<string>()), StringComparer.Ordinal);
        var seenCalls = new HashSet<string>(StringComparer.Ordinal);
        var failedCalls = new HashSet<string>(StringComparer.Ordinal);
        var callsById = new Dictionary<string, string>(StringComparer.Ordinal);
        int calls = 0;
        foreach (var m in messages.Skip(1))
        {
            string role = m["role"]?.GetValue<string>() ?? "";
            if (role == "tool")
            {
                string content = m["content"]?.GetValue<string>() ?? "";
                foreach (var n in AnswerText.Numbers(content)) known.Add(n);
                // A call is redundant when the same call already returned the same result: it learned nothing new.
                // (Stateful calls such as a memory pop repeat their arguments but not their results.)
                if (callsById.TryGetValue(m["tool_call_id"]?.GetValue<string>() ?? "", out var answered) && !seenCalls.Add(answered + "\n" + content))
                    return RubricVerdict.Reject("redundant-call", answered);
                // A call whose result was an error must not be repeated unchanged.
                if (content.StartsWith("error:", StringComparison.Ordinal) && callsById.TryGetValue(m["tool_call_id"]?.GetValue<string>() ?? "", out var failed))
                    failedCalls.Add(failed);
                continue;
            }
            if (role != "assistant") return RubricVerdict.Reject("malformed-trajectory", $"unexpected role '{role}'");
            string text = (m["reasoning_content"]?.GetValue<string>() ?? "") + " " + (m["content"]?.GetValue<string>() ?? "");
            if (m["tool_calls"] is JsonArray toolCalls)
                foreach (var call in toolCalls.OfType<JsonObject>())
                {
                    calls++;
                    string name = call["function"]?["name"]?.GetValue<string>() ?? "";
                    string arguments = call["function"]?["arguments"]?.GetValue<string>() ?? "";
                    if (Malformed(name, arguments) is { } problem) return RubricVerdict.Reject("malformed-call", problem);
                    string signature = name + " " + JsonNode.Parse(arguments)!.ToJsonString();
                    if (failedCalls.Contains(signature)) return RubricVerdict.Reject("repeated-failed-call", signature);
                    callsById[call["id"]?.GetValue<string>() ?? ""] = signature;
                    text += " " + arguments;
                }
            bool isFinal = ReferenceEquals(m, messages[^1]);
            if (!isFinal && Unsupported(text, known) is { } invented)
                return RubricVerdict.Reject("hallucinated-result", $"the number {invented} appears in no user message or tool result before it");
        }

        if (!t.Task.NeedsTools && calls > 0) return RubricVerdict.Reject("unnecessary-call", $"{calls} call(s) in a conversation that needs no tool");
        if (t.Task.NeedsTools && calls == 0) return RubricVerdict.Reject("hallucinated-result", "answered without calling any tool");
        if (!t.Task.IsAnsweredBy(answer)) return RubricVerdict.Reject("wrong-answer", $"expected {string.Join(", ", t.Task.Expected)}; got \"{answer}\"");
        var last = messages[^1];
        if (Unsupported((last["reasoning_content"]?.GetValue<string>() ?? "") + " " + answer, known) is { } made)
            return RubricVerdict.Reject("hallucinated-result", $"the answer states {made}, which no user message or tool result contains");
        return RubricVerdict.Accept;
    }

    private static string? Unsupported(string text, HashSet<string> known)
    {
        foreach (var n in AnswerText.Numbers(text))
            if (!known.Contains(n) && !IsConstant(n)) return n;
        return null;
    }

    // Small counts and percent/unit constants are the assistant's own words, not results; 100 turns a share into
    // per cent ("30/120*100").
    private static bool IsConstant(string n) => (n.Length <= 2 && !n.Contains('.')) || n == "100";

    /// <summary>Why a call is malformed: unknown tool, arguments not a JSON object, or a missing / mistyped required key.</summary>
    public string? Malformed(string name, string arguments)
    {
        if (!_schemas.TryGetValue(name, out var schema)) return $"unknown tool '{name}'";
        JsonObject args;
        try { args = JsonNode.Parse(arguments) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { return $"{name}: arguments are not a JSON object ({e.Message})"; }
        if (schema["required"] is JsonArray required)
            foreach (var key in required.Select(k => k!.GetValue<string>()))
                if (args[key] is null) return $"{name}: missing required argument '{key}'";
        if (schema["properties"] is JsonObject properties)
            foreach (var (key, value) in args)
            {
                if (properties[key] is not JsonObject property) return $"{name}: unknown argument '{key}'";
                string? type = property["type"]?.GetValue<string>();
                bool ok = type switch
                {
                    "string" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String,
                    "number" => value is JsonValue n && n.GetValueKind() is JsonValueKind.Number or JsonValueKind.String,
                    "integer" => value is JsonValue i && i.GetValueKind() == JsonValueKind.Number,
                    _ => true,
                };
                if (!ok) return $"{name}: argument '{key}' must be a {type}";
                if (property["enum"] is JsonArray options && value is JsonValue ev && ev.GetValueKind() == JsonValueKind.String
                    && !options.Any(o => o?.GetValue<string>() == ev.GetValue<string>()))
                    return $"{name}: argument '{key}' must be one of {options.ToJsonString()}";
            }
        return null;
    }
}
