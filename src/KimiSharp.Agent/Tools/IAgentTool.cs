using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>What a tool returns to the model: the text of the tool message, and whether it reports a failure.</summary>
public sealed record ToolResult(string Content, bool IsError)
{
    public static ToolResult Ok(string content) => new(content, false);
    public static ToolResult Error(string message) => new("error: " + message, true);
}

/// <summary>
/// A deterministic tool environment the model can call. <see cref="Declaration"/> is the OpenAI tools entry
/// (<c>{"type":"function","function":{"name","description","parameters"}}</c>) rendered into the prompt.
/// Implementations validate their arguments and answer bad ones with <see cref="ToolResult.Error"/>, never an exception.
/// </summary>
public interface IAgentTool
{
    string Name { get; }
    JsonObject Declaration { get; }
    ToolResult Invoke(JsonObject arguments);
}
