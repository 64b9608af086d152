using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Server;

/// <summary>
/// The Anthropic Messages API (POST /v1/messages) over the same engine: requests are translated into the OpenAI
/// shape the chat template reads, answers back into content blocks.
/// </summary>
internal sealed class AnthropicApi(KimiChatService service, OpenAiApi openAi, ServerMetrics metrics)
{
    /// <summary>Moonshot's Anthropic-compatible endpoint scales temperature: real = requested × 0.6.</summary>
    public const double TemperatureScale = 0.6;

    public ChatRequest Parse(RequestReader r, out bool stream)
    {
        openAi.RequireModel(r.String("model"));
        if (r.Int("max_tokens") is null) throw ApiException.BadRequest("'max_tokens' is required", "max_tokens");
        var messages = new JsonArray();
        switch (r["system"])
        {
            case null: break;
            case JsonValue v when v.TryGetValue(out string? text): messages.Add(new JsonObject { ["role"] = "system", ["content"] = text }); break;
            case JsonArray blocks: messages.Add(new JsonObject { ["role"] = "system", ["content"] = string.Concat(blocks.Select(b => b?["text"]?.GetValue<string>())) }); break;
            default: throw ApiException.BadRequest("'system' must be a string or an array of text blocks", "system");
        }
        var input = r.Array("messages") ?? throw ApiException.BadRequest("'messages' is required", "messages");
        if (input.Count == 0) throw ApiException.BadRequest("'messages' must not be empty", "messages");
        for (int i = 0; i < input.Count; i++) Translate(input[i], i, messages);

        JsonArray? tools = null;
        if (r.Array("tools") is { Count: > 0 } declared)
        {
            tools = [];
            for (int i = 0; i < declared.Count; i++)
            {
                var t = declared[i] as JsonObject ?? throw ApiException.BadRequest($"tools[{i}] must be an object", "tools");
                string name = t["name"] is JsonValue nv && nv.TryGetValue(out string? n) ? n : throw ApiException.BadRequest($"tools[{i}].name is required", "tools");
                var function = new JsonObject { ["name"] = name };
                if (t["description"] is JsonNode d) function["description"] = d.DeepClone();
                function["parameters"] = t["input_schema"]?.DeepClone() ?? new JsonObject { ["type"] = "object" };
                tools.Add(new JsonObject { ["type"] = "function", ["function"] = function });
            }
        }

        var request = new ChatRequest
        {
            Messages = messages,
            Tools = tools,
            Generation = OpenAiApi.ParseGeneration(r, defaultMaxTokens: 1024, TemperatureScale),
            Stop = r.Strings("stop_sequences"),
        };
        request = request with { ToolChoice = ParseToolChoice(r["tool_choice"], request) };
        stream = r.Bool("stream") ?? false;
        return request;
    }

    private static ToolChoice ParseToolChoice(JsonNode? node, ChatRequest request)
    {
        if (node is null) return ToolChoice.Auto;
        string? type = node["type"] is JsonValue t && t.TryGetValue(out string? s) ? s : null;
        var choice = type switch
        {
            "auto" => ToolChoice.Auto,
            "none" => ToolChoice.None,
            "any" => ToolChoice.Required,
            "tool" => node["name"] is JsonValue n && n.TryGetValue(out string? name) ? ToolChoice.Function(name)
                : throw ApiException.BadRequest("tool_choice of type tool needs a name", "tool_choice"),
            _ => throw ApiException.BadRequest($"tool_choice type '{type}' is not one of auto, any, tool, none", "tool_choice"),
        };
        if (choice is ToolChoice.FunctionChoice f && !request.ToolNames.Contains(f.Name))
            throw ApiException.BadRequest($"tool_choice names tool '{f.Name}', which is not among the declared tools", "tool_choice");
        if (choice is ToolChoice.RequiredChoice && request.ToolNames.Count == 0)
            throw ApiException.BadRequest("tool_choice 'any' needs at least one tool", "tool_choice");
        return choice;
    }

    /// <summary>One Anthropic message → one or more OpenAI messages (tool results become role "tool" messages).</summary>
    private static void Translate(JsonNode? node, int i, JsonArray output)
    {
        if (node is not JsonObject m) throw ApiException.BadRequest($"messages[{i}] must be an object", $"messages[{i}]");
        string? role = m["role"] is JsonValue rv && rv.TryGetValue(out string? rs) ? rs : null;
        if (role is not ("user" or "assistant"))
            throw ApiException.BadRequest($"messages[{i}].role '{role}' must be user or assistant", $"messages[{i}].role");
        if (m["content"] is JsonValue cv && cv.TryGetValue(out string? plain))
        {
            output.Add(new JsonObject { ["role"] = role, ["content"] = plain });
            return;
        }
        if (m["content"] is not JsonArray blocks) throw ApiException.BadRequest($"messages[{i}].content must be a string or an array of blocks", $"messages[{i}].content");

        var text = new System.Text.StringBuilder();
        string? reasoning = null;
        var calls = new JsonArray();
        foreach (var block in blocks)
        {
            string? type = block?["type"] is JsonValue tv && tv.TryGetValue(out string? ts) ? ts : null;
            switch (type)
            {
                case "text":
                    text.Append(block!["text"]?.GetValue<string>());
                    break;
                case "thinking" when role == "assistant":
                    reasoning = (reasoning ?? "") + block!["thinking"]?.GetValue<string>();
                    break;
                case "redacted_thinking":
                    break;
                case "tool_use" when role == "assistant":
                    calls.Add(new JsonObject
                    {
                        ["id"] = block!["id"]?.DeepClone(), ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = block["name"]?.DeepClone() ?? throw ApiException.BadRequest($"messages[{i}] tool_use needs a name"),
                            ["arguments"] = (block["input"] ?? new JsonObject()).ToJsonString(),
                        },
                    });
                    break;
                case "tool_result" when role == "user":
                    string content = block!["content"] switch
                    {
                        JsonValue s when s.TryGetValue(out string? str) => str,
                        JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>())),
                        null => "",
                        _ => throw ApiException.BadRequest($"messages[{i}] tool_result content must be a string or text blocks"),
                    };
                    output.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = block["tool_use_id"]?.DeepClone(), ["content"] = content });
                    break;
                default:
                    throw ApiException.BadRequest($"messages[{i}] has a content block of type '{type}' that a {role} message cannot carry", $"messages[{i}].content");
            }
        }
        if (role == "user" && text.Length == 0 && output.Count > 0 && output[^1]?["role"]?.GetValue<string>() == "tool") return;
        var message = new JsonObject { ["role"] = role, ["content"] = text.ToString() };
        if (reasoning is not null) message["reasoning_content"] = reasoning;
        if (calls.Count > 0) message["tool_calls"] = calls;
        output.Add(message);
    }

    private static string StopReason(string finish, bool stoppedBySequence) => finish switch
    {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => stoppedBySequence ? "stop_sequence" : "end_turn",
    };

    private static JsonNode ParseInput(string arguments)
    {
        try { return JsonNode.Parse(arguments) ?? new JsonObject(); }
        catch (JsonException) { return new JsonObject(); }
    }

    /// <summary>POST /v1/messages.</summary>
    public async Task Messages(HttpContext context)
    {
        var r = await RequestReader.ReadAsync(context.Request, context.RequestAborted);
        var request = Parse(r, out bool stream);
        string id = "msg_" + Guid.NewGuid().ToString("N")[..24];
        if (stream) await Stream(context, request, id);
        else await Complete(context, request, id);
    }

    private async Task Complete(HttpContext context, ChatRequest request, string id)
    {
        var pieces = new List<ParserEvent>();
        ChatCompleted? done = null;
        await foreach (var e in service.ChatAsync(request, context.RequestAborted))
        {
            if (e is ChatOutput o) pieces.Add(o.Piece);
            else if (e is ChatCompleted c) { done = c; metrics.RecordRequest(c.Usage); }
        }
        pieces.Add(new End(Tokens.Parsing.FinishReason.Stop));
        var output = ParsedOutput.FromEvents(pieces);
        var content = new JsonArray();
        if (output.Reasoning is { Length: > 0 } reasoning) content.Add(new JsonObject { ["type"] = "thinking", ["thinking"] = reasoning, ["signature"] = "" });
        if (output.Content.Length > 0) content.Add(new JsonObject { ["type"] = "text", ["text"] = output.Content });
        foreach (var call in output.ToolCalls)
            content.Add(new JsonObject { ["type"] = "tool_use", ["id"] = call.Id, ["name"] = call.Name, ["input"] = ParseInput(call.Arguments) });
        await OpenAiApi.Json(context, 200, new JsonObject
        {
            ["id"] = id, ["type"] = "message", ["role"] = "assistant", ["model"] = service.ModelId, ["content"] = content,
            ["stop_reason"] = StopReason(done!.FinishReason, done.StopSequence is not null), ["stop_sequence"] = done.StopSequence,
            ["usage"] = Usage(done.Usage),
        });
    }

    private static JsonObject Usage(ChatUsage u) => new()
    {
        ["input_tokens"] = u.PromptTokens - u.CachedTokens, ["output_tokens"] = u.CompletionTokens,
        ["cache_read_input_tokens"] = u.CachedTokens, ["cache_creation_input_tokens"] = 0,
    };

    private async Task Stream(HttpContext context, ChatRequest request, string id)
    {
        var ct = context.RequestAborted;
        var sse = await Sse.StartAsync(context);
        await sse.EventAsync("message_start", new JsonObject
        {
            ["type"] = "message_start",
            ["message"] = new JsonObject
            {
                ["id"] = id, ["type"] = "message", ["role"] = "assistant", ["model"] = service.ModelId, ["content"] = new JsonArray(),
                ["stop_reason"] = null, ["stop_sequence"] = null,
                ["usage"] = new JsonObject { ["input_tokens"] = 0, ["output_tokens"] = 0 },
            },
        }, ct);

        int blockIndex = -1;
        string? openKind = null; // "thinking", "text" or "tool_use"
        int openToolCall = -1;

        async Task Close()
        {
            if (openKind is null) return;
            if (openKind == "thinking")
                await sse.EventAsync("content_block_delta", new JsonObject
                {
                    ["type"] = "content_block_delta", ["index"] = blockIndex,
                    ["delta"] = new JsonObject { ["type"] = "signature_delta", ["signature"] = "" },
                }, ct);
            await sse.EventAsync("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = blockIndex }, ct);
            openKind = null;
        }

        async Task Open(string kind, JsonObject block)
        {
            await Close();
            openKind = kind;
            blockIndex++;
            await sse.EventAsync("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = blockIndex, ["content_block"] = block }, ct);
        }

        Task Delta(JsonObject delta) =>
            sse.EventAsync("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = blockIndex, ["delta"] = delta }, ct);

        await foreach (var e in service.ChatAsync(request, ct))
        {
            switch (e)
            {
                case ChatOutput { Piece: ReasoningDelta d }:
                    if (openKind != "thinking") await Open("thinking", new JsonObject { ["type"] = "thinking", ["thinking"] = "" });
                    await Delta(new JsonObject { ["type"] = "thinking_delta", ["thinking"] = d.Text });
                    break;
                case ChatOutput { Piece: ContentDelta d }:
                    if (openKind != "text") await Open("text", new JsonObject { ["type"] = "text", ["text"] = "" });
                    await Delta(new JsonObject { ["type"] = "text_delta", ["text"] = d.Text });
                    break;
                case ChatOutput { Piece: ToolCallStart s }:
                    await Open("tool_use", new JsonObject { ["type"] = "tool_use", ["id"] = s.Id, ["name"] = s.Name, ["input"] = new JsonObject() });
                    openToolCall = s.Index;
                    break;
                case ChatOutput { Piece: ToolCallArgumentsDelta a } when openKind == "tool_use" && a.Index == openToolCall:
                    await Delta(new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = a.Text });
                    break;
                case ChatOutput { Piece: ToolCallEnd }:
                    await Close();
                    break;
                case ChatCompleted c:
                    metrics.RecordRequest(c.Usage);
                    await Close();
                    await sse.EventAsync("message_delta", new JsonObject
                    {
                        ["type"] = "message_delta",
                        ["delta"] = new JsonObject { ["stop_reason"] = StopReason(c.FinishReason, c.StopSequence is not null), ["stop_sequence"] = c.StopSequence },
                        ["usage"] = Usage(c.Usage),
                    }, ct);
                    await sse.EventAsync("message_stop", new JsonObject { ["type"] = "message_stop" }, ct);
                    break;
            }
        }
    }
}
