using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

public class AgentToolFunctionTests
{
    private static readonly KnowledgeBase Kb = KnowledgeBase.Generate(cities: 20);

    /// <summary>Good and bad calls to every k2-nano tool, in an order that exercises the memory tool's state.</summary>
    private static IEnumerable<(string Tool, string Arguments)> Calls()
    {
        string city = Kb.Entities[3].Name;
        return
        [
            ("calculator", """{"expression":"2340*17.5%+99"}"""),
            ("calculator", """{"expression":"1/0"}"""),
            ("calculator", """{"expression":5}"""),
            ("calculator", ""),
            ("calculator", "[1,2]"),
            ("calculator", "null"),
            ("calculator", """{"expression":"""),
            ("convert_units", """{"value":12,"from":"km","to":"mi"}"""),
            ("convert_units", """{"value":"12","from":"km","to":"mi"}"""),
            ("convert_units", """{"value":1,"from":"kg","to":"m"}"""),
            ("calendar", """{"operation":"weekday","date":"2026-11-23"}"""),
            ("calendar", """{"operation":"add_days","date":"2026-02-28","days":1}"""),
            ("calendar", """{"operation":"weekday","date":"not a date"}"""),
            ("lookup", $$"""{"entity":"{{city}}","attribute":"river"}"""),
            ("lookup", """{"entity":"Atlantis","attribute":"river"}"""),
            ("memory", """{"action":"write","key":"todo","value":"a, b"}"""),
            ("memory", """{"action":"pop","key":"todo"}"""),
            ("memory", """{"action":"list"}"""),
            ("memory", """{"action":"read","key":"missing"}"""),
            ("memory", """{"action":"fly"}"""),
            ("memory", """{"action":"write","key":"x","value":"y","extra":true}"""),
            ("search", "{}"),
        ];
    }

    [Fact]
    public async Task DispatchedResultsAreIdenticalToToolboxInvoke()
    {
        Toolbox reference = Toolbox.CreateDefault(Kb);
        var dispatcher = new ToolDispatcher(Toolbox.CreateDefault(Kb).AsFunctions());
        foreach ((string tool, string arguments) in Calls())
        {
            ToolResult expected = reference.Invoke(tool, arguments);
            ToolOutcome actual = await dispatcher.DispatchAsync(tool, arguments, CancellationToken.None);
            Assert.True(expected.Content == actual.Content, $"{tool} {arguments}: expected '{expected.Content}', got '{actual.Content}'");
            Assert.Equal(expected.IsError, actual.IsError);
        }
    }

    [Fact]
    public async Task InvokeAsyncReturnsTheToolText()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        var reference = new CalculatorTool();
        AgentToolFunction calculator = box.AsFunctions()[0];
        object? result = await calculator.InvokeAsync(new AIFunctionArguments { ["expression"] = JsonDocument.Parse("\"6*7\"").RootElement });
        Assert.Equal(reference.Invoke(new JsonObject { ["expression"] = "6*7" }).Content, result);
        Assert.Equal("42", result);

        // Plain .NET values (as a caller building arguments by hand would pass) work too.
        object? error = await calculator.InvokeAsync(new AIFunctionArguments { ["expression"] = 42 });
        Assert.Equal(reference.Invoke(new JsonObject { ["expression"] = 42 }).Content, error);
    }

    [Fact]
    public void DeclarationBecomesNameDescriptionSchemaAndTraits()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        IReadOnlyList<AgentToolFunction> functions = box.AsFunctions();
        Assert.Equal(box.Tools.Select(t => t.Name), functions.Select(f => f.Name));
        for (int i = 0; i < functions.Count; i++)
        {
            JsonNode function = box.Tools[i].Declaration["function"]!;
            Assert.Equal(function["description"]!.GetValue<string>(), functions[i].Description);
            Assert.True(JsonNode.DeepEquals(function["parameters"], JsonNode.Parse(functions[i].JsonSchema.GetRawText())));
            Assert.Same(box.Tools[i], functions[i].Tool);
            Assert.False(ToolTraits.NeedsApproval(functions[i]));
            Assert.Equal("builtin", ToolTraits.Source(functions[i]));
            Assert.Equal(functions[i].Name != "memory", ToolTraits.IsReadOnly(functions[i]));
        }
    }

    [Fact]
    public async Task FunctionsShareTheToolboxInstances()
    {
        Toolbox box = Toolbox.CreateDefault(Kb);
        var dispatcher = new ToolDispatcher(box.AsFunctions());
        await dispatcher.DispatchAsync("memory", """{"action":"write","key":"k","value":"v"}""", CancellationToken.None);
        Assert.Equal("v", box.Invoke("memory", """{"action":"read","key":"k"}""").Content);
    }
}
