using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Layers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Server;

/// <summary>Where and how the server listens.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (see <see cref="KimiServer.Urls"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every request but GET /health needs it as a Bearer token or x-api-key header.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Serve the browser chat UI at / (and POST /v1/agent/chat, GET /v1/ui/config); <c>kimi serve --no-ui</c> turns it off.</summary>
    public bool ServeUi { get; init; } = true;
    /// <summary>
    /// Largest body of /v1/chat/completions, /v1/completions and /v1/messages (413 beyond). Inline images count: a
    /// base64 data URL is 4/3 of the image file (<c>kimi serve</c> raises the default to 64 MiB for a model with a vision tower).
    /// </summary>
    public int MaxRequestBodyBytes { get; init; } = DefaultMaxRequestBodyBytes;

    public const int DefaultMaxRequestBodyBytes = 4 << 20;

    /// <summary>The default body limit for a model that reads images and video.</summary>
    public const int DefaultVisionMaxRequestBodyBytes = 64 << 20;
    /// <summary>Largest body of /tokenize and /detokenize (413 beyond): bounds the tokenizer's memory per request.</summary>
    public int MaxTokenizeBodyBytes { get; init; } = 1 << 20;
    /// <summary>The Retry-After of a 429: a queue slot frees whenever any running request finishes.</summary>
    public int RetryAfterSeconds { get; init; } = 1;
}

/// <summary>
/// An OpenAI- and Anthropic-compatible HTTP server over a <see cref="KimiChatService"/>:
/// /v1/chat/completions, /v1/completions, /v1/models, /v1/messages, /tokenize, /detokenize, /health, /metrics.
/// </summary>
public sealed class KimiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    /// <summary>
    /// The only paths served without the API key. A web UI's static page may be added here; its API calls go to the
    /// keyed endpoints like any other client's.
    /// </summary>
    private static readonly PathString[] s_openPaths = ["/health"];

    public KimiChatService Service { get; }
    public ServerMetrics Metrics { get; } = new();

    /// <summary>Whether the web chat UI is served at /.</summary>
    public bool ServesUi { get; }

    /// <summary>The addresses the server listens on, once started.</summary>
    public IReadOnlyList<string> Urls => _app.Urls.ToArray();

    public KimiServer(KimiChatService service, ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        Service = service;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (configureLogging is not null) configureLogging(builder.Logging);
        else builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        // Kestrel's own cap (30 MB by default) would cut a larger configured limit short with a bare 413; ours, checked
        // first, names the limit. The cap stays at least Kestrel's default so a body just over ours still gets our answer.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize =
            Math.Max(30_000_000L, (long)Math.Max(options.MaxRequestBodyBytes, options.MaxTokenizeBodyBytes) + (64 << 10)));
        _app = builder.Build();

        var logger = _app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("KimiSharp.Server");
        var openAi = new OpenAiApi(service, Metrics, options);
        var anthropic = new AnthropicApi(service, openAi, Metrics, options);

        _app.Use(async (context, next) =>
        {
            var stopwatch = Stopwatch.StartNew();
            bool anthropicShape = context.Request.Path.StartsWithSegments("/v1/messages");
            try
            {
                // The UI's static page and assets load without a key (it asks for one); every API call it makes is keyed.
                bool open = s_openPaths.Contains(context.Request.Path) || (options.ServeUi && WebUi.IsUiPath(context.Request.Path));
                if (options.ApiKey is not null && !open && !Authorized(context, options.ApiKey))
                    throw new ApiException(401, "authentication_error", "invalid or missing API key (send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY')", code: "invalid_api_key");
                await next(context);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away; cancellation has already freed its engine slot.
            }
            catch (Exception e)
            {
                var error = Translate(e);
                if (error.Status >= 500) logger.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
                await WriteError(context, error, anthropicShape, options.RetryAfterSeconds);
            }
            Metrics.RecordResponse(context.Response.StatusCode);
            logger.LogInformation("{Method} {Path} {Status} {Ms:F0} ms", context.Request.Method, context.Request.Path,
                context.Response.StatusCode, stopwatch.Elapsed.TotalMilliseconds);
        });

        _app.MapPost("/v1/chat/completions", openAi.ChatCompletions);
        _app.MapPost("/v1/completions", openAi.Completions);
        _app.MapGet("/v1/models", openAi.Models);
        _app.MapPost("/v1/messages", anthropic.Messages);
        _app.MapPost("/tokenize", openAi.Tokenize);
        _app.MapPost("/detokenize", openAi.Detokenize);
        ServesUi = options.ServeUi;
        if (options.ServeUi)
        {
            _app.MapPost("/v1/agent/chat", new AgentEndpoint(service).Chat);
            WebUi.Map(_app, service, options);
        }
        _app.MapGet("/health", (HttpContext c) => OpenAiApi.Json(c, 200, new JsonObject { ["status"] = "ok", ["model"] = service.ModelId }));
        _app.MapGet("/metrics", (HttpContext c) =>
        {
            c.Response.ContentType = "text/plain; version=0.0.4";
            return c.Response.WriteAsync(Metrics.Render(service.Engine.Statistics.Snapshot()));
        });
        _app.MapFallback((HttpContext c) => throw new ApiException(404, "invalid_request_error", $"no route for {c.Request.Method} {c.Request.Path}", code: "not_found"));
    }

    private static bool Authorized(HttpContext context, string key)
    {
        string? bearer = context.Request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? auth[7..].Trim() : null;
        string? header = context.Request.Headers["x-api-key"].ToString() is { Length: > 0 } x ? x : null;
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                   System.Text.Encoding.UTF8.GetBytes(bearer ?? header ?? ""), System.Text.Encoding.UTF8.GetBytes(key));
    }

    private static ApiException Translate(Exception e) => e switch
    {
        ApiException api => api,
        ContextLengthExceededException c => new ApiException(400, "invalid_request_error", c.Message, "messages", "context_length_exceeded"),
        RequestTooLargeException t => new ApiException(400, "invalid_request_error", t.Message, "max_tokens", "request_too_large"),
        EngineBusyException b => new ApiException(429, "rate_limit_error", b.Message, code: "rate_limit_exceeded"),
        ChatMediaException m => new ApiException(400, "invalid_request_error", m.Message, "messages", "invalid_image"),
        ArgumentException a => ApiException.BadRequest(a.Message),
        Microsoft.AspNetCore.Http.BadHttpRequestException b => new ApiException(b.StatusCode, "invalid_request_error", b.Message),
        _ => new ApiException(500, "server_error", "internal error: " + e.Message),
    };

    private static async Task WriteError(HttpContext context, ApiException error, bool anthropicShape, int retryAfterSeconds)
    {
        var body = anthropicShape ? ApiErrors.Anthropic(error) : ApiErrors.OpenAi(error);
        if (context.Response.HasStarted)
        {
            // Mid-stream: the status is already sent, so report the error as a final event.
            string frame = anthropicShape ? $"event: error\ndata: {ApiJson.Write(body)}\n\n" : $"data: {ApiJson.Write(body)}\n\n";
            try { await context.Response.WriteAsync(frame); } catch (Exception) { /* client gone */ }
            return;
        }
        context.Response.Clear();
        if (error.Status == 429) context.Response.Headers.RetryAfter = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await OpenAiApi.Json(context, error.Status, body);
    }

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    /// <summary>Returns when the host is asked to stop (Ctrl+C, SIGTERM) or <paramref name="cancellationToken"/> fires.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) =>
        Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
