using KimiSharp.Testing.Templates;
using System.Text.Json.Nodes;
using KimiSharp.Jinja;

namespace KimiSharp.Jinja.Tests;

/// <summary>Targeted tests of the interpreter's Python semantics, errors and options.</summary>
public sealed class JinjaInterpreterTests
{
    private static string Render(string source, object? vars = null, JinjaOptions? options = null)
    {
        var dict = new Dictionary<string, object?>();
        if (vars is not null)
        {
            foreach (var p in vars.GetType().GetProperties())
                dict[p.Name] = p.GetValue(vars);
        }
        return JinjaTemplate.Parse(source, options).Render(dict);
    }

    // ---- Python value printing ---------------------------------------------------------------

    [Theory]
    [InlineData("{{ true }}|{{ false }}|{{ none }}|{{ True }}|{{ None }}", "True|False|None|True|None")]
    [InlineData("{{ 1 }}|{{ 1.0 }}|{{ 2.50 }}|{{ 1e16 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}", "1|1.0|2.5|1e+16|1e-05|0.30000000000000004")]
    [InlineData("{{ ['a', 1, none, true, 1.5] }}", "['a', 1, None, True, 1.5]")]
    [InlineData("{{ {'k': 'v', 'n': [1, {'x': none}]} }}", "{'k': 'v', 'n': [1, {'x': None}]}")]
    [InlineData("{{ (1,) }}|{{ () }}|{{ ('a', 2) }}", "(1,)|()|('a', 2)")]
    [InlineData("{{ [\"it's\", 'a\"b', 'tab\\t', '中😀'] }}", "[\"it's\", 'a\"b', 'tab\\t', '中😀']")]
    [InlineData("{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 / 2 }}|{{ 4 / 2 }}|{{ -7 % 3 }}|{{ 2 ** 3 ** 2 }}", "3|-4|3.5|2.0|2|64")]
    public void PrintsLikePython(string source, string expected) => Assert.Equal(expected, Render(source));

    [Fact]
    public void JsonNumbersKeepIntVersusFloat()
    {
        var data = JsonNode.Parse("""{"i": 1, "f": 1.0, "e": 1e3, "big": 12345678901234567890, "neg": -0.0}""");
        var vars = new Dictionary<string, JinjaValue> { ["d"] = JinjaValue.FromJson(data) };
        string output = JinjaTemplate.Parse("{{ d.i }} {{ d.f }} {{ d.e }} {{ d.neg }} {{ d.i is integer }} {{ d.f is float }} {{ d | tojson }}").Render(vars);
        Assert.Equal("""1 1.0 1000.0 -0.0 True True {"i": 1, "f": 1.0, "e": 1000.0, "big": 12345678901234567890, "neg": -0.0}""", output);
    }

    [Fact]
    public void ClrAndJsonValueTypesConvert()
    {
        var output = Render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }} {{ g }}", new
        {
            a = 2.0,
            b = 2,
            c = JsonValue.Create(1.0),
            d = JsonValue.Create(3),
            e = new Dictionary<string, object?> { ["z"] = 1, ["a"] = null },
            f = new List<object?> { "x", 1.5f, true },
            g = 'c',
        });
        Assert.Equal("2.0 2 1.0 3 {'z': 1, 'a': None} ['x', 1.5, True] c", output);
    }

    [Fact]
    public void DictsKeepInsertionOrder()
    {
        var obj = new JsonObject { ["zeta"] = 1, ["alpha"] = 2, ["mid"] = 3 };
        var vars = new Dictionary<string, JinjaValue> { ["d"] = JinjaValue.FromJson(obj) };
        Assert.Equal("zeta,alpha,mid {\"zeta\": 1, \"alpha\": 2, \"mid\": 3}",
            JinjaTemplate.Parse("{{ d | join(',') }} {{ d | tojson }}").Render(vars));
    }

    [Fact]
    public void ToJsonHonoursTransformersKeywordArguments()
    {
        var vars = new Dictionary<string, JinjaValue> { ["d"] = JinjaValue.FromJson(JsonNode.Parse("""{"b": ["中", 1.5], "a": null}""")) };
        var t = JinjaTemplate.Parse("{{ d | tojson }}|{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(indent=1) }}|{{ d | tojson(ensure_ascii=true, sort_keys=true) }}");
        Assert.Equal("{\"b\": [\"中\", 1.5], \"a\": null}|{\"b\":[\"中\",1.5],\"a\":null}|{\n \"b\": [\n  \"中\",\n  1.5\n ],\n \"a\": null\n}|{\"a\": null, \"b\": [\"\\u4e2d\", 1.5]}",
            t.Render(vars));
    }

    [Fact]
    public void StringsCountCodePointsLikePython()
    {
        Assert.Equal("3|😀|b😀|[a][😀][b]", Render("{{ s | length }}|{{ s[1] }}|{{ s[::-1][:2] }}|{% for c in s %}[{{ c }}]{% endfor %}", new { s = "a😀b" }));
    }

    // ---- undefined -----------------------------------------------------------------------------

    [Fact]
    public void UndefinedPrintsEmptyIsFalsyAndIteratesAsEmpty()
    {
        Assert.Equal("[]|no|0|empty|d", Render("[{{ missing }}]|{{ 'yes' if missing else 'no' }}|{{ missing | length }}|{% for x in missing %}x{% else %}empty{% endfor %}|{{ missing | default('d') }}"));
    }

    [Fact]
    public void AttributeOfUndefinedRaisesWithLine()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("ok\n{{ message.content }}"));
        Assert.Equal(TemplateErrorKind.Undefined, ex.Kind);
        Assert.Equal("'message' is undefined", ex.Description);
        Assert.Equal(2, ex.Line);
        Assert.Contains("line 2", ex.Message);
    }

    [Fact]
    public void MissingKeyIsUndefinedButUsingItFurtherRaises()
    {
        Assert.Equal("[]", Render("[{{ m.nope }}]", new { m = new Dictionary<string, object?>() }));
        var ex = Assert.Throws<TemplateException>(() => Render("{{ m.nope.deeper }}", new { m = new Dictionary<string, object?>() }));
        Assert.Equal("'dict object' has no attribute 'nope'", ex.Description);
    }

    // ---- errors --------------------------------------------------------------------------------

    [Fact]
    public void SyntaxErrorNamesLineColumnAndExpectation()
    {
        var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("line one\nline two\n  {{ value \n", name: "t.jinja"));
        Assert.Equal(TemplateErrorKind.Syntax, ex.Kind);
        Assert.Equal("unexpected end of template, expected 'end of print statement'.", ex.Description);
        Assert.Equal(3, ex.Line);
        Assert.Equal("t.jinja", ex.TemplateName);
        Assert.Contains("t.jinja, line 3", ex.Message);
    }

    [Fact]
    public void SyntaxErrorPointsAtTheOffendingToken()
    {
        var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("a\nb {{ 1 + * 2 }}"));
        Assert.Equal("unexpected '*'", ex.Description);
        Assert.Equal((2, 10), (ex.Line, ex.Column));
    }

    [Fact]
    public void UnclosedBlockSaysWhatJinjaWasLookingFor()
    {
        var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("{% for m in messages %}\n{% if m %}x{% endfor %}"));
        Assert.Equal("Encountered unknown tag 'endfor'. You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.", ex.Description);
        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void UnknownFilterIsASyntaxError()
    {
        var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("\n\n{{ x | frobnicate }}"));
        Assert.Equal("No filter named 'frobnicate'.", ex.Description);
        Assert.Equal(3, ex.Line);
    }

    [Fact]
    public void RuntimeErrorNamesLineAndPythonType()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("{% for i in [1] %}\n  {{ 'n=' + i }}\n{% endfor %}"));
        Assert.Equal(TemplateErrorKind.Runtime, ex.Kind);
        Assert.Equal("TypeError", ex.PythonType);
        Assert.Equal("can only concatenate str (not \"int\") to str", ex.Description);
        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void RaiseExceptionCarriesTheMessage()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("{% if true %}\n{{ raise_exception('Conversation roles must alternate') }}{% endif %}"));
        Assert.Equal(TemplateErrorKind.Raised, ex.Kind);
        Assert.Equal("Conversation roles must alternate", ex.Description);
        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void RunawayMacroRecursionFailsCleanly()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"));
        Assert.Equal("RecursionError", ex.PythonType);
    }

    // ---- options -------------------------------------------------------------------------------

    [Theory]
    [InlineData(false, false, false, "  \n  A\n  \nB \nC")]
    [InlineData(true, false, false, "    A\n  B C")]
    [InlineData(false, true, false, "\n  A\n\nB \nC")]
    [InlineData(true, true, true, "  A\nB C\n")]
    public void WhitespaceOptionsMatchJinja2(bool trim, bool lstrip, bool keepTrailingNewline, string expected)
    {
        var options = new JinjaOptions { TrimBlocks = trim, LStripBlocks = lstrip, KeepTrailingNewline = keepTrailingNewline };
        Assert.Equal(expected, JinjaTemplate.Parse("  {% if true %}\n  A\n  {% endif %}\nB {# c #}\nC\n", options).Render(new Dictionary<string, JinjaValue>()));
    }

    [Fact]
    public void ImmutableSandboxRejectsListMutationLikeTransformers()
    {
        const string source = "{% set ns = namespace(ids=[]) %}{% set _ = ns.ids.append(1) %}{{ ns.ids }}";
        Assert.Equal("[1]", Render(source));
        var ex = Assert.Throws<TemplateException>(() => Render(source, options: new JinjaOptions { ImmutableSandbox = true }));
        Assert.Equal(TemplateErrorKind.Security, ex.Kind);
        Assert.Equal("access to attribute 'append' of 'list' object is unsafe.", ex.Description);
    }

    [Fact]
    public void HostGlobalsAreCallable()
    {
        var options = new JinjaOptions
        {
            Globals = new Dictionary<string, JinjaValue>
            {
                ["shout"] = new JinjaFunction("shout", args => JinjaValue.From(args.Positional[0].ToString().ToUpperInvariant() + "!")),
                ["version"] = JinjaValue.From("k2"),
            },
        };
        Assert.Equal("HI! k2", Render("{{ shout('hi') }} {{ version }}", options: options));
    }

    [Fact]
    public void StrftimeNowUsesTheConfiguredClock()
    {
        var options = new JinjaOptions { TimeProvider = new FixedTimeProvider(new DateTime(2024, 2, 29, 13, 5, 9)) };
        Assert.Equal("2024-02-29 13:05:09 Thu 29 February 01PM", Render("{{ strftime_now('%Y-%m-%d %H:%M:%S %a %d %B %I%p') }}", options: options));
    }

    [Fact]
    public void RenderingIsRepeatableAndSharesNoState()
    {
        var t = JinjaTemplate.Parse("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}");
        var vars = new Dictionary<string, JinjaValue> { ["xs"] = JinjaValue.FromObject(new[] { 1, 2, 3 }) };
        Assert.Equal("6", t.Render(vars));
        Assert.Equal("6", t.Render(vars));
        var results = new string[8];
        Parallel.For(0, results.Length, i => results[i] = t.Render(vars));
        Assert.All(results, r => Assert.Equal("6", r));
    }

    [Fact]
    public void TemplateDoesNotMutateCallerJson()
    {
        var messages = JsonNode.Parse("""[{"role": "user", "content": "x"}]""")!.AsArray();
        var vars = new Dictionary<string, JinjaValue> { ["messages"] = JinjaValue.FromJson(messages) };
        JinjaTemplate.Parse("{% set _ = messages.append({'role': 'extra'}) %}{% set _ = messages[0].update(role='changed') %}").Render(vars);
        Assert.Equal("""[{"role":"user","content":"x"}]""", messages.ToJsonString());
    }
}
