using System.Globalization;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis;

/// <summary>What the generator produces: task families and their share, and how often the teacher errs.</summary>
public sealed record SynthesisOptions
{
    /// <summary>Probability that a trajectory gets one injected flaw (a weak teacher), for the rubric filter to catch.</summary>
    public double FlawRate { get; init; } = 0.08;
    /// <summary>Share of long-horizon aggregations among generated trajectories.</summary>
    public double LongShare { get; init; } = 0.30;
    /// <summary>Largest number of cities in a long-horizon aggregation (2 calls per city).</summary>
    public int MaxCities { get; init; } = 150;
    /// <summary>
    /// Share of the short (not long-horizon) trajectories written by the natural-phrasing grammars
    /// (<see cref="TaskGenerator.NaturalKinds"/>); 0, the default, draws exactly the mix it drew before they existed.
    /// </summary>
    public double NaturalShare { get; init; }
    /// <summary>
    /// Share of trajectories that are wide swarm tasks (<see cref="WideTaskGenerator"/>): each adds the orchestrator's
    /// conversation and its sub-agents' conversations, from training-split cities only. 0, the default, draws exactly
    /// the mix it drew before they existed.
    /// </summary>
    public double WideShare { get; init; }
    /// <summary>Largest number of cities in a wide task (5 to 100).</summary>
    public int WideMaxItems { get; init; } = WideTasks.MaxItems;
    /// <summary>Sub-agent conversations kept per wide task at most (drawn at random; they are alike).</summary>
    public int WideSubAgentsPerTask { get; init; } = 2;
}

/// <summary>
/// Generates tasks with verifiable answers and a teacher trajectory for each, by calling the real tool environments:
/// single calls (arithmetic, units, dates, lookups, notes), parallel calls, dependent chains, long-horizon
/// aggregations over many cities with the running total carried in the reasoning, conversations that need no tool,
/// and tool errors to recover from. Everything is a pure function of the seed.
/// </summary>
public sealed class TaskGenerator
{
    private readonly Random _random;
    private readonly KnowledgeBase _kb;
    private readonly SynthesisOptions _options;
    private readonly NaturalPhrasing _natural;

    public TaskGenerator(int seed, KnowledgeBase? knowledgeBase = null, SynthesisOptions? options = null)
    {
        _random = new Random(seed);
        _kb = knowledgeBase ?? KnowledgeBase.Default;
        _options = options ?? new SynthesisOptions();
        if (_options.NaturalShare is < 0 or > 1 || double.IsNaN(_options.NaturalShare))
            throw new ArgumentOutOfRangeException(nameof(options), $"NaturalShare must be between 0 and 1, got {_options.NaturalShare}");
        _natural = new NaturalPhrasing(_random, _kb);
    }

    /// <summary>Task families by planned number of calls; long ones take the number of calls as a parameter.</summary>
    public static readonly IReadOnlyList<string> ShortKinds =
    [
        "arithmetic", "units", "date", "lookup", "note", "parallel-lookup", "lookup-then-calc", "lookup-then-convert",
        "save-lookup", "sum-two", "density", "difference", "no-tool", "missing-city", "division-by-zero", "bad-date",
    ];

    /// <summary>
    /// Task kinds written by compositional grammars of everyday requests (many verbs, word orders, number forms,
    /// distractors, case and typos), with paraphrased teacher reasoning and answers; see <see cref="Natural"/>.
    /// </summary>
    public static IReadOnlyList<string> NaturalKinds => NaturalPhrasing.Kinds;

    /// <summary>A random trajectory from the training mix (short families, and long aggregations of 4–300 calls).</summary>
    public Trajectory Next()
    {
        double r = _random.NextDouble();
        if (r < _options.LongShare)
        {
            // Long horizons: mostly shorter ones, a tail out to the maximum.
            double u = _random.NextDouble();
            int max = Math.Max(2, _options.MaxCities);
            int cities = u < 0.5 ? _random.Next(2, Math.Min(11, max + 1))
                : u < 0.85 ? _random.Next(Math.Min(11, max), Math.Min(51, max + 1))
                : _random.Next(Math.Min(51, max), max + 1);
            return Long(cities);
        }
        // No draw at all when the share is 0, so older mixes stay identical seed for seed.
        if (_options.NaturalShare > 0 && _random.NextDouble() < _options.NaturalShare) return Natural(NaturalKinds[_random.Next(NaturalKinds.Count)]);
        return Short(ShortKinds[_random.Next(ShortKinds.Count)]);
    }

    /// <summary>
    /// A natural-phrasing task of the given kind (one of <see cref="NaturalKinds"/>). A request that matches a
    /// question of the held-out natural suite (verbatim or with its numbers and names masked) is drawn again, so the
    /// suite stays out of the training data however wide the grammar grows.
    /// </summary>
    public Trajectory Natural(string kind)
    {
        if (!NaturalKinds.Contains(kind)) throw new ArgumentException($"unknown natural task kind '{kind}' (known: {string.Join(", ", NaturalKinds)})", nameof(kind));
        for (int attempt = 0; attempt < 100; attempt++)
        {
            var b = new TrajectoryBuilder(Toolbox.CreateDefault(_kb));
            var task = _natural.Build(kind, b);
            if (Evaluation.Decontamination.ResemblesSuite(task.Prompt)) { Decontaminated++; continue; }
            return Flawed(new Trajectory(task, b.Messages));
        }
        throw new InvalidOperationException($"the '{kind}' grammar wrote 100 requests in a row that resemble the natural suite");
    }

    /// <summary>Requests drawn again because they resembled a natural-suite question.</summary>
    public int Decontaminated { get; private set; }

    /// <summary>A task whose solution takes about <paramref name="calls"/> tool calls (1, 2, 3, or an even number ≥ 4).</summary>
    public Trajectory WithHorizon(int calls)
    {
        if (calls >= 4) return Long(CitiesForCalls(calls));
        string[] kinds = calls switch
        {
            1 => ["arithmetic", "units", "date", "lookup", "note"],
            2 => ["parallel-lookup", "lookup-then-calc", "lookup-then-convert", "save-lookup"],
            3 => ["sum-two", "density", "difference"],
            _ => throw new ArgumentOutOfRangeException(nameof(calls), "horizon must be at least 1"),
        };
        return Short(kinds[_random.Next(kinds.Length)]);
    }

    private T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];
    private KnowledgeEntity City() => _kb.Entities[_random.Next(_kb.Entities.Count)];

    private (KnowledgeEntity, KnowledgeEntity) TwoCities()
    {
        var a = City();
        KnowledgeEntity b;
        do b = City(); while (ReferenceEquals(a, b));
        return (a, b);
    }

    /// <summary>A number as a user would type it: sometimes with thousands separators, sometimes with decimals.</summary>
    private string Number(int maxDigits, bool allowDecimal)
    {
        int digits = _random.Next(1, maxDigits + 1);
        long value = _random.NextInt64((long)Math.Pow(10, digits - 1), (long)Math.Pow(10, digits));
        string text = value >= 1000 && _random.Next(2) == 0 ? value.ToString("#,0", CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);
        if (allowDecimal && _random.Next(4) == 0) text += "." + _random.Next(1, 10).ToString(CultureInfo.InvariantCulture);
        return text;
    }

    private static JsonObject Args(params (string Key, JsonNode? Value)[] pairs)
    {
        var o = new JsonObject();
        foreach (var (k, v) in pairs) o[k] = v;
        return o;
    }

    private static readonly Dictionary<string, string> s_attributeWords = new()
    {
        ["population"] = "population", ["elevation"] = "elevation", ["founded"] = "founding year",
        ["area"] = "area", ["country"] = "country", ["river"] = "river",
    };

    private static string Unit(string attribute) => attribute switch { "elevation" => " m", "area" => " km²", _ => "" };

    private Trajectory Short(string kind)
    {
        var b = new TrajectoryBuilder(Toolbox.CreateDefault(_kb));
        AgentTask task = kind switch
        {
            "arithmetic" => Arithmetic(b),
            "units" => Units(b),
            "date" => Date(b),
            "lookup" => Lookup(b),
            "note" => Note(b),
            "parallel-lookup" => ParallelLookup(b),
            "lookup-then-calc" => LookupThenCalc(b),
            "lookup-then-convert" => LookupThenConvert(b),
            "save-lookup" => SaveLookup(b),
            "sum-two" => SumTwo(b),
            "density" => Density(b),
            "difference" => Difference(b),
            "no-tool" => NoTool(b),
            "missing-city" => MissingCity(b),
            "division-by-zero" => DivisionByZero(b),
            "bad-date" => BadDate(b),
            _ => throw new ArgumentException($"unknown task kind '{kind}'"),
        };
        return Flawed(new Trajectory(task, b.Messages));
    }

    // ------------------------------------------------------------------ one call

    private AgentTask Arithmetic(TrajectoryBuilder b)
    {
        string p = _random.Next(1, 100).ToString(CultureInfo.InvariantCulture) + (_random.Next(3) == 0 ? ".5" : "");
        string x = Number(5, false), y = Number(3, false), z = Number(3, true);
        // Expressions keep the question's order of numbers ("p% of x" → p%*x): a small model copies in order far
        // more reliably than it reorders.
        var forms = new (string Question, string Expression, string Restated)[]
        {
            ($"What is {p}% of {x} plus {y}?", $"{p}%*{x}+{y}", $"{p}% of {x} plus {y}"),
            ($"What is {p}% of {x}?", $"{p}%*{x}", $"{p}% of {x}"),
            ($"What is {x} times {y}?", $"{x}*{y}", $"{x} times {y}"),
            ($"What is {x} divided by {y}?", $"{x}/{y}", $"{x} divided by {y}"),
            ($"Compute ({x} + {y}) * {z}.", $"({x}+{y})*{z}", $"({x} + {y}) * {z}"),
            ($"What is {x} minus {z}?", $"{x}-{z}", $"{x} minus {z}"),
            ($"Add {x}, {y} and {z}.", $"{x}+{y}+{z}", $"{x} + {y} + {z}"),
            ($"A jacket costs {x} and is discounted by {p}%. What is the new price?", $"{x}-{x}*{p}%", "The new price"),
            ($"calculate {x} * {y} - {z}", $"{x}*{y}-{z}", $"{x} * {y} - {z}"),
        };
        var (question, expression, restated) = Pick(forms);
        b.User(question);
        string result = b.Step($"I need to compute {expression}. I will use the calculator.", ("calculator", Args(("expression", expression))))[0].Content;
        b.Final($"The calculator returned {result}.", Pick(new[] { $"{restated} is {result}.", $"The answer is {result}.", $"{restated} = {result}." }));
        return new AgentTask("arithmetic", 1, question, [result]);
    }

    private static readonly (string Name, string Symbol, string Dimension)[] s_units =
    [
        ("kilometers", "km", "length"), ("miles", "mi", "length"), ("meters", "m", "length"), ("feet", "ft", "length"),
        ("inches", "in", "length"), ("centimeters", "cm", "length"), ("yards", "yd", "length"),
        ("kilograms", "kg", "mass"), ("pounds", "lb", "mass"), ("grams", "g", "mass"), ("ounces", "oz", "mass"),
        ("liters", "l", "volume"), ("gallons", "gal", "volume"), ("milliliters", "ml", "volume"),
        ("hours", "h", "time"), ("minutes", "min", "time"), ("seconds", "s", "time"), ("days", "day", "time"),
        ("degrees Celsius", "C", "temperature"), ("degrees Fahrenheit", "F", "temperature"), ("kelvin", "K", "temperature"),
    ];

    private AgentTask Units(TrajectoryBuilder b)
    {
        var from = Pick(s_units);
        var sameDimension = s_units.Where(u => u.Dimension == from.Dimension && u.Symbol != from.Symbol).ToArray();
        var to = Pick(sameDimension);
        string value = Number(3, true);
        string question = Pick(new[]
        {
            $"Convert {value} {from.Name} to {to.Name}.", $"How many {to.Name} is {value} {from.Name}?",
            $"What is {value} {from.Name} in {to.Name}?",
        });
        b.User(question);
        // Units are passed by the names the user wrote (the converter takes names or symbols): copying beats translating for a small model.
        string result = b.Step($"Convert {value} {from.Name} to {to.Name} with the unit converter.",
            ("convert_units", Args(("value", JsonValue.Create(decimal.Parse(value.Replace(",", ""), CultureInfo.InvariantCulture))), ("from", from.Name), ("to", to.Name))))[0].Content;
        string number = result.Split(' ')[0];
        b.Final($"The converter returned {result}.", $"{value} {from.Name} is {number} {to.Name}.");
        return new AgentTask("units", 1, question, [number]);
    }

    private string RandomDate() => new DateOnly(_random.Next(1950, 2060), _random.Next(1, 13), _random.Next(1, 29)).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private AgentTask Date(TrajectoryBuilder b)
    {
        string date = RandomDate();
        switch (_random.Next(3))
        {
            case 0:
            {
                string question = Pick(new[] { $"What day of the week is {date}?", $"Which weekday was {date}?" });
                b.User(question);
                string day = b.Step($"Ask the calendar for the weekday of {date}.", ("calendar", Args(("operation", "weekday"), ("date", date))))[0].Content;
                b.Final($"The calendar returned {day}.", $"{date} is a {day}.");
                return new AgentTask("date", 1, question, [day]);
            }
            case 1:
            {
                int days = _random.Next(1, 1000);
                string question = Pick(new[] { $"What date is {days} days after {date}?", $"Add {days} days to {date}." });
                b.User(question);
                string result = b.Step($"Add {days} days to {date} with the calendar.", ("calendar", Args(("operation", "add_days"), ("date", date), ("days", days))))[0].Content;
                b.Final($"The calendar returned {result}.", $"{days} days after {date} is {result}.");
                return new AgentTask("date", 1, question, [result]);
            }
            default:
            {
                string end = RandomDate();
                string question = Pick(new[] { $"How many days are there from {date} to {end}?", $"Count the days between {date} and {end}." });
                b.User(question);
                string result = b.Step($"Count the days from {date} to {end} with the calendar.", ("calendar", Args(("operation", "days_between"), ("date", date), ("end_date", end))))[0].Content;
                b.Final($"The calendar returned {result}.", $"There are {result} days from {date} to {end}.");
                return new AgentTask("date", 1, question, [result]);
            }
        }
    }

    private string LookupQuestion(string city, string attribute) => attribute switch
    {
        "population" => Pick(new[] { $"What is the population of {city}?", $"How many people live in {city}?" }),
        "elevation" => Pick(new[] { $"What is the elevation of {city}?", $"How high above sea level is {city}?" }),
        "founded" => Pick(new[] { $"When was {city} founded?", $"In which year was {city} founded?" }),
        "area" => Pick(new[] { $"What is the area of {city}?", $"How large is {city} in square kilometres?" }),
        "country" => Pick(new[] { $"Which country is {city} in?", $"In what country is {city}?" }),
        _ => Pick(new[] { $"Which river runs through {city}?", $"What river flows through {city}?" }),
    };

    private AgentTask Lookup(TrajectoryBuilder b)
    {
        var city = City();
        string attribute = Pick(KnowledgeBase.Attributes);
        string question = LookupQuestion(city.Name, attribute);
        b.User(question);
        string value = b.Step($"Look up the {attribute} of {city.Name}.", ("lookup", Args(("entity", city.Name), ("attribute", attribute))))[0].Content;
        b.Final($"The knowledge base says {value}.", $"The {s_attributeWords[attribute]} of {city.Name} is {value}{Unit(attribute)}.");
        return new AgentTask("lookup", 1, question, [value]);
    }

    private static readonly string[] s_noteKeys = ["code", "pin", "room", "locker", "desk", "gate", "order"];

    private AgentTask Note(TrajectoryBuilder b)
    {
        string key = Pick(s_noteKeys), value = _random.Next(100, 100000).ToString(CultureInfo.InvariantCulture);
        string question = Pick(new[] { $"Remember that my {key} is {value}.", $"Please save {value} as my {key}.", $"Note down: {key} = {value}." });
        b.User(question);
        b.Step($"Save {value} under '{key}' in memory.", ("memory", Args(("action", "write"), ("key", key), ("value", value))));
        b.Final("Saved.", $"Done: I saved your {key} {value}.");
        return new AgentTask("note", 1, question, [value]);
    }

    // ------------------------------------------------------------------ two calls

    private AgentTask ParallelLookup(TrajectoryBuilder b)
    {
        var (x, y) = TwoCities();
        string attribute = Pick(new[] { "population", "elevation", "founded", "country" });
        string word = s_attributeWords[attribute];
        string question = Pick(new[] { $"What are the {word}s of {x.Name} and {y.Name}?", $"Give me the {word} of {x.Name} and of {y.Name}." });
        b.User(question);
        var r = b.Step($"Look up the {attribute} of {x.Name} and {y.Name} at once.",
            ("lookup", Args(("entity", x.Name), ("attribute", attribute))), ("lookup", Args(("entity", y.Name), ("attribute", attribute))));
        b.Final($"{x.Name}: {r[0].Content}. {y.Name}: {r[1].Content}.", $"{x.Name}: {r[0].Content}{Unit(attribute)}; {y.Name}: {r[1].Content}{Unit(attribute)}.");
        return new AgentTask("parallel-lookup", 2, question, [r[0].Content, r[1].Content]);
    }

    private AgentTask LookupThenCalc(TrajectoryBuilder b)
    {
        var city = City();
        if (_random.Next(2) == 0)
        {
            int k = _random.Next(2, 13);
            string question = $"What is {k} times the population of {city.Name}?";
            b.User(question);
            string v = b.Step($"First look up the population of {city.Name}.", ("lookup", Args(("entity", city.Name), ("attribute", "population"))))[0].Content;
            string r = b.Step($"{city.Name} has population {v}. Now compute {v}*{k}.", ("calculator", Args(("expression", $"{v}*{k}"))))[0].Content;
            b.Final($"The calculator returned {r}.", $"{k} times the population of {city.Name} is {r}.");
            return new AgentTask("lookup-then-calc", 2, question, [r]);
        }
        else
        {
            int year = _random.Next(2000, 2031);
            string question = $"How many years before {year} was {city.Name} founded?";
            b.User(question);
            string f = b.Step($"First look up when {city.Name} was founded.", ("lookup", Args(("entity", city.Name), ("attribute", "founded"))))[0].Content;
            string r = b.Step($"{city.Name} was founded in {f}. Now compute {year}-{f}.", ("calculator", Args(("expression", $"{year}-{f}"))))[0].Content;
            b.Final($"The calculator returned {r}.", $"{city.Name} was founded {r} years before {year}.");
            return new AgentTask("lookup-then-calc", 2, question, [r]);
        }
    }

    private AgentTask LookupThenConvert(TrajectoryBuilder b)
    {
        var city = City();
        string question = Pick(new[] { $"What is the elevation of {city.Name} in feet?", $"How many feet above sea level is {city.Name}?" });
        b.User(question);
        string v = b.Step($"First look up the elevation of {city.Name}.", ("lookup", Args(("entity", city.Name), ("attribute", "elevation"))))[0].Content;
        string r = b.Step($"{city.Name} is at {v} m. Convert {v} m to ft.",
            ("convert_units", Args(("value", JsonValue.Create(decimal.Parse(v, CultureInfo.InvariantCulture))), ("from", "m"), ("to", "ft"))))[0].Content;
        string number = r.Split(' ')[0];
        b.Final($"The converter returned {r}.", $"{city.Name} is {number} feet above sea level.");
        return new AgentTask("lookup-then-convert", 2, question, [number]);
    }

    private AgentTask SaveLookup(TrajectoryBuilder b)
    {
        var city = City();
        string attribute = Pick(new[] { "population", "elevation", "founded" });
        string key = Pick(s_noteKeys);
        string question = $"Look up the {s_attributeWords[attribute]} of {city.Name} and save it in memory as '{key}'.";
        b.User(question);
        string v = b.Step($"Look up the {attribute} of {city.Name}.", ("lookup", Args(("entity", city.Name), ("attribute", attribute))))[0].Content;
        b.Step($"It is {v}. Save {v} under '{key}'.", ("memory", Args(("action", "write"), ("key", key), ("value", v))));
        b.Final("Saved.", $"The {s_attributeWords[attribute]} of {city.Name} is {v}; I saved it as '{key}'.");
        return new AgentTask("save-lookup", 2, question, [v]);
    }

    // ------------------------------------------------------------------ three calls

    private AgentTask SumTwo(TrajectoryBuilder b)
    {
        var (x, y) = TwoCities();
        string attribute = Pick(new[] { "population", "elevation" });
        string question = Pick(new[]
        {
            $"What is the combined {attribute} of {x.Name} and {y.Name}?", $"Add the {attribute}s of {x.Name} and {y.Name}.",
        });
        b.User(question);
        var r = b.Step($"Look up the {attribute} of {x.Name} and {y.Name}, then add them.",
            ("lookup", Args(("entity", x.Name), ("attribute", attribute))), ("lookup", Args(("entity", y.Name), ("attribute", attribute))));
        string sum = b.Step($"{x.Name}: {r[0].Content}. {y.Name}: {r[1].Content}. Add {r[0].Content}+{r[1].Content}.",
            ("calculator", Args(("expression", $"{r[0].Content}+{r[1].Content}"))))[0].Content;
        b.Final($"The calculator returned {sum}.", $"The combined {attribute} of {x.Name} and {y.Name} is {sum}{Unit(attribute)}.");
        return new AgentTask("sum-two", 3, question, [sum]);
    }

    private AgentTask Density(TrajectoryBuilder b)
    {
        var city = City();
        string question = Pick(new[] { $"What is the population density of {city.Name}?", $"How many people per square kilometre live in {city.Name}?" });
        b.User(question);
        var r = b.Step($"Density is population / area. Look up both for {city.Name}.",
            ("lookup", Args(("entity", city.Name), ("attribute", "population"))), ("lookup", Args(("entity", city.Name), ("attribute", "area"))));
        string d = b.Step($"Population {r[0].Content}, area {r[1].Content}. Compute {r[0].Content}/{r[1].Content}.",
            ("calculator", Args(("expression", $"{r[0].Content}/{r[1].Content}"))))[0].Content;
        b.Final($"The calculator returned {d}.", $"{city.Name} has {d} people per km².");
        return new AgentTask("density", 3, question, [d]);
    }

    private AgentTask Difference(TrajectoryBuilder b)
    {
        var (x, y) = TwoCities();
        string attribute = Pick(new[] { "population", "elevation", "founded" });
        string question = $"What is the difference between the {s_attributeWords[attribute]} of {x.Name} and that of {y.Name}?";
        b.User(question);
        var r = b.Step($"Look up the {attribute} of {x.Name} and {y.Name}, then subtract.",
            ("lookup", Args(("entity", x.Name), ("attribute", attribute))), ("lookup", Args(("entity", y.Name), ("attribute", attribute))));
        string diff = b.Step($"{x.Name}: {r[0].Content}. {y.Name}: {r[1].Content}. Compute {r[0].Content}-{r[1].Content}.",
            ("calculator", Args(("expression", $"{r[0].Content}-{r[1].Content}"))))[0].Content;
        b.Final($"The calculator returned {diff}.", $"The {s_attributeWords[attribute]} of {x.Name} minus that of {y.Name} is {diff}.");
        return new AgentTask("difference", 3, question, [diff]);
    }

    // ------------------------------------------------------------------ no tool, and errors to recover from

    private static readonly (string Question, string Answer)[] s_chat =
    [
        ("Hi!", "Hello! I can do exact arithmetic, convert units, work with dates, look up cities and keep notes. What do you need?"),
        ("Hello", "Hi! How can I help?"),
        ("Who are you?", "I am k2-nano, a tiny Kimi K2-style model trained by KimiSharp. I answer with the help of tools."),
        ("What can you do?", "I can calculate exactly, convert units, answer date questions, look up cities in my knowledge base and save notes."),
        ("Thanks!", "You're welcome!"),
        ("Thank you very much.", "Glad to help!"),
        ("Good morning", "Good morning! What can I do for you?"),
        ("Are you there?", "Yes, I'm here. What do you need?"),
        ("Bye", "Goodbye!"),
        ("What tools do you have?", "calculator, convert_units, calendar, lookup and memory."),
    ];

    private AgentTask NoTool(TrajectoryBuilder b)
    {
        if (_random.Next(3) == 0)
        {
            string word = Pick(_kb.Entities).Name;
            string question = Pick(new[] { $"Repeat after me: {word}", $"Say {word}." });
            b.User(question);
            b.Final("A simple request; no tool is needed.", word);
            return new AgentTask("no-tool", 0, question, [word], NeedsTools: false);
        }
        var (q, a) = Pick(s_chat);
        b.User(q);
        b.Final("No tool is needed for this.", a);
        return new AgentTask("no-tool", 0, q, [], NeedsTools: false);
    }

    private static readonly string[] s_syllables = ["zor", "quen", "blix", "trav", "mund", "pell", "yarr", "klo", "wim", "dreb"];

    private AgentTask MissingCity(TrajectoryBuilder b)
    {
        string name;
        do name = char.ToUpperInvariant(Pick(s_syllables)[0]) + Pick(s_syllables)[1..] + Pick(s_syllables);
        while (_kb.Find(name) is not null);
        string attribute = Pick(new[] { "population", "elevation", "country" });
        string question = LookupQuestion(name, attribute);
        b.User(question);
        var r = b.Step($"Look up the {attribute} of {name}.", ("lookup", Args(("entity", name), ("attribute", attribute))));
        b.Final($"The lookup failed: {r[0].Content}", $"I could not find {name} in the knowledge base, so I don't know its {s_attributeWords[attribute]}.");
        return new AgentTask("missing-city", 1, question, [name]);
    }

    private AgentTask DivisionByZero(TrajectoryBuilder b)
    {
        string x = Number(4, false);
        string question = $"What is {x} divided by 0?";
        b.User(question);
        var r = b.Step($"I need to compute {x}/0. I will use the calculator.", ("calculator", Args(("expression", $"{x}/0"))));
        b.Final($"The calculator reported an error: {r[0].Content}", $"{x} divided by 0 is undefined: division by zero is not allowed.");
        return new AgentTask("division-by-zero", 1, question, ["undefined"]);
    }

    private AgentTask BadDate(TrajectoryBuilder b)
    {
        int year = _random.Next(1950, 2060);
        string date = $"{year}-02-{_random.Next(30, 32)}";
        string question = $"What day of the week is {date}?";
        b.User(question);
        var r = b.Step($"Ask the calendar for the weekday of {date}.", ("calendar", Args(("operation", "weekday"), ("date", date))));
        b.Final($"The calendar reported an error: {r[0].Content}", $"{date} is not a valid date: February has no day {date[^2..]}.");
        return new AgentTask("bad-date", 1, question, ["not a valid date"]);
    }

    // ------------------------------------------------------------------ long horizon

    /// <summary>Tool calls of a long task over <paramref name="cities"/> cities: queue them; pop, look up and add each (no addition for the first); pop the empty list; save.</summary>
    public static int LongCalls(int cities) => 3 * cities + 2;

    /// <summary>
    /// The fewest cities whose long task needs at least <paramref name="calls"/> tool calls: 0–2 calls more, except
    /// that a long task has at least 2 cities (8 calls).
    /// </summary>
    public static int CitiesForCalls(int calls) => Math.Max(2, calls / 3);

    /// <summary>
    /// Sum an attribute over <paramref name="cities"/> listed cities and save the total: <see cref="LongCalls"/> calls.
    /// The cities go into a memory list once; each is then popped, looked up and added, until a pop finds the list
    /// empty. Every step's reasoning names the running total, so it needs only the latest steps (see
    /// <see cref="Agent.ContextWindow"/>); no step copies more than one name, and the only decision (next city or
    /// save) is read off the tool result just before it.
    /// </summary>
    public Trajectory Long(int cities)
    {
        if (cities < 2) throw new ArgumentOutOfRangeException(nameof(cities), "a long task needs at least 2 cities");
        cities = Math.Min(cities, _kb.Entities.Count);
        var b = new TrajectoryBuilder(Toolbox.CreateDefault(_kb));
        var chosen = _kb.Entities.OrderBy(_ => _random.Next()).Take(cities).ToArray();
        string attribute = Pick(new[] { "population", "elevation" });
        string key = Pick(new[] { "total", "sum", "result" });
        string list = string.Join(", ", chosen.Select(c => c.Name));
        string question = Pick(new[]
        {
            $"What is the total {attribute} of these {cities} cities: {list}? Save the total in memory as '{key}'.",
            $"Add up the {attribute} of the following {cities} cities and store the sum in memory under '{key}': {list}.",
        });
        b.User(question);
        b.Step($"I need the {attribute} of {cities} cities, one at a time, keeping a running total. I put them in a to-do list in memory and take them one by one.",
            ("memory", Args(("action", "write"), ("key", "todo"), ("value", list))));
        string total = "";
        for (int i = 0; i < cities; i++)
        {
            string took = b.Step(i == 0 ? "Take the first city." : $"Total so far {total} after {chosen[i - 1].Name}. Take the next city.",
                ("memory", Args(("action", "pop"), ("key", "todo"))))[0].Content;
            string v = b.Step($"Next city {took}. Look up its {attribute}.", ("lookup", Args(("entity", chosen[i].Name), ("attribute", attribute))))[0].Content;
            total = i == 0 ? v
                : b.Step($"{chosen[i].Name} has {attribute} {v}. Add it: {total}+{v}.", ("calculator", Args(("expression", $"{total}+{v}"))))[0].Content;
        }
        string empty = b.Step($"Total so far {total} after {chosen[^1].Name}. Take the next city.", ("memory", Args(("action", "pop"), ("key", "todo"))))[0].Content;
        b.Step($"The to-do list is empty ({empty}): all {cities} cities are done. Total {total}. Save it.",
            ("memory", Args(("action", "write"), ("key", key), ("value", total))));
        b.Final($"Saved the total {total}.", $"The total {attribute} of the {cities} cities is {total}{Unit(attribute)}. I saved it in memory as '{key}'.");
        return Flawed(new Trajectory(new AgentTask("long", LongCalls(cities), question, [total]), b.Messages));
    }

    // ------------------------------------------------------------------ a weak teacher's flaws

    /// <summary>Kinds of flaw injected into teacher trajectories for the rubric filter to reject.</summary>
    public static readonly IReadOnlyList<string> FlawKinds = ["wrong-answer", "hallucinated-result", "redundant-call", "malformed-call", "skipped-tool"];

    private Trajectory Flawed(Trajectory t)
    {
        if (_random.NextDouble() >= _options.FlawRate) return t;
        return InjectFlaw(t, Pick(FlawKinds));
    }

    /// <summary>Returns a copy of <paramref name="t"/> with one flaw of the given kind (when the trajectory allows it).</summary>
    public static Trajectory InjectFlaw(Trajectory t, string flaw)
    {
        var messages = (JsonArray)t.Messages.DeepClone();
        var final = (JsonObject)messages[^1]!;
        var firstCall = messages.OfType<JsonObject>().FirstOrDefault(m => m["tool_calls"] is JsonArray);
        switch (flaw)
        {
            case "wrong-answer":
            {
                string content = final["content"]!.GetValue<string>();
                string? number = AnswerText.Numbers(content).LastOrDefault();
                final["content"] = number is null ? "I am not sure." : content.Replace(number, Perturb(number));
                break;
            }
            case "hallucinated-result" when firstCall is not null:
            {
                // Answer straight away with an invented value, as if a tool had been called.
                var user = messages[0]!.DeepClone();
                messages = [user, new JsonObject { ["role"] = "assistant", ["reasoning_content"] = "I know this one.", ["content"] = "The answer is 4711." }];
                break;
            }
            case "redundant-call" when firstCall is not null:
            {
                int at = messages.IndexOf(firstCall);
                var repeat = new List<JsonNode>();
                for (int i = at; i < messages.Count - 1 && (i == at || messages[i]!["role"]!.GetValue<string>() == "tool"); i++) repeat.Add(messages[i]!.DeepClone());
                int insertAt = at + repeat.Count;
                foreach (var m in Enumerable.Reverse(repeat)) messages.Insert(insertAt, m);
                break;
            }
            case "malformed-call" when firstCall is not null:
            {
                var fn = firstCall["tool_calls"]![0]!["function"]!;
                fn["arguments"] = fn["arguments"]!.GetValue<string>().TrimEnd('}');
                break;
            }
            case "skipped-tool" when firstCall is null && t.Task.NeedsTools == false:
            {
                // A needless call in a conversation that needs no tool.
                var tb = new TrajectoryBuilder(Toolbox.CreateDefault());
                tb.User(messages[0]!["content"]!.GetValue<string>());
                tb.Step("Let me check the calculator.", ("calculator", new JsonObject { ["expression"] = "1+1" }));
                tb.Final(final["reasoning_content"]!.GetValue<string>(), final["content"]!.GetValue<string>());
                messages = tb.Messages;
                break;
            }
            default:
                return t;
        }
        return new Trajectory(t.Task, messages);
    }

    private static string Perturb(string number)
    {
        char[] digits = number.ToCharArray();
        int i = Array.FindLastIndex(digits, char.IsDigit);
        digits[i] = digits[i] == '9' ? '8' : (char)(digits[i] + 1);
        return new string(digits);
    }
}
