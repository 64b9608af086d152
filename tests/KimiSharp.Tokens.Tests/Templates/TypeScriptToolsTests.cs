using System.Text.Json.Nodes;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Tokens.Tests.Templates;

/// <summary>
/// Byte-for-byte comparison with Moonshot's tool_declaration_ts.py: Fixtures/tools_ts/expected.json was written
/// by generate.py running the published module on cases.json (null where the Python raises).
/// </summary>
public sealed class TypeScriptToolsTests
{
    private static readonly string Dir = Path.Combine(TemplateFixtures.Root, "tools_ts");

    private static readonly Lazy<Dictionary<string, JsonArray>> Cases = new(() =>
        JsonNode.Parse(TemplateFixtures.ReadText(Path.Combine(Dir, "cases.json")))!.AsArray()
            .ToDictionary(c => c!["name"]!.GetValue<string>(), c => c!["tools"]!.AsArray()));

    private static readonly Lazy<JsonObject> Expected = new(() =>
        JsonNode.Parse(TemplateFixtures.ReadText(Path.Combine(Dir, "expected.json")))!.AsObject());

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "cases.json")))!.AsArray())
            data.Add(name!["name"]!.GetValue<string>());
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesPythonOutput(string name)
    {
        JsonArray tools = Cases.Value[name];
        Assert.True(Expected.Value.ContainsKey(name), $"expected.json has no entry for {name}; rerun generate.py");
        string? expected = Expected.Value[name]?.GetValue<string>();

        bool ok = TypeScriptTools.TryEncode(tools, out string encoded, out string? error);
        if (expected is null)
        {
            Assert.False(ok, $"Python refuses {name}, but the encoder produced:\n{encoded}");
            Assert.False(string.IsNullOrWhiteSpace(error));
            Assert.Throws<ToolDeclarationException>(() => TypeScriptTools.Encode(tools));
        }
        else
        {
            Assert.True(ok, $"{name}: {error}");
            Assert.Equal(expected, encoded);
        }
    }

    [Fact]
    public void EveryCaseHasAnExpectation()
    {
        Assert.Equal(Cases.Value.Keys.Order(StringComparer.Ordinal), Expected.Value.Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void WithoutSortingDefinitionsKeepTheirOrderAndSelfRefFieldsTheirs()
    {
        var tools = JsonNode.Parse("""
            [{"type":"function","function":{"name":"f","parameters":{"type":"object",
              "$defs":{"Zed":{"type":"string"},"Alpha":{"type":"number"}},
              "properties":{"z":{"$ref":"#/$defs/Zed"},"a":{"$ref":"#"}}}}}]
            """)!.AsArray();

        string unsorted = TypeScriptTools.Encode(tools, sortKeys: false);
        Assert.Equal(
            "# Tools\n\n## functions\nnamespace functions {\n" +
            "interface parameters {\n  z?: Zed,\n  a?: parameters\n}\n" +
            "interface Zed string\ninterface Alpha number\n" +
            "type f = (_: parameters) => any;\n}\n",
            unsorted);

        string sorted = TypeScriptTools.Encode(tools);
        Assert.Contains("interface parameters {\n  a?: parameters,\n  z?: Zed\n}\ninterface Alpha number\ninterface Zed string\n", sorted);
    }

    [Fact]
    public void SortingDoesNotModifyTheCallersTools()
    {
        var tools = JsonNode.Parse("""[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"string"}}}}}]""")!.AsArray();
        string before = tools.ToJsonString();
        TypeScriptTools.Encode(tools);
        Assert.Equal(before, tools.ToJsonString());
    }

    [Fact]
    public void ErrorsNameTheToolAndTheSchemaLocation()
    {
        var tools = JsonNode.Parse("""[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"where":{"type":"object","properties":{"x":{"$ref":"#/$defs/Missing"}}}}}}}]""")!.AsArray();
        var e = Assert.Throws<ToolDeclarationException>(() => TypeScriptTools.Encode(tools));
        Assert.Contains("lookup", e.Message);
        Assert.Contains("parameters.where.x", e.Message);
        Assert.Contains("#/$defs/Missing", e.Message);
    }

    [Fact]
    public void NonObjectToolIsRefused()
    {
        Assert.False(TypeScriptTools.TryEncode(new JsonArray(JsonValue.Create("get_weather")), out _, out string? error));
        Assert.Contains("tools[0]", error);
    }

    [Fact]
    public void ToolsBuiltInCodeEncodeLikeParsedJson()
    {
        // Values created from CLR numbers (not parsed text) must still print as Python would.
        var tools = new JsonArray(new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = "clr",
                ["parameters"] = new JsonObject
                {
                    ["type"] = "object",
                    ["properties"] = new JsonObject
                    {
                        ["n"] = new JsonObject { ["type"] = "integer", ["minimum"] = 1, ["default"] = 5 },
                        ["x"] = new JsonObject { ["type"] = "number", ["maximum"] = 2.5, ["default"] = true },
                    },
                },
            },
        });
        Assert.Equal(
            "# Tools\n\n## functions\nnamespace functions {\ntype clr = (_: {\n" +
            "  // minimum: 1\n  // Default: 5\n  n?: number,\n" +
            "  // maximum: 2.5\n  // Default: True\n  x?: number\n}) => any;\n}\n",
            TypeScriptTools.Encode(tools));
    }
}
