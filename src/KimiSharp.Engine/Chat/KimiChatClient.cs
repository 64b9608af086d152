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
        var request = ToRequest(messages, options);
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        var calls = new Dictionary<int, (string Id, string Name)>();
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
                    break;
                case ChatOutput { Piece: ToolCallEnd end } when calls.TryGetValue(end.Index, out var call):
                    var content = new FunctionCallContent(call.Id, call.Name, ParseArguments(end.ArgumentsJson, out var error));
                    if (end.Error is not null || error is not null)
                        content.Exception = new InvalidOperationException($"the model wrote invalid arguments for {call.Name}: {end.Error ?? error}");
                    yield return Update(content);
                    break;
                case ChatCompleted done:
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

    private static Dictionary<string, object?>? ParseArguments(string json, out string? error)
    {
        error = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) { error = "arguments are not a JSON object"; return null; }
            return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        }
        catch (JsonException e)
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>Translates Microsoft.Extensions.AI messages and options into the OpenAI shape Kimi's template reads.</summary>
    internal ChatRequest ToRequest(IEnumerable<AiChatMessage> messages, ChatOptions? options)
    {
        var json = new JsonArray();
        foreach (var message in messages)
        {
            string text = string.Concat(message.Contents.OfType<TextContent>().Select(t => t.Text));
            if (message.Role == ChatRole.Tool)
            {
                foreach (var result in message.Contents.OfType<FunctionResultContent>())
                    json.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = result.CallId, ["content"] = ResultText(result.Result) });
                continue;
            }
            var item = new JsonObject { ["role"] = message.Role.Value, ["content"] = text };
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
                        ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = JsonSerializer.Serialize(c.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions) },
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
