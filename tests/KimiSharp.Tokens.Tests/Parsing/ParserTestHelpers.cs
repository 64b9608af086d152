using System.Text;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Tokens.Tests.Parsing;

internal static class ParserTestHelpers
{
    public static List<ParserEvent> ParseWhole(string text, KimiOutputParserOptions? options = null)
    {
        var parser = new KimiOutputParser(options);
        var events = new List<ParserEvent>(parser.Feed(text));
        events.AddRange(parser.Finish());
        return events;
    }

    public static List<ParserEvent> ParseChunks(IEnumerable<string> chunks, KimiOutputParserOptions? options = null)
    {
        var parser = new KimiOutputParser(options);
        var events = new List<ParserEvent>();
        foreach (var chunk in chunks)
        {
            events.AddRange(parser.Feed(chunk));
        }

        events.AddRange(parser.Finish());
        return events;
    }

    public static IEnumerable<string> Chars(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            yield return text[i].ToString();
        }
    }

    /// <summary>Joins consecutive deltas of the same kind (and call), so different chunkings compare equal.</summary>
    public static List<ParserEvent> Merge(IEnumerable<ParserEvent> events)
    {
        var merged = new List<ParserEvent>();
        foreach (var e in events)
        {
            var last = merged.Count > 0 ? merged[^1] : null;
            switch (e, last)
            {
                case (ReasoningDelta r, ReasoningDelta l):
                    merged[^1] = new ReasoningDelta(l.Text + r.Text);
                    break;
                case (ContentDelta c, ContentDelta l):
                    merged[^1] = new ContentDelta(l.Text + c.Text);
                    break;
                case (ToolCallArgumentsDelta a, ToolCallArgumentsDelta l) when a.Index == l.Index:
                    merged[^1] = new ToolCallArgumentsDelta(a.Index, l.Text + a.Text);
                    break;
                default:
                    merged.Add(e);
                    break;
            }
        }

        return merged;
    }

    public static string Describe(IEnumerable<ParserEvent> events)
    {
        var sb = new StringBuilder();
        foreach (var e in events)
        {
            sb.AppendLine(e.ToString());
        }

        return sb.ToString();
    }
}
