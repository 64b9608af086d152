using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Client;

/// <summary>Microsoft.Extensions.AI messages and options → an OpenAI chat-completions request body.</summary>
internal static class ChatRequestBuilder
{
    /// <summary>The per-call key in <see cref="ChatOptions.AdditionalProperties"/> that overrides the thinking switch.</summary>
    public const string ThinkingProperty = "thinking";

    /// <summary>Where a call whose arguments were not valid JSON keeps the text the model wrote.</summary>
    public const string RawArgumentsProperty = "raw_arguments";

    public static JsonObject Build(IEnumerable<ChatMessage> messages, ChatOptions? options, OpenAICompatibleClientOptions client)
    {
        var body = new JsonObject
        {
            ["model"] = options?.ModelId ?? client.Model,
            ["messages"] = Messages(messages, options?.Instructions),
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        if (options is not null) AddOptions(body, options);
        if (Thinking(options, client) is bool thinking)
        {
            if (client.ThinkingStyle.HasFlag(ThinkingStyle.Moonshot))
                body["thinking"] = new JsonObject { ["type"] = thinking ? "enabled" : "disabled" };
            if (client.ThinkingStyle.HasFlag(ThinkingStyle.ChatTemplateKwargs))
                body["chat_template_kwargs"] = new JsonObject { ["thinking"] = thinking };
        }
        return body;
    }

    /// <summary>The switch for this call: the "thinking" property, else MEAI's reasoning effort (None = off), else the client's.</summary>
    private static bool? Thinking(ChatOptions? options, OpenAICompatibleClientOptions client)
    {
        bool? fallback = options?.Reasoning?.Effort is { } effort ? effort != ReasoningEffort.None : client.Thinking;
        if (options?.AdditionalProperties?.TryGetValue(ThinkingProperty, out object? value) != true) return fallback;
        return value switch
        {
            null => fallback,
            bool b => b,
            JsonElement { ValueKind: JsonValueKind.True } => true,
            JsonElement { ValueKind: JsonValueKind.False } => false,
            _ => throw new ArgumentException(
                $"ChatOptions.AdditionalProperties[\"{ThinkingProperty}\"] must be a bool, not {value.GetType().Name} '{value}'", nameof(options)),
        };
    }

    private static void AddOptions(JsonObject body, ChatOptions options)
    {
        if (options.Temperature is float temperature) body["temperature"] = temperature;
        if (options.TopP is float topP) body["top_p"] = topP;
        if (options.TopK is int topK) body["top_k"] = topK;
        if (options.MaxOutputTokens is int maxTokens) body["max_tokens"] = maxTokens;
        if (options.Seed is long seed) body["seed"] = seed;
        if (options.PresencePenalty is float presence) body["presence_penalty"] = presence;
        if (options.FrequencyPenalty is float frequency) body["frequency_penalty"] = frequency;
        if (options.StopSequences is { Count: > 0 } stop) body["stop"] = new JsonArray(stop.Select(s => (JsonNode?)s).ToArray());

        if (options.Tools is { Count: > 0 } tools)
            body["tools"] = new JsonArray(tools.Select(Tool).ToArray());
        if (options.ToolMode is { } mode)
        {
            body["tool_choice"] = mode switch
            {
                NoneChatToolMode => "none",
                AutoChatToolMode => "auto",
                RequiredChatToolMode { RequiredFunctionName: { } name } =>
                    new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = name } },
                RequiredChatToolMode => "required",
                _ => throw new NotSupportedException($"the tool mode {mode.GetType().Name} has no chat-completions equivalent"),
            };
            if (options.AllowMultipleToolCalls is bool parallel) body["parallel_tool_calls"] = parallel;
        }

        switch (options.ResponseFormat)
        {
            case null or ChatResponseFormatText: break;
            case ChatResponseFormatJson { Schema: { } schema } json:
                var spec = new JsonObject { ["name"] = json.SchemaName ?? "response" };
                if (json.SchemaDescription is { } description) spec["description"] = description;
                spec["schema"] = JsonNode.Parse(schema.GetRawText());
                body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = spec };
                break;
            case ChatResponseFormatJson:
                body["response_format"] = new JsonObject { ["type"] = "json_object" };
                break;
            case var other:
                throw new NotSupportedException($"the response format {other.GetType().Name} has no chat-completions equivalent");
        }
    }

    private static JsonNode Tool(AITool tool)
    {
        if (tool is not AIFunctionDeclaration function)
            throw new NotSupportedException(
                $"the tool '{tool.Name}' ({tool.GetType().Name}) is not a function; chat-completions endpoints only take function tools");
        var definition = new JsonObject { ["name"] = function.Name };
        if (!string.IsNullOrEmpty(function.Description)) definition["description"] = function.Description;
        definition["parameters"] = JsonNode.Parse(function.JsonSchema.GetRawText());
        return new JsonObject { ["type"] = "function", ["function"] = definition };
    }

    private static JsonArray Messages(IEnumerable<ChatMessage> messages, string? instructions)
    {
        var list = new JsonArray();
        if (!string.IsNullOrEmpty(instructions)) list.Add(new JsonObject { ["role"] = "system", ["content"] = instructions });
        int index = 0;
        foreach (var message in messages)
        {
            AddMessage(list, message ?? throw new ArgumentException($"messages[{index}] is null", nameof(messages)), index);
            index++;
        }
        return list;
    }

    private static void AddMessage(JsonArray list, ChatMessage message, int index)
    {
        // A tool result is its own message in this protocol, whatever message MEAI carried it in.
        foreach (var result in message.Contents.OfType<FunctionResultContent>())
        {
            var tool = new JsonObject { ["role"] = "tool", ["tool_call_id"] = result.CallId, ["content"] = ResultText(result) };
            // The tool's name, when the message says it (K2's template heads a tool result with it).
            if (message.Role == ChatRole.Tool && message.AuthorName is { Length: > 0 } toolName) tool["name"] = toolName;
            list.Add(tool);
        }
        if (message.Role == ChatRole.Tool) return;

        string role = message.Role.Value;
        if (role is not ("system" or "user" or "assistant" or "developer"))
            throw new ArgumentException($"messages[{index}] has the role '{role}', which chat-completions endpoints do not know", "messages");
        var item = new JsonObject { ["role"] = role, ["content"] = Content(message, index) };
        if (message.AuthorName is { Length: > 0 } name) item["name"] = name;
        if (message.Role == ChatRole.Assistant)
        {
            var reasoning = message.Contents.OfType<TextReasoningContent>().Select(r => r.Text).ToArray();
            var calls = message.Contents.OfType<FunctionCallContent>().ToArray();
            // Moonshot answers 400 "thinking is enabled but reasoning_content is missing" to an assistant tool-call
            // message without the field, even when the model thought nothing; an empty string satisfies it.
            if (reasoning.Length > 0 || calls.Length > 0) item["reasoning_content"] = string.Concat(reasoning);
            if (calls.Length > 0) item["tool_calls"] = new JsonArray(calls.Select(ToolCall).ToArray());
        }
        list.Add(item);
    }

    /// <summary>Plain text as a string; text with images as content parts.</summary>
    private static JsonNode Content(ChatMessage message, int index)
    {
        var parts = new JsonArray();
        bool onlyText = true;
        foreach (var content in message.Contents)
        {
            switch (content)
            {
                case TextContent text:
                    parts.Add(new JsonObject { ["type"] = "text", ["text"] = text.Text });
                    break;
                case DataContent data when data.HasTopLevelMediaType("image"):
                    onlyText = false;
                    parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = data.Uri } });
                    break;
                case UriContent uri when uri.HasTopLevelMediaType("image"):
                    onlyText = false;
                    parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = uri.Uri.ToString() } });
                    break;
                case DataContent or UriContent:
                    throw new NotSupportedException(
                        $"messages[{index}] holds {content.GetType().Name} of type '{((content as DataContent)?.MediaType ?? (content as UriContent)?.MediaType)}'; only text and images can be sent");
                // Reasoning, calls and results travel in their own fields; usage and errors are bookkeeping, not prompt.
                default:
                    break;
            }
        }
        if (onlyText) return string.Concat(message.Contents.OfType<TextContent>().Select(t => t.Text));
        return parts;
    }

    private static JsonNode ToolCall(FunctionCallContent call) => new JsonObject
    {
        ["id"] = call.CallId, ["type"] = "function",
        ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = ArgumentsText(call) },
    };

    /// <summary>The arguments as the model wrote them when they did not parse, so the history stays faithful.</summary>
    private static string ArgumentsText(FunctionCallContent call)
    {
        if (call.AdditionalProperties?.TryGetValue(RawArgumentsProperty, out object? raw) == true && raw is string text) return text;
        return JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions);
    }

    private static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null when result.Exception is { } e => $"Error: {e.Message}",
        null => "",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString()!,
        var value => JsonSerializer.Serialize(value, AIJsonUtilities.DefaultOptions),
    };
}
