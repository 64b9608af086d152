using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests;

public class ToolboxTests
{
    private static readonly KnowledgeBase Kb = KnowledgeBase.Generate(cities: 20);

    [Fact]
    public void DefaultToolsInOrder()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        Assert.Equal(new[] { "calculator", "convert_units", "calendar", "lookup", "memory" }, box.Tools.Select(t => t.Name));
        JsonArray declarations = box.Declarations();
        Assert.Equal(5, declarations.Count);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal("function", declarations[i]!["type"]!.GetValue<string>());
            Assert.Equal(box.Tools[i].Name, declarations[i]!["function"]!["name"]!.GetValue<string>());
        }
        declarations[0]!["function"]!.AsObject()["name"] = "mutated";
        Assert.Equal("calculator", box.Declarations()[0]!["function"]!["name"]!.GetValue<string>());
        Assert.Equal("Convert between units, given by symbol (m km cm mm mi ft in yd kg g lb oz l ml gal s min h day C F K) or by name (e.g. kilometers, degrees Celsius).", declarations[1]!["function"]!["description"]!.GetValue<string>());
        Assert.Equal("Dates as YYYY-MM-DD: weekday, add_days or days_between.", declarations[2]!["function"]!["description"]!.GetValue<string>());
        Assert.Equal("Scratchpad: write, read or list notes; pop takes the next item of a list note.", declarations[4]!["function"]!["description"]!.GetValue<string>());
    }

    [Fact]
    public void InvokesTools()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        Assert.Equal(ToolResult.Ok("508.5"), box.Invoke("calculator", """{"expression":"2340*17.5%+99"}"""));
        Assert.Equal("7.456454 mi", box.Invoke("convert_units", """{"value":12,"from":"km","to":"mi"}""").Content);
        Assert.Equal("Monday", box.Invoke("calendar", """{"operation":"weekday","date":"2026-11-23"}""").Content);
        string name = Kb.Entities[3].Name;
        Assert.Equal(Kb.Entities[3].Attribute("river"), box.Invoke("lookup", $$"""{"entity":"{{name}}","attribute":"river"}""").Content);
        Assert.Equal("saved a", box.Invoke("memory", """{"action":"write","key":"a","value":"1"}""").Content);
        Assert.Equal("a", box.Invoke("memory", """{"action":"list"}""").Content);
        Assert.Equal("(empty)", Toolbox.CreateDefault(Kb).Invoke("memory", """{"action":"list"}""").Content);
        Assert.Equal("error: 'expression' must be a string", box.Invoke("calculator", "").Content);
    }

    [Fact]
    public void UnknownToolAndMalformedArguments()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        Assert.Equal("error: unknown tool 'search' (known: calculator, convert_units, calendar, lookup, memory)",
            box.Invoke("search", "{}").Content);
        Assert.Equal("error: unknown tool '' (known: calculator, convert_units, calendar, lookup, memory)", box.Invoke(null!, "{}").Content);
        ToolResult r = box.Invoke("calculator", "{\"expression\": ");
        Assert.True(r.IsError);
        Assert.StartsWith("error: arguments are not a JSON object: ", r.Content);
        Assert.Equal("error: arguments are not a JSON object: got array", box.Invoke("calculator", "[1,2]").Content);
        Assert.Equal("error: arguments are not a JSON object: got string", box.Invoke("calculator", "\"1+1\"").Content);
        Assert.Equal("error: arguments are not a JSON object: got null", box.Invoke("calculator", "null").Content);
        Assert.StartsWith("error: arguments are not a JSON object: ", box.Invoke("calculator", "{expression: 1+1}").Content);
        Assert.True(box.Invoke("calculator", "{\"expression\": ").Content.Length < 250);
    }

    [Fact]
    public void HostileInputsReturnErrors()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        string huge = new string('9', 10 * 1024 * 1024);
        Assert.Equal("error: expression is longer than 500 characters",
            box.Invoke("calculator", new JsonObject { ["expression"] = huge }.ToJsonString()).Content);
        string nested = new string('(', 10_000) + "1" + new string(')', 10_000);
        Assert.Equal("error: expression is longer than 500 characters",
            box.Invoke("calculator", new JsonObject { ["expression"] = nested }.ToJsonString()).Content);
        Assert.Equal("error: expression is longer than 500 characters",
            new CalculatorTool().Invoke(new JsonObject { ["expression"] = nested }).Content);
        string nestedJson = new string('[', 10_000) + new string(']', 10_000);
        Assert.StartsWith("error: arguments are not a JSON object: ", box.Invoke("calculator", nestedJson).Content);
        string deepObject = string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000);
        Assert.True(box.Invoke("memory", deepObject).IsError);

        ToolResult unit = box.Invoke("convert_units", new JsonObject { ["value"] = 1, ["from"] = huge, ["to"] = "m" }.ToJsonString());
        Assert.True(unit.IsError);
        Assert.True(unit.Content.Length < 400);
        Assert.True(box.Invoke("calendar", new JsonObject { ["operation"] = "weekday", ["date"] = huge }.ToJsonString()).Content.Length < 300);
        Assert.True(box.Invoke("lookup", new JsonObject { ["entity"] = huge, ["attribute"] = "area" }.ToJsonString()).Content.Length < 300);
        Assert.Equal("error: key is longer than 64 characters",
            box.Invoke("memory", new JsonObject { ["action"] = "write", ["key"] = huge, ["value"] = "v" }.ToJsonString()).Content);
        Assert.True(box.Invoke("calculator", "\u0000\u0001garbage").IsError);
    }

    private sealed class ThrowingTool : IAgentTool
    {
        public string Name => "boom";
        public JsonObject Declaration => [];
        public ToolResult Invoke(JsonObject arguments) => throw new InvalidOperationException("kaboom");
    }

    [Fact]
    public void ExceptionsBecomeErrors()
    {
        var box = new Toolbox([new ThrowingTool()]);
        Assert.Equal(ToolResult.Error("kaboom"), box.Invoke("boom", "{}"));
        Assert.Throws<ArgumentException>(() => new Toolbox([new ThrowingTool(), new ThrowingTool()]));
    }

    [Fact]
    public void DecimalTextFormatting()
    {
        Assert.Equal("508.5", DecimalText.Format(508.50m));
        Assert.Equal("2", DecimalText.Format(2m));
        Assert.Equal("2", DecimalText.Format(2.000m));
        Assert.Equal("0.333333", DecimalText.Format(1m / 3m));
        Assert.Equal("0", DecimalText.Format(-0.0000001m));
        Assert.Equal("-1.5", DecimalText.Format(-1.5m));
        Assert.Equal("0.000002", DecimalText.Format(0.0000015m));
        Assert.Equal("79228162514264337593543950335", DecimalText.Format(decimal.MaxValue));
        Assert.Equal("1000", DecimalText.Format(1000m));
    }
}
