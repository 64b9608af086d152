using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Server.Protocol;

namespace KimiSharp.Server;

/// <summary>OpenAI request bodies → the engine's requests; every malformed field is a 400 naming it.</summary>
internal sealed partial class OpenAiApi
{
    private static readonly HashSet<string> s_roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>A chat request with the OpenAI-level options that are not the engine's.</summary>
    public sealed record ParsedChat(ChatRequest Request, int N, bool Stream, bool IncludeUsage);

    /// <summary>Checks the requested model name against the one served (404 otherwise).</summary>
    public void RequireModel(string? model)
    {
        if (model is not null && model != service.ModelId)
            throw new ApiException(404, "invalid_request_error", $"the model '{model}' does not exist; this server serves '{service.ModelId}'", "model", "model_not_found");
    }

    public ParsedChat ParseChat(ChatCompletionRequest r)
    {
        RequireModel(r.Model);
        var messages = r.Messages ?? throw ApiException.BadRequest("messages is required", "messages");
        if (messages.Count == 0) throw ApiException.BadRequest("messages must not be empty", "messages");
        var normalized = new JsonArray();
        for (int i = 0; i < messages.Count; i++) normalized.Add(Message(messages[i], $"messages[{i}]"));

        JsonArray? tools = null;
        if (r.Tools is { Count: > 0 })
        {
            tools = [];
            for (int i = 0; i < r.Tools.Count; i++) tools.Add(Tool(r.Tools[i], $"tools[{i}]"));
        }
        var request = new ChatRequest
        {
            Messages = normalized,
            Tools = tools,
            Generation = Generation(r, defaultMaxTokens: Math.Min(4096, service.Model.Config.MaxPositionEmbeddings / 2)),
            Stop = Fields.Strings(r.Stop, "stop"),
            TemplateVariables = TemplateVariables(r),
        };
        request = request with { ToolChoice = ParseToolChoice(r.ToolChoice, request), ResponseFormat = ParseResponseFormat(r.ResponseFormat) };
        int n = Fields.Int(r.N, "n", 1, 8) ?? 1;
        return new ParsedChat(request, n, r.Stream ?? false, r.StreamOptions?.IncludeUsage ?? false);
    }

    private static JsonObject Message(ChatMessage? m, string path)
    {
        if (m is null) throw ApiException.BadRequest($"{path} must be an object", path);
        if (m.Role is not { } role || !s_roles.Contains(role))
            throw ApiException.BadRequest($"{path}.role '{m.Role}' is not one of system, developer, user, assistant, tool", $"{path}.role");
        var message = new JsonObject();
        if (m.Extra is not null)
            foreach (var (key, value) in m.Extra) message[key] = ProtocolJson.ToNode(value);
        message["role"] = role == "developer" ? "system" : role;
        message["content"] = Content(m.Content, $"{path}.content");
        if (m.Name is not null) message["name"] = m.Name;
        if (m.ReasoningContent is not null) message["reasoning_content"] = m.ReasoningContent;
        if (m.ToolCallId is not null) message["tool_call_id"] = m.ToolCallId;
        if (role == "tool" && m.ToolCallId is null && m.Name is null)
            throw ApiException.BadRequest($"{path} (role tool) needs tool_call_id", $"{path}.tool_call_id");
        if (m.ToolCalls is not null)
        {
            var calls = new JsonArray();
            for (int i = 0; i < m.ToolCalls.Count; i++)
            {
                string at = $"{path}.tool_calls[{i}]";
                var call = m.ToolCalls[i] ?? throw ApiException.BadRequest($"{at} must be an object", at);
                if (call.Function?.Name is not { } name) throw ApiException.BadRequest($"{at}.function.name is required", $"{at}.function.name");
                if (call.Type is not (null or "function")) throw ApiException.BadRequest($"{at}.type must be 'function'", $"{at}.type");
                calls.Add(new JsonObject
                {
                    ["id"] = call.Id, ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = name, ["arguments"] = call.Function.Arguments ?? "{}" },
                });
            }
            message["tool_calls"] = calls;
        }
        return message;
    }

    /// <summary>A string, an array of content parts (text parts need a string <c>text</c>), or null.</summary>
    private static JsonNode? Content(JsonElement? content, string path)
    {
        if (content is not JsonElement e || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind == JsonValueKind.String) return e.GetString();
        if (e.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"{path} must be a string, an array of content parts, or null", path);
        var parts = new JsonArray();
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            string at = $"{path}[{i++}]";
            var part = ProtocolJson.Parse(item, ProtocolJsonContext.Default.ContentPart, at);
            if (part.Type is not { } type) throw ApiException.BadRequest($"{at}.type is required", $"{at}.type");
            if (type == "text" && part.Text is null) throw ApiException.BadRequest($"{at}.text is required for a text part", $"{at}.text");
            if (type == "image_url") RequireImageUrl(part, at);
            var node = new JsonObject();
            if (part.Extra is not null)
                foreach (var (key, value) in part.Extra) node[key] = ProtocolJson.ToNode(value);
            node["type"] = type;
            if (part.Text is not null) node["text"] = part.Text;
            parts.Add(node);
        }
        return parts;
    }

    /// <summary>
    /// An image_url part needs {"url": string} (detail is accepted and ignored: K2.5 sees the whole image); the chat
    /// service decodes the URL and names any problem with the image itself.
    /// </summary>
    private static void RequireImageUrl(ContentPart part, string path)
    {
        if (part.Extra is null || !part.Extra.TryGetValue("image_url", out var imageUrl))
            throw ApiException.BadRequest($"{path}.image_url is required for an image_url part", $"{path}.image_url");
        if (imageUrl.ValueKind == JsonValueKind.String) return;
        if (imageUrl.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest($"{path}.image_url must be an object with a url", $"{path}.image_url");
        if (!imageUrl.TryGetProperty("url", out var url) || url.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest($"{path}.image_url.url is required (a string: a data: URL such as data:image/png;base64,...)", $"{path}.image_url.url");
        if (imageUrl.TryGetProperty("detail", out var detail) && detail.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            throw ApiException.BadRequest($"{path}.image_url.detail must be auto, low or high", $"{path}.image_url.detail");
    }

    private static JsonObject Tool(ToolDefinition? tool, string path)
    {
        if (tool is null) throw ApiException.BadRequest($"{path} must be an object", path);
        if (tool.Type is not (null or "function")) throw ApiException.BadRequest($"{path}.type must be 'function'", $"{path}.type");
        var f = tool.Function;
        if (f?.Name is not { Length: > 0 } name) throw ApiException.BadRequest($"{path}.function.name is required", $"{path}.function.name");
        var function = new JsonObject { ["name"] = name };
        if (f.Description is not null) function["description"] = f.Description;
        if (f.Parameters is JsonElement parameters)
        {
            if (parameters.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
                throw ApiException.BadRequest($"{path}.function.parameters must be a JSON schema (an object)", $"{path}.function.parameters");
            function["parameters"] = ProtocolJson.ToNode(parameters);
        }
        // Kept only when sent: the template renders the tools into the prompt. Absent means strict (see ResponseFormat).
        if (f.Strict is bool strict) function["strict"] = strict;
        return new JsonObject { ["type"] = "function", ["function"] = function };
    }

    private static IReadOnlyDictionary<string, JsonNode?>? TemplateVariables(ChatCompletionRequest r)
    {
        var vars = new Dictionary<string, JsonNode?>();
        if (r.ChatTemplateKwargs is not null)
            foreach (var (k, v) in r.ChatTemplateKwargs) vars[k] = ProtocolJson.ToNode(v);
        // Moonshot spells the switch {"type": "enabled"|"disabled"}; templates read a boolean, as chat_template_kwargs gives it.
        if (r.Thinking is JsonElement thinking && thinking.ValueKind != JsonValueKind.Null)
            vars["thinking"] = thinking.ValueKind switch
            {
                JsonValueKind.True or JsonValueKind.False => thinking.GetBoolean(),
                JsonValueKind.Object when thinking.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
                    && type.GetString() is "enabled" or "disabled" => type.GetString() == "enabled",
                _ => throw ApiException.BadRequest("'thinking' must be true, false or {\"type\": \"enabled\"|\"disabled\"}", "thinking"),
            };
        return vars.Count > 0 ? vars : null;
    }

    public static GenerationOptions Generation(GenerationFields r, int defaultMaxTokens)
    {
        string maxName = r.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        int maxTokens = Fields.Int(r.MaxCompletionTokens ?? r.MaxTokens, maxName, 1, int.MaxValue) ?? defaultMaxTokens;
        var generation = Fields.Generation(
            maxTokens,
            temperature: Fields.Number(r.Temperature, "temperature", 0, 2) ?? 1.0,
            topP: r.TopP,
            topK: Fields.Int(r.TopK, "top_k", 0, int.MaxValue),
            minP: r.MinP,
            presencePenalty: r.PresencePenalty,
            frequencyPenalty: r.FrequencyPenalty,
            seed: Fields.Int(r.Seed, "seed", int.MinValue, int.MaxValue),
            logprobs: r.Logprobs ?? false,
            topLogprobs: Fields.Int(r.TopLogprobs, "top_logprobs", 0, 20) ?? 0);
        return r.IgnoreEos == true ? generation with { IgnoreEos = true } : generation;
    }

    private static ToolChoice ParseToolChoice(JsonElement? node, ChatRequest request)
    {
        ToolChoice choice;
        if (node is not JsonElement e || e.ValueKind == JsonValueKind.Null) choice = ToolChoice.Auto;
        else if (e.ValueKind == JsonValueKind.String)
            choice = e.GetString() switch
            {
                "auto" => ToolChoice.Auto,
                "none" => ToolChoice.None,
                "required" => ToolChoice.Required,
                var s => throw ApiException.BadRequest($"tool_choice '{s}' is not one of auto, none, required", "tool_choice"),
            };
        else
        {
            var named = ProtocolJson.Parse(e, ProtocolJsonContext.Default.NamedToolChoice, "tool_choice");
            choice = named.Function?.Name is { } name ? ToolChoice.Function(name)
                : throw ApiException.BadRequest("tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}", "tool_choice");
        }
        var names = request.ToolNames;
        if (choice is ToolChoice.FunctionChoice f && !names.Contains(f.Name))
            throw ApiException.BadRequest($"tool_choice names function '{f.Name}', which is not among the declared tools", "tool_choice");
        if (choice is ToolChoice.RequiredChoice && names.Count == 0)
            throw ApiException.BadRequest("tool_choice 'required' needs at least one tool", "tool_choice");
        return choice;
    }

    private static ResponseFormat ParseResponseFormat(ResponseFormatSpec? format)
    {
        if (format is null) return new ResponseFormat.Text();
        switch (format.Type)
        {
            case "text": return new ResponseFormat.Text();
            case "json_object": return new ResponseFormat.JsonObject();
            case "json_schema":
                var spec = format.JsonSchema ?? throw ApiException.BadRequest("response_format.json_schema is required for type json_schema", "response_format.json_schema");
                if (spec.Schema is not JsonElement schema || schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
                    throw ApiException.BadRequest("response_format.json_schema.schema must be a JSON schema (an object)", "response_format.json_schema.schema");
                // Our rule, stricter than OpenAI's default: a keyword the constraint compiler cannot enforce is a 400
                // unless the request says strict: false.
                return new ResponseFormat.JsonSchema(spec.Name ?? "response", ProtocolJson.ToNode(schema)!) { Strict = spec.Strict ?? true };
            case null: throw ApiException.BadRequest("response_format.type is required", "response_format.type");
            default: throw ApiException.BadRequest($"response_format.type '{format.Type}' is not one of text, json_object, json_schema", "response_format.type");
        }
    }
}
