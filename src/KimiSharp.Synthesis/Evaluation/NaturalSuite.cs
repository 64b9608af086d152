using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace KimiSharp.Synthesis.Evaluation;

/// <summary>A tool call that solves an item (or a step of it): how its key was checked with the real tools.</summary>
public sealed record ReferenceCall(string Name, JsonObject Arguments);

/// <summary>
/// One held-out question of the natural-phrasing suite: its category, the prompt as a person would type it, what a
/// correct answer must show, and the reference tool calls that solve it (none for plain chat).
/// </summary>
public sealed record NaturalItem(string Id, string Category, string Prompt, AnswerRule Expect, IReadOnlyList<ReferenceCall> Reference);

/// <summary>
/// What a correct answer shows. Every rule that is set must hold:
/// <see cref="Number"/> a number equal to it at the precision the answer writes it (at least two decimals, or all of
/// the key's when it has fewer); <see cref="Date"/> the date in ISO, "March 5, 2025" or "5 March 2025" form;
/// <see cref="Text"/> each string; <see cref="Any"/> one of them; <see cref="AllAny"/> one of each group;
/// <see cref="None"/> none of them (all case-insensitive); <see cref="MaxChars"/> at most that long;
/// <see cref="NoTools"/> no tool call; <see cref="Tool"/> a successful call of that tool whose arguments hold every
/// <see cref="Text"/> string.
/// </summary>
public sealed record AnswerRule
{
    public string? Number { get; init; }
    public string? Date { get; init; }
    public IReadOnlyList<string> Text { get; init; } = [];
    public IReadOnlyList<string> Any { get; init; } = [];
    public IReadOnlyList<IReadOnlyList<string>> AllAny { get; init; } = [];
    public IReadOnlyList<string> None { get; init; } = [];
    public int? MaxChars { get; init; }
    public bool NoTools { get; init; }
    public string? Tool { get; init; }

    /// <summary>Null when <paramref name="answer"/> (and the run's <paramref name="messages"/>) pass; otherwise why not.</summary>
    public string? Judge(string? answer, JsonArray? messages = null)
    {
        if (answer is null) return "no answer";
        string lower = answer.ToLowerInvariant();
        if (Number is not null && !AnswerNumbers.States(answer, Number)) return $"does not state {Number}";
        if (Date is not null && !StatesDate(lower, Date)) return $"does not state the date {Date}";
        foreach (string t in Text)
            if (!lower.Contains(t.ToLowerInvariant(), StringComparison.Ordinal)) return $"does not say '{t}'";
        if (Any.Count > 0 && !Any.Any(t => lower.Contains(t.ToLowerInvariant(), StringComparison.Ordinal)))
            return $"says none of: {string.Join(", ", Any)}";
        foreach (var group in AllAny)
            if (!group.Any(t => lower.Contains(t.ToLowerInvariant(), StringComparison.Ordinal))) return $"says none of: {string.Join(", ", group)}";
        foreach (string t in None)
            if (lower.Contains(t.ToLowerInvariant(), StringComparison.Ordinal)) return $"says '{t}'";
        if (MaxChars is int max && answer.Length > max) return $"is {answer.Length} characters long (at most {max})";
        var calls = ToolCalls(messages);
        if (NoTools && calls.Count > 0) return $"called {calls[0].Name} where no tool was needed";
        if (Tool is not null && !calls.Any(c => c.Name == Tool && !c.Failed
                && Text.All(t => c.Arguments.Contains(t, StringComparison.OrdinalIgnoreCase))))
            return $"made no successful {Tool} call with {string.Join(", ", Text)}";
        return null;
    }

    private static bool StatesDate(string lowerAnswer, string iso)
    {
        var d = DateOnly.ParseExact(iso, "yyyy-MM-dd", CultureInfo.InvariantCulture);
        string month = d.ToString("MMMM", CultureInfo.InvariantCulture).ToLowerInvariant();
        string[] forms = [iso, $"{month} {d.Day}, {d.Year}", $"{month} {d.Day} {d.Year}", $"{d.Day} {month} {d.Year}", $"{d.Day} {month}, {d.Year}"];
        return forms.Any(f => lowerAnswer.Contains(f, StringComparison.Ordinal));
    }

    /// <summary>Tool calls of a run, with their arguments and whether their result was an error.</summary>
    internal static List<(string Name, string Arguments, bool Failed)> ToolCalls(JsonArray? messages)
    {
        var calls = new List<(string, string, bool)>();
        if (messages is null) return calls;
        // A model may repeat a call id; each result answers the call just before it, so the later one wins.
        var results = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in messages.OfType<JsonObject>().Where(m => m["role"]?.GetValue<string>() == "tool"))
            results[m["tool_call_id"]?.GetValue<string>() ?? ""] = m["content"]?.GetValue<string>() ?? "";
        foreach (var m in messages.OfType<JsonObject>())
        {
            if (m["tool_calls"] is not JsonArray array) continue;
            foreach (var call in array.OfType<JsonObject>())
            {
                string id = call["id"]?.GetValue<string>() ?? "";
                string name = call["function"]?["name"]?.GetValue<string>() ?? "";
                string arguments = call["function"]?["arguments"]?.GetValue<string>() ?? "";
                // Arguments as the model wrote them, unescaped where they parse, so "B-117" matches a JSON string.
                try { arguments = string.Join(" ", JsonNode.Parse(arguments)?.AsObject().Select(p => p.Value?.ToString()) ?? []); }
                // Not JSON, not an object, or a key written twice ({"value":…,"value":…}): kept as written.
                catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException) { }
                bool failed = !results.TryGetValue(id, out string? result) || result.StartsWith("error:", StringComparison.Ordinal);
                calls.Add((name, arguments, failed));
            }
        }
        return calls;
    }
}

/// <summary>Numbers in answers as people write them: signs, thousands separators, decimals.</summary>
public static partial class AnswerNumbers
{
    [GeneratedRegex(@"(?<![\w.,])(?<!\d[-−])([-−]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d])")]
    private static partial Regex NumberPattern();

    /// <summary>The numbers in <paramref name="text"/> with the decimals each was written with ("−1,250.50" → (-1250.50, 2)).</summary>
    public static IEnumerable<(decimal Value, int Decimals)> Find(string text)
    {
        foreach (Match m in NumberPattern().Matches(text))
        {
            // "7-19" is 7 and 19's token, not 7 and -19: a sign counts only after a space, a bracket or the start, and
            // digits right after "digit-" (555-0187, 2025-07-15) are no number of their own.
            bool signed = m.Groups[1].Length > 0;
            string digits = m.Groups[2].Value.Replace(",", "", StringComparison.Ordinal) + m.Groups[3].Value;
            if (!decimal.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value)) continue;
            int decimals = m.Groups[3].Length == 0 ? 0 : m.Groups[3].Length - 1;
            yield return (signed ? -value : value, decimals);
        }
    }

    /// <summary>
    /// Whether <paramref name="answer"/> states <paramref name="expected"/>: some number in it equals the key rounded to
    /// the decimals it is written with, and it keeps at least min(2, the key's decimals) of them ("19.31" states
    /// 19.312128; "19.3" and "19" do not; "12" and "12.0" state 12).
    /// </summary>
    public static bool States(string answer, string expected)
    {
        decimal key = decimal.Parse(expected, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        int keyDecimals = expected.Contains('.') ? expected.Length - expected.IndexOf('.') - 1 : 0;
        foreach (var (value, decimals) in Find(answer))
        {
            if (decimals < Math.Min(2, keyDecimals)) continue;
            decimal half = 0.5m * (decimal)Math.Pow(10, -Math.Min(decimals, 20));
            if (Math.Abs(value - key) <= half) return true;
        }
        return false;
    }
}

/// <summary>The natural-phrasing suite: held-out questions written apart from the generator's templates (natural.jsonl).</summary>
public static class NaturalSuite
{
    private const string ResourceName = "KimiSharp.Synthesis.Evaluation.natural.jsonl";

    /// <summary>The categories, in the order reports list them.</summary>
    public static IReadOnlyList<string> Categories { get; } =
        ["arithmetic", "powers-roots", "percent", "word-problems", "multi-step", "units", "dates", "lookups", "notes", "typos", "chat"];

    private static readonly Lazy<IReadOnlyList<NaturalItem>> s_items = new(() =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ResourceName} is missing");
        using var reader = new StreamReader(stream);
        return Parse(reader);
    });

    /// <summary>The suite's questions, in file order.</summary>
    public static IReadOnlyList<NaturalItem> Items => s_items.Value;

    /// <summary>Reads items, one JSON object a line; a bad line is reported with its number.</summary>
    public static IReadOnlyList<NaturalItem> Parse(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var items = new List<NaturalItem>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        int lineNumber = 0;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            try
            {
                var item = ParseItem(JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not a JSON object"));
                if (!ids.Add(item.Id)) throw new FormatException($"duplicate id '{item.Id}'");
                items.Add(item);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                throw new FormatException($"natural suite line {lineNumber}: {e.Message}", e);
            }
        }
        return items;
    }

    private static NaturalItem ParseItem(JsonObject o)
    {
        string Required(JsonObject from, string name) =>
            from[name]?.GetValue<string>() is { Length: > 0 } s ? s : throw new FormatException($"'{name}' must be a non-empty string");
        static IReadOnlyList<string> Strings(JsonNode? node) => node is JsonArray a ? a.Select(n => n!.GetValue<string>()).ToArray() : [];
        string category = Required(o, "category");
        if (!Categories.Contains(category)) throw new FormatException($"unknown category '{category}' (known: {string.Join(", ", Categories)})");
        var expect = o["expect"] as JsonObject ?? throw new FormatException("'expect' must be an object");
        var known = new HashSet<string> { "number", "date", "text", "any", "all_any", "none", "max_chars", "no_tools", "tool" };
        foreach (var (key, _) in expect)
            if (!known.Contains(key)) throw new FormatException($"unknown rule '{key}' in 'expect'");
        var rule = new AnswerRule
        {
            Number = expect["number"]?.GetValue<string>(),
            Date = expect["date"]?.GetValue<string>(),
            Text = Strings(expect["text"]),
            Any = Strings(expect["any"]),
            AllAny = expect["all_any"] is JsonArray groups ? groups.Select(Strings).ToArray() : [],
            None = Strings(expect["none"]),
            MaxChars = expect["max_chars"]?.GetValue<int>(),
            NoTools = expect["no_tools"]?.GetValue<bool>() ?? false,
            Tool = expect["tool"]?.GetValue<string>(),
        };
        if (rule.Number is not null && !decimal.TryParse(rule.Number, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out _))
            throw new FormatException($"'number' must be a plain decimal, got '{rule.Number}'");
        if (rule.Date is not null && !DateOnly.TryParseExact(rule.Date, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            throw new FormatException($"'date' must be YYYY-MM-DD, got '{rule.Date}'");
        var reference = new List<ReferenceCall>();
        if (o["reference"] is JsonArray calls)
            foreach (var call in calls.OfType<JsonObject>())
                reference.Add(new ReferenceCall(Required(call, "name"), call["arguments"] as JsonObject ?? throw new FormatException("a reference call needs 'arguments'")));
        return new NaturalItem(Required(o, "id"), category, Required(o, "prompt"), rule, reference);
    }
}
