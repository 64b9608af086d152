using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using KimiSharp.Synthesis;
using KimiSharp.Synthesis.Evaluation;

namespace KimiSharp.Agent.Tests;

/// <summary>
/// The natural-phrasing suite: its keys are right (computed apart in build_natural.py, checked again here with the
/// real tools), its questions are not the generator's, its judge reads answers as intended, and its runner reports by category.
/// </summary>
public sealed partial class NaturalSuiteTests
{
    private static IReadOnlyList<NaturalItem> Items => NaturalSuite.Items;

    [Fact]
    public void Has_300_questions_in_every_category_each_with_a_checkable_rule()
    {
        Assert.True(Items.Count >= 300, $"{Items.Count} questions");
        Assert.Equal(Items.Count, Items.Select(i => i.Id).Distinct().Count());
        foreach (string category in NaturalSuite.Categories)
            Assert.True(Items.Count(i => i.Category == category) >= 10, $"{category}: {Items.Count(i => i.Category == category)} questions");
        foreach (var item in Items)
        {
            var e = item.Expect;
            if (item.Category == "chat")
            {
                Assert.True(e.NoTools && e.MaxChars is > 0, item.Id);
                Assert.Empty(item.Reference);
            }
            else
            {
                Assert.True(e.Number is not null || e.Date is not null || e.Text.Count > 0, item.Id);
                Assert.NotEmpty(item.Reference);
            }
        }
    }

    [GeneratedRegex(@"\d[\d,]*(?:\.\d+)?")]
    private static partial Regex PromptNumber();

    /// <summary>
    /// Every key checked with the real tools: the reference calls run without error, the last one's result states the
    /// key (within the tools' 6 decimals), and an answer built from that result passes the judge.
    /// </summary>
    [Fact]
    public void Every_key_agrees_with_the_tools()
    {
        foreach (var item in Items.Where(i => i.Reference.Count > 0))
        {
            var tools = Toolbox.CreateDefault();
            ToolResult? last = null;
            foreach (var call in item.Reference)
            {
                last = tools.Invoke(call.Name, call.Arguments.ToJsonString());
                Assert.False(last.IsError, $"{item.Id}: {call.Name} {call.Arguments.ToJsonString()} → {last.Content}");
            }
            string result = last!.Content;
            var e = item.Expect;
            if (e.Number is not null)
            {
                decimal key = decimal.Parse(e.Number, NumberStyles.Float, CultureInfo.InvariantCulture);
                decimal tool = decimal.Parse(result.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture);
                Assert.True(Math.Abs(key - tool) <= 0.000001m, $"{item.Id} '{item.Prompt}': key {key}, tools {tool}");
                // A key the question itself states would be passed by an answer that only repeats the question.
                var promptNumbers = PromptNumber().Matches(item.Prompt).Select(m => decimal.Parse(m.Value.Replace(",", ""), CultureInfo.InvariantCulture));
                Assert.False(promptNumbers.Contains(Math.Abs(key)), $"{item.Id} '{item.Prompt}' states its own key {key}");
            }
            if (e.Date is not null) Assert.Equal(e.Date, result);
            foreach (string text in e.Text)
                Assert.True(result.Contains(text, StringComparison.OrdinalIgnoreCase) || item.Prompt.Contains(text, StringComparison.Ordinal),
                    $"{item.Id}: '{text}' is neither in the tool result '{result}' nor in the question");
            var messages = new JsonArray
            {
                new JsonObject { ["role"] = "user", ["content"] = item.Prompt },
                new JsonObject
                {
                    ["role"] = "assistant", ["content"] = "",
                    ["tool_calls"] = new JsonArray(item.Reference.Select((c, k) => (JsonNode)new JsonObject
                    {
                        ["id"] = $"functions.{c.Name}:{k}", ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments.ToJsonString() },
                    }).ToArray()),
                },
            };
            for (int k = 0; k < item.Reference.Count; k++)
                messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = $"functions.{item.Reference[k].Name}:{k}", ["content"] = "ok" });
            string answer = $"Here you go: {result}" + (e.Text.Count > 0 ? $" ({string.Join(", ", e.Text)})" : "") + ".";
            Assert.True(e.Judge(answer, messages) is null, $"{item.Id}: the reference answer '{answer}' fails: {e.Judge(answer, messages)}");
        }
    }

    private static string Normalize(string text) =>
        Regex.Replace(Regex.Replace(text.ToLowerInvariant(), @"[^\p{L}\p{N}%]+", " "), @"\s+", " ").Trim();

    /// <summary>The question's shape: numbers, dates and knowledge-base names masked, so a template matches whatever it was filled with.</summary>
    private static string Shape(string text)
    {
        string masked = Regex.Replace(text, @"\d[\d,\-/]*(?:\.\d+)?", "#");
        foreach (var entity in KnowledgeBase.Default.Entities)
            masked = masked.Replace(entity.Name, "@", StringComparison.Ordinal);
        // Symbols stay (a template "# * #" is not "# ^ #"); spacing, case and the closing punctuation do not count.
        return Regex.Replace(masked.ToLowerInvariant(), @"\s+", "").TrimEnd('.', '?', '!');
    }

    /// <summary>
    /// No question is in the generator's output, verbatim or as one of its templates: 30,000 synthesized trajectories
    /// (three seeds, the default training mix and one of short tasks only) and 10,000 from the natural-phrasing grammars
    /// share no normalized prompt and no shape.
    /// </summary>
    [Fact]
    public void No_question_or_question_shape_appears_in_synthesized_training_data()
    {
        var prompts = new HashSet<string>(StringComparer.Ordinal);
        var shapes = new HashSet<string>(StringComparer.Ordinal);
        void Take(Trajectory t)
        {
            foreach (var m in t.Messages.OfType<JsonObject>().Where(m => m["role"]?.GetValue<string>() == "user"))
            {
                string text = m["content"]!.GetValue<string>();
                prompts.Add(Normalize(text));
                if (text.Length < 300) shapes.Add(Shape(text));
            }
        }
        foreach (int seed in new[] { 1, 2 })
        {
            var mix = new TaskGenerator(seed, options: new SynthesisOptions { MaxCities = 12 });
            for (int i = 0; i < 5_000; i++) Take(mix.Next());
        }
        var shortOnly = new TaskGenerator(3, options: new SynthesisOptions { LongShare = 0 });
        for (int i = 0; i < 20_000; i++) Take(shortOnly.Next());
        // The natural-phrasing grammars, on their own.
        var natural = new TaskGenerator(4, options: new SynthesisOptions { LongShare = 0, NaturalShare = 1 });
        for (int i = 0; i < 10_000; i++) Take(natural.Next());
        Assert.True(shapes.Count > 50, $"only {shapes.Count} shapes: the sample is too small to mean anything");

        var found = new List<string>();
        foreach (var item in Items)
        {
            if (prompts.Contains(Normalize(item.Prompt))) found.Add($"{item.Id} '{item.Prompt}' is in the synthesized data");
            else if (shapes.Contains(Shape(item.Prompt))) found.Add($"{item.Id} '{item.Prompt}' has the shape of a generator template: {Shape(item.Prompt)}");
        }
        Assert.True(found.Count == 0, string.Join("\n", found));
    }

    [Theory]
    [InlineData("19.31 km", "19.312128", true)]
    [InlineData("about 19.3 km", "19.312128", false)]     // fewer than two decimals of a fractional key
    [InlineData("19 km", "19.312128", false)]
    [InlineData("It is 12.", "12", true)]
    [InlineData("It is 12.0.", "12", true)]
    [InlineData("It is 120.", "12", false)]
    [InlineData("It is 1.2.", "12", false)]
    [InlineData("That makes 1,048,576.", "1048576", true)]
    [InlineData("7 - 19 = -12", "-12", true)]
    [InlineData("7-19 is 12", "-12", false)]                // no sign after a digit
    [InlineData("it is −12", "-12", true)]
    [InlineData("$8.35 in total", "8.35", true)]
    [InlineData("0.5", "0.5", true)]
    [InlineData("0.125 exactly", "0.125", true)]
    [InlineData("0.13", "0.125", true)]
    [InlineData("0.1", "0.125", false)]
    [InlineData("call 555-0187", "187", false)]             // digits after "digit-" belong to that token
    [InlineData("no number here", "3", false)]
    public void Numbers_are_judged_at_the_precision_written(string answer, string key, bool states) =>
        Assert.Equal(states, AnswerNumbers.States(answer, key));

    [Fact]
    public void Rules_judge_dates_texts_lengths_and_tool_use()
    {
        Assert.Null(new AnswerRule { Date = "2025-07-15" }.Judge("It is 2025-07-15."));
        Assert.Null(new AnswerRule { Date = "2025-07-15" }.Judge("That is July 15, 2025."));
        Assert.Null(new AnswerRule { Date = "2025-07-15" }.Judge("15 July 2025"));
        Assert.NotNull(new AnswerRule { Date = "2025-07-15" }.Judge("2025-07-16"));
        Assert.Equal("no answer", new AnswerRule().Judge(null));
        var chat = new AnswerRule { Any = ["k2-nano", "kimi"], None = ["4711"], MaxChars = 40, NoTools = true };
        Assert.Null(chat.Judge("I am K2-nano."));
        Assert.Equal("says none of: k2-nano, kimi", chat.Judge("I am a model."));
        Assert.Equal("says '4711'", chat.Judge("I am k2-nano, 4711."));
        Assert.Contains("characters long", chat.Judge("I am k2-nano and I will now tell you a very long story."));
        var called = new JsonArray
        {
            new JsonObject { ["role"] = "assistant", ["content"] = "", ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["id"] = "functions.memory:0", ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = "memory", ["arguments"] = """{"action":"write","key":"spot","value":"B-117"}""" },
            }) },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "functions.memory:0", ["content"] = "saved" },
        };
        Assert.Equal("called memory where no tool was needed", chat.Judge("I am k2-nano.", called));
        var note = new AnswerRule { Text = ["B-117"], Tool = "memory" };
        Assert.Null(note.Judge("Saved B-117.", called));
        Assert.Equal("made no successful memory call with B-117", note.Judge("Saved B-117.", []));
        called[1]!["content"] = "error: memory is full (100 notes)";
        Assert.NotNull(note.Judge("Saved B-117.", called));
        // A model that writes a key twice or repeats a call id is judged, not crashed on: a duplicated "value"
        // is not a successful note, and the later result answers a repeated id.
        var repeated = new JsonArray
        {
            new JsonObject { ["role"] = "assistant", ["content"] = "", ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["id"] = "functions.memory:0", ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = "memory", ["arguments"] = """{"action":"write","value":"B-117","value":"B-117"}""" },
            }) },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "functions.memory:0", ["content"] = "error: 'key' is required" },
            new JsonObject { ["role"] = "assistant", ["content"] = "", ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["id"] = "functions.memory:0", ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = "memory", ["arguments"] = """{"action":"write","key":"spot","value":"B-117"}""" },
            }) },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "functions.memory:0", ["content"] = "saved spot" },
        };
        Assert.Null(note.Judge("Saved B-117.", repeated));
        repeated.RemoveAt(3);
        repeated.RemoveAt(2);
        Assert.Equal("made no successful memory call with B-117", note.Judge("Saved B-117.", repeated));
        Assert.Null(new AnswerRule { AllAny = [["calc", "math"], ["unit"]] }.Judge("Math and units."));
        Assert.Equal("says none of: unit", new AnswerRule { AllAny = [["calc", "math"], ["unit"]] }.Judge("Math only."));
    }

    [Fact]
    public void Bad_suite_lines_are_reported_with_their_number()
    {
        string good = """{"id":"a","category":"chat","prompt":"hi","expect":{"any":["hello"]}}""";
        var e = Assert.Throws<FormatException>(() => NaturalSuite.Parse(new StringReader(good + "\n" + """{"id":"b","category":"poetry","prompt":"x","expect":{}}""")));
        Assert.StartsWith("natural suite line 2: unknown category 'poetry'", e.Message);
        e = Assert.Throws<FormatException>(() => NaturalSuite.Parse(new StringReader(good + "\n\n" + good)));
        Assert.Equal("natural suite line 3: duplicate id 'a'", e.Message);
        e = Assert.Throws<FormatException>(() => NaturalSuite.Parse(new StringReader("""{"id":"a","category":"chat","prompt":"hi","expect":{"numbr":"3"}}""")));
        Assert.Equal("natural suite line 1: unknown rule 'numbr' in 'expect'", e.Message);
        e = Assert.Throws<FormatException>(() => NaturalSuite.Parse(new StringReader("""{"id":"a","category":"units","prompt":"hi","expect":{"number":"3 km"}}""")));
        Assert.Equal("natural suite line 1: 'number' must be a plain decimal, got '3 km'", e.Message);
        Assert.Throws<FormatException>(() => NaturalSuite.Parse(new StringReader("{not json")));
    }

    [Fact]
    public void Selects_categories_and_the_first_questions_of_each()
    {
        var two = NaturalEvalOptions.Select(["units", "chat"], 2);
        Assert.Equal(["units", "units", "chat", "chat"], two.Select(i => i.Category).OrderByDescending(c => c).ToArray());
        Assert.Equal(Items.First(i => i.Category == "units"), two.First(i => i.Category == "units"));
        Assert.Equal(Items.Count, NaturalEvalOptions.Select(null, null).Count);
        Assert.Throws<ArgumentException>(() => NaturalEvalOptions.Select(["poetry"], null));
    }

    /// <summary>A model that answers from the reference (tool result first) for half of the questions and wrongly otherwise.</summary>
    [Fact]
    public async Task Runner_reports_accuracy_by_category()
    {
        var items = NaturalEvalOptions.Select(["arithmetic", "dates", "chat"], 4);
        var byPrompt = items.ToDictionary(i => i.Prompt);
        var model = new ScriptedModel((_, request) =>
        {
            var item = byPrompt[request.Messages[0]!["content"]!.GetValue<string>()];
            bool right = item.Id.EndsWith('1') || item.Id.EndsWith('2');
            int steps = request.Messages.Count(m => m!["role"]!.GetValue<string>() == "assistant");
            if (item.Reference.Count > 0 && steps == 0)
                return new ScriptedStep("use the tool", "", [(item.Reference[0].Name, item.Reference[0].Arguments.ToJsonString(), null)]);
            string toolResult = request.Messages.LastOrDefault(m => m!["role"]!.GetValue<string>() == "tool")?["content"]?.GetValue<string>() ?? "";
            string answer = item.Category == "chat" ? (right ? "Hello! I am k2-nano, made by KimiSharp; I can't do that, but thank you, bye, good night!" : "4711")
                : right ? $"The answer is {toolResult}." : "The answer is 4711.";
            return new ScriptedStep("", answer, []);
        });
        var seen = new List<NaturalEvalProgress>();
        var report = await NaturalEvaluation.RunAsync(model, "scripted", new NaturalEvalOptions { Items = items }, new SyncProgress(seen.Add));

        Assert.Equal(["arithmetic", "dates", "chat"], report.Categories.Select(c => c.Category).ToArray());
        Assert.All(report.Categories, c => Assert.Equal(4, c.Items));
        Assert.Equal(2, report.Categories[0].Passes);
        Assert.Equal(2, report.Categories[1].Passes);
        Assert.Equal(4, report.Categories[0].ToolCalls);
        Assert.Equal(0, report.Categories[2].ToolCalls);
        Assert.Equal(12, report.Items);
        Assert.Equal(13, seen.Count);
        Assert.All(seen.Skip(1), p => Assert.Equal(p.Last!.Passed, p.Last.Failure is null));
        Assert.Contains("| arithmetic | 4 | 2 | 50.0% |", report.ToMarkdown());
        Assert.Contains("| **overall** | 12 |", report.ToMarkdown());
        var json = JsonNode.Parse(report.ToJson())!;
        Assert.Equal("natural", json["suite"]!.GetValue<string>());
        Assert.Equal(3, json["categories"]!.AsArray().Count);
    }

    private sealed class SyncProgress(Action<NaturalEvalProgress> action) : IProgress<NaturalEvalProgress>
    {
        public void Report(NaturalEvalProgress value) => action(value);
    }
}
