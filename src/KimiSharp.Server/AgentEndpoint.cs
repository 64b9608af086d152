using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Layers;

namespace KimiSharp.Server;

/// <summary>
/// POST /v1/agent/chat: runs the conversation's last user turn through the agent loop (<see cref="AgentRunner"/> with the
/// built-in tools, as <c>kimi chat</c> does) on the server and streams what happens as server-sent events:
/// <c>reasoning</c>, <c>answer</c> (content pieces), <c>tool_call</c>, <c>tool_result</c>, <c>usage</c>, <c>done</c>
/// (with the turn's new messages, for the next request), or <c>error</c>.
/// </summary>
internal sealed class AgentEndpoint(KimiChatService service)
{
    /// <summary>Per-step token limit and step cap when the request names none (k2-nano's steps are short).</summary>
    public const int DefaultMaxTokensPerStep = 384, DefaultMaxSteps = 32, MaxStepsLimit = 400;
    private static readonly HashSet<string> s_roles = ["system", "user", "assistant", "tool"];

    public async Task Chat(HttpContext context)
    {
        var ct = context.RequestAborted;
        var (conversation, options) = await ParseAsync(context.Request, ct);
        conversation = CurrentTask(conversation);
        var runner = new AgentRunner(new KimiChatClient(service), Toolbox.CreateDefault().AsFunctions(), options);
        var meter = new Meter();

        // The first event is awaited before the stream starts, so a refusal (busy, context too long) still gets its
        // HTTP status and JSON error body instead of a 200 stream.
        await using var events = runner.RunAsync(conversation, ct).GetAsyncEnumerator(ct);
        bool any = await events.MoveNextAsync();
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(ct);
        try
        {
            while (any)
            {
                await WriteEvent(response, events.Current, meter, conversation.Count, ct);
                any = await events.MoveNextAsync();
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            var error = e as ApiException ?? new ApiException(
                e is ContextLengthExceededException ? 400 : e is EngineBusyException ? 429 : 500,
                e is EngineBusyException ? "rate_limit_error" : e is ContextLengthExceededException ? "invalid_request_error" : "server_error",
                e.Message, code: e is ContextLengthExceededException ? "context_length_exceeded" : null);
            await Frame(response, "error", new JsonObject
            {
                ["error"] = new JsonObject { ["message"] = error.Message, ["type"] = error.Type, ["code"] = error.Code ?? error.Type, ["status"] = error.Status },
            }, ct);
        }
    }

    private static async Task WriteEvent(HttpResponse response, AgentEvent e, Meter model, int inputCount, CancellationToken ct)
    {
        switch (e)
        {
            case AgentEvent.StepCompleted step:
                model.Add(step.Usage);
                break;
            case AgentEvent.ReasoningDelta r:
                await Frame(response, "reasoning", new JsonObject { ["text"] = r.Text }, ct);
                break;
            case AgentEvent.ContentDelta c:
                await Frame(response, "answer", new JsonObject { ["text"] = c.Text }, ct);
                break;
            case AgentEvent.ToolCalled call:
                await Frame(response, "tool_call", new JsonObject { ["id"] = call.Id, ["name"] = call.Name, ["arguments"] = call.Arguments }, ct);
                break;
            case AgentEvent.ToolReturned ret:
                await Frame(response, "tool_result", new JsonObject
                {
                    ["id"] = ret.Id, ["name"] = ret.Name, ["content"] = ret.Content, ["is_error"] = ret.IsError,
                }, ct);
                break;
            case AgentEvent.Finished f:
                await Frame(response, "usage", new JsonObject
                {
                    ["prompt_tokens"] = model.PromptTokens, ["completion_tokens"] = model.CompletionTokens,
                    ["total_tokens"] = model.PromptTokens + model.CompletionTokens,
                    ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = model.CachedTokens },
                    ["steps"] = f.Result.Steps,
                }, ct);
                var added = new JsonArray();
                for (int i = inputCount; i < f.Result.Messages.Count; i++) added.Add(f.Result.Messages[i]!.DeepClone());
                await Frame(response, "done", new JsonObject
                {
                    ["stop_reason"] = f.Result.StopReason, ["answer"] = f.Result.FinalAnswer, ["tool_calls"] = f.Result.ToolCalls,
                    ["messages"] = added,
                }, ct);
                break;
        }
    }

    /// <summary>
    /// What the agent sees: the system messages and the conversation from its last user message on. k2-nano was
    /// trained on one task per conversation; earlier tasks' tool steps in its prompt get copied into the new answer.
    /// </summary>
    internal static JsonArray CurrentTask(JsonArray conversation)
    {
        int lastUser = -1;
        for (int i = 0; i < conversation.Count; i++)
            if (AgentMessages.Role(conversation[i]) == "user") lastUser = i;
        var task = new JsonArray();
        for (int i = 0; i < conversation.Count; i++)
            if (i >= lastUser || AgentMessages.Role(conversation[i]) == "system") task.Add(conversation[i]!.DeepClone());
        return task;
    }

    private static async Task Frame(HttpResponse response, string name, JsonObject data, CancellationToken ct)
    {
        await response.WriteAsync($"event: {name}\ndata: {ApiJson.Write(data)}\n\n", ct);
        await response.Body.FlushAsync(ct);
    }

    /// <summary>Reads and checks the body: messages (OpenAI shape), max_tokens (per step), temperature, top_p, seed, max_steps, thinking.</summary>
    private async Task<(JsonArray Conversation, AgentOptions Options)> ParseAsync(
        HttpRequest request, CancellationToken ct)
    {
        JsonNode? node;
        try { node = await JsonNode.ParseAsync(request.Body, cancellationToken: ct); }
        catch (JsonException e) { throw ApiException.BadRequest($"the request body is not valid JSON: {e.Message}"); }
        if (node is not JsonObject body) throw ApiException.BadRequest("the request body must be a JSON object");
        if (body["model"] is JsonNode m && !(m is JsonValue mv && mv.TryGetValue(out string? name) && name == service.ModelId))
            throw new ApiException(404, "invalid_request_error", $"the model '{m.ToJsonString()}' does not exist; this server serves '{service.ModelId}'", "model", "model_not_found");
        if (body["messages"] is not JsonArray messages || messages.Count == 0)
            throw ApiException.BadRequest("'messages' must be a non-empty array", "messages");
        int lastUser = -1;
        for (int i = 0; i < messages.Count; i++)
        {
            string? role = messages[i] is JsonObject o && o["role"] is JsonValue rv && rv.TryGetValue(out string? r) ? r : null;
            if (role is null || !s_roles.Contains(role))
                throw ApiException.BadRequest($"messages[{i}] needs a role of system, user, assistant or tool", $"messages[{i}].role");
            if (role == "user") lastUser = i;
        }
        if (lastUser < 0) throw ApiException.BadRequest("'messages' needs a user message for the agent to answer", "messages");

        int maxTokens = Integer(body, "max_tokens") ?? DefaultMaxTokensPerStep;
        if (maxTokens < 1) throw ApiException.BadRequest($"max_tokens must be at least 1; got {maxTokens}", "max_tokens");
        int maxSteps = Integer(body, "max_steps") ?? DefaultMaxSteps;
        if (maxSteps is < 1 or > MaxStepsLimit) throw ApiException.BadRequest($"max_steps must be between 1 and {MaxStepsLimit}; got {maxSteps}", "max_steps");
        double temperature = Number(body, "temperature") ?? 0;
        if (temperature is < 0 or > 2) throw ApiException.BadRequest(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"temperature must be between 0 and 2; got {temperature}"), "temperature");
        double topP = Number(body, "top_p") ?? 1;
        if (topP is <= 0 or > 1) throw ApiException.BadRequest(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"top_p must be in (0, 1]; got {topP}"), "top_p");
        var generation = new GenerationOptions { Temperature = (float)temperature, TopP = (float)topP, Seed = Integer(body, "seed"), MaxTokens = maxTokens };
        try { generation.Validate(); }
        catch (ArgumentException e) { throw ApiException.BadRequest(e.Message); }
        bool? thinkingOn = null;
        if (body["thinking"] is JsonNode thinking)
        {
            if (thinking is not JsonValue tv || !tv.TryGetValue(out bool on)) throw ApiException.BadRequest("'thinking' must be true or false", "thinking");
            thinkingOn = on;
        }
        var options = new AgentOptions
        {
            Sampling = new Microsoft.Extensions.AI.ChatOptions { Temperature = generation.Temperature, TopP = generation.TopP, Seed = generation.Seed },
            MaxTokensPerStep = maxTokens, MaxSteps = maxSteps, Thinking = thinkingOn,
        };
        return ((JsonArray)messages.DeepClone(), options);
    }

    private static double? Number(JsonObject body, string name) => body[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        _ => throw ApiException.BadRequest($"'{name}' must be a number", name),
    };

    private static int? Integer(JsonObject body, string name)
    {
        double? d = Number(body, name);
        if (d is null) return null;
        if (d != Math.Floor(d.Value) || d is > int.MaxValue or < int.MinValue) throw ApiException.BadRequest($"'{name}' must be an integer", name);
        return (int)d.Value;
    }

    /// <summary>Token counts of the run's steps, added up for the usage event.</summary>
    private sealed class Meter
    {
        public long PromptTokens { get; private set; }
        public long CachedTokens { get; private set; }
        public long CompletionTokens { get; private set; }

        public void Add(StepUsage usage)
        {
            PromptTokens += usage.InputTokens;
            CachedTokens += usage.CachedInputTokens;
            CompletionTokens += usage.OutputTokens;
        }
    }
}
