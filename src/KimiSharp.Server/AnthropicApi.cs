using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Server.Protocol;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Server;

/// <summary>
/// The Anthropic Messages API (POST /v1/messages) over the same engine: requests are translated into the OpenAI
/// shape the chat template reads, answers back into content blocks. Validation is as strict as Anthropic's where
/// clients rely on it (tool results must answer a tool use, thinking blocks carry a signature).
/// </summary>
internal sealed class AnthropicApi(KimiChatService service, OpenAiApi openAi, ServerMetrics metrics, ServerOptions options)
{
    /// <summary>Moonshot's Anthropic-compatible endpoint scales temperature: real = requested × 0.6.</summary>
    public const double TemperatureScale = 0.6;

    public ChatRequest Parse(MessagesRequest r)
    {
        openAi.RequireModel(r.Model);
        int maxTokens = Fields.Int(r.MaxTokens, "max_tokens", 1, int.MaxValue) ?? throw ApiException.BadRequest("max_tokens is required", "max_tokens");
        var messages = new JsonArray();
        if (System(r.System) is { } system) messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        var input = r.Messages ?? throw ApiException.BadRequest("messages is required", "messages");
        if (input.Count == 0) throw ApiException.BadRequest("messages must not be empty", "messages");
        HashSet<string> previousToolUses = [];
        for (int i = 0; i < input.Count; i++) previousToolUses = Translate(input[i], $"messages[{i}]", previousToolUses, messages);

        JsonArray? tools = null;
        if (r.Tools is { Count: > 0 } declared)
        {
            tools = [];
            for (int i = 0; i < declared.Count; i++)
            {
                string path = $"tools[{i}]";
                var t = declared[i] ?? throw ApiException.BadRequest($"{path} must be an object", path);
                if (t.Name is not { Length: > 0 } name) throw ApiException.BadRequest($"{path}.name is required", $"{path}.name");
                var function = new JsonObject { ["name"] = name };
                if (t.Description is not null) function["description"] = t.Description;
                if (t.InputSchema is JsonElement schema && schema.ValueKind != JsonValueKind.Object)
                    throw ApiException.BadRequest($"{path}.input_schema must be a JSON schema (an object)", $"{path}.input_schema");
                function["parameters"] = t.InputSchema is JsonElement s ? ProtocolJson.ToNode(s) : new JsonObject { ["type"] = "object" };
                tools.Add(new JsonObject { ["type"] = "function", ["function"] = function });
            }
        }

        // Anthropic's temperature range is 0–1; the engine gets it scaled.
        double temperature = Fields.Number(r.Temperature, "temperature", 0, 1) ?? 1.0;
        var stop = new List<string>();
        if (r.StopSequences is not null)
            for (int i = 0; i < r.StopSequences.Count; i++)
                stop.Add(r.StopSequences[i] ?? throw ApiException.BadRequest($"stop_sequences[{i}] must be a string", $"stop_sequences[{i}]"));
        var request = new ChatRequest
        {
            Messages = messages,
            Tools = tools,
            Generation = Fields.Generation(maxTokens, temperature * TemperatureScale, Fields.Number(r.TopP, "top_p", 0, 1),
                Fields.Int(r.TopK, "top_k", 0, int.MaxValue)),
            Stop = stop,
            TemplateVariables = ThinkingSwitch(r.Thinking, maxTokens) is bool on ? new Dictionary<string, JsonNode?> { ["thinking"] = on } : null,
        };
        return request with { ToolChoice = ParseToolChoice(r.ToolChoice, request) };
    }

    /// <summary>
    /// Anthropic's extended-thinking switch as the template's <c>thinking</c> boolean (K2 Thinking's and K2.5's
    /// templates open or close the think block with it); null when the request does not say. budget_tokens is checked
    /// as Anthropic checks it (at least 1,024 and below max_tokens); the reasoning itself is bounded by max_tokens.
    /// </summary>
    private static bool? ThinkingSwitch(JsonElement? thinking, int maxTokens)
    {
        if (thinking is not JsonElement t || t.ValueKind == JsonValueKind.Null) return null;
        if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest("thinking must be an object with a type: enabled or disabled", "thinking");
        switch (type.GetString())
        {
            case "disabled":
                return false;
            case "enabled":
                if (!t.TryGetProperty("budget_tokens", out var budget) || !budget.TryGetInt32(out int tokens))
                    throw ApiException.BadRequest("thinking.budget_tokens is required (an integer) when thinking is enabled", "thinking.budget_tokens");
                if (tokens < 1024) throw ApiException.BadRequest("thinking.budget_tokens must be at least 1024", "thinking.budget_tokens");
                if (tokens >= maxTokens) throw ApiException.BadRequest("thinking.budget_tokens must be less than max_tokens", "thinking.budget_tokens");
                return true;
            default:
                throw ApiException.BadRequest($"thinking.type '{type.GetString()}' is not one of enabled, disabled", "thinking.type");
        }
    }

    /// <summary>The system prompt: a string or an array of text blocks.</summary>
    private static string? System(JsonElement? system)
    {
        if (system is not JsonElement e || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind == JsonValueKind.String) return e.GetString();
        if (e.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("system must be a string or an array of text blocks", "system");
        var text = new System.Text.StringBuilder();
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            string path = $"system[{i++}]";
            var block = ProtocolJson.Parse(item, ProtocolJsonContext.Default.ContentBlock, path);
            if (block.Type != "text") throw ApiException.BadRequest($"{path}.type must be 'text'", $"{path}.type");
            text.Append(block.Text ?? throw ApiException.BadRequest($"{path}.text is required", $"{path}.text"));
        }
        return text.ToString();
    }

    private static ToolChoice ParseToolChoice(AnthropicToolChoice? node, ChatRequest request)
    {
        if (node is null) return ToolChoice.Auto;
        var choice = node.Type switch
        {
            "auto" => ToolChoice.Auto,
            "none" => ToolChoice.None,
            "any" => ToolChoice.Required,
            "tool" => node.Name is { } name ? ToolChoice.Function(name)
                : throw ApiException.BadRequest("tool_choice of type tool needs a name", "tool_choice.name"),
            _ => throw ApiException.BadRequest($"tool_choice.type '{node.Type}' is not one of auto, any, tool, none", "tool_choice.type"),
        };
        if (choice is ToolChoice.FunctionChoice f && !request.ToolNames.Contains(f.Name))
            throw ApiException.BadRequest($"tool_choice names tool '{f.Name}', which is not among the declared tools", "tool_choice");
        if (choice is ToolChoice.RequiredChoice && request.ToolNames.Count == 0)
            throw ApiException.BadRequest("tool_choice 'any' needs at least one tool", "tool_choice");
        return choice;
    }

    /// <summary>
    /// One Anthropic message → one or more OpenAI messages (tool results become role "tool" messages). Returns the
    /// ids of the tool uses this message makes, which the next message's tool results must answer.
    /// </summary>
    private static HashSet<string> Translate(AnthropicMessage? m, string path, HashSet<string> previousToolUses, JsonArray output)
    {
        if (m is null) throw ApiException.BadRequest($"{path} must be an object", path);
        string? role = m.Role;
        if (role is not ("user" or "assistant"))
            throw ApiException.BadRequest($"{path}.role '{role}' must be user or assistant", $"{path}.role");
        HashSet<string> toolUses = [];
        if (m.Content is JsonElement { ValueKind: JsonValueKind.String } plain)
        {
            output.Add(new JsonObject { ["role"] = role, ["content"] = plain.GetString() });
            return toolUses;
        }
        if (m.Content is not JsonElement { ValueKind: JsonValueKind.Array } blocks)
            throw ApiException.BadRequest($"{path}.content must be a string or an array of content blocks", $"{path}.content");

        var text = new System.Text.StringBuilder();
        // With an image the content becomes OpenAI parts (text and image_url in block order), which the template places.
        var parts = new JsonArray();
        bool anyImage = false;
        string? reasoning = null;
        var calls = new JsonArray();
        bool anyToolResult = false;
        int b = 0;
        foreach (var item in blocks.EnumerateArray())
        {
            string at = $"{path}.content[{b++}]";
            var block = ProtocolJson.Parse(item, ProtocolJsonContext.Default.ContentBlock, at);
            switch (block.Type)
            {
                case "text":
                    string blockText = block.Text ?? throw ApiException.BadRequest($"{at}.text is required", $"{at}.text");
                    text.Append(blockText);
                    parts.Add(new JsonObject { ["type"] = "text", ["text"] = blockText });
                    break;
                case "image" when role == "user":
                    anyImage = true;
                    parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = ImageUrl(block.Source, $"{at}.source") } });
                    break;
                case "thinking" when role == "assistant":
                    if (block.Signature is null) throw ApiException.BadRequest($"{at}.signature is required for a thinking block", $"{at}.signature");
                    reasoning = (reasoning ?? "") + (block.Thinking ?? throw ApiException.BadRequest($"{at}.thinking is required", $"{at}.thinking"));
                    break;
                case "redacted_thinking" when role == "assistant":
                    break;
                case "tool_use" when role == "assistant":
                    string id = block.Id ?? throw ApiException.BadRequest($"{at}.id is required", $"{at}.id");
                    string name = block.Name ?? throw ApiException.BadRequest($"{at}.name is required", $"{at}.name");
                    if (block.Input is not JsonElement { ValueKind: JsonValueKind.Object } arguments)
                        throw ApiException.BadRequest($"{at}.input must be an object", $"{at}.input");
                    if (!toolUses.Add(id)) throw ApiException.BadRequest($"{at}.id '{id}' is used twice in this message", $"{at}.id");
                    calls.Add(new JsonObject
                    {
                        ["id"] = id, ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = name, ["arguments"] = arguments.GetRawText() },
                    });
                    break;
                case "tool_result" when role == "user":
                    string useId = block.ToolUseId ?? throw ApiException.BadRequest($"{at}.tool_use_id is required", $"{at}.tool_use_id");
                    if (!previousToolUses.Contains(useId))
                        throw ApiException.BadRequest(
                            $"{at}.tool_use_id '{useId}' answers no tool_use block of the previous (assistant) message", $"{at}.tool_use_id");
                    anyToolResult = true;
                    output.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = useId, ["content"] = ToolResultText(block.Content, $"{at}.content") });
                    break;
                default:
                    throw ApiException.BadRequest($"{at} has type '{block.Type}', which a {role} message cannot carry", $"{at}.type");
            }
        }
        if (role == "user" && text.Length == 0 && anyToolResult) return toolUses;
        var message = new JsonObject { ["role"] = role, ["content"] = anyImage ? parts : text.ToString() };
        if (reasoning is not null) message["reasoning_content"] = reasoning;
        if (calls.Count > 0) message["tool_calls"] = calls;
        output.Add(message);
        return toolUses;
    }

    /// <summary>
    /// An image block's source as a URL for the chat service: base64 data becomes a data: URL; a url source passes
    /// through (the service fetches it only where remote images are allowed).
    /// </summary>
    private static string ImageUrl(JsonElement? source, string path)
    {
        if (source is not JsonElement { ValueKind: JsonValueKind.Object } s)
            throw ApiException.BadRequest($"{path} is required: {{\"type\": \"base64\", \"media_type\", \"data\"}}", path);
        string? Field(string name) => s.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        switch (Field("type"))
        {
            case "base64":
                string mediaType = Field("media_type") ?? throw ApiException.BadRequest($"{path}.media_type is required", $"{path}.media_type");
                if (mediaType is not ("image/jpeg" or "image/png" or "image/gif" or "image/webp" or "image/bmp"))
                    throw ApiException.BadRequest($"{path}.media_type '{mediaType}' is not one of image/jpeg, image/png, image/gif, image/webp", $"{path}.media_type");
                string data = Field("data") ?? throw ApiException.BadRequest($"{path}.data is required (the base64-encoded image)", $"{path}.data");
                return $"data:{mediaType};base64,{data}";
            case "url":
                return Field("url") ?? throw ApiException.BadRequest($"{path}.url is required", $"{path}.url");
            case var other:
                throw ApiException.BadRequest($"{path}.type '{other}' is not base64 or url", $"{path}.type");
        }
    }

    /// <summary>A tool result's content: a string or an array of text blocks.</summary>
    private static string ToolResultText(JsonElement? content, string path)
    {
        if (content is not JsonElement e || e.ValueKind == JsonValueKind.Null) return "";
        if (e.ValueKind == JsonValueKind.String) return e.GetString()!;
        if (e.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"{path} must be a string or an array of text blocks", path);
        var text = new System.Text.StringBuilder();
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            string at = $"{path}[{i++}]";
            var block = ProtocolJson.Parse(item, ProtocolJsonContext.Default.ContentBlock, at);
            if (block.Type == "text") text.Append(block.Text ?? throw ApiException.BadRequest($"{at}.text is required", $"{at}.text"));
            else if (block.Type != "image") throw ApiException.BadRequest($"{at}.type '{block.Type}' is not text", $"{at}.type");
        }
        return text.ToString();
    }

    private static JsonNode ParseInput(string arguments)
    {
        try { return JsonNode.Parse(arguments) ?? new JsonObject(); }
        catch (JsonException) { return new JsonObject(); }
    }

    /// <summary>POST /v1/messages.</summary>
    public async Task Messages(HttpContext context)
    {
        var body = await ProtocolJson.ReadBodyAsync(context.Request, options.MaxRequestBodyBytes, context.RequestAborted);
        var r = ProtocolJson.Parse(body, ProtocolJsonContext.Default.MessagesRequest);
        var request = Parse(r);
        string id = "msg_" + Guid.NewGuid().ToString("N")[..24];
        using var admission = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var events = Admission.Start([request], service.ChatAsync, admission)[0];
        if (r.Stream ?? false) await Stream(context, events, id);
        else await Complete(context, events, id);
    }

    private async Task Complete(HttpContext context, IAsyncEnumerable<ChatEvent> events, string id)
    {
        var pieces = new List<ParserEvent>();
        ChatCompleted? done = null;
        await foreach (var e in events)
        {
            if (e is ChatOutput o) pieces.Add(o.Piece);
            else if (e is ChatCompleted c) { done = c; metrics.RecordRequest(c.Usage); }
        }
        pieces.Add(new End(done!.FinishReason));
        var output = ParsedOutput.FromEvents(pieces);
        var content = new JsonArray();
        if (output.Reasoning is { Length: > 0 } reasoning) content.Add(new JsonObject { ["type"] = "thinking", ["thinking"] = reasoning, ["signature"] = "" });
        if (output.Content.Length > 0) content.Add(new JsonObject { ["type"] = "text", ["text"] = output.Content });
        foreach (var call in output.ToolCalls)
            content.Add(new JsonObject { ["type"] = "tool_use", ["id"] = call.Id, ["name"] = call.Name, ["input"] = ParseInput(call.Arguments) });
        await OpenAiApi.Json(context, 200, new JsonObject
        {
            ["id"] = id, ["type"] = "message", ["role"] = "assistant", ["model"] = service.ModelId, ["content"] = content,
            ["stop_reason"] = FinishReasons.Anthropic(done.FinishReason), ["stop_sequence"] = done.StopSequence,
            ["usage"] = Usage(done.Usage),
        });
    }

    private static JsonObject Usage(ChatUsage u) => new()
    {
        ["input_tokens"] = u.PromptTokens - u.CachedTokens, ["output_tokens"] = u.CompletionTokens,
        ["cache_read_input_tokens"] = u.CachedTokens, ["cache_creation_input_tokens"] = 0,
    };

    private async Task Stream(HttpContext context, IAsyncEnumerable<ChatEvent> events, string id)
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

        await foreach (var e in events)
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
                        ["delta"] = new JsonObject { ["stop_reason"] = FinishReasons.Anthropic(c.FinishReason), ["stop_sequence"] = c.StopSequence },
                        ["usage"] = Usage(c.Usage),
                    }, ct);
                    await sse.EventAsync("message_stop", new JsonObject { ["type"] = "message_stop" }, ct);
                    break;
            }
        }
    }
}
