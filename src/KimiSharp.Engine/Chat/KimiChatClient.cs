using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Tokens.Parsing;
using Microsoft.Extensions.AI;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KimiSharp.Engine.Chat;

/// <summary>
/// <see cref="IChatClient"/> over an in-process <see cref="KimiChatService"/>: tools as <see cref="AIFunctionDeclaration"/>,
/// reasoning as <see cref="TextReasoningContent"/>, usage (with cached tokens) reported, so
/// <c>FunctionInvokingChatClient</c> and the rest of Microsoft.Extensions.AI compose on top of it.
/// </summary>
public sealed class KimiChatClient(KimiChatService service, bool ownsService = false) : IChatClient
{
    private readonly ChatClientMetadata _metadata = new("kimisharp", null, service.ModelId);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            updates.Add(update);
        return updates.ToChatResponse();
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = ToChatRequest(messages, options);
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        var calls = new Dictionary<int, (string Id, string Name)>();
        var partial = new Dictionary<int, System.Text.StringBuilder>();
        ChatResponseUpdate Update(params AIContent[] contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId, MessageId = responseId, ModelId = service.ModelId, CreatedAt = DateTimeOffset.UtcNow,
        };

        await foreach (var e in service.ChatAsync(request, cancellationToken).ConfigureAwait(false))
        {
            switch (e)
            {
                case ChatOutput { Piece: ReasoningDelta r }:
                    yield return Update(new TextReasoningContent(r.Text));
                    break;
                case ChatOutput { Piece: ContentDelta c }:
                    yield return Update(new TextContent(c.Text));
                    break;
                case ChatOutput { Piece: ToolCallStart s }:
                    calls[s.Index] = (s.Id, s.Name);
                    partial[s.Index] = new System.Text.StringBuilder();
                    break;
                case ChatOutput { Piece: ToolCallArgumentsDelta a } when partial.TryGetValue(a.Index, out var text):
                    text.Append(a.Text);
                    break;
                case ChatOutput { Piece: ToolCallEnd end } when calls.TryGetValue(end.Index, out var call):
                    partial.Remove(end.Index);
                    yield return Update(CallContent(call.Id, call.Name, end.ArgumentsJson, end.Error));
                    break;
                case ChatCompleted done:
                    // A call the output limit cut off is still reported (as malformed), so the caller can answer it.
                    foreach (var (index, text) in partial.OrderBy(p => p.Key))
                        yield return Update(CallContent(calls[index].Id, calls[index].Name, text.ToString(), "the call was not terminated"));
                    partial.Clear();
                    var usage = new UsageDetails
                    {
                        InputTokenCount = done.Usage.PromptTokens, OutputTokenCount = done.Usage.CompletionTokens,
                        TotalTokenCount = done.Usage.TotalTokens, CachedInputTokenCount = done.Usage.CachedTokens,
                    };
                    var final = Update(new UsageContent(usage));
                    final.FinishReason = done.FinishReason switch
                    {
                        FinishReason.Length => ChatFinishReason.Length,
                        FinishReason.ToolCalls => ChatFinishReason.ToolCalls,
                        _ => ChatFinishReason.Stop,
                    };
                    yield return final;
                    break;
            }
        }
    }

    /// <summary>Key of <see cref="FunctionCallContent.AdditionalProperties"/> holding the arguments exactly as the model wrote them.</summary>
    public const string RawArgumentsKey = "raw_arguments";

    internal static FunctionCallContent CallContent(string id, string name, string argumentsJson, string? parserError)
    {
        var content = new FunctionCallContent(id, name, ParseArguments(argumentsJson, out var error))
        {
            AdditionalProperties = new() { [RawArgumentsKey] = argumentsJson },
        };
        if (parserError is not null || error is not null)
            content.Exception = new InvalidOperationException($"the model wrote invalid arguments for {name}: {parserError ?? error}");
        return content;
    }

    private static Dictionary<string, object?>? ParseArguments(string json, out string? error)
    {
        error = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) { error = "arguments are not a JSON object"; return null; }
            var arguments = new Dictionary<string, object?>();
            foreach (var property in doc.RootElement.EnumerateObject())
                if (!arguments.TryAdd(property.Name, property.Value.Clone()))
                {
                    error = $"argument '{property.Name}' is given more than once";
                    return null;
                }
            return arguments;
        }
        catch (JsonException e)
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>
    /// A message with images as OpenAI content parts (text and image_url, in content order), or null when it has none.
    /// Images are DataContent (sent as data: URLs) or UriContent of an image media type.
    /// </summary>
    private static JsonArray? ImageParts(AiChatMessage message)
    {
        static bool IsImage(AIContent c) => c is DataContent d && d.HasTopLevelMediaType("image") || c is UriContent u && u.HasTopLevelMediaType("image");
        if (!message.Contents.Any(IsImage)) return null;
        var parts = new JsonArray();
        foreach (var c in message.Contents)
        {
            if (c is TextContent t) parts.Add(new JsonObject { ["type"] = "text", ["text"] = t.Text });
            else if (c is DataContent d && IsImage(d)) parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = d.Uri } });
            else if (c is UriContent u && IsImage(u)) parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = u.Uri.ToString() } });
        }
        return parts;
    }

    /// <summary>Translates Microsoft.Extensions.AI messages and options into the OpenAI shape Kimi's template reads.</summary>
    public ChatRequest ToChatRequest(IEnumerable<AiChatMessage> messages, ChatOptions? options)
    {
        var json = new JsonArray();
        foreach (var message in messages)
        {
            string text = string.Concat(message.Contents.OfType<TextContent>().Select(t => t.Text));
            if (message.Role == ChatRole.Tool)
            {
                foreach (var result in message.Contents.OfType<FunctionResultContent>())
                {
                    var toolMessage = new JsonObject { ["role"] = "tool", ["tool_call_id"] = result.CallId, ["content"] = ResultText(result.Result) };
                    // Kimi's template heads a tool message with its name when it has one.
                    if (message.AuthorName is { Length: > 0 } toolName) toolMessage["name"] = toolName;
                    json.Add(toolMessage);
                }
                continue;
            }
            var item = new JsonObject { ["role"] = message.Role.Value, ["content"] = ImageParts(message) ?? (JsonNode)text };
            if (message.AuthorName is { Length: > 0 } name) item["name"] = name;
            if (message.Role == ChatRole.Assistant)
            {
                var reasoning = message.Contents.OfType<TextReasoningContent>().ToArray();
                if (reasoning.Length > 0) item["reasoning_content"] = string.Concat(reasoning.Select(r => r.Text));
                var calls = message.Contents.OfType<FunctionCallContent>().ToArray();
                if (calls.Length > 0)
                    item["tool_calls"] = new JsonArray(calls.Select(c => (JsonNode)new JsonObject
                    {
                        ["id"] = c.CallId, ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = RawArguments(c) },
                    }).ToArray());
            }
            json.Add(item);
        }

        JsonArray? tools = null;
        var declarations = options?.Tools?.OfType<AIFunctionDeclaration>().ToArray() ?? [];
        if (declarations.Length > 0)
            tools = new JsonArray(declarations.Select(f =>
            {
                var function = new JsonObject { ["name"] = f.Name };
                if (!string.IsNullOrEmpty(f.Description)) function["description"] = f.Description;
                function["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText());
                return (JsonNode)new JsonObject { ["type"] = "function", ["function"] = function };
            }).ToArray());

        var generation = new GenerationOptions
        {
            MaxTokens = options?.MaxOutputTokens ?? 1024,
            Temperature = options?.Temperature ?? 0.6f,
            TopP = options?.TopP ?? 1f,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed,
            PresencePenalty = options?.PresencePenalty ?? 0,
            FrequencyPenalty = options?.FrequencyPenalty ?? 0,
        };
        ToolChoice choice = options?.ToolMode switch
        {
            NoneChatToolMode => ToolChoice.None,
            RequiredChatToolMode { RequiredFunctionName: { } name } => ToolChoice.Function(name),
            RequiredChatToolMode => ToolChoice.Required,
            _ => ToolChoice.Auto,
        };
        ResponseFormat format = options?.ResponseFormat switch
        {
            ChatResponseFormatJson { Schema: { } schema } j => new ResponseFormat.JsonSchema(j.SchemaName ?? "response", JsonNode.Parse(schema.GetRawText())!),
            ChatResponseFormatJson => new ResponseFormat.JsonObject(),
            _ => new ResponseFormat.Text(),
        };
        return new ChatRequest
        {
            Messages = json,
            Tools = tools,
            ToolChoice = tools is null && choice is not ToolChoice.NoneChoice ? ToolChoice.Auto : choice,
            ResponseFormat = format,
            Generation = generation,
            Stop = options?.StopSequences?.ToArray() ?? [],
            TemplateVariables = ThinkingSwitch(options) is bool thinkingOn ? new Dictionary<string, JsonNode?> { ["thinking"] = thinkingOn } : null,
        };
    }

    /// <summary>The arguments as the model wrote them when known (the prompt then shows the model its own text), else serialized.</summary>
    private static readonly JsonSerializerOptions CompactJson = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    internal static string RawArguments(FunctionCallContent call) =>
        call.AdditionalProperties?.TryGetValue(RawArgumentsKey, out var raw) == true && raw is string text ? text
        : JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), CompactJson);

    /// <summary>
    /// The thinking switch from <see cref="ChatOptions.AdditionalProperties"/>: <c>thinking</c> as a bool, Moonshot's
    /// <c>{"type": "enabled"|"disabled"}</c>, or <c>chat_template_kwargs.thinking</c>; null when absent.
    /// </summary>
    internal static bool? ThinkingSwitch(ChatOptions? options)
    {
        var properties = options?.AdditionalProperties;
        if (properties is null) return null;
        if (properties.TryGetValue("thinking", out var thinking))
        {
            switch (thinking)
            {
                case bool b: return b;
                case JsonElement { ValueKind: JsonValueKind.True or JsonValueKind.False } e: return e.GetBoolean();
                case JsonElement { ValueKind: JsonValueKind.Object } e when e.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String:
                    return TypeSwitch(type.GetString());
                case IDictionary<string, object?> d when d.TryGetValue("type", out var type) && type is string t:
                    return TypeSwitch(t);
                default:
                    throw new ArgumentException("the 'thinking' option must be true, false or {\"type\": \"enabled\"|\"disabled\"}");
            }
        }
        if (properties.TryGetValue("chat_template_kwargs", out var kwargs))
        {
            if (kwargs is IDictionary<string, object?> d && d.TryGetValue("thinking", out var value) && value is bool b) return b;
            if (kwargs is JsonElement { ValueKind: JsonValueKind.Object } e && e.TryGetProperty("thinking", out var t)
                && t.ValueKind is JsonValueKind.True or JsonValueKind.False) return t.GetBoolean();
        }
        return null;

        static bool TypeSwitch(string? type) => type switch
        {
            "enabled" => true,
            "disabled" => false,
            _ => throw new ArgumentException($"thinking.type must be 'enabled' or 'disabled'; got '{type}'"),
        };
    }

    private static string ResultText(object? result) => result switch
    {
        null => "",
        string s => s,
        JsonElement e when e.ValueKind == JsonValueKind.String => e.GetString()!,
        _ => JsonSerializer.Serialize(result, AIJsonUtilities.DefaultOptions),
    };

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(service) ? service
        : null;

    public void Dispose()
    {
        if (ownsService) service.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
