using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Server.Protocol;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Server;

/// <summary>The OpenAI-compatible endpoints: chat completions, completions, models, tokenize/detokenize.</summary>
internal sealed partial class OpenAiApi(KimiChatService service, ServerMetrics metrics, ServerOptions options)
{
    /// <summary>POST /v1/chat/completions.</summary>
    public async Task ChatCompletions(HttpContext context)
    {
        var body = await ProtocolJson.ReadBodyAsync(context.Request, options.MaxRequestBodyBytes, context.RequestAborted);
        var chat = ParseChat(ProtocolJson.Parse(body, ProtocolJsonContext.Default.ChatCompletionRequest));
        var request = chat.Request;
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var runs = Enumerable.Range(0, chat.N).Select(i => i == 0 || request.Generation.Seed is null
            ? request : request with { Generation = request.Generation with { Seed = request.Generation.Seed + i } }).ToArray();
        using var admission = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var streams = Admission.Start(runs, service.ChatAsync, admission);
        if (chat.Stream) await StreamChat(context, runs, streams, id, created, chat.IncludeUsage);
        else await CompleteChat(context, runs, streams, id, created);
    }

    private async Task CompleteChat(HttpContext context, ChatRequest[] runs, IAsyncEnumerable<ChatEvent>[] streams, string id, long created)
    {
        var results = await Task.WhenAll(runs.Select((run, i) => Collect(run, streams[i])));
        var choices = new JsonArray();
        int prompt = 0, completion = 0, cached = 0, images = 0;
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
                ["finish_reason"] = FinishReasons.OpenAi(done.FinishReason),
            });
            prompt = done.Usage.PromptTokens;
            images = done.Usage.ImageTokens;
            completion += done.Usage.CompletionTokens;
            cached = Math.Max(cached, done.Usage.CachedTokens);
        }
        var body = new JsonObject
        {
            ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = service.ModelId,
            ["choices"] = choices, ["usage"] = Usage(prompt, completion, cached, images), ["system_fingerprint"] = "kimisharp",
        };
        await Json(context, 200, body);
    }

    private async Task<(ParsedOutput Output, ChatCompleted Done, JsonArray? Logprobs)> Collect(ChatRequest request, IAsyncEnumerable<ChatEvent> stream)
    {
        var pieces = new List<ParserEvent>();
        ChatCompleted? done = null;
        JsonArray? logprobs = request.Generation.Logprobs ? [] : null;
        await foreach (var e in stream)
            switch (e)
            {
                case ChatOutput o: pieces.Add(o.Piece); break;
                case ChatToken t: logprobs?.Add(LogprobEntry(t)); break;
                case ChatCompleted c: done = c; metrics.RecordRequest(c.Usage); break;
            }
        pieces.Add(new End(done!.FinishReason));
        return (ParsedOutput.FromEvents(pieces), done, logprobs);
    }

    private static JsonObject LogprobEntry(ChatToken t) => new()
    {
        ["token"] = t.Text, ["logprob"] = t.Logprob, ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(t.Text).Select(b => (JsonNode)(int)b).ToArray()),
        ["top_logprobs"] = new JsonArray((t.TopLogprobs ?? []).Select(x => (JsonNode)new JsonObject { ["token"] = x.Text, ["logprob"] = x.Logprob }).ToArray()),
    };

    /// <summary>OpenAI's usage object; image feature tokens (part of prompt_tokens) are named in prompt_tokens_details when there are any.</summary>
    private static JsonObject Usage(int prompt, int completion, int cached, int images)
    {
        var details = new JsonObject { ["cached_tokens"] = cached };
        if (images > 0) details["image_tokens"] = images;
        return new JsonObject
        {
            ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion,
            ["prompt_tokens_details"] = details,
        };
    }

    private async Task StreamChat(HttpContext context, ChatRequest[] runs, IAsyncEnumerable<ChatEvent>[] streams, string id, long created, bool includeUsage)
    {
        var ct = context.RequestAborted;
        var sse = await Sse.StartAsync(context);
        var gate = new SemaphoreSlim(1);
        int prompt = 0, completion = 0, cached = 0, images = 0;

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
            await foreach (var e in streams[index])
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
                        Interlocked.Exchange(ref images, c.Usage.ImageTokens);
                        Interlocked.Add(ref completion, c.Usage.CompletionTokens);
                        Interlocked.Exchange(ref cached, Math.Max(cached, c.Usage.CachedTokens));
                        await Send(new JsonObject(), index, FinishReasons.OpenAi(c.FinishReason));
                        break;
                }
        }

        await Task.WhenAll(runs.Select((run, i) => Run(run, i)));
        if (includeUsage)
            await sse.DataAsync(new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = service.ModelId,
                ["choices"] = new JsonArray(), ["usage"] = Usage(prompt, completion, cached, images),
            }, ct);
        await sse.DoneAsync(ct);
    }

    /// <summary>POST /v1/completions: raw text completion.</summary>
    public async Task Completions(HttpContext context)
    {
        var body = await ProtocolJson.ReadBodyAsync(context.Request, options.MaxRequestBodyBytes, context.RequestAborted);
        var r = ProtocolJson.Parse(body, ProtocolJsonContext.Default.CompletionRequest);
        RequireModel(r.Model);
        var prompt = Prompt(r.Prompt);
        var generation = Generation(r, defaultMaxTokens: 16);
        var stop = Fields.Strings(r.Stop, "stop");
        string id = "cmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var admission = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var events = Admission.Start([prompt], (p, ct) => service.CompleteAsync(p, generation, stop, ct), admission)[0];
        var ct = admission.Token;
        if (r.Stream ?? false)
        {
            var sse = await Sse.StartAsync(context);
            await foreach (var e in events)
            {
                if (e is ChatOutput { Piece: ContentDelta d })
                    await sse.DataAsync(CompletionChunk(id, created, d.Text, null), ct);
                else if (e is ChatCompleted c)
                {
                    metrics.RecordRequest(c.Usage);
                    await sse.DataAsync(CompletionChunk(id, created, "", FinishReasons.OpenAi(c.FinishReason)), ct);
                }
            }
            await sse.DoneAsync(ct);
            return;
        }
        var text = new StringBuilder();
        ChatCompleted? done = null;
        await foreach (var e in events)
        {
            if (e is ChatOutput { Piece: ContentDelta d }) text.Append(d.Text);
            else if (e is ChatCompleted c) { done = c; metrics.RecordRequest(c.Usage); }
        }
        await Json(context, 200, new JsonObject
        {
            ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = service.ModelId,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text.ToString(), ["index"] = 0, ["logprobs"] = null, ["finish_reason"] = FinishReasons.OpenAi(done!.FinishReason) }),
            ["usage"] = Usage(done.Usage.PromptTokens, done.Usage.CompletionTokens, done.Usage.CachedTokens, 0),
        });
    }

    /// <summary>A completions prompt: a string, or token ids of this model.</summary>
    private IReadOnlyList<int> Prompt(JsonElement? prompt)
    {
        if (prompt is JsonElement { ValueKind: JsonValueKind.String } text) return service.Tokenizer.Encode(text.GetString()!, allowSpecial: false);
        if (prompt is not JsonElement { ValueKind: JsonValueKind.Array } array || array.GetArrayLength() == 0)
            throw ApiException.BadRequest("prompt must be a string or a non-empty array of token ids", "prompt");
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]) || ids[i] < 0 || ids[i] >= service.Tokenizer.VocabSize)
                throw ApiException.BadRequest($"prompt[{i}] is not a token id of this model (0…{service.Tokenizer.VocabSize - 1})", $"prompt[{i}]");
            i++;
        }
        return ids;
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
        var body = await ProtocolJson.ReadBodyAsync(context.Request, options.MaxTokenizeBodyBytes, context.RequestAborted);
        var r = ProtocolJson.Parse(body, ProtocolJsonContext.Default.TokenizeRequest);
        RequireModel(r.Model);
        IReadOnlyList<int> tokens;
        if (r.Messages is not null)
        {
            var chat = ParseChat(r);
            tokens = service.Tokenizer.Encode(service.RenderPrompt(chat.Request, r.AddGenerationPrompt ?? true), allowSpecial: true);
        }
        else
        {
            string prompt = r.Prompt ?? throw ApiException.BadRequest("prompt or messages is required", "prompt");
            tokens = service.Tokenizer.Encode(prompt, allowSpecial: r.AddSpecialTokens ?? false);
        }
        // Written straight out: a JsonNode per token would cost ~100 bytes each.
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteStartArray("tokens");
        foreach (int t in tokens) writer.WriteNumberValue(t);
        writer.WriteEndArray();
        writer.WriteNumber("count", tokens.Count);
        writer.WriteNumber("max_model_len", service.Model.Config.MaxPositionEmbeddings);
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    /// <summary>POST /detokenize.</summary>
    public async Task Detokenize(HttpContext context)
    {
        var body = await ProtocolJson.ReadBodyAsync(context.Request, options.MaxTokenizeBodyBytes, context.RequestAborted);
        var r = ProtocolJson.Parse(body, ProtocolJsonContext.Default.DetokenizeRequest);
        RequireModel(r.Model);
        var tokens = r.Tokens ?? throw ApiException.BadRequest("tokens is required", "tokens");
        var ids = new int[tokens.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (tokens[i] is not long id || id < 0 || id >= service.Tokenizer.VocabSize)
                throw ApiException.BadRequest($"tokens[{i}] is not a token id of this model (0…{service.Tokenizer.VocabSize - 1})", $"tokens[{i}]");
            ids[i] = (int)id;
        }
        await Json(context, 200, new JsonObject { ["prompt"] = service.Tokenizer.Decode(ids) });
    }

    public static async Task Json(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ApiJson.Write(body), context.RequestAborted);
    }
}
