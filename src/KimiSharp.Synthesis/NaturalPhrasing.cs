using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis;

/// <summary>
/// Compositional request grammars for the everyday task types (arithmetic, percentages, powers and roots, word
/// problems, multi-step expressions, units, dates, lookups, notes, plain chat): each request is built from an
/// operation phrase (many verbs and word orders), operands in every written form (words, separators, decimals, signs,
/// money), a frame (question, imperative, bare expression, politeness) and a surface pass (distractor sentences, case,
/// spacing, punctuation, typos). The teacher's reasoning and answers are paraphrased too, but always name the exact
/// expression or arguments the tool gets and state the exact result, so a small model can copy them.
/// </summary>
internal sealed class NaturalPhrasing(Random random, KnowledgeBase kb)
{
    /// <summary>The task kinds this grammar writes.</summary>
    public static readonly IReadOnlyList<string> Kinds =
    [
        "natural-arithmetic", "natural-percent", "natural-power", "natural-word-problem", "natural-multi-step",
        "natural-units", "natural-date", "natural-lookup", "natural-compare", "natural-note", "natural-chat",
    ];

    public AgentTask Build(string kind, TrajectoryBuilder b) => kind switch
    {
        "natural-arithmetic" => Calculation(b, kind, Arithmetic()),
        "natural-percent" => Calculation(b, kind, Percent()),
        "natural-power" => Calculation(b, kind, Power()),
        "natural-word-problem" => Calculation(b, kind, WordProblem()),
        "natural-multi-step" => Calculation(b, kind, MultiStep()),
        "natural-units" => Units(b),
        "natural-date" => Date(b),
        "natural-lookup" => Lookup(b),
        "natural-compare" => Compare(b),
        "natural-note" => Note(b),
        "natural-chat" => Chat(b),
        _ => throw new ArgumentException($"unknown natural task kind '{kind}' (known: {string.Join(", ", Kinds)})", nameof(kind)),
    };

    private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];
    private bool Chance(double p) => random.NextDouble() < p;

    // ------------------------------------------------------------------ numbers as people write them

    /// <summary>An operand: how the user writes it, how the calculator gets it (always digits), and whether it is negative.</summary>
    private sealed record Num(string Text, string Expr, bool Negative = false)
    {
        /// <summary>The operand after another operator: a negative one in parentheses, so "8-(-3)" never reads as "8--3".</summary>
        public string Inner => Negative ? $"({Expr})" : Expr;
    }

    private static readonly string[] s_numberWords =
    [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ];

    private static string Digits(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>An integer in [lo, hi], written as a word (small ones), with thousands separators, or plainly.</summary>
    private Num Int(long lo, long hi, bool words = true)
    {
        long v = random.NextInt64(lo, hi + 1);
        if (words && v <= 20 && v >= 0 && Chance(0.3)) return new Num(s_numberWords[v], Digits(v));
        // Thousands separators are kept in the expression: the calculator reads "2,500", so the teacher copies verbatim.
        if (v >= 1000 && Chance(0.4)) { string t = v.ToString("#,0", CultureInfo.InvariantCulture); return new Num(t, t); }
        return new Num(Digits(v), Digits(v));
    }

    /// <summary>A number with one or two decimals (sometimes a whole number).</summary>
    private Num Dec(int maxWhole)
    {
        int whole = random.Next(0, maxWhole + 1);
        string t = Chance(0.5) ? $"{whole}.{random.Next(1, 10)}" : $"{whole}.{random.Next(1, 100):00}";
        if (t.EndsWith('0') && t.Contains('.')) t = t.TrimEnd('0').TrimEnd('.');
        if (t is "0") t = "0.5";
        return new Num(t, t);
    }

    /// <summary>Any operand: mostly integers, some decimals, some negative numbers.</summary>
    private Num Operand(bool allowNegative = true)
    {
        double r = random.NextDouble();
        if (r < 0.2) return Dec(999);
        if (allowNegative && r < 0.3)
        {
            var n = Int(1, 500, words: false);
            return Chance(0.25) ? new Num($"negative {n.Text}", "-" + n.Expr, true) : new Num("-" + n.Text, "-" + n.Expr, true);
        }
        double size = random.NextDouble();
        return size < 0.35 ? Int(2, 20) : size < 0.75 ? Int(10, 999) : Int(1000, 999_999);
    }

    /// <summary>A price as people write it ("$12.50", "$8", "12.50 dollars"); the expression gets the bare number.</summary>
    private (string Text, string Expr) Money(int maxWhole)
    {
        int whole = random.Next(1, maxWhole + 1);
        string number = Chance(0.5) ? Digits(whole) : $"{whole}.{random.Next(1, 100):00}";
        if (number.EndsWith(".00", StringComparison.Ordinal)) number = Digits(whole);
        return (Chance(0.85) ? "$" + number : number + " dollars", number);
    }

    // ------------------------------------------------------------------ calculations

    /// <summary>A calculator task: the request, the exact expression, a phrase that restates it, and how the answer reads.</summary>
    private sealed record Calc(string Prompt, string Expression, string Restated, IReadOnlyList<string> Protected,
        string? Gloss = null, Func<string, string>? Answer = null);

    private AgentTask Calculation(TrajectoryBuilder b, string kind, Calc calc)
    {
        string prompt = Surface(calc.Prompt, calc.Protected);
        b.User(prompt);
        string gloss = calc.Gloss is null ? "" : calc.Gloss + " ";
        string reasoning = Pick(new[]
        {
            $"{gloss}I need to compute {calc.Expression}. I will use the calculator.",
            $"{gloss}As a calculator expression: {calc.Expression}.",
            $"{gloss}The expression is {calc.Expression}; the calculator gives the exact value.",
            $"{gloss}Let me calculate {calc.Expression}.",
            $"{gloss}Compute {calc.Expression} with the calculator.",
        });
        var r = b.Step(reasoning, ("calculator", new JsonObject { ["expression"] = calc.Expression }))[0];
        string result = r.Content;
        string answer = calc.Answer is not null && Chance(0.7) ? calc.Answer(result) : Pick(new[]
        {
            $"{calc.Restated} is {result}.", $"The answer is {result}.", $"{result}", $"That comes to {result}.",
            $"It's {result}.", $"{calc.Restated} = {result}.", $"{Capitalize(calc.Restated)} equals {result}.", $"Result: {result}",
        });
        b.Final(Pick(new[] { $"The calculator returned {result}.", $"{calc.Expression} = {result}.", $"The result is {result}." }), Capitalize(answer));
        return new AgentTask(kind, 1, prompt, [result]);
    }

    /// <summary>One binary operation: noun phrases ("12 times 4"), imperatives ("multiply 12 by 4"), the expression and a gloss when the order flips.</summary>
    private (string[] Phrases, string[] Imperatives, string Expression, string? Gloss) Operation(Num a, Num b)
    {
        string x = a.Text, y = b.Text;
        switch (random.Next(4))
        {
            case 0:
                return ([$"{x} + {y}", $"{x}+{y}", $"{x} plus {y}", $"the sum of {x} and {y}", $"{x} and {y} added together", $"the total of {x} and {y}", $"{x} added to {y}"],
                    [$"add {x} and {y}", $"add {x} to {y}", $"sum {x} and {y}", $"add up {x} and {y}", $"find the sum of {x} and {y}", $"total {x} and {y}"],
                    $"{a.Expr}+{b.Inner}", null);
            case 1:
            {
                string e = $"{a.Expr}-{b.Inner}";
                return ([$"{x} - {y}", $"{x}-{y}", $"{x} minus {y}", $"{x} take away {y}", $"{x} less {y}", $"the difference between {x} and {y}", $"{y} less than {x}", $"{y} subtracted from {x}"],
                    [$"subtract {y} from {x}", $"take {y} away from {x}", $"take {y} from {x}", $"deduct {y} from {x}", $"decrease {x} by {y}", $"reduce {x} by {y}", $"find {x} minus {y}"],
                    e, $"Taking {y} from {x} is {e}.");
            }
            case 2:
                return ([$"{x} * {y}", $"{x}*{y}", $"{x} × {y}", $"{x} x {y}", $"{x} times {y}", $"{x} multiplied by {y}", $"the product of {x} and {y}", $"{x} lots of {y}"],
                    [$"multiply {x} by {y}", $"multiply {x} and {y}", $"multiply {x} times {y}", $"times {x} by {y}", $"find the product of {x} and {y}"],
                    $"{a.Expr}*{b.Inner}", null);
            default:
            {
                string e = $"{a.Expr}/{b.Inner}";
                return ([$"{x} / {y}", $"{x}/{y}", $"{x} ÷ {y}", $"{x} divided by {y}", $"{x} over {y}", $"the quotient of {x} and {y}", $"{x} split {y} ways"],
                    [$"divide {x} by {y}", $"split {x} into {y} equal parts", $"share {x} equally between {y}", $"find how many times {y} goes into {x}", $"work out {x} divided by {y}"],
                    e, $"{x} divided by {y} is {e}.");
            }
        }
    }

    private static readonly string[] s_questionFrames =
    [
        "What is {0}?", "what's {0}", "Whats {0}?", "How much is {0}?", "Calculate {0}.", "Compute {0}", "Work out {0} please.",
        "Can you tell me {0}?", "Could you figure out {0}?", "{0} = ?", "{0} =", "{0}?", "Evaluate {0}.", "Give me {0}.",
        "I need {0}.", "Tell me what {0} comes to.", "{0}, please.", "please calculate {0}", "Do you know what {0} is?",
        "Quick maths: {0}", "What do you get for {0}?", "Find {0}.", "What does {0} equal?", "what is the value of {0}",
        "Solve: {0}", "Help me with {0}.", "{0} is how much?", "I'd like to know {0}.", "Any idea what {0} is?",
    ];

    private static readonly string[] s_imperativeFrames =
    [
        "{0}.", "Please {0}.", "Can you {0}?", "Could you {0} for me?", "I'd like you to {0}.", "Help me {0}.",
        "{0}, please.", "Would you {0}?", "Go ahead and {0}.", "I need you to {0}.", "Kindly {0}.", "{0} and tell me the result.",
    ];

    private string Frame(string[] frames, string inner) => string.Format(CultureInfo.InvariantCulture, Pick(frames), inner);

    private Calc Arithmetic()
    {
        Num a = Operand(), c = Operand();
        // Divisors are never zero (that is the division-by-zero kind's lesson).
        if (c.Expr.TrimStart('-') is "0" or "0.0") c = new Num("7", "7");
        var (phrases, imperatives, expression, gloss) = Operation(a, c);
        string prompt = Chance(0.6) ? Frame(s_questionFrames, Pick(phrases)) : Frame(s_imperativeFrames, Pick(imperatives));
        return new Calc(prompt, expression, phrases[0], [a.Text, c.Text], Chance(0.6) ? gloss : null);
    }

    private Calc Percent()
    {
        string p = Chance(0.8) ? Digits(random.Next(1, 100)) : $"{random.Next(1, 100)}.5";
        Num x = Chance(0.7) ? Int(10, 99_999, words: false) : Dec(9999);
        string pct = Pick(new[] { $"{p}%", $"{p} %", $"{p} percent", $"{p} per cent", $"{p} pct", $"{p} percent" });
        string X = x.Text;
        switch (random.Next(6))
        {
            case 0:
            {
                string e = $"{p}%*{x.Expr}";
                string phrase = Pick(new[] { $"{pct} of {X}", $"{pct} of {X}", $"{X} times {pct}" });
                string prompt = Chance(0.7) ? Frame(s_questionFrames, phrase) : Frame(s_imperativeFrames, Pick(new[] { $"take {pct} of {X}", $"find {pct} of {X}", $"work out {pct} of {X}" }));
                return new Calc(prompt, e, $"{p}% of {X}", [X, p], $"{p}% of {X} is {e}.");
            }
            case 1:
            {
                string e = $"{x.Expr}+{x.Expr}*{p}%";
                string prompt = Pick(new[]
                {
                    Frame(s_imperativeFrames, Pick(new[] { $"increase {X} by {pct}", $"add {pct} to {X}", $"raise {X} by {pct}", $"mark {X} up by {pct}" })),
                    Frame(s_questionFrames, Pick(new[] { $"{X} plus {pct}", $"{X} increased by {pct}", $"{X} after a {pct} increase" })),
                });
                return new Calc(prompt, e, $"{X} increased by {p}%", [X, p], $"Increasing {X} by {p}% is {e}.");
            }
            case 2:
            {
                string e = $"{x.Expr}-{x.Expr}*{p}%";
                string prompt = Pick(new[]
                {
                    Frame(s_imperativeFrames, Pick(new[] { $"decrease {X} by {pct}", $"reduce {X} by {pct}", $"take {pct} off {X}", $"knock {pct} off {X}" })),
                    Frame(s_questionFrames, Pick(new[] { $"{X} minus {pct}", $"{X} less {pct}", $"{pct} off {X}", $"{X} after a {pct} discount" })),
                });
                return new Calc(prompt, e, $"{X} reduced by {p}%", [X, p], $"Reducing {X} by {p}% is {e}.");
            }
            case 3:
            {
                Num part = Int(1, 500, words: false), whole = Int(501, 5000, words: false);
                string e = $"{part.Expr}/{whole.Expr}*100";
                string prompt = Pick(new[]
                {
                    $"What percent of {whole.Text} is {part.Text}?", $"{part.Text} is what percentage of {whole.Text}?",
                    $"what % of {whole.Text} is {part.Text}", $"Express {part.Text} out of {whole.Text} as a percentage.",
                    $"{part.Text} out of {whole.Text} is how many percent?", $"What percentage is {part.Text} of {whole.Text}?",
                });
                return new Calc(prompt, e, $"{part.Text} out of {whole.Text}", [part.Text, whole.Text], $"A share as a percentage is part/whole*100: {e}.",
                    r => Pick(new[] { $"{part.Text} is {r}% of {whole.Text}.", $"That's {r}%.", $"{r} percent." }));
            }
            case 4:
            {
                p = Digits(random.Next(3, 26));
                pct = Pick(new[] { $"{p}%", $"{p} percent", $"{p} per cent", $"{p} pct" });
                var (price, expr) = Money(400);
                string e = $"{expr}*{p}%";
                string prompt = Pick(new[]
                {
                    $"How much is a {pct} tip on a {price} bill?", $"What's a {pct} tip on {price}?", $"Our bill is {price}. How much is a {pct} tip?",
                    $"I want to leave {pct} on {price}. How much is that?", $"Sales tax is {pct}. How much tax do I pay on {price}?",
                });
                return new Calc(prompt, e, $"{p}% of {price}", [price, p], $"{p}% of {expr} is {e}.", r => Pick(new[] { $"That's ${r}.", $"${r}.", $"It comes to ${r}." }));
            }
            default:
            {
                Num from = Int(10, 2000, words: false), to = Int(10, 2000, words: false);
                if (from.Expr == to.Expr) to = new Num(Digits(long.Parse(to.Expr, CultureInfo.InvariantCulture) + 13), Digits(long.Parse(to.Expr, CultureInfo.InvariantCulture) + 13));
                string e = $"({to.Expr}-{from.Expr})/{from.Expr}*100";
                string prompt = Pick(new[]
                {
                    $"What is the percentage change from {from.Text} to {to.Text}?", $"By what percent did it go from {from.Text} to {to.Text}?",
                    $"Something went from {from.Text} to {to.Text}. What's the percent change?", $"percent change {from.Text} -> {to.Text}?",
                });
                return new Calc(prompt, e, $"the change from {from.Text} to {to.Text}", [from.Text, to.Text], $"Percentage change is (new-old)/old*100: {e}.",
                    r => Pick(new[] { $"The change is {r}%.", $"{r}%.", $"It changed by {r} percent." }));
            }
        }
    }

    private static readonly string[] s_ordinals = ["", "", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th", "11th", "12th"];

    private Calc Power()
    {
        switch (random.Next(5))
        {
            case 0:
            {
                int n = random.Next(2, 13);
                int @base = n <= 4 ? random.Next(2, 100) : n <= 8 ? random.Next(2, 12) : random.Next(2, 6);
                string a = Digits(@base), N = Digits(n);
                string e = $"{a}^{N}";
                string phrase = Pick(new[]
                {
                    $"{a}^{N}", $"{a} ^ {N}", $"{a}**{N}", $"{a} ** {N}", $"{a} to the power of {N}", $"{a} to the {s_ordinals[n]} power",
                    $"{a} raised to the power of {N}", $"{a} raised to {N}", $"{a} to the {s_ordinals[n]}", $"{a} with exponent {N}",
                });
                if (n == 2) phrase = Pick(new[] { phrase, $"{a} squared", $"the square of {a}", $"{a}²" });
                if (n == 3) phrase = Pick(new[] { phrase, $"{a} cubed", $"the cube of {a}", $"{a}³" });
                string prompt = Chance(0.75) ? Frame(s_questionFrames, phrase) : Frame(s_imperativeFrames, Pick(new[] { $"raise {a} to the power of {N}", $"raise {a} to the {s_ordinals[Math.Max(n, 2)]} power", $"work out {phrase}" }));
                return new Calc(prompt, e, $"{a}^{N}", [a], Chance(0.5) ? $"A power: {a}^{N}." : null);
            }
            case 1:
            {
                long root = random.Next(2, 400);
                long s = Chance(0.7) ? root * root : random.Next(2, 100_000);
                string S = s >= 1000 && Chance(0.3) ? s.ToString("#,0", CultureInfo.InvariantCulture) : Digits(s);
                string e = $"sqrt({S})";
                string phrase = Pick(new[] { $"the square root of {S}", $"square root of {S}", $"sqrt {S}", $"sqrt({S})", $"√{S}", $"√ {S}", $"the root of {S}", $"root {S}" });
                string prompt = Chance(0.8) ? Frame(s_questionFrames, phrase) : Frame(s_imperativeFrames, Pick(new[] { $"take the square root of {S}", $"find the square root of {S}", $"square root {S}" }));
                return new Calc(prompt, e, $"the square root of {S}", [S], Chance(0.5) ? $"A square root is sqrt: {e}." : null,
                    r => Pick(new[] { $"The square root of {S} is {r}.", $"√{S} = {r}.", $"It's {r}." }));
            }
            case 2:
            {
                long root = random.Next(2, 60);
                long c = Chance(0.7) ? root * root * root : random.Next(2, 100_000);
                string C = Digits(c), e = $"cbrt({C})";
                string phrase = Pick(new[] { $"the cube root of {C}", $"cube root of {C}", $"cbrt {C}", $"cbrt({C})", $"∛{C}" });
                return new Calc(Frame(s_questionFrames, phrase), e, $"the cube root of {C}", [C], Chance(0.5) ? $"A cube root is cbrt: {e}." : null,
                    r => Pick(new[] { $"The cube root of {C} is {r}.", $"It's {r}." }));
            }
            case 3:
            {
                string a = Digits(random.Next(2, 50)), c = Digits(random.Next(2, 50));
                string e = $"{a}^2+{c}^2";
                string phrase = Pick(new[] { $"{a} squared plus {c} squared", $"{a}^2 + {c}^2", $"{a}² + {c}²", $"the sum of the squares of {a} and {c}" });
                return new Calc(Frame(s_questionFrames, phrase), e, $"{a}^2 + {c}^2", [a, c], null);
            }
            default:
            {
                string a = Digits(random.Next(2, 60)), c = Digits(random.Next(2, 60));
                string e = $"sqrt({a}^2+{c}^2)";
                string phrase = Pick(new[] { $"the square root of the sum of {a} squared and {c} squared", $"sqrt({a}^2 + {c}^2)", $"√({a}² + {c}²)" });
                string prompt = Chance(0.5) ? Frame(s_questionFrames, phrase)
                    : $"A right triangle has legs of {a} and {c}. {Pick(new[] { "How long is the hypotenuse?", "What is the hypotenuse?", "Find the long side." })}";
                return new Calc(prompt, e, $"sqrt({a}^2 + {c}^2)", [a, c], Chance(0.5) ? $"Pythagoras: sqrt({a}^2+{c}^2)." : null);
            }
        }
    }

    private static readonly string[] s_names = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Mo", "Nia", "Omar", "Priya", "Raj", "Sam", "Tess", "Yuki"];

    private static readonly (string One, string Many)[] s_items =
    [
        ("notebook", "notebooks"), ("ticket", "tickets"), ("coffee", "coffees"), ("sandwich", "sandwiches"), ("pen", "pens"),
        ("book", "books"), ("T-shirt", "T-shirts"), ("mango", "mangoes"), ("bus pass", "bus passes"), ("lamp", "lamps"),
        ("bag of rice", "bags of rice"), ("plant", "plants"), ("cupcake", "cupcakes"), ("game", "games"), ("bottle of water", "bottles of water"),
    ];

    private static readonly string[] s_distractors =
    [
        "It's a sunny day.", "The shop is on Main Street.", "I'm planning a party.", "This is for my homework.", "We're on holiday.",
        "My friend asked me this.", "The store opens at 9.", "Her brother is 12.", "It took about 20 minutes to get there.", "Prices went up last year.",
    ];

    private Calc WordProblem()
    {
        string who = Pick(s_names);
        var (one, many) = Pick(s_items);
        string distractor = Chance(0.3) ? Pick(s_distractors) + " " : "";
        switch (random.Next(12))
        {
            case 0:
            {
                Num n = Int(2, 40); var (price, p) = Money(60);
                string e = $"{n.Expr}*{p}";
                string prompt = Pick(new[]
                {
                    $"{distractor}{who} buys {n.Text} {many} at {price} each. How much does {who} spend?",
                    $"{distractor}{Capitalize(many)} cost {price} apiece. What do {n.Text} of them cost?",
                    $"{distractor}One {one} is {price}. How much for {n.Text}?",
                    $"{distractor}If a {one} costs {price}, what do {n.Text} {many} cost altogether?",
                });
                return new Calc(prompt, e, $"{n.Text} × {price}", [who, one, many, price, n.Text], $"Total cost is quantity times price: {e}.",
                    r => Pick(new[] { $"That's ${r} in total.", $"{n.Text} {many} cost ${r}.", $"${r}." }));
            }
            case 1:
            {
                var (had, h) = Money(500); var (spent, s) = Money(Math.Max(1, (int)decimal.Parse(h, CultureInfo.InvariantCulture)));
                string e = $"{h}-{s}";
                string prompt = Pick(new[]
                {
                    $"{distractor}{who} had {had} and spent {spent} on a {one}. How much is left?",
                    $"{who} has {had}. {distractor}After paying {spent} for a {one}, how much money remains?",
                    $"{distractor}I had {had} in my wallet and a {one} cost me {spent}. What do I have now?",
                });
                return new Calc(prompt, e, $"{had} minus {spent}", [who, one, had, spent], $"Money left is what was there minus what was spent: {e}.",
                    r => Pick(new[] { $"{r} dollars are left.", $"There is ${r} left.", $"${r} remains." }));
            }
            case 2:
            {
                Num total = Int(10, 2000), k = Int(2, 12);
                string e = $"{total.Expr}/{k.Expr}";
                string prompt = Pick(new[]
                {
                    $"{distractor}{total.Text} {many} are shared equally among {k.Text} people. How many does each get?",
                    $"{distractor}{who} splits {total.Text} {many} evenly into {k.Text} boxes. How many go in each box?",
                    $"There are {total.Text} {many} and {k.Text} kids. {distractor}If everyone gets the same number, how many each?",
                });
                return new Calc(prompt, e, $"{total.Text} / {k.Text}", [who, many, total.Text, k.Text], $"Sharing equally is division: {e}.",
                    r => Pick(new[] { $"Each gets {r}.", $"{r} each.", $"That's {r} per person." }));
            }
            case 3:
            {
                var (price, p) = Money(90);
                int note = new[] { 20, 50, 100, 200 }.First(v => v > decimal.Parse(p, CultureInfo.InvariantCulture));
                string e = $"{note}-{p}";
                string prompt = Pick(new[]
                {
                    $"{distractor}{who} pays for a {price} {one} with a ${note} bill. How much change?",
                    $"A {one} costs {price}. {distractor}I hand over ${note}. What change should I get?",
                });
                return new Calc(prompt, e, $"{note} minus {p}", [who, one, price], $"Change is what was paid minus the price: {e}.",
                    r => Pick(new[] { $"The change is ${r}.", $"${r} in change.", $"You get ${r} back." }));
            }
            case 4:
            {
                Num n = Int(2, 30); var (price, p) = Money(80); var (fee, f) = Money(25);
                string e = $"{n.Expr}*{p}+{f}";
                string prompt = Pick(new[]
                {
                    $"{distractor}I'm ordering {n.Text} {many} at {price} each, plus {fee} for delivery. What's the total?",
                    $"{n.Text} {many} cost {price} each and shipping is {fee}. {distractor}How much do I pay in all?",
                });
                return new Calc(prompt, e, "the total", [one, many, n.Text, price, fee], $"Items times price, plus the fee: {e}.",
                    r => Pick(new[] { $"The total is ${r}.", $"You pay ${r}.", $"${r} altogether." }));
            }
            case 5:
            {
                Num v = Int(20, 130), h = Chance(0.5) ? Int(2, 12) : Dec(9);
                string e = $"{v.Expr}*{h.Expr}";
                string prompt = Pick(new[]
                {
                    $"{distractor}A train travels at {v.Text} km/h for {h.Text} hours. How far does it go?",
                    $"{who} drives {h.Text} hours at {v.Text} miles per hour. {distractor}What distance is that?",
                    $"If a cyclist keeps {v.Text} km per hour for {h.Text} hours, how many km is that?",
                });
                return new Calc(prompt, e, "the distance", [who, v.Text, h.Text], $"Distance is speed times time: {e}.",
                    r => Pick(new[] { $"The distance is {r}.", $"{r} in total.", $"It covers {r}." }));
            }
            case 6:
            {
                var (save, s) = Money(300); Num w = Int(2, 52);
                string e = $"{s}*{w.Expr}";
                bool named = Chance(0.5);
                string prompt = named
                    ? $"{distractor}{who} saves {save} every week. How much after {w.Text} weeks?"
                    : $"If I put aside {save} a week for {w.Text} weeks, how much will I have? {distractor}".TrimEnd();
                return new Calc(prompt, e, "the savings", [who, save, w.Text], $"Weekly amount times weeks: {e}.",
                    r => Pick(new[] { named ? $"{who} will have ${r}." : $"You will have ${r}.", $"That's ${r}.", $"${r} saved." }));
            }
            case 7:
            {
                var (price, p) = Money(900); string pct = Digits(random.Next(5, 90));
                string e = $"{p}-{p}*{pct}%";
                string prompt = Pick(new[]
                {
                    $"{distractor}A {one} is {price} and it's {pct}% off today. What's the sale price?",
                    $"The {one} costs {price}. {distractor}With a {pct} percent discount, how much do I pay?",
                });
                return new Calc(prompt, e, "the sale price", [one, price, pct], $"Discounted price is price minus price times the discount: {e}.",
                    r => Pick(new[] { $"The sale price is ${r}.", $"You pay ${r}.", $"${r} after the discount." }));
            }
            case 8:
            {
                Num boxes = Int(2, 60), per = Int(2, 48);
                string e = $"{boxes.Expr}*{per.Expr}";
                string prompt = Pick(new[]
                {
                    $"{distractor}There are {boxes.Text} boxes with {per.Text} {many} in each. How many {many} in total?",
                    $"A shelf holds {boxes.Text} crates of {per.Text} {many}. {distractor}How many {many} is that?",
                });
                return new Calc(prompt, e, $"{boxes.Text} × {per.Text}", [many, boxes.Text, per.Text], $"Groups times items per group: {e}.",
                    r => Pick(new[] { $"There are {r} {many}.", $"{r} in total.", $"{r}." }));
            }
            case 10:
            {
                // A rate over a period: the same unit ("$15 an hour for 6 hours") or a longer one ("a month … a year").
                var (amount, x) = Money(Chance(0.5) ? 90 : 3000);
                string[] verbs = ["earns", "pays", "spends", "saves", "gets"];
                string verb = Pick(verbs);
                if (Chance(0.5))
                {
                    var (unit, units) = Pick(new[] { ("hour", "hours"), ("day", "days"), ("week", "weeks"), ("month", "months"), ("shift", "shifts") });
                    Num n = Int(2, 60);
                    string e = $"{x}*{n.Expr}";
                    string article = unit == "hour" ? "an" : "a";
                    string rate = Pick(new[] { $"{amount} {article} {unit}", $"{amount} {article} {unit}", $"{amount} per {unit}", $"{amount} each {unit}", $"{amount}/{unit}" });
                    string prompt = Pick(new[]
                    {
                        $"{distractor}{who} {verb} {rate}. How much is that over {n.Text} {units}?",
                        $"{distractor}If I {verb[..^1]} {rate}, what do I have after {n.Text} {units}?",
                        $"{who} {verb} {rate} for {n.Text} {units}. {distractor}What's the total?",
                    });
                    return new Calc(prompt, e, "the total", [who, amount, n.Text], $"Rate times the number of {units}: {e}.",
                        r => Pick(new[] { $"That's ${r}.", $"${r} in total.", $"The total is ${r}." }));
                }
                var (small, big, factor) = Pick(new[]
                {
                    ("month", "year", "12"), ("week", "year", "52"), ("day", "week", "7"), ("hour", "day", "24"), ("minute", "hour", "60"),
                });
                string ex = $"{x}*{factor}";
                string a = small == "hour" ? "an" : "a", bigA = big == "hour" ? "an" : "a";
                string ask = Pick(new[]
                {
                    $"{distractor}{who} {verb} {amount} {a} {small}. How much is that in {bigA} {big}?",
                    $"{distractor}I {verb[..^1]} {amount} every {small}. What does that come to per {big}?",
                    $"At {amount} per {small}, how much is one {big}? {distractor}".TrimEnd(),
                    $"{who} {verb} {amount} {a} {small}. {distractor}What is that for a whole {big}?",
                });
                return new Calc(ask, ex, $"one {big}", [who, amount], $"{Capitalize(bigA)} {big} has {factor} {small}s: {ex}.",
                    r => Pick(new[] { $"That's ${r} {bigA} {big}.", $"${r} per {big}.", $"It comes to ${r}." }));
            }
            case 11:
            {
                // Containers: items in several ("24 per box, 17 boxes") or how many containers a total fills.
                var (box, boxes) = Pick(new[] { ("box", "boxes"), ("crate", "crates"), ("bag", "bags"), ("pack", "packs"), ("tray", "trays"), ("carton", "cartons"), ("shelf", "shelves") });
                Num per = Int(2, 48, words: false), n = Int(2, 60);
                if (Chance(0.5))
                {
                    string e = $"{n.Expr}*{per.Expr}";
                    string prompt = Pick(new[]
                    {
                        $"{distractor}Each {box} holds {per.Text} {many}. How many {many} are in {n.Text} {boxes}?",
                        $"One {box} fits {per.Text} {many}. {distractor}How many {many} fit in {n.Text} {boxes}?",
                        $"{who} has {n.Text} {boxes} with {per.Text} {many} per {box}. How many {many} is that?",
                    });
                    return new Calc(prompt, e, $"{n.Text} × {per.Text}", [who, many, box, boxes, per.Text, n.Text], $"{Capitalize(boxes)} times {many} per {box}: {e}.",
                        r => Pick(new[] { $"There are {r} {many}.", $"{r} {many}.", $"{r} in total." }));
                }
                long total = long.Parse(per.Expr, CultureInfo.InvariantCulture) * long.Parse(n.Expr, CultureInfo.InvariantCulture);
                string t = Digits(total), ed = $"{t}/{per.Expr}";
                string ask = Pick(new[]
                {
                    $"{distractor}I have {t} {many} and each {box} holds {per.Text}. How many {boxes} can I fill?",
                    $"{t} {many} are packed {per.Text} to a {box}. {distractor}How many {boxes} is that?",
                });
                return new Calc(ask, ed, $"{t} / {per.Text}", [many, box, boxes, t, per.Text], $"Total divided by the number per {box}: {ed}.",
                    r => Pick(new[] { $"{r} {boxes}.", $"You can fill {r} {boxes}.", $"That's {r} {boxes}." }));
            }
            default:
            {
                var (bill, x) = Money(600); Num k = Int(2, 12);
                bool tip = Chance(0.4);
                string pct = Digits(random.Next(10, 25));
                string e = tip ? $"({x}+{x}*{pct}%)/{k.Expr}" : $"{x}/{k.Expr}";
                string prompt = tip
                    ? $"{distractor}Dinner for {k.Text} comes to {bill} and we add a {pct}% tip. If we split it evenly, what does each person pay?"
                    : Pick(new[] { $"{distractor}Dinner for {k.Text} costs {bill}. Split evenly, what does each of us pay?", $"We are {k.Text} friends sharing a {bill} bill equally. How much each?" });
                return new Calc(prompt, e, "each share", [bill, k.Text, pct], tip ? $"Bill plus tip, divided among {k.Text}: {e}." : $"Split the bill: {e}.",
                    r => Pick(new[] { $"Each person pays ${r}.", $"${r} each.", $"That's ${r} per person." }));
            }
        }
    }

    private Calc MultiStep()
    {
        Num a = Operand(false), b = Operand(false), c = Int(2, 50), d = Int(2, 50);
        string A = a.Text, B = b.Text, C = c.Text, D = d.Text;
        var forms = new (string Prompt, string Expression)[]
        {
            ($"Add {A} and {B}, then multiply the result by {C}.", $"({a.Expr}+{b.Expr})*{c.Expr}"),
            ($"Take {A}, subtract {B}, and divide by {C}.", $"({a.Expr}-{b.Expr})/{c.Expr}"),
            (Frame(s_questionFrames, $"{A} times {B} plus {C} times {D}"), $"{a.Expr}*{b.Expr}+{c.Expr}*{d.Expr}"),
            (Frame(s_questionFrames, $"({A} + {B}) × {C}"), $"({a.Expr}+{b.Expr})*{c.Expr}"),
            (Frame(s_questionFrames, $"({A}+{B})*({C}-{D})"), $"({a.Expr}+{b.Expr})*({c.Expr}-{d.Expr})"),
            (Frame(s_questionFrames, $"{A} * ({B} - {C}) + {D}"), $"{a.Expr}*({b.Expr}-{c.Expr})+{d.Expr}"),
            (Frame(s_questionFrames, $"the average of {A}, {B} and {C}"), $"({a.Expr}+{b.Expr}+{c.Expr})/3"),
            ($"What's the mean of {A}, {B}, {C} and {D}?", $"({a.Expr}+{b.Expr}+{c.Expr}+{d.Expr})/4"),
            (Frame(s_questionFrames, $"half of the sum of {A} and {B}"), $"({a.Expr}+{b.Expr})/2"),
            ($"Double {A}, then add {B}.", $"{a.Expr}*2+{b.Expr}"),
            ($"Start with {A}, add {B}, subtract {C}, then multiply by {D}. What do you get?", $"({a.Expr}+{b.Expr}-{c.Expr})*{d.Expr}"),
            (Frame(s_questionFrames, $"the sum of {A} and {B}, squared"), $"({a.Expr}+{b.Expr})^2"),
            ($"Multiply {A} by {B} and then subtract {C}.", $"{a.Expr}*{b.Expr}-{c.Expr}"),
            (Frame(s_questionFrames, $"{A} divided by the sum of {C} and {D}"), $"{a.Expr}/({c.Expr}+{d.Expr})"),
            ($"First subtract {C} from {A}, then divide that by {D}.", $"({a.Expr}-{c.Expr})/{d.Expr}"),
            (Frame(s_questionFrames, $"{A} + {B} × {C}"), $"{a.Expr}+{b.Expr}*{c.Expr}"),
            ($"Triple {C} and add it to {A}.", $"{a.Expr}+{c.Expr}*3"),
        };
        // Most multi-step requests come from the compositional grammars below; the fixed forms keep the common idioms.
        double r = random.NextDouble();
        if (r < 0.4) return Chain();
        if (r < 0.75) return Nested();
        var (prompt, expression) = Pick(forms);
        return new Calc(prompt, expression, "the result", [A, B, C, D], Chance(0.4) ? "Step by step in one expression, with parentheses where the order matters." : null);
    }

    /// <summary>
    /// A part of a composed expression: the calculator's text, its precedence (1 sum, 2 product, 3 atom) and how a
    /// person names it.
    /// </summary>
    private sealed record Term(string Expr, int Precedence, string Words);

    private static int PrecedenceOf(char op) => op is '+' or '-' ? 1 : 2;

    /// <summary>A part as an operand of <paramref name="op"/>: in parentheses where precedence (or the right side of - and /) needs them.</summary>
    private static string Wrap(Term t, char op, bool right) =>
        t.Precedence < PrecedenceOf(op) || (right && op is '-' or '/' && t.Precedence == PrecedenceOf(op)) ? $"({t.Expr})" : t.Expr;

    private static Term Apply(char op, Term a, Term b, string words) => new($"{Wrap(a, op, false)}{op}{Wrap(b, op, true)}", PrecedenceOf(op), words);

    /// <summary>A leaf: a plain number, or now and then a square, cube or root of one (atoms in words and in the expression).</summary>
    private Term Leaf(List<string> stated)
    {
        double r = random.NextDouble();
        if (r < 0.12)
        {
            string a = Digits(random.Next(2, 30)); stated.Add(a);
            return new Term($"{a}^2", 3, Pick(new[] { $"{a} squared", $"the square of {a}", $"{a}²" }));
        }
        if (r < 0.2)
        {
            long root = random.Next(2, 40); string s = Digits(root * root); stated.Add(s);
            return new Term($"sqrt({s})", 3, Pick(new[] { $"the square root of {s}", $"√{s}", $"the root of {s}" }));
        }
        if (r < 0.24)
        {
            string a = Digits(random.Next(2, 12)); stated.Add(a);
            return new Term($"{a}^3", 3, Pick(new[] { $"{a} cubed", $"the cube of {a}" }));
        }
        Num n = r < 0.5 ? Int(2, 50) : Operand(false);
        stated.Add(n.Text);
        return new Term(n.Expr, 3, n.Text);
    }

    /// <summary>"the sum of x and y" and the like: a noun phrase that is one unit in a sentence.</summary>
    private string AtomWords(char op, string x, string y)
    {
        // "the product of 50 and 28 squared" could square the product: a power at the end is said as a noun instead.
        y = Regex.Replace(y, @"^(\S+)(?: squared|²)$", "the square of $1");
        y = Regex.Replace(y, @"^(\S+) cubed$", "the cube of $1");
        return AtomWordsOf(op, x, y);
    }

    private string AtomWordsOf(char op, string x, string y) => op switch
    {
        '+' => Pick(new[] { $"the sum of {x} and {y}", $"the total of {x} and {y}" }),
        '-' => $"the difference between {x} and {y}",
        '*' => $"the product of {x} and {y}",
        _ => $"the quotient of {x} and {y}",
    };

    private string InfixWord(char op) => op switch
    {
        '+' => Pick(new[] { "plus", "added to" }),
        '-' => Pick(new[] { "minus", "less" }),
        '*' => Pick(new[] { "times", "multiplied by" }),
        _ => Pick(new[] { "divided by", "over" }),
    };

    private string SymbolOf(char op) => op switch
    {
        '*' => Pick(new[] { " * ", " × ", "*", " x " }),
        '/' => Pick(new[] { " / ", " ÷ ", "/" }),
        '+' => Pick(new[] { " + ", "+" }),
        _ => Pick(new[] { " - ", "-" }),
    };

    private static readonly char[] s_ops = ['+', '-', '*', '/'];

    /// <summary>
    /// Two operations over three parts, said the way people say nested arithmetic ("the sum of 4 and 5, times 3",
    /// "40 divided by the difference between 9 and 4", "12 squared minus the square root of 49", "7 times 6 plus 3"),
    /// or in symbols with parentheses. Words never leave the grouping open: an inner part that precedence would
    /// split becomes a noun phrase ("the sum of …") followed by a comma. The teacher names the inner part first.
    /// </summary>
    private Calc Nested()
    {
        var stated = new List<string>();
        Term a = Leaf(stated), b = Leaf(stated), c = Leaf(stated);
        char inner = Pick(s_ops), outer = Pick(s_ops);
        bool innerFirst = Chance(0.6);
        // "4 plus 5" binds as the symbols do only where precedence and left-to-right order agree with the tree.
        bool infixHolds = innerFirst ? PrecedenceOf(inner) >= PrecedenceOf(outer) : PrecedenceOf(inner) > PrecedenceOf(outer);
        string subWords = infixHolds && Chance(0.6) ? $"{a.Words} {InfixWord(inner)} {b.Words}" : AtomWords(inner, a.Words, b.Words);
        bool subIsAtom = subWords.StartsWith("the ", StringComparison.Ordinal);
        var sub = Apply(inner, a, b, subWords);
        var whole = innerFirst ? Apply(outer, sub, c, "") : Apply(outer, c, sub, "");
        string words;
        if (Chance(0.3))
        {
            // Symbols: parentheses exactly where the expression has them.
            string Sym(Term t) => t.Expr.Replace("^2", Chance(0.4) ? "²" : "^2", StringComparison.Ordinal);
            string s = $"{Sym(a)}{SymbolOf(inner)}{Sym(b)}";
            if (whole.Expr.Contains($"({sub.Expr})", StringComparison.Ordinal)) s = $"({s})";
            words = innerFirst ? $"{s}{SymbolOf(outer)}{Sym(c)}" : $"{Sym(c)}{SymbolOf(outer)}{s}";
        }
        else if (innerFirst)
            words = subIsAtom ? $"{subWords}, {InfixWord(outer)} {c.Words}" : $"{subWords} {InfixWord(outer)} {c.Words}";
        else
            words = $"{c.Words} {InfixWord(outer)} {subWords}";
        string prompt = Chance(0.8) ? Frame(s_questionFrames, words) : Frame(s_imperativeFrames, Pick(new[] { $"work out {words}", $"calculate {words}", $"figure out {words}" }));
        string gloss = $"First {Uncapitalize(sub.Words)}: {sub.Expr}. Then the whole: {whole.Expr}.";
        return new Calc(prompt, whole.Expr, "the result", stated, gloss);
    }

    /// <summary>
    /// A running value changed step by step ("Start with 12, add 7, multiply by 3, then halve it."): the teacher builds
    /// the expression one step at a time in its reasoning, so each step is a small copy.
    /// </summary>
    private Calc Chain()
    {
        var stated = new List<string>();
        Num start = Operand(false);
        stated.Add(start.Text);
        var current = new Term(start.Expr, 3, start.Text);
        var steps = new List<string>();
        var trace = new StringBuilder($"Start with {start.Expr}.");
        int count = random.Next(2, 5);
        for (int i = 0; i < count; i++)
        {
            string step;
            switch (random.Next(10))
            {
                case 0: case 1:
                {
                    Num n = Operand(false); stated.Add(n.Text);
                    step = Pick(new[] { $"add {n.Text}", $"plus {n.Text}", $"add {n.Text} to it", $"increase it by {n.Text}" });
                    current = Apply('+', current, new Term(n.Expr, 3, n.Text), "");
                    break;
                }
                case 2: case 3:
                {
                    Num n = Operand(false); stated.Add(n.Text);
                    step = Pick(new[] { $"subtract {n.Text}", $"take away {n.Text}", $"minus {n.Text}", $"take {n.Text} off", $"reduce it by {n.Text}" });
                    current = Apply('-', current, new Term(n.Expr, 3, n.Text), "");
                    break;
                }
                case 4: case 5:
                {
                    Num n = Int(2, 30); stated.Add(n.Text);
                    step = Pick(new[] { $"multiply by {n.Text}", $"times {n.Text}", $"multiply it by {n.Text}", $"multiply the result by {n.Text}" });
                    current = Apply('*', current, new Term(n.Expr, 3, n.Text), "");
                    break;
                }
                case 6:
                {
                    Num n = Int(2, 20); stated.Add(n.Text);
                    step = Pick(new[] { $"divide by {n.Text}", $"divide it by {n.Text}", $"divide the result by {n.Text}", $"split it {n.Text} ways" });
                    current = Apply('/', current, new Term(n.Expr, 3, n.Text), "");
                    break;
                }
                case 7:
                    step = Pick(new[] { "double it", "double the result", "multiply it by 2" });
                    current = Apply('*', current, new Term("2", 3, "2"), "");
                    break;
                case 8:
                    step = Pick(new[] { "halve it", "halve the result", "divide it by 2", "take half of that" });
                    current = Apply('/', current, new Term("2", 3, "2"), "");
                    break;
                default:
                    if (Chance(0.5))
                    {
                        step = Pick(new[] { "square it", "square the result", "raise it to the power of 2" });
                        current = new Term($"{(current.Precedence < 3 ? $"({current.Expr})" : current.Expr)}^2", 3, "");
                    }
                    else
                    {
                        step = Pick(new[] { "triple it", "multiply it by 3" });
                        current = Apply('*', current, new Term("3", 3, "3"), "");
                    }
                    break;
            }
            steps.Add(step);
            trace.Append($" {Capitalize(step)}: {current.Expr}.");
        }
        string opener = Pick(new[] { $"Start with {start.Text}", $"Take {start.Text}", $"Begin with {start.Text}", $"First take {start.Text}", $"Take the number {start.Text}" });
        var text = new StringBuilder(opener);
        for (int i = 0; i < steps.Count; i++)
        {
            bool last = i == steps.Count - 1;
            string joint = last ? Pick(new[] { ", then ", ", and then ", ", and finally ", ". Then ", ". Finally, " }) : Pick(new[] { ", ", ", then ", ". Then ", ". " });
            text.Append(joint).Append(joint.EndsWith(". ", StringComparison.Ordinal) ? Capitalize(steps[i]) : steps[i]);
        }
        text.Append(Pick(new[] { ".", ". What do you get?", ". What's the result?", ". What number do you end up with?", "?", "." }));
        return new Calc(text.ToString(), current.Expr, "the result", stated, trace.ToString());
    }

    // ------------------------------------------------------------------ units

    /// <summary>A unit: how people write it (names, plurals, symbols), and what the converter takes when their form is not one it knows.</summary>
    private sealed record UnitForms(string Dimension, string Canonical, string Singular, string[] Plurals);

    private static readonly UnitForms[] s_units =
    [
        new("length", "km", "kilometer", ["kilometers", "kilometres", "km", "kms", "Km"]),
        new("length", "mi", "mile", ["miles", "mi", "Miles"]),
        new("length", "m", "meter", ["meters", "metres", "m"]),
        new("length", "ft", "foot", ["feet", "ft", "foot"]),
        new("length", "in", "inch", ["inches", "in", "\""]),
        new("length", "cm", "centimeter", ["centimeters", "centimetres", "cm"]),
        new("length", "mm", "millimeter", ["millimeters", "millimetres", "mm"]),
        new("length", "yd", "yard", ["yards", "yd", "yds"]),
        new("mass", "kg", "kilogram", ["kilograms", "kg", "kgs", "kilos"]),
        new("mass", "lb", "pound", ["pounds", "lb", "lbs"]),
        new("mass", "g", "gram", ["grams", "g", "gr"]),
        new("mass", "oz", "ounce", ["ounces", "oz"]),
        new("volume", "l", "liter", ["liters", "litres", "l", "L"]),
        new("volume", "ml", "milliliter", ["milliliters", "millilitres", "ml", "mL"]),
        new("volume", "gal", "gallon", ["gallons", "gal"]),
        new("time", "h", "hour", ["hours", "h", "hrs", "hr"]),
        new("time", "min", "minute", ["minutes", "min", "mins"]),
        new("time", "s", "second", ["seconds", "s", "sec", "secs"]),
        new("time", "day", "day", ["days"]),
        new("temperature", "C", "degree Celsius", ["degrees Celsius", "Celsius", "°C", "C", "celsius", "degrees C"]),
        new("temperature", "F", "degree Fahrenheit", ["degrees Fahrenheit", "Fahrenheit", "°F", "F", "fahrenheit", "degrees F"]),
        new("temperature", "K", "kelvin", ["kelvin", "K", "kelvins"]),
    ];

    /// <summary>What the converter gets for a unit the user wrote: their own word when the converter knows it (copying beats translating), else its symbol.</summary>
    private static string ToolUnit(UnitForms unit, string written) =>
        UnitConverterTool.Convert(1m, written, unit.Canonical).IsError ? unit.Canonical : written;

    private (string Written, string Value) UnitValue(string dimension)
    {
        if (dimension == "temperature")
        {
            int t = random.Next(-40, 250);
            string degrees = Chance(0.2) ? $"{t}.{random.Next(1, 10)}" : Digits(t);
            return (degrees, degrees);
        }
        double r = random.NextDouble();
        if (r < 0.15) return ("1", "1");
        if (r < 0.25) { int w = random.Next(2, 13); return (s_numberWords[w], Digits(w)); }
        if (r < 0.55) { var d = Dec(500); return (d.Text, d.Expr); }
        long v = random.NextInt64(2, 100_000);
        string text = v >= 1000 && Chance(0.4) ? v.ToString("#,0", CultureInfo.InvariantCulture) : Digits(v);
        return (text, Digits(v));
    }

    private AgentTask Units(TrajectoryBuilder b)
    {
        var from = Pick(s_units);
        var to = Pick(s_units.Where(u => u.Dimension == from.Dimension && u.Canonical != from.Canonical).ToArray());
        var (written, value) = UnitValue(from.Dimension);
        bool one = value == "1";
        string fromWord = one ? (Chance(0.6) ? from.Singular : Pick(from.Plurals.Where(p => p.Length <= 3 || p.StartsWith('°')).DefaultIfEmpty(from.Singular).ToArray())) : Pick(from.Plurals);
        string toWord = Pick(to.Plurals);
        bool symbolFrom = fromWord.Length <= 3 || fromWord.StartsWith('°');
        string quantity = symbolFrom && Chance(0.4) && fromWord != "\"" && char.IsDigit(written[^1]) ? $"{written}{fromWord}" : $"{written} {fromWord}";
        if (fromWord == "\"") quantity = $"{written}\"";
        string prompt = Pick(new[]
        {
            $"Convert {quantity} to {toWord}.", $"convert {quantity} into {toWord}", $"{quantity} in {toWord}?", $"{quantity} to {toWord}",
            $"How many {toWord} are in {quantity}?", $"How many {toWord} is {quantity}?", $"What's {quantity} in {toWord}?",
            $"What is {quantity} in {toWord}?", $"{quantity} = ? {toWord}", $"Change {quantity} into {toWord}, please.",
            $"Express {quantity} in {toWord}.", $"{quantity} equals how many {toWord}?", $"I have {quantity}. How much is that in {toWord}?",
            $"Can you turn {quantity} into {toWord}?", $"Please convert {quantity} to {toWord}.", $"{quantity} → {toWord}",
            $"How much is {quantity} in {toWord}?", $"Could you tell me what {quantity} is in {toWord}?",
            from.Dimension switch
            {
                "length" => $"I walked {quantity} today. How far is that in {toWord}?",
                "mass" => $"My bag weighs {quantity}. What is that in {toWord}?",
                "volume" => $"The tank holds {quantity}. How many {toWord} is that?",
                "time" => $"The trip took {quantity}. How long is that in {toWord}?",
                _ => $"It's {quantity} outside. What's that in {toWord}?",
            },
        });
        prompt = Surface(prompt, [written, fromWord, toWord, quantity]);
        b.User(prompt);
        string fromArg = ToolUnit(from, fromWord), toArg = ToolUnit(to, toWord);
        string reasoning = Pick(new[]
        {
            $"Convert {value} {fromArg} to {toArg} with the unit converter.",
            $"Unit conversion: value {value}, from {fromArg}, to {toArg}.",
            $"{written} {fromWord} to {toWord}: convert_units with value {value}, from {fromArg}, to {toArg}.",
            $"The user wants {toWord}. Convert {value} from {fromArg} to {toArg}.",
        });
        string result = b.Step(reasoning, ("convert_units", new JsonObject
        {
            ["value"] = JsonValue.Create(decimal.Parse(value, CultureInfo.InvariantCulture)), ["from"] = fromArg, ["to"] = toArg,
        }))[0].Content;
        string number = result.Split(' ')[0];
        string answer = Pick(new[]
        {
            $"{written} {fromWord} is {number} {toWord}.", $"That's {number} {toWord}.", $"{number} {toWord}.",
            $"{written} {fromWord} = {number} {toWord}", $"It comes to {number} {toWord}.", $"{written} {fromWord} equals {number} {toWord}.",
        });
        b.Final(Pick(new[] { $"The converter returned {result}.", $"Result: {result}." }), Capitalize(answer));
        return new AgentTask("natural-units", 1, prompt, [number]);
    }

    // ------------------------------------------------------------------ dates

    private DateOnly RandomDate() => new(random.Next(1900, 2100), random.Next(1, 13), random.Next(1, 29));

    private static readonly string[] s_months = CultureInfo.InvariantCulture.DateTimeFormat.MonthNames[..12];

    private static string Ordinal(int d) => d + (d % 10 == 1 && d != 11 ? "st" : d % 10 == 2 && d != 12 ? "nd" : d % 10 == 3 && d != 13 ? "rd" : "th");

    /// <summary>A date in one of the ways people write it; every one names the year and is unambiguous.</summary>
    private string WriteDate(DateOnly d)
    {
        string month = s_months[d.Month - 1], shortMonth = month[..3];
        return random.Next(10) switch
        {
            0 or 1 => CalendarTool.FormatDate(d),
            2 => $"{month} {d.Day}, {d.Year}",
            3 => $"{d.Day} {month} {d.Year}",
            4 => $"{shortMonth} {d.Day} {d.Year}",
            5 => $"the {Ordinal(d.Day)} of {month} {d.Year}",
            6 => $"{month} {Ordinal(d.Day)}, {d.Year}",
            7 => $"{d.Year}/{d.Month:00}/{d.Day:00}",
            8 => $"{d.Day} {shortMonth} {d.Year}",
            _ => $"{month.ToLowerInvariant()} {d.Day} {d.Year}",
        };
    }

    private static string LongDate(DateOnly d) => $"{s_months[d.Month - 1]} {d.Day}, {d.Year}";

    private AgentTask Date(TrajectoryBuilder b)
    {
        var d = RandomDate();
        string written = WriteDate(d), iso = CalendarTool.FormatDate(d);
        string translate = written == iso ? "" : $"{written} is {iso}. ";
        switch (random.Next(3))
        {
            case 0:
            {
                string prompt = Surface(Pick(new[]
                {
                    $"What day of the week was {written}?", $"What day of the week is {written}?", $"Which weekday is {written}?",
                    $"{written} — what day is that?", $"What weekday does {written} fall on?", $"Tell me the day of the week for {written}.",
$"Do you know what day {written} was?", $"Day of week for {written}?",
                    $"I was born on {written}. What day of the week was it?", $"My exam is on {written}. Which day of the week is that?",
                }), [written]);
                b.User(prompt);
                string day = b.Step($"{translate}Ask the calendar for the weekday of {iso}.", ("calendar", new JsonObject { ["operation"] = "weekday", ["date"] = iso }))[0].Content;
                b.Final($"The calendar returned {day}.", Pick(new[] { $"{written} is a {day}.", $"It's a {day}.", $"{day}.", $"That date falls on a {day}.", $"{iso} was a {day}." }));
                return new AgentTask("natural-date", 1, prompt, [day]);
            }
            case 1:
            {
                bool weeks = Chance(0.25), before = Chance(0.25);
                int count = weeks ? random.Next(1, 15) : random.Next(1, 1000);
                int days = (weeks ? count * 7 : count) * (before ? -1 : 1);
                string span = weeks ? (count == 1 ? "a week" : $"{count} weeks") : (count == 1 ? "1 day" : $"{count} days");
                string prompt = Surface(before
                    ? Pick(new[] { $"What was the date {span} before {written}?", $"What date is {span} before {written}?", $"Go back {span} from {written}. What's the date?", $"Subtract {span} from {written}." })
                    : Pick(new[]
                    {
                        $"What's the date {span} after {written}?", $"{span} from {written}?", $"Add {span} to {written}.", $"What date is {span} after {written}?",
                        $"If I start on {written}, what is the date {span} later?", $"{written} plus {span} is what date?", $"My project starts {written} and lasts {span}. When does it end?",
                        $"what date will it be {span} after {written}",
                    }), [written, span, "before", "back", "after", "later", "subtract", "plus"]);
                b.User(prompt);
                string weekNote = weeks ? $"{span} is {Math.Abs(days)} days. " : "";
                string result = b.Step($"{translate}{weekNote}Add {days} days to {iso} with the calendar.",
                    ("calendar", new JsonObject { ["operation"] = "add_days", ["date"] = iso, ["days"] = days }))[0].Content;
                var r = DateOnly.ParseExact(result, "yyyy-MM-dd", CultureInfo.InvariantCulture);
                b.Final($"The calendar returned {result}.", Pick(new[]
                {
                    $"{Capitalize(span)} {(before ? "before" : "after")} {written} is {result}.", $"It's {result} ({LongDate(r)}).", $"{LongDate(r)} ({result}).", $"The date is {result}.",
                }));
                return new AgentTask("natural-date", 1, prompt, [result]);
            }
            default:
            {
                var e = RandomDate();
                if (e < d) (d, e) = (e, d);
                if (e == d) e = e.AddDays(17);
                string w1 = WriteDate(d), w2 = WriteDate(e), i1 = CalendarTool.FormatDate(d), i2 = CalendarTool.FormatDate(e);
                string prompt = Surface(Pick(new[]
                {
                    $"How many days between {w1} and {w2}?", $"How many days are there from {w1} until {w2}?", $"Days from {w1} to {w2}?",
                    $"How long is it from {w1} to {w2}, in days?", $"Count the days from {w1} to {w2}.", $"What's the number of days between {w1} and {w2}?",
                    $"If today is {w1}, how many days until {w2}?", $"{w1} to {w2}: how many days is that?", $"how many days separate {w1} and {w2}",
                }), [w1, w2]);
                b.User(prompt);
                string tr = (w1 == i1 ? "" : $"{w1} is {i1}. ") + (w2 == i2 ? "" : $"{w2} is {i2}. ");
                string n = b.Step($"{tr}Count the days from {i1} to {i2} with the calendar.",
                    ("calendar", new JsonObject { ["operation"] = "days_between", ["date"] = i1, ["end_date"] = i2 }))[0].Content;
                b.Final($"The calendar returned {n}.", Pick(new[] { $"There are {n} days between {w1} and {w2}.", $"{n} days.", $"It's {n} days from {w1} to {w2}.", $"That's {n} days." }));
                return new AgentTask("natural-date", 1, prompt, [n]);
            }
        }
    }

    // ------------------------------------------------------------------ lookups

    private AgentTask Lookup(TrajectoryBuilder b)
    {
        var city = kb.Entities[random.Next(kb.Entities.Count)];
        string c = city.Name;
        string attribute = Pick(KnowledgeBase.Attributes);
        string prompt = attribute switch
        {
            "population" => Pick(new[] { $"How many people live in {c}?", $"What's the population of {c}?", $"{c} population?", $"population of {c}",
                $"How many inhabitants does {c} have?", $"What is {c}'s population?", $"How big is the population of {c}?", $"Tell me how many residents {c} has." }),
            "elevation" => Pick(new[] { $"How high is {c}?", $"What's the altitude of {c}?", $"{c} elevation?", $"How many metres above sea level is {c}?",
                $"At what elevation does {c} sit?", $"What is the height of {c} above sea level?", $"elevation of {c} please" }),
            "founded" => Pick(new[] { $"When was {c} founded?", $"What year was {c} established?", $"In what year did {c} get founded?", $"{c} founding year?",
$"Tell me when {c} was founded.", $"year {c} was founded" }),
            "area" => Pick(new[] { $"How big is {c} in km²?", $"What's the area of {c}?", $"How many square kilometres does {c} cover?", $"{c} area?",
                $"What is the land area of {c}?", $"How large is {c}, in square km?" }),
            "country" => Pick(new[] { $"Which country is {c} in?", $"{c} is in which country?", $"What country does {c} belong to?", $"Where is {c}? Which country?",
                $"In which country would I find {c}?", $"country of {c}?" }),
            _ => Pick(new[] { $"What river runs through {c}?", $"Which river is {c} on?", $"Name the river that flows through {c}.", $"{c} river?",
                $"What's the river in {c} called?", $"Which river passes through {c}?" }),
        };
        string noun = attribute switch
        {
            "population" => "population", "elevation" => Pick(new[] { "elevation", "altitude" }), "founded" => Pick(new[] { "founding year", "year of founding" }),
            "area" => Pick(new[] { "area", "size" }), "country" => "country", _ => "river",
        };
        double wrap = random.NextDouble();
        if (wrap < 0.2)
            prompt = Pick(new[] { $"Look up the {noun} of {c}.", $"Find the {noun} of {c}.", $"Check the {noun} of {c} for me.", $"I need the {noun} of {c}.",
                $"Can you look up {c}'s {noun}?", $"Give me {c}'s {noun}.", $"{c}: {noun}?", $"Search the knowledge base for the {noun} of {c}." });
        else if (wrap < 0.35 && char.IsUpper(prompt[0]) && !prompt.StartsWith(c, StringComparison.Ordinal) && prompt.EndsWith('?'))
            prompt = Pick(new[] { "Do you know ", "Can you tell me ", "Could you find out ", "I wonder " }) + Uncapitalize(prompt);
        prompt = Surface(prompt, [c]);
        b.User(prompt);
        string value = b.Step(Pick(new[] { $"Look up the {attribute} of {c}.", $"This is a lookup: entity {c}, attribute {attribute}.", $"The knowledge base has the {attribute} of {c}." }),
            ("lookup", new JsonObject { ["entity"] = c, ["attribute"] = attribute }))[0].Content;
        string answer = attribute switch
        {
            "population" => Pick(new[] { $"{c} has a population of {value}.", $"{value} people live in {c}.", $"{value} people.", $"The population of {c} is {value}." }),
            "elevation" => Pick(new[] { $"{c} is {value} m above sea level.", $"Its elevation is {value} metres.", $"{value} m." }),
            "founded" => Pick(new[] { $"{c} was founded in {value}.", $"In {value}.", $"It was established in {value}." }),
            "area" => Pick(new[] { $"{c} covers {value} km².", $"The area of {c} is {value} square kilometres.", $"{value} km²." }),
            "country" => Pick(new[] { $"{c} is in {value}.", $"It's in {value}.", $"{value}." }),
            _ => Pick(new[] { $"The {value} runs through {c}.", $"{c} lies on the {value}.", $"The {value}." }),
        };
        b.Final($"The knowledge base says {value}.", answer);
        return new AgentTask("natural-lookup", 1, prompt, [value]);
    }

    /// <summary>
    /// Two lookups and what a person asks of them: a gap, a total, a ratio, which is higher, an elevation in feet, a
    /// density. The cities are ordered so that "how many more" and "how much older" come out positive.
    /// </summary>
    private AgentTask Compare(TrajectoryBuilder b)
    {
        KnowledgeEntity x = kb.Entities[random.Next(kb.Entities.Count)], y;
        do y = kb.Entities[random.Next(kb.Entities.Count)]; while (ReferenceEquals(x, y));
        JsonObject Look(KnowledgeEntity e, string attribute) => new() { ["entity"] = e.Name, ["attribute"] = attribute };
        switch (random.Next(6))
        {
            case 0 or 1:
            {
                string attribute = Pick(new[] { "population", "elevation", "area", "founded" });
                decimal Value(KnowledgeEntity e) => decimal.Parse(e.Attribute(attribute), CultureInfo.InvariantCulture);
                // "more"/"higher"/"bigger" put the larger value first; "older" the earlier founding year.
                bool older = attribute == "founded";
                if (older ? Value(x) > Value(y) : Value(x) < Value(y)) (x, y) = (y, x);
                if (Value(x) == Value(y)) y = kb.Entities.First(e => !ReferenceEquals(e, x) && Value(e) != Value(x) && (older ? Value(e) > Value(x) : Value(e) < Value(x)));
                string A = x.Name, B = y.Name;
                string prompt = attribute switch
                {
                    "population" => Pick(new[] { $"How many more people live in {A} than in {B}?", $"What's the population gap between {A} and {B}?", $"By how many people does {A} outnumber {B}?" }),
                    "elevation" => Pick(new[] { $"How much higher is {A} than {B}?", $"By how many metres is {A} higher than {B}?", $"What's the difference in elevation between {A} and {B}?" }),
                    "area" => Pick(new[] { $"How much bigger is {A} than {B} in km²?", $"By how many square kilometres is {A} larger than {B}?", $"Area difference between {A} and {B}?" }),
                    _ => Pick(new[] { $"How many years older is {A} than {B}?", $"How much older is {A} than {B}?", $"How many years apart were {A} and {B} founded?" }),
                };
                prompt = Surface(prompt, [A, B]);
                b.User(prompt);
                var r = b.Step($"Look up the {attribute} of {A} and {B}, then subtract.", ("lookup", Look(x, attribute)), ("lookup", Look(y, attribute)));
                string expression = older ? $"{r[1].Content}-{r[0].Content}" : $"{r[0].Content}-{r[1].Content}";
                string d = b.Step($"{A}: {r[0].Content}. {B}: {r[1].Content}. Compute {expression}.", ("calculator", new JsonObject { ["expression"] = expression }))[0].Content;
                string unit = attribute switch { "elevation" => " m", "area" => " km²", "founded" => " years", _ => " people" };
                b.Final($"The calculator returned {d}.", Pick(new[] { $"The difference is {d}{unit}.", $"{A} vs {B}: {d}{unit}.", $"{d}{unit}." }));
                return new AgentTask("natural-compare", 3, prompt, [d]);
            }
            case 2:
            {
                string attribute = Pick(new[] { "population", "area" });
                string A = x.Name, B = y.Name;
                string prompt = Surface(attribute == "population"
                    ? Pick(new[] { $"How many people live in {A} and {B} together?", $"What's the combined population of {A} and {B}?", $"Total population of {A} plus {B}?" })
                    : Pick(new[] { $"What's the total area of {A} and {B}?", $"How many km² do {A} and {B} cover together?" }), [A, B]);
                b.User(prompt);
                var r = b.Step($"Look up the {attribute} of {A} and {B}, then add.", ("lookup", Look(x, attribute)), ("lookup", Look(y, attribute)));
                string expression = $"{r[0].Content}+{r[1].Content}";
                string sum = b.Step($"{A}: {r[0].Content}. {B}: {r[1].Content}. Compute {expression}.", ("calculator", new JsonObject { ["expression"] = expression }))[0].Content;
                b.Final($"The calculator returned {sum}.", Pick(new[] { $"Together: {sum}.", $"The combined {attribute} is {sum}.", $"{sum} in total." }));
                return new AgentTask("natural-compare", 3, prompt, [sum]);
            }
            case 3:
            {
                string attribute = Pick(new[] { "population", "elevation" });
                string A = x.Name, B = y.Name;
                string prompt = Surface(attribute == "population"
                    ? Pick(new[] { $"Which has more people, {A} or {B}?", $"Is {A} or {B} bigger by population?", $"Which city is more populous: {A} or {B}?" })
                    : Pick(new[] { $"Which is higher, {A} or {B}?", $"Is {A} higher up than {B}?", $"Which sits at a greater elevation: {A} or {B}?" }), [A, B]);
                b.User(prompt);
                var r = b.Step($"Look up the {attribute} of {A} and {B} and compare.", ("lookup", Look(x, attribute)), ("lookup", Look(y, attribute)));
                decimal va = decimal.Parse(r[0].Content, CultureInfo.InvariantCulture), vb = decimal.Parse(r[1].Content, CultureInfo.InvariantCulture);
                string word = attribute == "population" ? "more people" : "higher";
                string answer = va == vb ? $"They are equal: both have {attribute} {r[0].Content}."
                    : va > vb ? $"{A} has {word}: {r[0].Content} against {r[1].Content} for {B}." : $"{B} has {word}: {r[1].Content} against {r[0].Content} for {A}.";
                if (attribute == "elevation" && va != vb) answer = va > vb ? $"{A} is higher: {r[0].Content} m against {r[1].Content} m for {B}." : $"{B} is higher: {r[1].Content} m against {r[0].Content} m for {A}.";
                b.Final($"{A}: {r[0].Content}. {B}: {r[1].Content}.", answer);
                return new AgentTask("natural-compare", 2, prompt, [va >= vb ? A : B, r[0].Content, r[1].Content]);
            }
            case 4:
            {
                string A = x.Name;
                string toWord = Pick(new[] { "feet", "ft", "yards" });
                string prompt = Surface(Pick(new[] { $"How high is {A} in {toWord}?", $"What's the elevation of {A} in {toWord}?", $"{A}'s altitude in {toWord}?" }), [A, toWord]);
                b.User(prompt);
                string v = b.Step($"First look up the elevation of {A} (in metres).", ("lookup", Look(x, "elevation")))[0].Content;
                string r = b.Step($"{A} is at {v} m. Convert {v} m to {toWord}.", ("convert_units", new JsonObject
                {
                    ["value"] = JsonValue.Create(decimal.Parse(v, CultureInfo.InvariantCulture)), ["from"] = "m", ["to"] = toWord,
                }))[0].Content;
                string number = r.Split(' ')[0];
                b.Final($"The converter returned {r}.", Pick(new[] { $"{A} is {number} {toWord} above sea level.", $"{v} m, which is {number} {toWord}." }));
                return new AgentTask("natural-compare", 2, prompt, [number]);
            }
            default:
            {
                string A = x.Name;
                string prompt = Surface(Pick(new[] { $"How densely populated is {A}?", $"What's the population density of {A}?", $"How many people per km² live in {A}?", $"{A} density?" }), [A]);
                b.User(prompt);
                var r = b.Step($"Density is population / area. Look up both for {A}.", ("lookup", Look(x, "population")), ("lookup", Look(x, "area")));
                string expression = $"{r[0].Content}/{r[1].Content}";
                string d = b.Step($"Population {r[0].Content}, area {r[1].Content} km². Compute {expression}.", ("calculator", new JsonObject { ["expression"] = expression }))[0].Content;
                b.Final($"The calculator returned {d}.", Pick(new[] { $"{A} has {d} people per km².", $"{d} people per square kilometre.", $"{d} per km²." }));
                return new AgentTask("natural-compare", 3, prompt, [d]);
            }
        }
    }

    // ------------------------------------------------------------------ notes

    private static readonly string[] s_noteKeys =
    [
        "parking spot", "locker code", "wifi password", "flight", "gym locker", "bike lock code", "room number", "door code",
        "passport number", "library card", "seat", "order number", "train", "favourite colour", "shopping item", "dentist appointment",
    ];

    private static readonly string[] s_words = ["river", "maple", "tiger", "orange", "violet", "comet", "pepper", "falcon", "cedar", "harbor", "eggs", "bread", "lemon"];

    private string NoteValue(string key)
    {
        char L() => (char)('A' + random.Next(26));
        return key switch
        {
            "parking spot" or "seat" or "gym locker" => Chance(0.5) ? $"{L()}-{random.Next(1, 400)}" : $"{random.Next(1, 60)}{L()}",
            "flight" or "train" => $"{L()}{L()} {random.Next(100, 9999)}",
            "wifi password" => Pick(s_words) + random.Next(1, 999),
            "passport number" or "library card" => $"{L()}{random.Next(1_000_000, 9_999_999)}",
            "favourite colour" or "shopping item" => Pick(s_words),
            "dentist appointment" => CalendarTool.FormatDate(RandomDate()),
            "order number" => $"#{random.Next(10_000, 999_999)}",
            _ => Chance(0.3) ? string.Join(" ", Enumerable.Range(0, 4).Select(_ => random.Next(10))) : Digits(random.Next(100, 100_000)),
        };
    }

    private AgentTask Note(TrajectoryBuilder b)
    {
        string key = Pick(s_noteKeys), value = NoteValue(key);
        bool readBack = Chance(0.2), list = !readBack && Chance(0.1);
        if (list)
        {
            string ask = Surface(Pick(new[] { "What notes do I have?", "Which notes have you saved for me?", "List my notes.", "show me my saved notes", "Do you remember anything for me?" }), []);
            b.User(ask);
            string listed = b.Step("List the notes in memory.", ("memory", new JsonObject { ["action"] = "list" }))[0].Content;
            b.Final($"The memory returned {listed}.", Pick(new[] { "You have no notes saved yet.", "There are no notes yet: memory is empty.", "None so far: I haven't saved any notes." }));
            return new AgentTask("natural-note", 1, ask, ["no"]);
        }
        string prompt = Pick(new[]
        {
            $"Remember that my {key} is {value}.", $"Please note my {key}: {value}", $"Save {value} as my {key}.", $"Can you keep track of my {key}? It's {value}.",
            $"Store this: {key} = {value}", $"Jot down {value} for my {key}.", $"Don't let me forget: {key} {value}", $"my {key} is {value}, remember it",
            $"Make a note that the {key} is {value}.", $"Write down my {key}, {value}.", $"Keep this for later: {key} {value}.", $"Note: {key} is {value}",
            $"Could you remember {value} as my {key}?", $"{key}: {value}. Save it please.",
        });
        if (readBack) prompt = prompt.TrimEnd('.') + Pick(new[] { " Then read it back to me.", ", and then tell me what you saved.", ". Read it back afterwards." });
        prompt = Surface(prompt, [key, value]);
        b.User(prompt);
        b.Step(Pick(new[] { $"Save {value} under '{key}' in memory.", $"Memory write: key '{key}', value '{value}'.", $"Store the {key} {value} in memory." }),
            ("memory", new JsonObject { ["action"] = "write", ["key"] = key, ["value"] = value }));
        if (readBack)
        {
            string read = b.Step($"Saved. Now read '{key}' back.", ("memory", new JsonObject { ["action"] = "read", ["key"] = key }))[0].Content;
            b.Final($"Memory has {read}.", Pick(new[] { $"Saved. Your {key} is {read}.", $"Done — I read it back: {key} = {read}." }));
        }
        else
            b.Final("Saved.", Pick(new[] { $"Saved: your {key} is {value}.", $"Got it — I'll remember your {key}: {value}.", $"Done. {Capitalize(key)}: {value}.", $"Noted: {key} {value}." }));
        return new AgentTask("natural-note", readBack ? 2 : 1, prompt, [value]);
    }

    // ------------------------------------------------------------------ plain chat and requests outside the tools

    private const string Identity = "I'm k2-nano, a small language model with the Kimi K2 architecture, trained with KimiSharp.";
    private const string ToolList = "calculator (exact arithmetic), convert_units (unit conversion), calendar (dates), lookup (facts about the cities in my knowledge base) and memory (notes)";

    private static readonly (string[] Asks, string[] Answers, string Intent)[] s_chat =
    [
        (["who are you", "what are you", "what's your name", "what is your name", "who am I talking to", "introduce yourself", "which model are you", "tell me about yourself", "what should I call you", "what model is this", "are you kimi"],
            [Identity, Identity + " I answer with the help of tools.", "I'm k2-nano: a tiny Kimi K2-style model from KimiSharp."], "identity"),
        (["are you a human", "are you a real person", "am I talking to a bot", "are you ChatGPT", "are you an AI"],
            ["No, I'm not a human: I'm k2-nano, a small AI model with the Kimi K2 architecture.", "I'm an AI model, k2-nano, not a person."], "identity"),
        (["who made you", "who built you", "who trained you", "where do you come from"],
            ["I was trained with KimiSharp, a C# implementation of the Kimi K2 system. I'm k2-nano.", "KimiSharp trained me; I'm k2-nano, a small Kimi K2-architecture model."], "identity"),
        (["what can you do", "how can you help me", "what are you good at", "what do you do", "what can I ask you", "what are your capabilities", "what kinds of questions can you answer", "what can you help with", "what are you able to do"],
            [$"I can do exact arithmetic, convert units, work with dates, look up cities in my knowledge base and keep notes. My tools: {ToolList}.",
             $"With my tools: {ToolList}."], "capabilities"),
        (["what tools do you have", "list your tools", "which tools can you use", "what tools are available", "name your tools"],
            [$"I have five tools: {ToolList}.", "calculator, convert_units, calendar, lookup and memory."], "capabilities"),
        (["hi", "hello", "hey", "hello there", "hiya", "hey there", "greetings"],
            ["Hello! How can I help?", "Hi! What can I do for you?", "Hey! Ask me to calculate, convert units, work with dates, look something up or take a note."], "greeting"),
        (["how are you", "how's it going", "how are you doing", "you ok"],
            ["I'm doing well, thanks! How can I help?", "Fine, thank you. What do you need?"], "greeting"),
        (["thanks", "thank you", "thanks a lot", "cheers", "much appreciated", "thank you so much"],
            ["You're welcome!", "Glad to help!", "Happy to help."], "thanks"),
        (["bye", "goodbye", "see you", "see you later", "that's all for now"],
            ["Goodbye!", "Bye! Come back any time.", "See you!"], "bye"),
        (["good night", "night night", "I'm off to bed"],
            ["Good night!", "Good night, sleep well!"], "bye"),
        (["what's the weather like", "will it rain tomorrow", "what's the temperature outside", "is it sunny where you are"],
            ["I can't check the weather: I have no internet access or weather tool.", "Sorry, I don't have access to weather data."], "decline"),
        (["what time is it", "what's today's date", "what day is it today", "what's the time now"],
            ["I can't tell: I have no clock. If you tell me the date, I can do date arithmetic with it.", "I don't know the current date or time; I have no clock."], "decline"),
        (["write me a poem", "write an essay about dogs", "tell me a story", "compose a song for me", "tell me a joke", "write some Python code", "draw me a cat", "summarize this article", "recommend a good movie"],
            ["Sorry, I can't do that well: I'm a small model made for arithmetic, units, dates, lookups and notes.", "That's beyond me, I'm afraid: I can't do it well. I'm a tiny model for calculations, conversions, dates, lookups and notes."], "decline"),
        (["book me a flight", "send an email to my boss", "order a pizza", "call my mom", "set an alarm for me", "play some music", "remind me tomorrow morning", "buy me a ticket", "open my calendar app", "turn on the lights"],
            ["I can't do that: I have no access to the outside world, only my own tools.", "Sorry, I'm unable to do that. I can calculate, convert units, handle dates, look up cities and keep notes."], "decline"),
        (["what's the capital of France", "who won the last World Cup", "who is the president of the USA", "what's the latest news", "how tall is Mount Everest", "what's the stock price of Apple", "who wrote Hamlet", "how far is the Moon"],
            ["I don't know that reliably: my lookup tool only covers the cities in its own knowledge base, and I have no internet access.",
             "I can't answer that: I have no internet access, and my knowledge base only holds its own cities."], "decline"),
        (["translate hello into Spanish", "can you speak French", "translate this sentence into German"],
            ["Sorry, I can't translate: I'm a small English-only model for arithmetic, units, dates, lookups and notes."], "decline"),
        (["what's the meaning of life", "do you have feelings", "what do you dream about", "are you conscious"],
            ["I don't have feelings or dreams: I'm k2-nano, a small language model.", "I'm just a small model, so I can't say. I'm better at sums and conversions."], "decline"),
        (["can you browse the web", "do you have internet access", "can you search google for me"],
            ["No, I can't browse the web: I have no internet access. My tools are calculator, convert_units, calendar, lookup and memory."], "decline"),
    ];

    private static readonly HashSet<string> s_questionWords = ["who", "what", "which", "how", "are", "am", "is", "do", "can", "will", "where", "you"];

    private AgentTask Chat(TrajectoryBuilder b)
    {
        var (asks, answers, intent) = Pick(s_chat);
        string ask = Pick(asks);
        bool question = s_questionWords.Contains(ask.Split(' ')[0].Split('\'')[0]);
        string end = question ? Pick(new[] { "?", "?", "", "??" }) : Pick(new[] { ".", "!", "", "" });
        string greeting = intent is "identity" or "capabilities" or "decline" && Chance(0.3) ? Pick(new[] { "Hi! ", "Hello, ", "Hey, ", "Hi there. ", "Good morning! " }) : "";
        string prompt = Surface(greeting + (greeting.EndsWith(", ", StringComparison.Ordinal) ? ask : Capitalize(ask)) + end, [], openers: greeting.Length == 0 && intent is "identity" or "capabilities" or "decline");
        b.User(prompt);
        string reasoning = intent switch
        {
            "identity" => Pick(new[] { "The user asks who I am. No tool is needed.", "A question about me; answer briefly." }),
            "capabilities" => Pick(new[] { "The user asks what I can do: name my tools once each. No tool call.", "Answer with my tools; no tool is needed." }),
            "decline" => Pick(new[] { "None of my tools can do this. Say so briefly and truthfully.", "This is outside what I can do; decline politely." }),
            _ => Pick(new[] { "Small talk; no tool is needed.", "No tool is needed for this." }),
        };
        string answer = Pick(answers);
        if (greeting.Length > 0 && Chance(0.5)) answer = Pick(new[] { "Hi! ", "Hello! " }) + answer;
        b.Final(reasoning, answer);
        // The answer itself is what must be said: a flawed teacher's "I am not sure." is then rejected, not kept.
        return new AgentTask("natural-chat", 0, prompt, [answer], NeedsTools: false);
    }

    // ------------------------------------------------------------------ surface variation

    private static readonly string[] s_openers = ["Hi, ", "Hey! ", "Quick question: ", "Hello. ", "Sorry to bother you, ", "Help please: ", "ok so ", "Hey there, ", "Um, ", "Question: "];
    private static readonly string[] s_closers = [" Thanks!", " Thank you.", " Please.", " thx", " Cheers.", " I need it for a report.", " Thanks in advance!", " :)"];

    /// <summary>
    /// Dresses a request as people type it: an opener or closer, lower case, missing or doubled punctuation, stray
    /// spaces, and now and then one typo in a word of the template (never inside <paramref name="keep"/>: numbers,
    /// units, names and values must reach the tools intact).
    /// </summary>
    private string Surface(string text, IReadOnlyList<string> keep, bool openers = true)
    {
        if (Chance(0.12)) text = Typo(text, keep);
        if (openers && Chance(0.2)) text = Pick(s_openers) + Uncapitalize(text);
        if (openers && Chance(0.15)) text = text.TrimEnd() + Pick(s_closers);
        double r = random.NextDouble();
        // Lower case keeps any case-sensitive unit symbol or value as written.
        if (r < 0.15 && keep.All(k => k == k.ToLowerInvariant() || !text.Contains(k, StringComparison.Ordinal))) text = text.ToLowerInvariant();
        else if (r < 0.2) text = Uncapitalize(text);
        r = random.NextDouble();
        if (r < 0.15) text = text.TrimEnd('.', '?', '!');
        else if (r < 0.2 && text.EndsWith('?')) text += "?";
        if (Chance(0.05)) { int space = text.IndexOf(' '); if (space > 0) text = text.Insert(space, " "); }
        if (Chance(0.05)) text = "  " + text;
        return text;
    }

    private string Typo(string text, IReadOnlyList<string> keep)
    {
        var words = text.Split(' ');
        var candidates = Enumerable.Range(0, words.Length)
            .Where(i => words[i].Length >= 4 && words[i].All(char.IsAsciiLetterLower) && !keep.Any(k => k.Contains(words[i], StringComparison.OrdinalIgnoreCase)))
            .ToArray();
        if (candidates.Length == 0) return text;
        int at = Pick(candidates);
        string w = words[at];
        int k = random.Next(1, w.Length - 1);
        words[at] = random.Next(3) switch
        {
            0 => w[..k] + w[k + 1] + w[k] + w[(k + 2)..],        // swapped letters
            1 => w.Remove(k, 1),                                 // a dropped letter
            _ => w.Insert(k, w[k].ToString()),                   // a doubled letter
        };
        return string.Join(' ', words);
    }

    private static string Capitalize(string s) => s.Length == 0 || !char.IsLower(s[0]) ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private static string Uncapitalize(string s) =>
        s.Length > 1 && char.IsUpper(s[0]) && char.IsLower(s[1]) ? char.ToLowerInvariant(s[0]) + s[1..] : s;
}
