using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using static KimiSharp.Client.Tests.StubEndpoint;

namespace KimiSharp.Client.Tests;

/// <summary>What is retried (429, 5xx, silence, broken connections before any output), what is not, and how long.</summary>
public sealed class RetryTests
{
    private static readonly List<ChatMessage> s_question = [new(ChatRole.User, "hi")];

    [Theory]
    [InlineData(400, "thinking is enabled but reasoning_content is missing in assistant tool call message at index 1")]
    [InlineData(401, "Invalid Authentication")]
    [InlineData(403, "permission denied")]
    [InlineData(404, "model not found")]
    [InlineData(422, "max_tokens must be positive")]
    public async Task A_client_error_stops_at_once_naming_the_status_and_the_servers_message(int status, string message)
    {
        await using var stub = await StartAsync((_, _, context) => Error(context, status, message));
        using var client = stub.Client();

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Equal(1, stub.RequestCount);
        Assert.Equal((HttpStatusCode)status, e.StatusCode);
        Assert.Equal(message, e.ServerMessage);
        Assert.Contains(status.ToString(), e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task A_non_json_error_body_is_reported_raw_and_clipped()
    {
        string page = "<html><body>" + new string('x', 5000) + "</body></html>";
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            context.Response.StatusCode = 403;
            context.Response.ContentType = "text/html";
            await context.Response.WriteAsync(page);
        });
        using var client = stub.Client();

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.StartsWith("<html><body>xxx", e.ServerMessage);
        Assert.True(e.ServerMessage!.Length <= ChatEndpointException.MaxServerMessageLength + 1, $"{e.ServerMessage.Length} characters");
    }

    [Fact]
    public async Task Server_errors_are_retried_until_an_answer_comes()
    {
        var log = new ListLogger();
        await using var stub = await StartAsync((n, _, context) => n switch
        {
            0 => Error(context, 503, "overloaded"),
            1 => Error(context, 502, "bad gateway"),
            _ => Answer(context, "hello"),
        });
        using var client = stub.Client(logger: log);

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("hello", response.Text);
        Assert.Equal(3, stub.RequestCount);
        Assert.Equal(2, log.Entries.Count);
        Assert.Contains("503", log.Entries[0]);
        Assert.Contains("overloaded", log.Entries[0]);
        Assert.Contains("retry 2 of 5", log.Entries[1]);
    }

    [Fact]
    public async Task Retries_stop_after_MaxRetries_with_the_last_status()
    {
        await using var stub = await StartAsync((n, _, context) => Error(context, n < 2 ? 503 : 500, $"failure {n}"));
        using var client = stub.Client(o => o with { MaxRetries = 2 });

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Equal(3, stub.RequestCount);
        Assert.Equal(HttpStatusCode.InternalServerError, e.StatusCode);
        Assert.Equal("failure 2", e.ServerMessage);
        Assert.Contains("after 3 attempts", e.Message);
    }

    [Fact]
    public async Task MaxRetries_zero_sends_once()
    {
        await using var stub = await StartAsync((_, _, context) => Error(context, 429, "slow down", retryAfter: "0"));
        using var client = stub.Client(o => o with { MaxRetries = 0 });

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Equal(1, stub.RequestCount);
        Assert.Equal(HttpStatusCode.TooManyRequests, e.StatusCode);
    }

    [Fact]
    public async Task A_server_silent_before_its_headers_times_out_and_the_request_is_retried()
    {
        var log = new ListLogger();
        await using var stub = await StartAsync(async (n, _, context) =>
        {
            if (n == 0) await Task.Delay(Timeout.Infinite, context.RequestAborted);
            await Answer(context, "late but here");
        });
        using var client = stub.Client(o => o with { RequestTimeout = TimeSpan.FromSeconds(1) }, log);

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("late but here", response.Text);
        Assert.Equal(2, stub.RequestCount);
        Assert.Contains("no answer within", Assert.Single(log.Entries));
    }

    [Fact]
    public async Task A_stream_that_stalls_before_any_output_is_retried()
    {
        await using var stub = await StartAsync(async (n, _, context) =>
        {
            if (n == 0)
            {
                await Sse(context, Chunk(new { role = "assistant", content = "" })); // headers and an empty delta, then nothing
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            await Answer(context, "second try");
        });
        using var client = stub.Client(o => o with { RequestTimeout = TimeSpan.FromSeconds(1) });

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("second try", response.Text);
        Assert.Equal(2, stub.RequestCount);
    }

    [Fact]
    public async Task A_server_that_never_answers_fails_after_the_retries_naming_the_timeout()
    {
        await using var stub = await StartAsync((_, _, context) => Task.Delay(Timeout.Infinite, context.RequestAborted));
        using var client = stub.Client(o => o with { RequestTimeout = TimeSpan.FromSeconds(1), MaxRetries = 1 });

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Equal(2, stub.RequestCount);
        Assert.Null(e.StatusCode);
        Assert.Contains("failed 2 times", e.Message);
        Assert.Contains("no answer within", e.Message);
    }

    [Fact]
    public async Task A_refused_connection_is_retried_then_reported()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        var log = new ListLogger();
        using var client = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions
        {
            BaseUrl = $"http://127.0.0.1:{port}/v1", Model = "m", MaxRetries = 2, InitialBackoff = TimeSpan.FromMilliseconds(10),
        }, logger: log);

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Contains("the connection failed", e.Message);
        Assert.Contains("failed 3 times", e.Message);
        Assert.Equal(2, log.Entries.Count);
    }

    [Fact]
    public async Task A_stream_broken_after_output_reached_the_caller_is_not_retried()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            await Sse(context, Chunk(new { content = "partial" }));
            await Task.Delay(300); // let the client read it: an abort's reset may discard bytes not yet read
            context.Abort();
        });
        using var client = stub.Client();

        var seen = new List<string>();
        var e = await Assert.ThrowsAsync<ChatEndpointException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(s_question)) seen.Add(update.Text);
        });

        Assert.Equal(["partial"], seen);
        Assert.Equal(1, stub.RequestCount);
        Assert.Contains("not retried", e.Message);
    }

    [Fact]
    public async Task A_stream_cut_short_before_output_is_retried()
    {
        await using var stub = await StartAsync(async (n, _, context) =>
        {
            if (n == 0)
            {
                await Sse(context, Chunk(new { role = "assistant" }));
                return; // body ends with no finish_reason and no [DONE]
            }
            await Answer(context, "whole");
        });
        using var client = stub.Client();

        Assert.Equal("whole", (await client.GetResponseAsync(s_question)).Text);
        Assert.Equal(2, stub.RequestCount);
    }

    [Fact]
    public async Task A_server_that_goes_quiet_after_finishing_the_answer_still_gives_the_answer()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            await Sse(context, Chunk(new { content = "done" }), Chunk(new { }, "stop"));
            await Task.Delay(Timeout.Infinite, context.RequestAborted); // no usage, no [DONE], no end of body
        });
        using var client = stub.Client(o => o with { RequestTimeout = TimeSpan.FromSeconds(1) });

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("done", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(1, stub.RequestCount);
    }

    [Fact]
    public async Task A_slow_consumer_is_not_mistaken_for_a_silent_server()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            await Sse(context, Chunk(new { content = "a" }));
            await Task.Delay(100); // so the rest needs a fresh read from the socket rather than coming from a buffer
            await Sse(context, Chunk(new { content = "b" }), Chunk(new { }, "stop"), "[DONE]");
        });
        using var client = stub.Client(o => o with { RequestTimeout = TimeSpan.FromSeconds(1) });

        var text = "";
        await foreach (var update in client.GetStreamingResponseAsync(s_question))
        {
            text += update.Text;
            if (text == "a") await Task.Delay(1500); // the timer must be paused while the caller holds an update
        }

        Assert.Equal("ab", text);
    }

    [Fact]
    public async Task Cancellation_stops_a_hung_request_without_retrying()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            arrived.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        using var client = stub.Client();
        using var cancel = new CancellationTokenSource();

        // Cancel once the server holds the request (a fixed delay could fire before it arrives on a loaded machine).
        var call = client.GetResponseAsync(s_question, cancellationToken: cancel.Token);
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var clock = Stopwatch.StartNew();
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Equal(1, stub.RequestCount);
    }

    [Fact]
    public async Task Cancellation_during_a_backoff_stops_the_wait()
    {
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            await Error(context, 429, "later", retryAfter: "30");
            answered.TrySetResult();
        });
        using var client = stub.Client(o => o with { MaxBackoff = TimeSpan.FromMinutes(1) });
        using var cancel = new CancellationTokenSource();

        // Cancel once the 429 is out and the client is waiting out its Retry-After.
        var call = client.GetResponseAsync(s_question, cancellationToken: cancel.Token);
        await answered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(200);
        var clock = Stopwatch.StartNew();
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Equal(1, stub.RequestCount);
    }

    [Fact]
    public void Backoff_doubles_with_jitter_and_caps_Retry_After_at_MaxBackoff()
    {
        using var client = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions
        {
            BaseUrl = "http://127.0.0.1:1/v1", Model = "m", InitialBackoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromSeconds(1),
        });
        for (int i = 0; i < 50; i++)
        {
            Assert.InRange(client.Backoff(0, null).TotalMilliseconds, 50, 100);
            Assert.InRange(client.Backoff(2, null).TotalMilliseconds, 200, 400);
            Assert.InRange(client.Backoff(10, null).TotalMilliseconds, 500, 1000);
        }
        Assert.Equal(TimeSpan.FromSeconds(0.5), client.Backoff(0, TimeSpan.FromSeconds(0.5)));
        Assert.Equal(TimeSpan.FromSeconds(1), client.Backoff(0, TimeSpan.FromSeconds(120)));
        Assert.Equal(TimeSpan.Zero, client.Backoff(0, TimeSpan.FromSeconds(-3)));
    }

    [Fact]
    public void Retry_After_is_read_as_seconds_or_as_an_HTTP_date()
    {
        using var seconds = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        seconds.Headers.TryAddWithoutValidation("Retry-After", "7");
        Assert.Equal(TimeSpan.FromSeconds(7), OpenAICompatibleChatClient.RetryAfter(seconds));

        using var date = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        date.Headers.TryAddWithoutValidation("Retry-After", DateTimeOffset.UtcNow.AddSeconds(20).ToString("R"));
        Assert.InRange(OpenAICompatibleChatClient.RetryAfter(date)!.Value.TotalSeconds, 17, 20.5);

        using var none = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        Assert.Null(OpenAICompatibleChatClient.RetryAfter(none));
    }
}
