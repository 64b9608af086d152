using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Client.Tests;

/// <summary>A request the stub received: its parsed body and Authorization header.</summary>
public sealed record StubRequest(JsonObject Body, string? Authorization)
{
    public JsonArray Messages => Body["messages"]!.AsArray();
}

/// <summary>
/// A chat-completions endpoint on a free loopback port whose answers each test scripts: the handler gets the
/// request's number (0 first), its body, and the response to write.
/// </summary>
public sealed class StubEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<StubRequest> _requests = new();
    private int _count;

    public string BaseUrl { get; }
    public IReadOnlyList<StubRequest> Requests => _requests.ToArray();
    public int RequestCount => Volatile.Read(ref _count);

    private StubEndpoint(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public static async Task<StubEndpoint> StartAsync(Func<int, StubRequest, HttpContext, Task> handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        StubEndpoint? stub = null;
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            var body = (JsonObject)(await JsonNode.ParseAsync(context.Request.Body))!;
            var request = new StubRequest(body, context.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null);
            stub!._requests.Enqueue(request);
            int number = Interlocked.Increment(ref stub._count) - 1;
            try { await handler(number, request, context); }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested) { }
        });
        await app.StartAsync();
        stub = new StubEndpoint(app, app.Urls.First() + "/v1");
        return stub;
    }

    public OpenAICompatibleChatClient Client(Func<OpenAICompatibleClientOptions, OpenAICompatibleClientOptions>? configure = null, ILogger? logger = null)
    {
        var options = new OpenAICompatibleClientOptions
        {
            BaseUrl = BaseUrl, Model = "kimi-k2-thinking", ApiKey = "sk-test",
            InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromSeconds(2), RequestTimeout = TimeSpan.FromSeconds(10),
        };
        return new OpenAICompatibleChatClient(configure is null ? options : configure(options), logger: logger);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    // Writers for the handlers.

    public static async Task Sse(HttpContext context, params object[] chunks)
    {
        if (!context.Response.HasStarted) context.Response.ContentType = "text/event-stream";
        foreach (var chunk in chunks)
        {
            string data = chunk as string ?? JsonSerializer.Serialize(chunk);
            await context.Response.WriteAsync($"data: {data}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    public static Task Error(HttpContext context, int status, string message, string? retryAfter = null)
    {
        context.Response.StatusCode = status;
        if (retryAfter is not null) context.Response.Headers.RetryAfter = retryAfter;
        return context.Response.WriteAsJsonAsync(new { error = new { message, type = "invalid_request_error" } });
    }

    public static object Chunk(object delta, string? finish = null, object? choiceUsage = null) => new Dictionary<string, object?>
    {
        ["id"] = "chatcmpl-stub", ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = "kimi-k2-thinking",
        ["choices"] = new[]
        {
            choiceUsage is null
                ? new Dictionary<string, object?> { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }
                : new Dictionary<string, object?> { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish, ["usage"] = choiceUsage },
        },
    };

    public static object UsageChunk(object usage) => new Dictionary<string, object?>
    {
        ["id"] = "chatcmpl-stub", ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = "kimi-k2-thinking",
        ["choices"] = Array.Empty<object>(), ["usage"] = usage,
    };

    /// <summary>A plain answer: reasoning, text, stop, usage, [DONE].</summary>
    public static Task Answer(HttpContext context, string text, string reasoning = "Easy.") => Sse(context,
        Chunk(new { role = "assistant", content = "" }),
        Chunk(new { reasoning_content = reasoning }),
        Chunk(new { content = text }),
        Chunk(new { }, "stop"),
        UsageChunk(new { prompt_tokens = 10, completion_tokens = 5, total_tokens = 15 }),
        "[DONE]");

    /// <summary>One tool call streamed K2-style: id and name first, then the arguments in pieces.</summary>
    public static Task ToolCall(HttpContext context, string? id, string name, params string[] argumentPieces)
    {
        var chunks = new List<object> { Chunk(new { role = "assistant", content = "" }), Chunk(new { reasoning_content = "I should call a tool." }) };
        var head = new Dictionary<string, object?> { ["index"] = 0, ["type"] = "function", ["function"] = new { name, arguments = "" } };
        if (id is not null) head["id"] = id;
        chunks.Add(Chunk(new { tool_calls = new[] { head } }));
        foreach (var piece in argumentPieces)
            chunks.Add(Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = piece } } } }));
        chunks.Add(Chunk(new { }, "tool_calls"));
        chunks.Add(UsageChunk(new { prompt_tokens = 20, completion_tokens = 8, total_tokens = 28 }));
        chunks.Add("[DONE]");
        return Sse(context, chunks.ToArray());
    }

    public static string Text(JsonNode? node) => node?.GetValue<string>() ?? "";
}
