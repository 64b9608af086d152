using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Server;

/// <summary>The OpenAI-compatible endpoints: chat completions, completions, models, tokenize/detokenize.</summary>
internal sealed class OpenAiApi(KimiChatService service, ServerMetrics metrics)
{
    private static readonly HashSet<string> s_roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>Checks the requested model name against the one served (404 otherwise).</summary>
    public void RequireModel(string? model)
    {
        if (model is not null && model != service.ModelId)
            throw new ApiException(404, "invalid_request_error", $"the model '{model}' does not exist; this server serves '{service.ModelId}'", "model", "model_not_found");
    }

    /// <summary>Parses an OpenAI chat-completions body into the engine's request.</summary>
    public ChatRequest ParseChat(RequestReader r, out int n, out bool stream, out bool includeUsage)
    {
        RequireModel(r.String("model"));
        var messages = r.Array("messages") ?? throw ApiException.BadRequest("'messages' is required", "messages");
        if (messages.Count == 0) throw ApiException.BadRequest("'messages' must not be empty", "messages");
        var normalized = new JsonArray();
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject m) throw ApiException.BadRequest($"messages[{i}] must be an object", $"messages[{i}]");
            string? role = m["role"] is JsonValue rv && rv.TryGetValue(out string? rs) ? rs : null;
            if (role is null || !s_roles.Contains(role))
                throw ApiException.BadRequest($"messages[{i}].role '{role}' is not one of system, developer, user, assistant, tool", $"messages[{i}].role");
            var copy = (JsonObject)m.DeepClone();
            if (role == "developer") copy["role"] = "system";
            if (copy["content"] is not (null or JsonArray) && !(copy["content"] is JsonValue cv && cv.TryGetValue(out string? _)))
                throw ApiException.BadRequest($"messages[{i}].content must be a string, an array of parts, or null", $"messages[{i}].content");
            if (role == "tool" && copy["tool_call_id"] is null && copy["name"] is null)
                throw ApiException.BadRequest($"messages[{i}] (role tool) needs tool_call_id", $"messages[{i}].tool_call_id");
            if (copy["tool_calls"] is JsonArray calls)
                foreach (var call in calls)
                    if (call?["function"]?["name"] is null)
                        throw ApiException.BadRequest($"messages[{i}].tool_calls entries need function.name", $"messages[{i}].tool_calls");
            normalized.Add(copy);
        }

        var tools = r.Array("tools");
        if (tools is not null)
            for (int i = 0; i < tools.Count; i++)
                if (tools[i]?["function"]?["name"] is not JsonValue nameValue || !nameValue.TryGetValue(out string? _))
                    throw ApiException.BadRequest($"tools[{i}].function.name is required", $"tools[{i}]");
        var request = new ChatRequest
        {
            Messages = normalized,
            Tools = tools is { Count: > 0 } ? (JsonArray)tools.DeepClone() : null,
            Generation = ParseGeneration(r, defaultMaxTokens: Math.Min(4096, service.Model.Config.MaxPositionEmbeddings / 2)),
            Stop = r.Strings("stop"),
            TemplateVariables = TemplateVariables(r),
        };
        request = request with { ToolChoice = ParseToolChoice(r["tool_choice"], request), ResponseFormat = ParseResponseFormat(r["response_format"]) };

        n = r.Int("n") ?? 1;
        if (n is < 1 or > 8) throw ApiException.BadRequest("'n' must be between 1 and 8", "n");
        stream = r.Bool("stream") ?? false;
        includeUsage = r["stream_options"]?["include_usage"] is JsonValue iu && iu.TryGetValue(out bool b) && b;
        return request;
    }

    private static IReadOnlyDictionary<string, JsonNode?>? TemplateVariables(RequestReader r)
    {
        // vLLM's chat_template_kwargs, plus Moonshot's thinking switch.
        var vars = new Dictionary<string, JsonNode?>();
        if (r["chat_template_kwargs"] is JsonObject kwargs)
            foreach (var (k, v) in kwargs) vars[k] = v?.DeepClone();
        if (r["thinking"] is JsonNode thinking) vars["thinking"] = thinking.DeepClone();
        return vars.Count > 0 ? vars : null;
    }

    public static GenerationOptions ParseGeneration(RequestReader r, int defaultMaxTokens, double temperatureScale = 1.0)
    {
        int maxTokens = r.Int("max_completion_tokens") ?? r.Int("max_tokens") ?? defaultMaxTokens;
        if (maxTokens < 1) throw ApiException.BadRequest("'max_tokens' must be at least 1", "max_tokens");
        double temperature = (r.Number("temperature") ?? 1.0) * temperatureScale;
        if (temperature is < 0 or > 2) throw ApiException.BadRequest("'temperature' must be between 0 and 2", "temperature");
        double topP = r.Number("top_p") ?? 1.0;
        if (topP is <= 0 or > 1) throw ApiException.BadRequest("'top_p' must be in (0, 1]", "top_p");
        int topLogprobs = r.Int("top_logprobs") ?? 0;
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens,
            Temperature = (float)temperature,
            TopP = (float)topP,
            TopK = r.Int("top_k") ?? 0,
            MinP = (float)(r.Number("min_p") ?? 0),
            PresencePenalty = (float)(r.Number("presence_penalty") ?? 0),
            FrequencyPenalty = (float)(r.Number("frequency_penalty") ?? 0),
            Seed = r.Int("seed"),
            Logprobs = (r.Bool("logprobs") ?? false) || topLogprobs > 0,
            TopLogprobs = topLogprobs,
        };
        try { options.Validate(); }
        catch (ArgumentException e) { throw ApiException.BadRequest(e.Message); }
        return options;
    }

    private static ToolChoice ParseToolChoice(JsonNode? node, ChatRequest request)
    {
        ToolChoice choice = node switch
        {
            null => ToolChoice.Auto,
            JsonValue v when v.TryGetValue(out string? s) => s switch
            {
                "auto" => ToolChoice.Auto,
                "none" => ToolChoice.None,
                "required" => ToolChoice.Required,
                _ => throw ApiException.BadRequest($"tool_choice '{s}' is not one of auto, none, required", "tool_choice"),
            },
            JsonObject o when o["function"]?["name"] is JsonValue nv && nv.TryGetValue(out string? name) => ToolChoice.Function(name),
            _ => throw ApiException.BadRequest("tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}", "tool_choice"),
        };
        var names = request.ToolNames;
        if (choice is ToolChoice.FunctionChoice f && !names.Contains(f.Name))
            throw ApiException.BadRequest($"tool_choice names function '{f.Name}', which is not among the declared tools", "tool_choice");
        if (choice is ToolChoice.RequiredChoice && names.Count == 0)
            throw ApiException.BadRequest("tool_choice 'required' needs at least one tool", "tool_choice");
        return choice;
    }

    private static ResponseFormat ParseResponseFormat(JsonNode? node)
    {
        if (node is null) return new ResponseFormat.Text();
        string? type = node["type"] is JsonValue t && t.TryGetValue(out string? s) ? s : null;
        return type switch
        {
            "text" => new ResponseFormat.Text(),
            "json_object" => new ResponseFormat.JsonObject(),
            "json_schema" => node["json_schema"]?["schema"] is JsonNode schema
                ? new ResponseFormat.JsonSchema(node["json_schema"]?["name"]?.GetValue<string>() ?? "response", schema.DeepClone())
                : throw ApiException.BadRequest("response_format json_schema needs json_schema.schema", "response_format"),
            _ => throw ApiException.BadRequest($"response_format type '{type}' is not one of text, json_object, json_schema", "response_format"),
        };
    }

    /// <summary>POST /v1/chat/completions.</summary>
    public async Task ChatCompletions(HttpContext context)
    {
        var r = await RequestReader.ReadAsync(context.Request, context.RequestAborted);
        var request = ParseChat(r, out int n, out bool stream, out bool includeUsage);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var runs = Enumerable.Range(0, n).Select(i => i == 0 || request.Generation.Seed is null
            ? request : request with { Generation = request.Generation with { Seed = request.Generation.Seed + i } }).ToArray();
        if (stream) await StreamChat(context, runs, id, created, includeUsage);
        else await CompleteChat(context, runs, id, created);
    }

    private async Task CompleteChat(HttpContext context, ChatRequest[] runs, string id, long created)
    {
        var ct = context.RequestAborted;
        var results = await Task.WhenAll(runs.Select(run => Collect(run, ct)));
        var choices = new JsonArray();
        int prompt = 0, completion = 0, cached = 0;
        for (int i = 0; i < results.Length; i++)
        {
            var (output, done, logprobs) = results[i];
            var message = new JsonObject { ["role"] = "assistant", ["content"] = output.ToolCalls.Count > 0 && output.Content.Length == 0 ? null : output.Content };
            if (output.Reasoning is not null) message["reasoning_content"] = output.Reasoning;
            if (output.ToolCalls.Count > 0)
                message["tool_calls"] = new JsonArray(output.ToolCalls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.Id, ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
                }).ToArray());
            choices.Add(new JsonObject
            {
                ["index"] = i, ["message"] = message,
                ["logprobs"] = logprobs is null ? null : new JsonObject { ["content"] = logprobs },
                ["finish_reason"] = done.FinishReason,
            });
            prompt = done.Usage.PromptTokens;
            completion += done.Usage.CompletionTokens;
            cached = Math.Max(cached, done.Usage.CachedTokens);
        }
        var body = new JsonObject
        {
            ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = service.ModelId,
            ["choices"] = choices, ["usage"] = Usage(prompt, completion, cached), ["system_fingerprint"] = "kimisharp",
        };
        await Json(context, 200, body);
    }

    private async Task<(ParsedOutput Output, ChatCompleted Done, JsonArray? Logprobs)> Collect(ChatRequest request, CancellationToken ct)
    {
        var pieces = new List<ParserEvent>();
        ChatCompleted? done = null;
        JsonArray? logprobs = request.Generation.Logprobs ? [] : null;
        await foreach (var e in service.ChatAsync(request, ct))
            switch (e)
            {
                case ChatOutput o: pieces.Add(o.Piece); break;
                case ChatToken t: logprobs?.Add(LogprobEntry(t)); break;
                case ChatCompleted c: done = c; metrics.RecordRequest(c.Usage); break;
            }
        pieces.Add(new End(Tokens.Parsing.FinishReason.Stop));
        return (ParsedOutput.FromEvents(pieces), done!, logprobs);
    }

    private static JsonObject LogprobEntry(ChatToken t) => new()
    {
        ["token"] = t.Text, ["logprob"] = t.Logprob, ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(t.Text).Select(b => (JsonNode)(int)b).ToArray()),
        ["top_logprobs"] = new JsonArray((t.TopLogprobs ?? []).Select(x => (JsonNode)new JsonObject { ["token"] = x.Text, ["logprob"] = x.Logprob }).ToArray()),
    };

    private static JsonObject Usage(int prompt, int completion, int cached) => new()
    {
        ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = cached },
    };

    private async Task StreamChat(HttpContext context, ChatRequest[] runs, string id, long created, bool includeUsage)
    {
        var ct = context.RequestAborted;
        var sse = await Sse.StartAsync(context);
        var gate = new SemaphoreSlim(1);
        int prompt = 0, completion = 0, cached = 0;

        async Task Send(JsonObject delta, int index, string? finish, JsonArray? logprobs = null)
        {
            var chunk = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = service.ModelId,
                ["system_fingerprint"] = "kimisharp",
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs is null ? null : new JsonObject { ["content"] = logprobs },
                    ["finish_reason"] = finish,
                }),
            };
            await gate.WaitAsync(ct);
            try { await sse.DataAsync(chunk, ct); } finally { gate.Release(); }
        }

        async Task Run(ChatRequest request, int index)
        {
            await Send(new JsonObject { ["role"] = "assistant", ["content"] = "" }, index, null);
            await foreach (var e in service.ChatAsync(request, ct))
                switch (e)
                {
                    case ChatOutput { Piece: ReasoningDelta d }: await Send(new JsonObject { ["reasoning_content"] = d.Text }, index, null); break;
                    case ChatOutput { Piece: ContentDelta d }: await Send(new JsonObject { ["content"] = d.Text }, index, null); break;
                    case ChatOutput { Piece: ToolCallStart s }:
                        await Send(new JsonObject
                        {
                            ["tool_calls"] = new JsonArray(new JsonObject
                            {
                                ["index"] = s.Index, ["id"] = s.Id, ["type"] = "function",
                                ["function"] = new JsonObject { ["name"] = s.Name, ["arguments"] = "" },
                            }),
                        }, index, null);
                        break;
                    case ChatOutput { Piece: ToolCallArgumentsDelta a }:
                        await Send(new JsonObject
                        {
                            ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = a.Index, ["function"] = new JsonObject { ["arguments"] = a.Text } }),
                        }, index, null);
                        break;
                    case ChatToken t when request.Generation.Logprobs:
                        await Send(new JsonObject(), index, null, new JsonArray(LogprobEntry(t)));
                        break;
                    case ChatCompleted c:
                        metrics.RecordRequest(c.Usage);
                        Interlocked.Exchange(ref prompt, c.Usage.PromptTokens);
                        Interlocked.Add(ref completion, c.Usage.CompletionTokens);
                        Interlocked.Exchange(ref cached, Math.Max(cached, c.Usage.CachedTokens));
                        await Send(new JsonObject(), index, c.FinishReason);
                        break;
                }
        }

        await Task.WhenAll(runs.Select((run, i) => Run(run, i)));
        if (includeUsage)
            await sse.DataAsync(new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = service.ModelId,
                ["choices"] = new JsonArray(), ["usage"] = Usage(prompt, completion, cached),
            }, ct);
        await sse.DoneAsync(ct);
    }

    /// <summary>POST /v1/completions: raw text completion.</summary>
    public async Task Completions(HttpContext context)
    {
        var r = await RequestReader.ReadAsync(context.Request, context.RequestAborted);
        RequireModel(r.String("model"));
        IReadOnlyList<int> prompt = r["prompt"] switch
        {
            JsonValue v when v.TryGetValue(out string? promptText) => service.Tokenizer.Encode(promptText, allowSpecial: false),
            JsonArray a when a.Count > 0 && a.All(x => x is JsonValue xv && xv.TryGetValue(out int _)) => a.Select(x => x!.GetValue<int>()).ToArray(),
            _ => throw ApiException.BadRequest("'prompt' must be a string or an array of token ids", "prompt"),
        };
        var generation = ParseGeneration(r, defaultMaxTokens: 16);
        var stop = r.Strings("stop");
        bool stream = r.Bool("stream") ?? false;
        string id = "cmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var ct = context.RequestAborted;
        if (stream)
        {
            var sse = await Sse.StartAsync(context);
            await foreach (var e in service.CompleteAsync(prompt, generation, stop, ct))
            {
                if (e is ChatOutput { Piece: ContentDelta d })
                    await sse.DataAsync(CompletionChunk(id, created, d.Text, null), ct);
                else if (e is ChatCompleted c)
                {
                    metrics.RecordRequest(c.Usage);
                    await sse.DataAsync(CompletionChunk(id, created, "", c.FinishReason), ct);
                }
            }
            await sse.DoneAsync(ct);
            return;
        }
        var text = new StringBuilder();
        ChatCompleted? done = null;
        await foreach (var e in service.CompleteAsync(prompt, generation, stop, ct))
        {
            if (e is ChatOutput { Piece: ContentDelta d }) text.Append(d.Text);
            else if (e is ChatCompleted c) { done = c; metrics.RecordRequest(c.Usage); }
        }
        await Json(context, 200, new JsonObject
        {
            ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = service.ModelId,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text.ToString(), ["index"] = 0, ["logprobs"] = null, ["finish_reason"] = done!.FinishReason }),
            ["usage"] = Usage(done.Usage.PromptTokens, done.Usage.CompletionTokens, done.Usage.CachedTokens),
        });
    }

    private JsonObject CompletionChunk(string id, long created, string text, string? finish) => new()
    {
        ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = service.ModelId,
        ["choices"] = new JsonArray(new JsonObject { ["text"] = text, ["index"] = 0, ["logprobs"] = null, ["finish_reason"] = finish }),
    };

    /// <summary>GET /v1/models.</summary>
    public Task Models(HttpContext context) => Json(context, 200, new JsonObject
    {
        ["object"] = "list",
        ["data"] = new JsonArray(new JsonObject
        {
            ["id"] = service.ModelId, ["object"] = "model", ["created"] = 0, ["owned_by"] = "kimisharp",
            ["max_model_len"] = service.Model.Config.MaxPositionEmbeddings,
        }),
    });

    /// <summary>POST /tokenize: a prompt string, or chat messages rendered through the template (vLLM's shape).</summary>
    public async Task Tokenize(HttpContext context)
    {
        var r = await RequestReader.ReadAsync(context.Request, context.RequestAborted);
        RequireModel(r.String("model"));
        IReadOnlyList<int> tokens;
        if (r.Has("messages"))
        {
            var chat = ParseChat(r, out _, out _, out _);
            tokens = service.Tokenizer.Encode(service.RenderPrompt(chat, r.Bool("add_generation_prompt") ?? true), allowSpecial: true);
        }
        else
        {
            string prompt = r.String("prompt") ?? throw ApiException.BadRequest("'prompt' or 'messages' is required", "prompt");
            tokens = service.Tokenizer.Encode(prompt, allowSpecial: r.Bool("add_special_tokens") ?? false);
        }
        await Json(context, 200, new JsonObject
        {
            ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t).ToArray()), ["count"] = tokens.Count,
            ["max_model_len"] = service.Model.Config.MaxPositionEmbeddings,
        });
    }

    /// <summary>POST /detokenize.</summary>
    public async Task Detokenize(HttpContext context)
    {
        var r = await RequestReader.ReadAsync(context.Request, context.RequestAborted);
        RequireModel(r.String("model"));
        var tokens = r.Array("tokens") ?? throw ApiException.BadRequest("'tokens' is required", "tokens");
        var ids = new int[tokens.Count];
        for (int i = 0; i < ids.Length; i++)
            if (tokens[i] is not JsonValue v || !v.TryGetValue(out ids[i]) || ids[i] < 0 || ids[i] >= service.Tokenizer.VocabSize)
                throw ApiException.BadRequest($"tokens[{i}] is not a token id of this model (0…{service.Tokenizer.VocabSize - 1})", "tokens");
        await Json(context, 200, new JsonObject { ["prompt"] = service.Tokenizer.Decode(ids) });
    }

    public static async Task Json(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ApiJson.Write(body), context.RequestAborted);
    }
}
