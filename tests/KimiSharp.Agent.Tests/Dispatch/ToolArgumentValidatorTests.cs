using System.Text.Json;
using KimiSharp.Agent.Dispatch;

namespace KimiSharp.Agent.Tests.Dispatch;

public class ToolArgumentValidatorTests
{
    private const string Schema = """
    {
      "type": "object",
      "properties": {
        "path": { "type": "string", "minLength": 1, "maxLength": 5 },
        "limit": { "type": "integer", "minimum": 1, "maximum": 10 },
        "ratio": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
        "flag": { "type": "boolean" },
        "mode": { "type": "string", "enum": ["fast", "slow"] },
        "version": { "const": 2 },
        "note": { "type": ["string", "null"] },
        "tags": { "type": "array", "minItems": 1, "maxItems": 2, "items": { "type": "string", "pattern": "^[a-z]+$" } },
        "options": {
          "type": "object",
          "properties": { "depth": { "type": "integer" } },
          "required": ["depth"],
          "additionalProperties": false
        },
        "either": { "anyOf": [ { "type": "integer" }, { "type": "string", "enum": ["all"] } ] },
        "nothing": { "type": "null" }
      },
      "required": ["path"],
      "additionalProperties": false
    }
    """;

    private static IReadOnlyList<string> Check(string arguments)
    {
        using JsonDocument schema = JsonDocument.Parse(Schema);
        return ToolArgumentValidator.Validate(schema.RootElement, arguments);
    }

    [Theory]
    [InlineData("""{"path":"a"}""")]
    [InlineData("""{"path":"abcde","limit":10,"ratio":0.5,"flag":false,"mode":"slow","version":2,"note":null}""")]
    [InlineData("""{"path":"a","limit":3.0,"note":"x","tags":["ab","c"],"options":{"depth":-1},"either":"all","nothing":null}""")]
    [InlineData("""{"path":"😀😀😀😀😀"}""")]
    [InlineData("""{"path":"a","either":7}""")]
    public void AcceptsValidArguments(string arguments) => Assert.Empty(Check(arguments));

    [Theory]
    [InlineData("{}", "argument 'path' is required")]
    [InlineData("""{"path":3}""", "argument 'path' must be a string")]
    [InlineData("""{"path":"a","limit":"5"}""", "argument 'limit' must be an integer")]
    [InlineData("""{"path":"a","limit":2.5}""", "argument 'limit' must be an integer")]
    [InlineData("""{"path":"a","limit":1e400}""", "argument 'limit' must be an integer")]
    [InlineData("""{"path":"a","limit":0}""", "argument 'limit' must be at least 1")]
    [InlineData("""{"path":"a","limit":11}""", "argument 'limit' must be at most 10")]
    [InlineData("""{"path":"a","ratio":"x"}""", "argument 'ratio' must be a number")]
    [InlineData("""{"path":"a","ratio":0}""", "argument 'ratio' must be greater than 0")]
    [InlineData("""{"path":"a","ratio":1}""", "argument 'ratio' must be less than 1")]
    [InlineData("""{"path":"a","flag":"true"}""", "argument 'flag' must be a boolean")]
    [InlineData("""{"path":"a","mode":"medium"}""", "argument 'mode' must be one of \"fast\", \"slow\"")]
    [InlineData("""{"path":"a","version":3}""", "argument 'version' must be 2")]
    [InlineData("""{"path":"a","note":1}""", "argument 'note' must be a string or null")]
    [InlineData("""{"path":"a","nothing":0}""", "argument 'nothing' must be null")]
    [InlineData("""{"path":""}""", "argument 'path' must not be empty")]
    [InlineData("""{"path":"abcdef"}""", "argument 'path' must be at most 5 characters long")]
    [InlineData("""{"path":"a","tags":[]}""", "argument 'tags' must have at least 1 item")]
    [InlineData("""{"path":"a","tags":["a","b","c"]}""", "argument 'tags' must have at most 2 items")]
    [InlineData("""{"path":"a","tags":"a"}""", "argument 'tags' must be an array")]
    [InlineData("""{"path":"a","tags":["ok",5]}""", "argument 'tags[1]' must be a string")]
    [InlineData("""{"path":"a","tags":["Bad"]}""", "argument 'tags[0]' must match the pattern ^[a-z]+$")]
    [InlineData("""{"path":"a","options":[]}""", "argument 'options' must be an object")]
    [InlineData("""{"path":"a","options":{}}""", "argument 'options.depth' is required")]
    [InlineData("""{"path":"a","options":{"depth":true}}""", "argument 'options.depth' must be an integer")]
    [InlineData("""{"path":"a","options":{"depth":1,"width":2}}""", "unknown argument 'options.width' (expected: depth)")]
    [InlineData("""{"path":"a","either":"some"}""", "argument 'either' does not match any of the allowed forms")]
    [InlineData("""{"path":"a","extra":1}""", "unknown argument 'extra' (expected: path, limit, ratio, flag, mode, version, note, tags, options, either, nothing)")]
    [InlineData("[1]", "arguments must be a JSON object, got an array")]
    [InlineData("null", "arguments must be a JSON object, got null")]
    public void ReportsTheViolationByPath(string arguments, string expected) => Assert.Equal([expected], Check(arguments));

    [Fact]
    public void ReportsEveryViolation()
    {
        Assert.Equal(["argument 'path' is required", "argument 'limit' must be an integer", "argument 'flag' must be a boolean"],
            Check("""{"limit":"x","flag":1}"""));
    }

    [Fact]
    public void MalformedJsonIsOneError()
    {
        IReadOnlyList<string> errors = Check("""{"path":""");
        Assert.Single(errors);
        Assert.StartsWith("arguments are not valid JSON", errors[0]);
    }

    [Fact]
    public void PermissiveSchemasAcceptAnything()
    {
        using JsonDocument empty = JsonDocument.Parse("{}");
        Assert.Empty(ToolArgumentValidator.Validate(empty.RootElement, """{"anything":[1,{"x":null}]}"""));
        using JsonDocument open = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer"}}}""");
        Assert.Empty(ToolArgumentValidator.Validate(open.RootElement, """{"a":1,"b":"extra is fine"}"""));
        using JsonDocument typed = JsonDocument.Parse("""{"type":"object","additionalProperties":{"type":"integer"}}""");
        Assert.Equal(["argument 'b' must be an integer"], ToolArgumentValidator.Validate(typed.RootElement, """{"a":1,"b":"x"}"""));
    }
}
