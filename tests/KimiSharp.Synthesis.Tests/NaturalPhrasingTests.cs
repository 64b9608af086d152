using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Agent.Tools;
using KimiSharp.Synthesis.Evaluation;
using Xunit.Abstractions;

namespace KimiSharp.Synthesis.Tests;

/// <summary>
/// The natural-phrasing grammars: every teacher trajectory is right against the real tools, the arguments mean what
/// the request says (checked by an oracle written apart from the grammar), the phrasing is diverse, the held-out suite
/// never appears, and the older mixes are unchanged.
/// </summary>
public sealed partial class NaturalPhrasingTests(ITestOutputHelper output)
{
    private static readonly JsonArray Tools = Toolbox.CreateDefault().Declarations();
    private const int PerKind = 300;

    private static List<Trajectory> Sample(int seed, int perKind) => Sample(seed, perKind, out _);

    private static List<Trajectory> Sample(int seed, int perKind, out int decontaminated)
    {
        var generator = new TaskGenerator(seed, options: new SynthesisOptions { FlawRate = 0 });
        var all = new List<Trajectory>();
        foreach (string kind in TaskGenerator.NaturalKinds)
            for (int i = 0; i < perKind; i++) all.Add(generator.Natural(kind));
        decontaminated = generator.Decontaminated;
        return all;
    }

    private static readonly Lazy<List<Trajectory>> s_sample = new(() => Sample(5, PerKind));

    private static string User(Trajectory t) => t.Messages[0]!["content"]!.GetValue<string>();

    private static JsonObject Arguments(Trajectory t, int call = 0) => (JsonObject)JsonNode.Parse(t.Calls().ElementAt(call).Arguments)!;

    [Fact]
    public void Every_teacher_trajectory_passes_the_rubric_and_replays_against_the_real_tools()
    {
        var filter = new RubricFilter(Tools);
        foreach (var t in s_sample.Value)
        {
            var verdict = filter.Judge(t);
            Assert.True(verdict.Keep, $"{t.Task.Kind} '{User(t)}': {verdict.Reason} {verdict.Detail}");
            Assert.True(t.Task.IsAnsweredBy(t.FinalAnswer), $"'{User(t)}' → '{t.FinalAnswer}' misses {string.Join(", ", t.Task.Expected)}");
            var replay = Toolbox.CreateDefault();
            var results = t.Messages.OfType<JsonObject>().Where(m => m["role"]!.GetValue<string>() == "tool").Select(m => m["content"]!.GetValue<string>()).ToList();
            var calls = t.Calls().ToList();
            Assert.Equal(calls.Count, results.Count);
            for (int c = 0; c < calls.Count; c++)
            {
                Assert.False(results[c].StartsWith("error:", StringComparison.Ordinal), $"'{User(t)}': {calls[c].Name} {calls[c].Arguments} → {results[c]}");
                Assert.Equal(replay.Invoke(calls[c].Name, calls[c].Arguments).Content, results[c]);
            }
            if (t.Task.Kind == "natural-chat") Assert.Empty(calls);
            else Assert.InRange(calls.Count, 1, t.Task.Kind == "natural-compare" ? 3 : 2);
            // "How many more", "how much older": the cities are ordered so that a gap comes out positive.
            if (t.Task.Kind == "natural-compare" && Regex.IsMatch(User(t), "more people|higher than|older|larger than|bigger than", RegexOptions.IgnoreCase))
                Assert.DoesNotContain("-", results[^1]);
        }
        Assert.Equal(s_sample.Value.Count, filter.Kept);
    }

    private static readonly Dictionary<string, string> s_wordNumbers = new(StringComparer.OrdinalIgnoreCase)
    {
        ["zero"] = "0", ["one"] = "1", ["two"] = "2", ["three"] = "3", ["four"] = "4", ["five"] = "5", ["six"] = "6", ["seven"] = "7",
        ["eight"] = "8", ["nine"] = "9", ["ten"] = "10", ["eleven"] = "11", ["twelve"] = "12", ["thirteen"] = "13", ["fourteen"] = "14",
        ["fifteen"] = "15", ["sixteen"] = "16", ["seventeen"] = "17", ["eighteen"] = "18", ["nineteen"] = "19", ["twenty"] = "20",
    };

    [GeneratedRegex(@"\d[\d,]*(?:\.\d+)?")]
    private static partial Regex Number();

    /// <summary>The numbers a request states, digits or words, separators removed.</summary>
    private static HashSet<string> Stated(string prompt)
    {
        var set = Number().Matches(prompt).Select(m => m.Value.Replace(",", "", StringComparison.Ordinal)).ToHashSet();
        foreach (Match w in Regex.Matches(prompt, @"\p{L}+"))
            if (s_wordNumbers.TryGetValue(w.Value, out string? d)) set.Add(d);
        return set;
    }

    /// <summary>Every operand of a calculator expression is a number the request states, or a fixed constant of the task (2, 3, 4, 7, 100).</summary>
    [Fact]
    public void Calculator_expressions_use_only_the_numbers_the_request_states()
    {
        // (Comparisons compute on lookup results, which the rubric already checks.)
        foreach (var t in s_sample.Value.Where(t => t.Calls().FirstOrDefault().Name == "calculator"))
        {
            string expression = Arguments(t)["expression"]!.GetValue<string>();
            var stated = Stated(User(t));
            foreach (Match m in Number().Matches(expression))
            {
                string n = m.Value.Replace(",", "", StringComparison.Ordinal);
                // Word problems may convert a period: a year has 12 months or 52 weeks, a week 7 days, a day 24 hours.
                bool period = t.Task.Kind == "natural-word-problem" && n is "7" or "12" or "24" or "52" or "60";
                Assert.True(stated.Contains(n) || n is "2" or "3" or "4" or "100" || period,
                    $"'{User(t)}' → {expression}: {n} is not in the request");
            }
        }
    }

    // An oracle written apart from the grammar: for requests whose meaning a regular expression pins down, the
    // expression must be exactly what the words say (order included).
    // Binary requests (one operation each, so a pattern anywhere in them pins their meaning).
    private const string N = @"(-?\d+(?:,\d{3})*(?:\.\d+)?)";

    private static readonly (string Kind, Regex Request, Func<Match, string> Expression)[] s_oracle =
    [
        ("natural-arithmetic", new($@"\bsubtract {N} from {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[2].Value}-{Paren(m.Groups[1].Value)}"),
        ("natural-arithmetic", new($@"\btake {N} (?:away )?from {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[2].Value}-{Paren(m.Groups[1].Value)}"),
        ("natural-arithmetic", new($@"(?<![\w.,-]){N} (?:less than|subtracted from) {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[2].Value}-{Paren(m.Groups[1].Value)}"),
        ("natural-arithmetic", new($@"\b(?:decrease|reduce) {N} by {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}-{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"\bdifference between {N} and {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}-{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"(?<![\w.,-]){N} minus {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}-{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"\bdivide {N} by {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}/{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"(?<![\w.,-]){N} (?:divided by|over|÷) {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}/{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"\bhow many times {N} goes into {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[2].Value}/{Paren(m.Groups[1].Value)}"),
        ("natural-arithmetic", new($@"\bmultiply {N} by {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}*{Paren(m.Groups[2].Value)}"),
        ("natural-arithmetic", new($@"(?<![\w.,-]){N} (?:times|×|multiplied by) {N}\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}*{Paren(m.Groups[2].Value)}"),
        ("natural-percent", new(@"^what percent of ([\d,]+) is ([\d,]+)\?$", RegexOptions.IgnoreCase), m => $"{m.Groups[2].Value}/{m.Groups[1].Value}*100"),
        ("natural-percent", new(@"\b([\d,]+) is what percentage of ([\d,]+)\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}/{m.Groups[2].Value}*100"),
        ("natural-power", new(@"\b(\d+) to the power of (\d+)\b", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}^{m.Groups[2].Value}"),
        ("natural-power", new(@"^(?:what is |what's )?(\d+) squared\??$", RegexOptions.IgnoreCase), m => $"{m.Groups[1].Value}^2"),
        ("natural-power", new(@"\bsquare root of ([\d,]+)\b", RegexOptions.IgnoreCase), m => $"sqrt({m.Groups[1].Value})"),
        ("natural-power", new(@"\bcube root of ([\d,]+)\b", RegexOptions.IgnoreCase), m => $"cbrt({m.Groups[1].Value})"),
    ];

    private static string Paren(string operand) => operand.StartsWith('-') ? $"({operand})" : operand;

    [Fact]
    public void Expressions_say_what_the_request_says()
    {
        int checkedCount = 0;
        foreach (var t in Sample(6, 600))
        {
            string prompt = Regex.Replace(User(t).Trim(), @"\bnegative ", "-", RegexOptions.IgnoreCase);
            foreach (var (kind, request, expression) in s_oracle)
                if (kind == t.Task.Kind && request.Match(prompt) is { Success: true } m)
                {
                    Assert.Equal(expression(m), Arguments(t)["expression"]!.GetValue<string>());
                    checkedCount++;
                }
        }
        Assert.True(checkedCount >= 150, $"only {checkedCount} requests matched the oracle");
    }

    /// <summary>The calculator's value of the teacher's expression, from the trajectory's tool message.</summary>
    private static string ToolValue(Trajectory t) => t.Messages.OfType<JsonObject>().First(m => m["role"]?.GetValue<string>() == "tool")["content"]!.GetValue<string>();

    private static string WordsToDigits(string text) =>
        Regex.Replace(text, @"\p{L}+", m => s_wordNumbers.TryGetValue(m.Value, out string? d) ? d : m.Value);

    // A step of a running-value request, read apart from the grammar: what it does to the value so far.
    private static readonly (Regex Step, Func<decimal, decimal, decimal> Apply)[] s_chainSteps =
    [
        (new(@"^(?:add (N)(?: to it)?|plus (N)|increase it by (N))$".Replace("N", N)), (x, n) => x + n),
        (new(@"^(?:subtract (N)|take away (N)|minus (N)|take (N) off|reduce it by (N))$".Replace("N", N)), (x, n) => x - n),
        (new(@"^(?:multiply (?:it |the result )?by (N)|times (N))$".Replace("N", N)), (x, n) => x * n),
        (new(@"^(?:divide (?:it |the result )?by (N)|split it (N) ways)$".Replace("N", N)), (x, n) => x / n),
        (new(@"^(?:double it|double the result)$"), (x, _) => x * 2),
        (new(@"^(?:triple it)$"), (x, _) => x * 3),
        (new(@"^(?:halve it|halve the result|take half of that)$"), (x, _) => x / 2),
        (new(@"^(?:square it|square the result|raise it to the power of 2)$"), (x, _) => x * x),
    ];

    /// <summary>
    /// Running-value requests ("Take 16, times 5, take 214 off, then halve it."), read step by step by this oracle
    /// and computed in decimal, must come to the calculator's value of the teacher's expression.
    /// </summary>
    [Fact]
    public void Step_by_step_requests_compute_what_they_say()
    {
        int checkedCount = 0;
        foreach (var t in Sample(9, 600).Where(t => t.Task.Kind == "natural-multi-step"))
        {
            string prompt = WordsToDigits(User(t).Trim().ToLowerInvariant());
            var start = Regex.Match(prompt, $@"(?:start with|take the number|first take|begin with|take) {N}(.*)$");
            if (!start.Success || Regex.IsMatch(prompt, @"(?:^|\s)(?:the sum|the product|the difference|the quotient)")) continue;
            decimal value = decimal.Parse(start.Groups[1].Value.Replace(",", ""), CultureInfo.InvariantCulture);
            bool readable = true;
            int steps = 0;
            foreach (string raw in Regex.Split(start.Groups[2].Value, @", and finally |, and then |, then |\. then |\. finally, |, |\. |\?|\.$|!"))
            {
                string part = raw.Trim();
                if (part.Length == 0) continue;
                var step = s_chainSteps.Select(s => (s.Apply, Match: s.Step.Match(part))).FirstOrDefault(s => s.Match.Success);
                if (step.Match is null)
                {
                    // Closing questions and pleasantries are skipped; anything else (a typo in a verb) is not read.
                    if (Regex.IsMatch(part, @"^(?:what|thanks|thank you|please|cheers|thx|i need it|:\))")) continue;
                    readable = false;
                    break;
                }
                string? operand = step.Match.Groups.Cast<Group>().Skip(1).FirstOrDefault(g => g.Success)?.Value;
                value = step.Apply(value, operand is null ? 0 : decimal.Parse(operand.Replace(",", ""), CultureInfo.InvariantCulture));
                steps++;
            }
            if (!readable || steps < 2) continue;
            decimal tool = decimal.Parse(ToolValue(t), CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(tool - Math.Round(value, 6)) <= 0.000001m * Math.Max(1, Math.Abs(value)), $"'{User(t)}' → {value}, teacher's expression gives {tool}");
            checkedCount++;
        }
        Assert.True(checkedCount >= 80, $"only {checkedCount} step-by-step requests were read by the oracle");
    }

    /// <summary>
    /// Nested requests in words or symbols ("the sum of 4 and 5, times 3", "40 divided by the difference between 9
    /// and 4", "(4 + 5) × 3"), rewritten word for word into symbols by this oracle and evaluated with ordinary
    /// precedence, must come to the calculator's value of the teacher's expression: the words group the way the
    /// expression does.
    /// </summary>
    [Fact]
    public void Nested_requests_group_the_way_their_expressions_do()
    {
        (string Pattern, string Replacement)[] rewrites =
        [
            (@"the (?:sum|total) of (\S+) and (\S+)", "($1+$2)"), (@"the difference between (\S+) and (\S+)", "($1-$2)"),
            (@"the product of (\S+) and (\S+)", "($1*$2)"), (@"the quotient of (\S+) and (\S+)", "($1/$2)"),
            (@"the square of (\S+)", "($1^2)"), (@"the cube of (\S+)", "($1^3)"), (@"(?:the square root|the root) of (\S+)", "sqrt($1)"),
            (@"√(\d[\d,]*)", "sqrt($1)"), (@" squared\b", "^2"), (@" cubed\b", "^3"), ("²", "^2"),
            (@" (?:plus|added to) ", "+"), (@" (?:minus|less|take away) ", "-"), (@" (?:times|multiplied by|×|x) ", "*"),
            (@" (?:divided by|over|÷) ", "/"), ("×", "*"), ("÷", "/"), (@", ", " "),
        ];
        int checkedCount = 0;
        foreach (var t in Sample(10, 600).Where(t => t.Task.Kind == "natural-multi-step"))
        {
            string expression = Arguments(t)["expression"]!.GetValue<string>();
            string prompt = WordsToDigits(User(t).Trim().ToLowerInvariant()).Replace(":)", "", StringComparison.Ordinal);
            if (Regex.IsMatch(prompt, @"start with|take the number|first take|begin with|\btake \d|then ")) continue;
            // Compound noun phrases first (their operands may be squares), then the infix words.
            for (int pass = 0; pass < 2; pass++)
                foreach (var (pattern, replacement) in rewrites) prompt = Regex.Replace(prompt, pattern, replacement);
            var math = Regex.Matches(prompt, @"[\d.,()+\-*/^ ]*(?:sqrt\([\d,]+\)[\d.,()+\-*/^ ]*)*").Select(m => m.Value.Trim()).MaxBy(v => v.Length) ?? "";
            int Ops(string e) => e.Count(c => c is '+' or '-' or '*' or '/' or '^') + Regex.Matches(e, "sqrt").Count;
            if (Ops(math) != Ops(expression)) continue;   // a typo in an operator word: not read
            var oracle = CalculatorTool.Evaluate(math.Replace(" ", "", StringComparison.Ordinal));
            if (oracle.IsError) continue;
            Assert.True(oracle.Content == ToolValue(t), $"'{User(t)}' read as {math} = {oracle.Content}; teacher's {expression} = {ToolValue(t)}");
            checkedCount++;
        }
        Assert.True(checkedCount >= 80, $"only {checkedCount} nested requests were read by the oracle");
    }

    // Units by what people write, mapped to the converter's symbols — written apart from the grammar's table.
    private static readonly Dictionary<string, string> s_unitOracle = new(StringComparer.Ordinal)
    {
        ["kilometer"] = "km", ["kilometers"] = "km", ["kilometres"] = "km", ["km"] = "km", ["kms"] = "km", ["Km"] = "km",
        ["mile"] = "mi", ["miles"] = "mi", ["mi"] = "mi", ["Miles"] = "mi", ["meter"] = "m", ["meters"] = "m", ["metres"] = "m", ["m"] = "m",
        ["foot"] = "ft", ["feet"] = "ft", ["ft"] = "ft", ["inch"] = "in", ["inches"] = "in", ["in"] = "in", ["\""] = "in",
        ["centimeter"] = "cm", ["centimeters"] = "cm", ["centimetres"] = "cm", ["cm"] = "cm", ["millimeter"] = "mm", ["millimeters"] = "mm",
        ["millimetres"] = "mm", ["mm"] = "mm", ["yard"] = "yd", ["yards"] = "yd", ["yd"] = "yd", ["yds"] = "yd",
        ["kilogram"] = "kg", ["kilograms"] = "kg", ["kg"] = "kg", ["kgs"] = "kg", ["kilos"] = "kg", ["pound"] = "lb", ["pounds"] = "lb",
        ["lb"] = "lb", ["lbs"] = "lb", ["gram"] = "g", ["grams"] = "g", ["g"] = "g", ["gr"] = "g", ["ounce"] = "oz", ["ounces"] = "oz", ["oz"] = "oz",
        ["liter"] = "l", ["liters"] = "l", ["litres"] = "l", ["l"] = "l", ["L"] = "l", ["milliliter"] = "ml", ["milliliters"] = "ml",
        ["millilitres"] = "ml", ["ml"] = "ml", ["mL"] = "ml", ["gallon"] = "gal", ["gallons"] = "gal", ["gal"] = "gal",
        ["hour"] = "h", ["hours"] = "h", ["h"] = "h", ["hrs"] = "h", ["hr"] = "h", ["minute"] = "min", ["minutes"] = "min", ["min"] = "min",
        ["mins"] = "min", ["second"] = "s", ["seconds"] = "s", ["s"] = "s", ["sec"] = "s", ["secs"] = "s", ["day"] = "day", ["days"] = "day",
        ["degree Celsius"] = "C", ["degrees Celsius"] = "C", ["Celsius"] = "C", ["celsius"] = "C", ["°C"] = "C", ["C"] = "C", ["degrees C"] = "C",
        ["degree Fahrenheit"] = "F", ["degrees Fahrenheit"] = "F", ["Fahrenheit"] = "F", ["fahrenheit"] = "F", ["°F"] = "F", ["F"] = "F",
        ["degrees F"] = "F", ["kelvin"] = "K", ["K"] = "K", ["kelvins"] = "K",
    };

    /// <summary>
    /// The converter gets the request's value, the unit right after it as "from" and the unit the request asks for as
    /// "to": both checked against the converter itself (converting 1 of the user's word to the argument gives 1).
    /// </summary>
    [Fact]
    public void Unit_arguments_are_the_units_the_request_names_in_its_direction()
    {
        foreach (var t in s_sample.Value.Where(t => t.Task.Kind == "natural-units"))
        {
            var args = Arguments(t);
            string from = args["from"]!.GetValue<string>(), to = args["to"]!.GetValue<string>();
            decimal value = args["value"]!.GetValue<decimal>();
            string reasoning = t.Messages[1]!["reasoning_content"]!.GetValue<string>();
            string answer = t.FinalAnswer!;
            // The answer names the target unit as the user did; that word means the "to" unit.
            string toWord = s_unitOracle.Keys.Where(k => answer.TrimEnd('.').EndsWith(" " + k, StringComparison.Ordinal)).OrderByDescending(k => k.Length).First();
            Assert.Equal(s_unitOracle[toWord], Symbol(to));
            Assert.Contains(toWord, User(t), StringComparison.OrdinalIgnoreCase);
            // The value is stated in the request (as digits or a word).
            Assert.True(Stated(User(t)).Contains(value.ToString(CultureInfo.InvariantCulture).TrimStart('-')), $"'{User(t)}' does not state {value}");
            Assert.NotEqual(Symbol(from), Symbol(to));
            Assert.Contains(from, reasoning, StringComparison.Ordinal);
        }
    }

    /// <summary>The converter's symbol for a unit argument: the one whose conversion of 1 into it is exactly 1.</summary>
    private static string Symbol(string unit) =>
        UnitConverterTool.Units.Single(u => UnitConverterTool.Convert(1m, unit, u) is { IsError: false } r && r.Content.StartsWith("1 ", StringComparison.Ordinal));

    [Fact]
    public void Dates_reach_the_calendar_as_the_same_day_and_before_means_negative_days()
    {
        var months = CultureInfo.InvariantCulture.DateTimeFormat.MonthNames[..12];
        int before = 0;
        foreach (var t in s_sample.Value.Where(t => t.Task.Kind == "natural-date"))
        {
            var args = Arguments(t);
            var date = DateOnly.ParseExact(args["date"]!.GetValue<string>(), "yyyy-MM-dd", CultureInfo.InvariantCulture);
            string prompt = User(t).ToLowerInvariant();
            // The request writes this day: ISO, y/m/d, or its month name (full or short) with day and year.
            string month = months[date.Month - 1].ToLowerInvariant();
            bool written = prompt.Contains(CalendarTool.FormatDate(date), StringComparison.Ordinal) || prompt.Contains($"{date.Year}/{date.Month:00}/{date.Day:00}", StringComparison.Ordinal)
                || (prompt.Contains(month[..3], StringComparison.Ordinal) && prompt.Contains(date.Year.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
                    && Regex.IsMatch(prompt, $@"(?<!\d){date.Day}(?:st|nd|rd|th)?(?!\d)"));
            Assert.True(written, $"'{User(t)}' does not write {CalendarTool.FormatDate(date)}");
            if (args["operation"]!.GetValue<string>() == "add_days")
            {
                int days = args["days"]!.GetValue<int>();
                bool saysBefore = Regex.IsMatch(prompt, @"\bbefore\b|\bgo back\b|\bsubtract\b");
                Assert.True(saysBefore == days < 0, $"'{User(t)}' → {days} days");
                if (days < 0) before++;
            }
        }
        Assert.True(before > 0);
    }

    [Fact]
    public void Chat_answers_are_short_truthful_and_name_each_tool_once()
    {
        string[] tools = ["calculator", "convert_units", "calendar", "lookup", "memory"];
        foreach (var t in s_sample.Value.Where(t => t.Task.Kind == "natural-chat"))
        {
            string answer = t.FinalAnswer!, prompt = User(t).ToLowerInvariant();
            Assert.InRange(answer.Length, 2, 300);
            Assert.DoesNotMatch(@"\d{2,}", answer);
            if (Regex.IsMatch(prompt, @"who are you|what's your name|what is your name|introduce yourself|which model are you")) Assert.Contains("k2-nano", answer, StringComparison.Ordinal);
            foreach (string tool in tools)
                Assert.True(Regex.Matches(answer, $@"\b{tool}\b").Count <= 1, $"'{answer}' names {tool} twice");
            if (Regex.IsMatch(prompt, "tools")) Assert.All(tools, tool => Assert.Contains(tool, answer, StringComparison.Ordinal));
            if (Regex.IsMatch(prompt, "weather|flight|poem|browse|capital of")) Assert.Matches("can't|cannot|don't|unable", answer);
        }
    }

    [Fact]
    public void A_flawed_teacher_is_caught_in_every_kind()
    {
        var filter = new RubricFilter(Tools);
        foreach (var t in s_sample.Value.Where((_, i) => i % 10 == 0))
        {
            // A changed answer that no longer states the key (for chat: "I am not sure.") is rejected. (A weekday
            // answer whose date's day was changed still states its key; the rubric reads small numbers as the
            // assistant's own words.)
            var wrong = TaskGenerator.InjectFlaw(t, "wrong-answer");
            if (!t.Task.IsAnsweredBy(wrong.FinalAnswer)) Assert.False(filter.Evaluate(wrong).Keep, $"{t.Task.Kind}: '{wrong.FinalAnswer}' was kept");
            else Assert.NotEqual("natural-chat", t.Task.Kind);
            var flaw = t.Task.NeedsTools ? "hallucinated-result" : "skipped-tool";
            Assert.False(filter.Evaluate(TaskGenerator.InjectFlaw(t, flaw)).Keep, $"{t.Task.Kind}: {flaw} was kept");
        }
    }

    /// <summary>Distinct requests and distinct shapes (numbers and names masked) per 1,000 samples of each kind.</summary>
    [Fact]
    public void Phrasing_is_diverse_in_every_kind()
    {
        var byKind = Sample(7, 1000, out int decontaminated).GroupBy(t => t.Task.Kind);
        var report = new List<string>();
        foreach (var group in byKind)
        {
            int prompts = group.Select(t => Decontamination.Normalize(User(t))).Distinct().Count();
            int shapes = group.Select(t => Decontamination.Shape(User(t))).Distinct().Count();
            report.Add($"{group.Key}: {prompts} distinct requests, {shapes} distinct shapes per 1000");
            // Comparisons and chat have fewer slots to fill (city names are masked in a shape; chat has no numbers).
            int minimum = group.Key switch { "natural-chat" => 250, "natural-compare" => 300, _ => 400 };
            Assert.True(shapes >= minimum, $"{group.Key}: only {shapes} shapes per 1000");
        }
        output.WriteLine(string.Join("\n", report));
        output.WriteLine($"{decontaminated} requests drawn again because they resembled a natural-suite question");
    }

    [Fact]
    public void No_natural_suite_question_appears_verbatim_or_in_shape()
    {
        foreach (var t in s_sample.Value) Assert.False(Decontamination.ResemblesSuite(User(t)), User(t));
        // The filter does see the suite: its own questions are caught.
        Assert.All(NaturalSuite.Items.Take(20), i => Assert.True(Decontamination.ResemblesSuite(i.Prompt.ToUpperInvariant() + "  ")));
    }

    [Fact]
    public void Generation_is_deterministic_and_share_zero_keeps_the_old_mix()
    {
        static List<string> Run(SynthesisOptions? options, int seed)
        {
            var g = new TaskGenerator(seed, options: options);
            return Enumerable.Range(0, 300).Select(_ => g.Next()).Select(t => t.Task.Kind + "|" + t.Messages.ToJsonString()).ToList();
        }
        var mixed = new SynthesisOptions { NaturalShare = 0.5, MaxCities = 12 };
        Assert.Equal(Run(mixed, 3), Run(mixed, 3));
        Assert.NotEqual(Run(mixed, 3), Run(mixed, 4));
        Assert.Contains(Run(mixed, 3), s => s.StartsWith("natural-", StringComparison.Ordinal));
        var old = Run(new SynthesisOptions { MaxCities = 12 }, 3);
        Assert.Equal(old, Run(new SynthesisOptions { MaxCities = 12, NaturalShare = 0 }, 3));
        Assert.DoesNotContain(old, s => s.StartsWith("natural-", StringComparison.Ordinal));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TaskGenerator(1, options: new SynthesisOptions { NaturalShare = 1.5 }));
        Assert.Throws<ArgumentException>(() => new TaskGenerator(1).Natural("poetry"));
    }

    /// <summary>Every kind is reachable by name; prints requests of each (run with a detailed console logger to read them).</summary>
    [Fact]
    public void Prints_sample_requests_per_kind()
    {
        var groups = Sample(8, 12).GroupBy(t => t.Task.Kind).ToList();
        Assert.Equal(TaskGenerator.NaturalKinds, groups.Select(g => g.Key));
        foreach (var group in groups)
        {
            output.WriteLine($"## {group.Key}");
            foreach (var t in group)
                output.WriteLine($"  {User(t)}  →  {string.Join(" ; ", t.Calls().Select(c => $"{c.Name}{c.Arguments}"))}  →  {t.FinalAnswer}");
        }
    }
}
