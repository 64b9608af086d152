using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Client;

/// <summary>
/// <see cref="IChatClient"/> for OpenAI-compatible chat-completions endpoints (Moonshot's platform, vLLM, SGLang,
/// llama.cpp, <c>kimi serve</c>), written on <see cref="HttpClient"/> so that Kimi's <c>reasoning_content</c> survives in
/// both directions: it arrives as <see cref="TextReasoningContent"/> and goes back with the assistant's tool calls.
/// Always streams; <see cref="GetResponseAsync"/> gathers the stream. Retries 408, 429, 5xx, timeouts and broken
/// connections with exponential backoff until the first update reaches the caller, never after.
/// </summary>
public sealed partial class OpenAICompatibleChatClient : IChatClient
{
    private readonly OpenAICompatibleClientOptions _options;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly ILogger _logger;
    private readonly Uri _endpoint;
    private readonly ChatClientMetadata _metadata;

    /// <param name="options">Where to send requests and how to retry them.</param>
    /// <param name="http">A client to send with (its handler, proxy, certificates); one of our own when null.</param>
    /// <param name="logger">Receives a warning for every retry.</param>
    public OpenAICompatibleChatClient(OpenAICompatibleClientOptions options, HttpClient? http = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Uri.TryCreate(options.BaseUrl, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"BaseUrl '{options.BaseUrl}' is not an absolute http(s) URL such as https://api.moonshot.ai/v1", nameof(options));
        if (string.IsNullOrWhiteSpace(options.Model)) throw new ArgumentException("Model must name the model to ask for", nameof(options));
        if (options.MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxRetries, "MaxRetries must be 0 or more");
        if (options.InitialBackoff < TimeSpan.Zero || options.MaxBackoff < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), "InitialBackoff and MaxBackoff must not be negative");
        if (options.RequestTimeout <= TimeSpan.Zero && options.RequestTimeout != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(options), options.RequestTimeout, "RequestTimeout must be positive (or infinite)");

        _options = options;
        _endpoint = new Uri(options.BaseUrl.TrimEnd('/') + "/chat/completions");
        // Our own client leaves timing to RequestTimeout, which bounds silence rather than the whole answer.
        _http = http ?? new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        _ownsHttp = http is null;
        _logger = logger ?? NullLogger.Instance;
        _metadata = new ChatClientMetadata("openai-compatible", baseUri, options.Model);
    }

    /// <summary>The options this client was built with.</summary>
    public OpenAICompatibleClientOptions Options => _options;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var history = messages as IReadOnlyCollection<ChatMessage> ?? messages.ToList();
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(ChatRequestBuilder.Build(history, options, _options));
        int toolCallOffset = history.Sum(m => m.Contents.OfType<FunctionCallContent>().Count());

        var (stream, first) = await OpenAsync(body, toolCallOffset, cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var update in first) yield return update;
            while (await ReadMidStreamAsync(stream).ConfigureAwait(false) is { } batch)
                foreach (var update in batch) yield return update;
        }
        finally
        {
            stream.Dispose();
        }
    }

    /// <summary>
    /// Sends the request until an attempt gives its first updates (or ends cleanly without any), retrying what is
    /// worth retrying; past this point the caller has seen output and a failure can only be reported.
    /// </summary>
    private async Task<(ResponseStream Stream, List<ChatResponseUpdate> First)> OpenAsync(byte[] body, int toolCallOffset, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            bool canRetry = attempt < _options.MaxRetries;
            ResponseStream? stream = null;
            Failure failure;
            try
            {
                stream = await SendAsync(body, toolCallOffset, cancellationToken).ConfigureAwait(false);
                if (stream.ErrorStatus is { } status)
                {
                    string errorBody = await stream.ReadBodyAsync().ConfigureAwait(false);
                    if (!IsRetryable(status) || !canRetry) throw ChatEndpointException.FromStatus(status, errorBody, attempt + 1);
                    failure = new Failure($"{(int)status} ({status}): {ChatEndpointException.ServerMessageOf(errorBody)}", RetryAfter(stream.Response));
                }
                else
                {
                    var first = await stream.ReadBatchAsync().ConfigureAwait(false) ?? [];
                    return (stream, first);
                }
            }
            catch (Exception e) when (Transient(e, stream?.Idle) is { } reason)
            {
                stream?.Dispose();
                if (!canRetry) throw Exhausted(reason, e, attempt + 1);
                failure = new Failure(reason, null);
            }
            catch
            {
                stream?.Dispose();
                throw;
            }
            stream?.Dispose();

            var delay = Backoff(attempt, failure.RetryAfter);
            LogRetry(_logger, _endpoint, failure.Reason, attempt + 1, _options.MaxRetries, (long)delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
    }

    private sealed record Failure(string Reason, TimeSpan? RetryAfter);

    private async Task<ResponseStream> SendAsync(byte[] body, int toolCallOffset, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (_options.ApiKey is { } key) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var idle = new IdleTimeout(cancellationToken, _options.RequestTimeout);
        try
        {
            idle.Restart();
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, idle.Token).ConfigureAwait(false);
            idle.Pause();
            return new ResponseStream(response, idle, new ChatStreamDecoder(toolCallOffset));
        }
        catch (Exception e) when (Transient(e, idle) is { } reason)
        {
            // Classified here, while the timer can still tell a timeout from the caller's cancellation.
            idle.Dispose();
            throw new TransientSendException(reason, e);
        }
        catch
        {
            idle.Dispose();
            throw;
        }
    }

    /// <summary>A failed send, already classified (its idle timer is gone with it).</summary>
    private sealed class TransientSendException(string reason, Exception inner) : Exception(reason, inner);

    /// <summary>Reads past the first updates, turning transport failures into a <see cref="ChatEndpointException"/>.</summary>
    private async Task<List<ChatResponseUpdate>?> ReadMidStreamAsync(ResponseStream stream)
    {
        try
        {
            return await stream.ReadBatchAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (Transient(e, stream.Idle) is { } reason)
        {
            throw new ChatEndpointException($"the chat endpoint's stream broke after output had reached the caller, so it was not retried: {reason}", null, null, e);
        }
    }

    /// <summary>Why a failure is worth another attempt, or null when it is not (the caller's cancellation, a protocol error).</summary>
    private static string? Transient(Exception e, IdleTimeout? idle) => e switch
    {
        TransientSendException t => t.Message,
        OperationCanceledException when idle?.Expired == true => $"no answer within {idle.Limit}",
        // HttpClient's own Timeout (a caller-supplied client) surfaces as a cancellation nobody asked for.
        OperationCanceledException { InnerException: TimeoutException } => "the HttpClient timed out",
        HttpRequestException h => $"the connection failed: {h.Message}",
        IOException io => $"the connection broke: {io.Message}",
        _ => null,
    };

    private ChatEndpointException Exhausted(string reason, Exception e, int attempts) =>
        new($"the chat endpoint {_endpoint} failed {attempts} time{(attempts == 1 ? "" : "s")}; the last: {reason}", null, null, e);

    /// <summary>408, 429 and 5xx: the server may answer the same request later. Every other status will not change.</summary>
    private static bool IsRetryable(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    internal static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is not { } header) return null;
        if (header.Delta is { } delta) return delta;
        if (header.Date is { } date) return date - DateTimeOffset.UtcNow;
        return null;
    }

    /// <summary>
    /// Doubling delays with jitter in [½, 1] of the step, so clients that failed together do not retry together.
    /// A server's Retry-After wins, but never beyond <see cref="OpenAICompatibleClientOptions.MaxBackoff"/>.
    /// </summary>
    internal TimeSpan Backoff(int attempt, TimeSpan? retryAfter)
    {
        var max = _options.MaxBackoff;
        if (retryAfter is { } wait) return wait < TimeSpan.Zero ? TimeSpan.Zero : wait > max ? max : wait;
        double step = _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30));
        step = Math.Min(step, max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(step * (0.5 + Random.Shared.NextDouble() * 0.5));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Chat endpoint {Endpoint}: {Reason}; retry {Attempt} of {MaxRetries} in {DelayMs} ms")]
    private static partial void LogRetry(ILogger logger, Uri endpoint, string reason, int attempt, int maxRetries, long delayMs);

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType == typeof(OpenAICompatibleClientOptions) ? _options
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }

    /// <summary>One attempt's response: its status, its body as SSE (or one JSON completion), and its silence limit.</summary>
    private sealed class ResponseStream(HttpResponseMessage response, IdleTimeout idle, ChatStreamDecoder decoder) : IDisposable
    {
        private SseReader? _sse;
        private bool _ended;

        public HttpResponseMessage Response => response;
        public IdleTimeout Idle => idle;
        public HttpStatusCode? ErrorStatus => response.IsSuccessStatusCode ? null : response.StatusCode;

        public async Task<string> ReadBodyAsync()
        {
            idle.Restart();
            try { return await response.Content.ReadAsStringAsync(idle.Token).ConfigureAwait(false); }
            finally { idle.Pause(); }
        }

        /// <summary>The next non-empty batch of updates; null once the answer is over.</summary>
        public async Task<List<ChatResponseUpdate>?> ReadBatchAsync()
        {
            var output = new List<ChatResponseUpdate>();
            while (output.Count == 0)
            {
                if (_ended) return null;
                if (response.Content.Headers.ContentType?.MediaType == "application/json")
                {
                    // A server that does not stream answered with the whole completion.
                    string body = await ReadBodyAsync().ConfigureAwait(false);
                    decoder.DecodeCompletion(body, output);
                    decoder.Complete(output);
                    _ended = true;
                    continue;
                }
                _sse ??= new SseReader(await response.Content.ReadAsStreamAsync(idle.Token).ConfigureAwait(false), idle);
                string? data;
                try { data = await _sse.ReadEventAsync().ConfigureAwait(false); }
                catch (InvalidDataException e) { throw ChatStreamDecoder.Malformed($"the chat endpoint's stream is malformed: {e.Message}", e); }
                catch (SseEventError e)
                {
                    string message = ChatEndpointException.ServerMessageOf(e.EventData) ?? "(no message)";
                    throw new ChatEndpointException($"the chat endpoint reported an error in its stream: {message}", null, message);
                }
                catch (OperationCanceledException) when (idle.Expired && decoder.Finished)
                {
                    // The answer finished and the server then went quiet instead of closing: keep what came.
                    data = null;
                }
                if (data is null)
                {
                    // A body that stops before the answer finished is a broken connection, not a short answer.
                    if (!decoder.Finished && !decoder.Done)
                        throw new IOException("the stream ended before the answer finished (no finish_reason, no [DONE])");
                    decoder.Complete(output);
                    _ended = true;
                    continue;
                }
                decoder.DecodeChunk(data, output);
                if (decoder.Done)
                {
                    decoder.Complete(output);
                    _ended = true;
                }
            }
            return output;
        }

        public void Dispose()
        {
            response.Dispose();
            idle.Dispose();
        }
    }
}
