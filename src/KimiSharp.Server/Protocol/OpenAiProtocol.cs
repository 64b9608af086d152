using System.Text.Json;
using System.Text.Json.Serialization;

namespace KimiSharp.Server.Protocol;

// The request bodies of the OpenAI-compatible endpoints, as System.Text.Json reads them (source-generated, see
// ProtocolJsonContext). Every field is optional here so that a missing or out-of-range one gets our own message
// naming it; numbers are doubles so that 1.5 or 1e12 is reported as such instead of as a type error. Fields that
// are unions in the API (a string or an array, …) are JsonElements resolved by OpenAiRequests.

/// <summary>Sampling and stopping fields shared by chat completions, completions and tokenize.</summary>
internal abstract class GenerationFields
{
    public string? Model { get; init; }
    public double? MaxTokens { get; init; }
    public double? MaxCompletionTokens { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public double? TopK { get; init; }
    public double? MinP { get; init; }
    public double? PresencePenalty { get; init; }
    public double? FrequencyPenalty { get; init; }
    public double? Seed { get; init; }
    public bool? Logprobs { get; init; }
    public double? TopLogprobs { get; init; }
    /// <summary>A string or an array of strings.</summary>
    public JsonElement? Stop { get; init; }
    public bool? Stream { get; init; }
    public StreamOptions? StreamOptions { get; init; }
    /// <summary>vLLM's extension: generate to max_tokens through end tokens (benchmarks).</summary>
    public bool? IgnoreEos { get; init; }
}

internal sealed class StreamOptions
{
    public bool? IncludeUsage { get; init; }
}

/// <summary>POST /v1/chat/completions.</summary>
internal class ChatCompletionRequest : GenerationFields
{
    public List<ChatMessage?>? Messages { get; init; }
    public double? N { get; init; }
    public List<ToolDefinition?>? Tools { get; init; }
    /// <summary>"auto", "none", "required" or {"type":"function","function":{"name":…}}.</summary>
    public JsonElement? ToolChoice { get; init; }
    public ResponseFormatSpec? ResponseFormat { get; init; }
    /// <summary>vLLM's extra chat-template variables.</summary>
    public Dictionary<string, JsonElement>? ChatTemplateKwargs { get; init; }
    /// <summary>Moonshot's thinking switch, passed to the template.</summary>
    public JsonElement? Thinking { get; init; }
}

/// <summary>POST /tokenize: a prompt, or chat messages rendered through the template (vLLM's shape).</summary>
internal sealed class TokenizeRequest : ChatCompletionRequest
{
    public string? Prompt { get; init; }
    public bool? AddSpecialTokens { get; init; }
    public bool? AddGenerationPrompt { get; init; }
}

/// <summary>POST /detokenize.</summary>
internal sealed class DetokenizeRequest
{
    public string? Model { get; init; }
    public List<long?>? Tokens { get; init; }
}

/// <summary>POST /v1/completions.</summary>
internal sealed class CompletionRequest : GenerationFields
{
    /// <summary>A string or an array of token ids.</summary>
    public JsonElement? Prompt { get; init; }
}

internal sealed class ChatMessage
{
    public string? Role { get; init; }
    /// <summary>A string, an array of content parts, or null.</summary>
    public JsonElement? Content { get; init; }
    public string? Name { get; init; }
    public string? ReasoningContent { get; init; }
    public List<ToolCall?>? ToolCalls { get; init; }
    public string? ToolCallId { get; init; }
    /// <summary>Anything else a client sends goes to the chat template untouched.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }
}

internal sealed class ContentPart
{
    public string? Type { get; init; }
    public string? Text { get; init; }
    /// <summary>image_url and the like, passed to the template as sent.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }
}

internal sealed class ToolCall
{
    public string? Id { get; init; }
    public string? Type { get; init; }
    public FunctionCall? Function { get; init; }
}

internal sealed class FunctionCall
{
    public string? Name { get; init; }
    public string? Arguments { get; init; }
}

internal sealed class ToolDefinition
{
    public string? Type { get; init; }
    public FunctionDefinition? Function { get; init; }
}

internal sealed class FunctionDefinition
{
    public string? Name { get; init; }
    public string? Description { get; init; }
    public JsonElement? Parameters { get; init; }
    /// <summary>False lets the constraint compiler skip schema keywords it cannot enforce; absent means true.</summary>
    public bool? Strict { get; init; }
}

/// <summary>The named-function form of tool_choice.</summary>
internal sealed class NamedToolChoice
{
    public string? Type { get; init; }
    public FunctionCall? Function { get; init; }
}

internal sealed class ResponseFormatSpec
{
    public string? Type { get; init; }
    public JsonSchemaFormat? JsonSchema { get; init; }
}

internal sealed class JsonSchemaFormat
{
    public string? Name { get; init; }
    public string? Description { get; init; }
    public JsonElement? Schema { get; init; }
    /// <inheritdoc cref="FunctionDefinition.Strict"/>
    public bool? Strict { get; init; }
}
