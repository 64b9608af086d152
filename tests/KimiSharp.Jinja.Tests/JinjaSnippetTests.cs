using KimiSharp.Testing.Templates;
using System.Text.Json.Nodes;
using KimiSharp.Jinja;

namespace KimiSharp.Jinja.Tests;

/// <summary>
/// Small templates covering one construct each (Fixtures/snippets.json), with the output or error Python
/// Jinja2 produced (snippets.expected.json).
/// </summary>
public sealed class JinjaSnippetTests
{
    private static readonly Lazy<Dictionary<string, JsonObject>> Snippets = new(() =>
        JsonNode.Parse(JinjaFixtures.ReadText(Path.Combine(JinjaFixtures.Root, "snippets.expected.json")))!
            .AsArray().Select(n => n!.AsObject()).ToDictionary(o => o["name"]!.GetValue<string>()));

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (string name in Snippets.Value.Keys)
            data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void MatchesJinja2(string name)
    {
        var snippet = Snippets.Value[name];
        string source = snippet["template"]!.GetValue<string>();
        var vars = new Dictionary<string, JinjaValue>();
        if (snippet["vars"] is JsonObject v)
        {
            foreach (var (k, value) in v)
                vars[k] = JinjaValue.FromJson(value);
        }

        if (snippet["error"] is JsonObject error)
        {
            var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(source, JinjaFixtures.JinjaOptions).Render(vars));
            string type = error["type"]!.GetValue<string>();
            var expectedKind = type switch
            {
                "TemplateSyntaxError" or "TemplateAssertionError" => TemplateErrorKind.Syntax,
                "UndefinedError" => TemplateErrorKind.Undefined,
                "TemplateError" => TemplateErrorKind.Raised,
                "SecurityError" => TemplateErrorKind.Security,
                _ => TemplateErrorKind.Runtime,
            };
            Assert.Equal(expectedKind, ex.Kind);
            Assert.Equal(error["message"]!.GetValue<string>(), ex.Description);
            return;
        }

        string expected = snippet["expected"]!.GetValue<string>();
        string actual = JinjaTemplate.Parse(source, JinjaFixtures.JinjaOptions).Render(vars);
        TextAssert.Same(expected, actual);
    }
}
