using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Engine.Constraints;

namespace KimiSharp.Engine.Tests.Constraints;

/// <summary>The request's <c>strict</c> reaches the schema compiler for response_format and forced tool calls.</summary>
public sealed class ChatConstraintStrictTests(ChatModelFixture fixture) : IClassFixture<ChatModelFixture>
{
    private static readonly JsonArray Messages = new(new JsonObject { ["role"] = "user", ["content"] = "hi" });

    private static JsonNode TagsSchema() => JsonNode.Parse("""{"type":"object","properties":{"tags":{"type":"array","uniqueItems":true}}}""")!;

    [Fact]
    public void Response_format_schema_is_strict_unless_declared_otherwise()
    {
        var request = new ChatRequest { Messages = Messages, ResponseFormat = new ResponseFormat.JsonSchema("tags", TagsSchema()) };
        var e = Assert.Throws<UnsupportedSchemaKeywordException>(() => ChatConstraints.For(request, fixture.Service));
        Assert.Contains("uniqueItems", e.Message);
        Assert.Contains("#/properties/tags", e.Message);

        var lenient = request with { ResponseFormat = new ResponseFormat.JsonSchema("tags", TagsSchema()) { Strict = false } };
        Assert.NotNull(ChatConstraints.For(lenient, fixture.Service));
    }

    [Fact]
    public void Forced_tool_call_honours_the_function_strict_flag()
    {
        JsonArray Tools(bool? strict)
        {
            var function = new JsonObject { ["name"] = "tag", ["parameters"] = TagsSchema() };
            if (strict is bool s) function["strict"] = s;
            return new JsonArray(new JsonObject { ["type"] = "function", ["function"] = function });
        }
        var request = new ChatRequest { Messages = Messages, Tools = Tools(null), ToolChoice = ToolChoice.Required };
        Assert.Throws<UnsupportedSchemaKeywordException>(() => ChatConstraints.For(request, fixture.Service));
        Assert.Throws<UnsupportedSchemaKeywordException>(() => ChatConstraints.For(request with { Tools = Tools(true) }, fixture.Service));
        Assert.NotNull(ChatConstraints.For(request with { Tools = Tools(false) }, fixture.Service));
        // Not forced: the tool's schema is not compiled at all, so nothing to refuse.
        Assert.Null(ChatConstraints.For(request with { ToolChoice = ToolChoice.Auto }, fixture.Service));
    }
}
