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

/// <summary>ChatTemplate passes tools_ts_str the way the K2.5 tokenizer's apply_chat_template does.</summary>
public sealed class ChatTemplateToolsTypeScriptTests
{
    // Reads tools_ts_str like the K2.5 template: TypeScript when defined, else the JSON tool list.
    private const string Source =
        "<|im_system|>tool_declare<|im_middle|>{% if tools_ts_str is defined %}TS[{{ tools_ts_str }}]{% else %}JSON[{{ tools | tojson }}]{% endif %}";

    private static readonly JsonArray Messages = JsonNode.Parse("""[{"role":"user","content":"hi"}]""")!.AsArray();

    private static JsonArray GoodTools() => JsonNode.Parse("""
        [{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object",
          "properties":{"unit":{"type":"string","enum":["c","f"]},"city":{"type":"string"}},"required":["city"]}}}]
        """)!.AsArray();

    private static JsonArray BadTools() => JsonNode.Parse("""
        [{"type":"function","function":{"name":"broken","parameters":{"type":"object","properties":{"x":{"$ref":"#/$defs/Nope"}}}}}]
        """)!.AsArray();

    [Fact]
    public void TemplatesThatReadItGetTheTypeScriptDeclarations()
    {
        var template = new ChatTemplate(Source);
        Assert.True(template.EncodesToolsAsTypeScript);
        string rendered = template.Render(Messages, GoodTools());
        Assert.Equal("<|im_system|>tool_declare<|im_middle|>TS[" + TypeScriptTools.Encode(GoodTools()) + "]", rendered);
        Assert.Contains("type get_weather = (_: {\n  city: string,\n  unit?: \"c\" | \"f\"\n}) => any;", rendered);
    }

    [Fact]
    public void UnencodableToolsFallBackToJson()
    {
        string rendered = new ChatTemplate(Source).Render(Messages, BadTools());
        Assert.StartsWith("<|im_system|>tool_declare<|im_middle|>JSON[[{\"function\": ", rendered);
    }

    [Fact]
    public void NoOrEmptyToolsLeaveItUnset()
    {
        var template = new ChatTemplate(Source);
        Assert.EndsWith("JSON[null]", template.Render(Messages));
        Assert.EndsWith("JSON[[]]", template.Render(Messages, []));
    }

    [Fact]
    public void EncodedToolsOverrideACallersValueButAFailureKeepsIt()
    {
        var template = new ChatTemplate(Source);
        var extra = new Dictionary<string, JsonNode?> { ["tools_ts_str"] = "mine" };
        Assert.Contains("TS[# Tools", template.Render(Messages, GoodTools(), extraVariables: extra));
        Assert.EndsWith("TS[mine]", template.Render(Messages, BadTools(), extraVariables: extra));
    }

    [Fact]
    public void OtherTemplatesAndTheOptionOffLeaveItUnset()
    {
        const string Probe = "<|im_middle|>{{ tools_ts_str is defined }}";
        Assert.False(new ChatTemplate(Probe.Replace("tools_ts_str", "tools")).EncodesToolsAsTypeScript);
        Assert.False(ChatTemplate.BuiltInKimiK2Thinking().EncodesToolsAsTypeScript);
        var off = new ChatTemplate(Source, new ChatTemplateOptions { EncodeToolsAsTypeScript = false });
        Assert.StartsWith("<|im_system|>tool_declare<|im_middle|>JSON[", off.Render(Messages, GoodTools()));
        Assert.Equal("<|im_middle|>True", new ChatTemplate(Probe).Render(Messages, GoodTools()));
    }
}
