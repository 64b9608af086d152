using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Chat;

/// <summary>Whether and how the model may call tools (OpenAI <c>tool_choice</c>).</summary>
public abstract record ToolChoice
{
    public static readonly ToolChoice Auto = new AutoChoice();
    public static readonly ToolChoice None = new NoneChoice();
    public static readonly ToolChoice Required = new RequiredChoice();
    public static ToolChoice Function(string name) => new FunctionChoice(name);

    public sealed record AutoChoice : ToolChoice;
    public sealed record NoneChoice : ToolChoice;
    /// <summary>Must call some tool: enforced by constrained decoding.</summary>
    public sealed record RequiredChoice : ToolChoice;
    /// <summary>Must call this tool: enforced by constrained decoding.</summary>
    public sealed record FunctionChoice(string Name) : ToolChoice;
}

/// <summary>What shape the answer must take (OpenAI <c>response_format</c>), enforced by constrained decoding.</summary>
public abstract record ResponseFormat
{
    public sealed record Text : ResponseFormat;
    /// <summary>Any JSON object.</summary>
    public sealed record JsonObject : ResponseFormat;
    /// <summary>JSON valid against <paramref name="Schema"/>.</summary>
    public sealed record JsonSchema(string Name, JsonNode Schema) : ResponseFormat
    {
        /// <summary>True: a schema keyword the constraint compiler cannot enforce is an error; false: it is skipped.</summary>
        public bool Strict { get; init; } = true;
    }
}

/// <summary>
/// One chat turn to generate. Messages and tools are kept in the OpenAI JSON shape because that is what Kimi's
/// chat templates read; the Anthropic API and <c>IChatClient</c> translate into it.
/// </summary>
public sealed record ChatRequest
{
    /// <summary>OpenAI-shaped messages: role, content (string or parts), name, reasoning_content, tool_calls, tool_call_id.</summary>
    public required JsonArray Messages { get; init; }
    /// <summary>OpenAI-shaped tools: [{"type":"function","function":{"name","description","parameters"}}], or null.</summary>
    public JsonArray? Tools { get; init; }
    public ToolChoice ToolChoice { get; init; } = ToolChoice.Auto;
    public ResponseFormat ResponseFormat { get; init; } = new ResponseFormat.Text();
    public GenerationOptions Generation { get; init; } = new();
    /// <summary>Text that ends the answer (not included in it).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Extra chat-template variables, e.g. <c>thinking</c>.</summary>
    public IReadOnlyDictionary<string, JsonNode?>? TemplateVariables { get; init; }

    /// <summary>Names of the declared tools, in order.</summary>
    public IReadOnlyList<string> ToolNames =>
        Tools?.Select(t => t?["function"]?["name"]?.GetValue<string>()).OfType<string>().ToArray() ?? [];
}
