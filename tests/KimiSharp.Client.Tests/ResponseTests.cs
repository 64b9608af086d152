using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using static KimiSharp.Client.Tests.StubEndpoint;

namespace KimiSharp.Client.Tests;

/// <summary>What comes off the wire: tool-call ids in every form, bad arguments, other servers' shapes, and garbage.</summary>
public sealed class ResponseTests
{
    private static readonly List<ChatMessage> s_question = [new(ChatRole.User, "6*7?")];

    /// <summary>
    /// Calls with the id the stub is told; the follow-up request (the call and its result) is recorded so the test
    /// can check the id went back exactly.
    /// </summary>
    private static async Task<(FunctionCallContent Call, JsonArray FollowUp)> RoundTrip(string? id, List<ChatMessage>? history = null)
    {
        await using var stub = await StartAsync((n, _, context) => n == 0
            ? ToolCall(context, id, "calculator", "{\"expression\"", ": \"6*7\"}")
            : Answer(context, "42"));
        using var client = stub.Client();
        history ??= [.. s_question];

        var first = await client.GetResponseAsync(history);
        var call = Assert.Single(first.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        history.AddRange(first.Messages);
        history.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, "42")]));
        var second = await client.GetResponseAsync(history);
        Assert.Equal("42", second.Text);
        return (call, stub.Requests[1].Messages);
    }

    [Theory]
    [InlineData("functions.calculator:0")]                 // Moonshot and kimi serve
    [InlineData("call_7d3c9a1e4b2f4e0c8a6b5d1f")]          // OpenAI-style, as vLLM's other parsers write
    [InlineData("0b6f5a52-3c1e-4f0e-9a4f-2f3e8d6c1b7a")]  // a bare UUID, as some proxies write
    public async Task A_tool_call_id_comes_back_exactly_as_the_server_wrote_it(string id)
    {
        var (call, followUp) = await RoundTrip(id);

        Assert.Equal(id, call.CallId);
        Assert.Equal("6*7", call.Arguments!["expression"]!.ToString());
        Assert.Equal(id, Text(followUp[^2]!["tool_calls"]![0]!["id"]));
        Assert.Equal("I should call a tool.", Text(followUp[^2]!["reasoning_content"]));
        Assert.Equal(id, Text(followUp[^1]!["tool_call_id"]));
    }

    [Fact]
    public async Task A_missing_id_is_made_in_Kimis_form_numbered_after_the_conversations_earlier_calls()
    {
        List<ChatMessage> history =
        [
            new(ChatRole.User, "5+5?"),
            new(ChatRole.Assistant, [new FunctionCallContent("functions.calculator:0", "calculator", new Dictionary<string, object?> { ["expression"] = "5+5" })]),
            new(ChatRole.Tool, [new FunctionResultContent("functions.calculator:0", "10")]),
            new(ChatRole.Assistant, "10"),
            new(ChatRole.User, "6*7?"),
        ];

        var (call, followUp) = await RoundTrip(null, history);

        Assert.Equal("functions.calculator:1", call.CallId);
        Assert.Equal("functions.calculator:1", Text(followUp[^1]!["tool_call_id"]));
    }

    [Fact]
    public async Task Arguments_that_are_not_json_give_a_call_with_the_error_and_the_raw_text_which_goes_back_verbatim()
    {
        await using var stub = await StartAsync((n, _, context) => n == 0
            ? ToolCall(context, "functions.calculator:0", "calculator", "{\"expression\": 6*7")
            : Answer(context, "sorry"));
        using var client = stub.Client();

        var first = await client.GetResponseAsync(s_question);
        var call = Assert.Single(first.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.IsType<InvalidDataException>(call.Exception);
        Assert.Contains("calculator", call.Exception.Message);
        Assert.Contains("not valid JSON", call.Exception.Message);
        Assert.Equal("{\"expression\": 6*7", call.AdditionalProperties!["raw_arguments"]);
        Assert.Null(call.Arguments);

        List<ChatMessage> history = [.. s_question, .. first.Messages, new(ChatRole.Tool, [new FunctionResultContent(call.CallId, "Error: bad arguments")])];
        await client.GetResponseAsync(history);
        Assert.Equal("{\"expression\": 6*7", Text(stub.Requests[1].Messages[1]!["tool_calls"]![0]!["function"]!["arguments"]));
    }

    [Fact]
    public async Task Arguments_naming_a_key_twice_give_a_call_with_the_error_not_an_exception()
    {
        await using var stub = await StartAsync((n, _, context) => n == 0
            ? ToolCall(context, "functions.lookup:0", "lookup", "{\"city\":\"Ostdor\",\"attribute\":\"population\",\"attribute\":\"area\"}")
            : Answer(context, "sorry"));
        using var client = stub.Client();

        var call = Assert.Single((await client.GetResponseAsync(s_question)).Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.IsType<InvalidDataException>(call.Exception);
        Assert.Contains("argument 'attribute' is given more than once", call.Exception.Message);
        Assert.Null(call.Arguments);
    }

    [Fact]
    public async Task Several_calls_interleaved_by_index_are_assembled_separately()
    {
        await using var stub = await StartAsync((_, _, context) => Sse(context,
            Chunk(new { tool_calls = new object[] { new { index = 0, id = "functions.a:0", function = new { name = "a", arguments = "{\"x\":" } } } }),
            Chunk(new { tool_calls = new object[] { new { index = 1, id = "functions.b:1", function = new { name = "b", arguments = "" } } } }),
            Chunk(new { tool_calls = new object[] { new { index = 1, function = new { arguments = "{}" } }, new { index = 0, function = new { arguments = "1}" } } } }),
            Chunk(new { }, "tool_calls"),
            "[DONE]"));
        using var client = stub.Client();

        var calls = (await client.GetResponseAsync(s_question)).Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().ToList();

        Assert.Equal(["a", "b"], calls.Select(c => c.Name));
        Assert.Equal("1", calls[0].Arguments!["x"]!.ToString());
        Assert.Empty(calls[1].Arguments!);
    }

    [Fact]
    public async Task vLLMs_reasoning_field_and_repeated_usage_are_understood()
    {
        await using var stub = await StartAsync((_, _, context) => Sse(context,
            new { id = "c1", choices = new[] { new { index = 0, delta = new { reasoning = "hmm" } } }, usage = new { prompt_tokens = 5, completion_tokens = 1 } },
            new { id = "c1", choices = new[] { new { index = 0, delta = new { content = "ok" } } }, usage = new { prompt_tokens = 5, completion_tokens = 2 } },
            new { id = "c1", choices = new object[] { new { index = 0, delta = new { }, finish_reason = "length" } }, usage = new { prompt_tokens = 5, completion_tokens = 3 } },
            "[DONE]"));
        using var client = stub.Client();

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("hmm", string.Concat(response.Messages.SelectMany(m => m.Contents).OfType<TextReasoningContent>().Select(r => r.Text)));
        Assert.Equal("ok", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(5, response.Usage!.InputTokenCount);
        Assert.Equal(3, response.Usage.OutputTokenCount); // the last report, not the sum of all three
        Assert.Equal(8, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task A_server_that_ignores_stream_true_is_read_as_a_whole_completion()
    {
        await using var stub = await StartAsync((_, _, context) => context.Response.WriteAsJsonAsync(new
        {
            id = "chatcmpl-whole", model = "served", created = 1_700_000_000,
            choices = new[]
            {
                new
                {
                    index = 0, finish_reason = "tool_calls",
                    message = new
                    {
                        role = "assistant", content = "Let me check.", reasoning_content = "Need the tool.",
                        tool_calls = new[] { new { id = "call_1", type = "function", function = new { name = "calculator", arguments = "{\"expression\":\"6*7\"}" } } },
                    },
                },
            },
            usage = new { prompt_tokens = 12, completion_tokens = 7, total_tokens = 19, prompt_tokens_details = new { cached_tokens = 4 } },
        }));
        using var client = stub.Client();

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("Let me check.", response.Text);
        Assert.Equal("served", response.ModelId);
        var contents = response.Messages.SelectMany(m => m.Contents).ToList();
        Assert.Equal("Need the tool.", Assert.Single(contents.OfType<TextReasoningContent>()).Text);
        Assert.Equal("call_1", Assert.Single(contents.OfType<FunctionCallContent>()).CallId);
        Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
        Assert.Equal(4, response.Usage!.CachedInputTokenCount);
    }

    [Theory]
    [InlineData("data: {\"choices\": [{\"delta\": {\"content\": \"hi\"}\n\n", "malformed JSON")]
    [InlineData("data: [1, 2]\n\n", "not an object")]
    [InlineData("{\"choices\": []}\n\n", "not server-sent-event syntax")]
    [InlineData("data: {\"choices\": {\"delta\": {}}}\n\n", "'choices' that is not an array")]
    [InlineData("data: {\"choices\": [{\"delta\": {\"content\": 42}}]}\n\n", "'content' that is not a string")]
    [InlineData("data: {\"choices\": [{\"delta\": {\"tool_calls\": [{\"index\": 0, \"function\": {\"arguments\": \"{}\"}}]}, \"finish_reason\": \"tool_calls\"}]}\n\n", "without a function name")]
    [InlineData("data: {\"choices\": [], \"usage\": {\"prompt_tokens\": \"ten\"}}\n\ndata: [DONE]\n\n", "'prompt_tokens' that is not an integer")]
    public async Task Malformed_streams_fail_naming_the_problem_and_are_not_retried(string body, string problem)
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(body);
        });
        using var client = stub.Client();

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Contains(problem, e.Message);
        Assert.Equal(1, stub.RequestCount);
    }

    [Fact]
    public async Task An_error_reported_inside_the_stream_is_raised_with_its_message()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            await Sse(context, Chunk(new { content = "so far" }), new { error = new { message = "the engine ran out of KV cache", code = 500 } });
        });
        using var client = stub.Client();

        var e = await Assert.ThrowsAsync<ChatEndpointException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(s_question)) { }
        });

        Assert.Contains("the engine ran out of KV cache", e.Message);
        Assert.Equal("the engine ran out of KV cache", e.ServerMessage);
    }

    [Fact]
    public async Task An_SSE_error_event_is_raised_with_its_message()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("event: error\ndata: {\"error\": {\"message\": \"context length exceeded\"}}\n\n");
        });
        using var client = stub.Client();

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync(s_question));

        Assert.Equal("context length exceeded", e.ServerMessage);
    }

    [Fact]
    public async Task Comments_multi_line_data_and_an_unterminated_last_event_are_read()
    {
        await using var stub = await StartAsync(async (_, _, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(": keep-alive\r\n\r\nid: 1\r\ndata: {\"choices\": [{\"delta\":\r\ndata:  {\"content\": \"two lines\"}}]}\r\n\r\n"
                + "data: {\"choices\": [{\"delta\": {}, \"finish_reason\": \"stop\"}]}");
        });
        using var client = stub.Client();

        var response = await client.GetResponseAsync(s_question);

        Assert.Equal("two lines", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
    }
}
