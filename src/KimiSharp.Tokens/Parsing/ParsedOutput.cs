using System.Text;

namespace KimiSharp.Tokens.Parsing;

/// <summary>One tool call of a parsed output.</summary>
/// <param name="Arguments">The argument text as generated (whitespace-only becomes <c>{}</c>).</param>
/// <param name="Error">Why the call is malformed, or null.</param>
public sealed record ParsedToolCall(int Index, string Id, string Name, string Arguments, string? Error);

/// <summary>A whole assistant output, assembled from <see cref="ParserEvent"/>s.</summary>
/// <param name="Reasoning">The reasoning text; null when the output had no reasoning part, "" for <c>&lt;think&gt;&lt;/think&gt;</c>.</param>
public sealed record ParsedOutput(string? Reasoning, string Content, IReadOnlyList<ParsedToolCall> ToolCalls, FinishReason FinishReason)
{
    /// <summary>Folds an event stream into the message it describes.</summary>
    /// <param name="sawReasoning">Report "" rather than null reasoning when no reasoning text arrived (see <see cref="KimiOutputParser.SawReasoning"/>).</param>
    public static ParsedOutput FromEvents(IEnumerable<ParserEvent> events, bool sawReasoning = false)
    {
        ArgumentNullException.ThrowIfNull(events);
        StringBuilder? reasoning = sawReasoning ? new StringBuilder() : null;
        var content = new StringBuilder();
        var calls = new List<ParsedToolCall>();
        var open = new Dictionary<int, (string Id, string Name)>();
        var finish = FinishReason.Length;
        foreach (var e in events)
        {
            switch (e)
            {
                case ReasoningDelta r:
                    (reasoning ??= new StringBuilder()).Append(r.Text);
                    break;
                case ContentDelta c:
                    content.Append(c.Text);
                    break;
                case ToolCallStart s:
                    open[s.Index] = (s.Id, s.Name);
                    break;
                case ToolCallEnd t:
                    var (id, name) = open.Remove(t.Index, out var started) ? started : ("", "");
                    calls.Add(new ParsedToolCall(t.Index, id, name, t.ArgumentsJson, t.Error));
                    break;
                case End end:
                    finish = end.Reason;
                    break;
            }
        }

        return new ParsedOutput(reasoning?.ToString(), content.ToString(), calls, finish);
    }
}
