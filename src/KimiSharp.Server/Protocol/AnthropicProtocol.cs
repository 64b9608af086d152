using System.Text.Json;

namespace KimiSharp.Server.Protocol;

// The Anthropic Messages API request (POST /v1/messages); conventions as in OpenAiProtocol.cs.

internal sealed class MessagesRequest
{
    public string? Model { get; init; }
    public List<AnthropicMessage?>? Messages { get; init; }
    /// <summary>A string or an array of text blocks.</summary>
    public JsonElement? System { get; init; }
    public double? MaxTokens { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public double? TopK { get; init; }
    public List<string?>? StopSequences { get; init; }
    public bool? Stream { get; init; }
    public List<AnthropicTool?>? Tools { get; init; }
    public AnthropicToolChoice? ToolChoice { get; init; }
    public JsonElement? Metadata { get; init; }
    /// <summary>Extended thinking: {"type": "enabled", "budget_tokens": N} or {"type": "disabled"}.</summary>
    public JsonElement? Thinking { get; init; }
}

internal sealed class AnthropicMessage
{
    public string? Role { get; init; }
    /// <summary>A string or an array of content blocks.</summary>
    public JsonElement? Content { get; init; }
}

/// <summary>Any content block; which fields matter depends on <see cref="Type"/>.</summary>
internal sealed class ContentBlock
{
    public string? Type { get; init; }
    public string? Text { get; init; }
    public string? Thinking { get; init; }
    public string? Signature { get; init; }
    public string? Data { get; init; }
    public string? Id { get; init; }
    public string? Name { get; init; }
    public JsonElement? Input { get; init; }
    /// <summary>image: {"type": "base64", "media_type", "data"} or {"type": "url", "url"}.</summary>
    public JsonElement? Source { get; init; }
    public string? ToolUseId { get; init; }
    /// <summary>tool_result: a string or an array of text blocks.</summary>
    public JsonElement? Content { get; init; }
    public bool? IsError { get; init; }
    public JsonElement? CacheControl { get; init; }
}

internal sealed class AnthropicTool
{
    public string? Name { get; init; }
    public string? Description { get; init; }
    public JsonElement? InputSchema { get; init; }
    public string? Type { get; init; }
    public JsonElement? CacheControl { get; init; }
}

internal sealed class AnthropicToolChoice
{
    public string? Type { get; init; }
    public string? Name { get; init; }
    public bool? DisableParallelToolUse { get; init; }
}
