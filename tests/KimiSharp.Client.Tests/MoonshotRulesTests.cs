using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using static KimiSharp.Client.Tests.StubEndpoint;

namespace KimiSharp.Client.Tests;

/// <summary>
/// A stub that holds the client to Moonshot's rules: a Bearer key, one 429 with Retry-After, and a 400 for an
/// assistant tool-call message without reasoning_content. It answers K2-style: reasoning, then a calculator call with
/// the id functions.calculator:0, then (given the result) the answer, with usage and cached tokens.
/// </summary>
public sealed class MoonshotRulesTests
{
    private const string Reasoning = "Let me compute 6*7 with the calculator.";

    internal sealed class MoonshotStub
    {
        private int _rateLimited;

        public async Task Handle(int number, StubRequest request, HttpContext context)
        {
            if (request.Authorization != "Bearer sk-test")
            {
                await Error(context, 401, "Invalid Authentication");
                return;
            }
            if (Interlocked.Exchange(ref _rateLimited, 1) == 0)
            {
                await Error(context, 429, "Your account is rate limited, please retry after 1 seconds", retryAfter: "1");
                return;
            }
            var messages = request.Messages;
            for (int i = 0; i < messages.Count; i++)
                if (Text(messages[i]!["role"]) == "assistant" && messages[i]!["tool_calls"] is not null && messages[i]!["reasoning_content"] is null)
                {
                    await Error(context, 400, $"thinking is enabled but reasoning_content is missing in assistant tool call message at index {i}");
                    return;
                }

            var last = messages[^1]!;
            if (Text(last["role"]) == "user")
            {
                await Sse(context,
                    Chunk(new { role = "assistant", content = "" }),
                    Chunk(new { reasoning_content = "Let me compute " }),
                    Chunk(new { reasoning_content = "6*7 with the calculator." }),
                    Chunk(new { tool_calls = new[] { new { index = 0, id = "functions.calculator:0", type = "function", function = new { name = "calculator", arguments = "" } } } }),
                    Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = "{\"expression\":" } } } }),
                    Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = " \"6*7\"}" } } } }),
                    // Moonshot reports usage inside the last choice, with cached_tokens at the top of it.
                    Chunk(new { }, "tool_calls", new { prompt_tokens = 30, completion_tokens = 12, total_tokens = 42, cached_tokens = 16 }),
                    "[DONE]");
                return;
            }
            if (Text(last["role"]) == "tool")
            {
                if (Text(last["tool_call_id"]) != "functions.calculator:0")
                {
                    await Error(context, 400, $"tool_call_id {last["tool_call_id"]} is not found");
                    return;
                }
                await Sse(context,
                    Chunk(new { reasoning_content = "The tool said " + Text(last["content"]) + "." }),
                    Chunk(new { content = "6 × 7 = " }),
                    Chunk(new { content = Text(last["content"]) }),
                    Chunk(new { }, "stop"),
                    UsageChunk(new { prompt_tokens = 60, completion_tokens = 9, total_tokens = 69, prompt_tokens_details = new { cached_tokens = 30 } }),
                    "[DONE]");
                return;
            }
            await Error(context, 400, "unexpected conversation");
        }
    }

    internal static AIFunction Calculator() =>
        AIFunctionFactory.Create((string expression) => expression == "6*7" ? "42" : $"cannot evaluate {expression}", "calculator", "Evaluates arithmetic");

    [Fact]
    public async Task A_tool_call_turn_and_its_answer_pass_Moonshot_rules_through_function_invocation()
    {
        var moonshot = new MoonshotStub();
        await using var stub = await StartAsync(moonshot.Handle);
        var log = new ListLogger();
        using var client = stub.Client(o => o with { Thinking = true }, log);
        using var chat = new ChatClientBuilder(client).UseFunctionInvocation().Build();

        var clock = Stopwatch.StartNew();
        var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "What is 6*7?")], new ChatOptions { Tools = [Calculator()] });

        Assert.Equal("6 × 7 = 42", response.Text);
        Assert.Equal(3, stub.RequestCount); // the 429, the tool-call turn, the answer turn
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.95), $"the 429's Retry-After: 1 was not waited out ({clock.Elapsed})");
        Assert.Contains(log.Entries, e => e.Contains("429") && e.Contains("retry 1 of 5"));

        var second = stub.Requests[2].Messages;
        Assert.Equal(["user", "assistant", "tool"], second.Select(m => Text(m!["role"])));
        var assistant = second[1]!;
        Assert.Equal(Reasoning, Text(assistant["reasoning_content"]));
        var call = assistant["tool_calls"]![0]!;
        Assert.Equal("functions.calculator:0", Text(call["id"]));
        Assert.Equal("function", Text(call["type"]));
        Assert.Equal("calculator", Text(call["function"]!["name"]));
        Assert.Equal("6*7", JsonNode.Parse(Text(call["function"]!["arguments"]))!["expression"]!.GetValue<string>());
        Assert.Equal("42", Text(second[2]!["content"]));
    }

    [Fact]
    public async Task The_streaming_tool_loop_sends_the_reasoning_and_call_it_streamed_back()
    {
        var moonshot = new MoonshotStub();
        await using var stub = await StartAsync(moonshot.Handle);
        using var client = stub.Client(o => o with { MaxBackoff = TimeSpan.Zero });
        using var chat = new ChatClientBuilder(client).UseFunctionInvocation().Build();

        var text = "";
        await foreach (var update in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "What is 6*7?")], new ChatOptions { Tools = [Calculator()] }))
            text += update.Text;

        Assert.Equal("6 × 7 = 42", text);
        var assistant = stub.Requests[^1].Messages[1]!;
        Assert.Equal(Reasoning, Text(assistant["reasoning_content"]));
        Assert.Equal("functions.calculator:0", Text(assistant["tool_calls"]![0]!["id"]));
    }

    [Fact]
    public async Task Streaming_gives_reasoning_a_whole_tool_call_usage_with_cached_tokens_and_the_finish_reason()
    {
        var moonshot = new MoonshotStub();
        await using var stub = await StartAsync(moonshot.Handle);
        using var client = stub.Client(o => o with { InitialBackoff = TimeSpan.Zero, MaxBackoff = TimeSpan.Zero }); // ignore the Retry-After here

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "What is 6*7?")], new ChatOptions { Tools = [Calculator()] }))
            updates.Add(update);

        var contents = updates.SelectMany(u => u.Contents).ToList();
        Assert.Equal(Reasoning, string.Concat(contents.OfType<TextReasoningContent>().Select(r => r.Text)));
        var call = Assert.Single(contents.OfType<FunctionCallContent>());
        Assert.Equal("functions.calculator:0", call.CallId);
        Assert.Equal("calculator", call.Name);
        Assert.Null(call.Exception);
        Assert.Equal("6*7", call.Arguments!["expression"]!.ToString());
        var usage = Assert.Single(contents.OfType<UsageContent>()).Details;
        Assert.Equal(30, usage.InputTokenCount);
        Assert.Equal(12, usage.OutputTokenCount);
        Assert.Equal(42, usage.TotalTokenCount);
        Assert.Equal(16, usage.CachedInputTokenCount);
        Assert.Equal(ChatFinishReason.ToolCalls, Assert.Single(updates, u => u.FinishReason is not null).FinishReason);
        Assert.All(updates, u => Assert.Equal("chatcmpl-stub", u.ResponseId));
        Assert.All(updates, u => Assert.Equal("kimi-k2-thinking", u.ModelId));
    }

    [Fact]
    public async Task An_assistant_tool_call_without_reasoning_is_sent_with_an_empty_reasoning_content()
    {
        var moonshot = new MoonshotStub();
        await using var stub = await StartAsync(moonshot.Handle);
        using var client = stub.Client(o => o with { MaxBackoff = TimeSpan.Zero });
        List<ChatMessage> history =
        [
            new(ChatRole.User, "What is 6*7?"),
            new(ChatRole.Assistant, [new FunctionCallContent("functions.calculator:0", "calculator", new Dictionary<string, object?> { ["expression"] = "6*7" })]),
            new(ChatRole.Tool, [new FunctionResultContent("functions.calculator:0", "42")]),
        ];

        var response = await client.GetResponseAsync(history);

        Assert.Equal("6 × 7 = 42", response.Text);
        Assert.Equal("The tool said 42.", string.Concat(response.Messages.SelectMany(m => m.Contents).OfType<TextReasoningContent>().Select(r => r.Text)));
        var assistant = stub.Requests[^1].Messages[1]!;
        Assert.Equal("", Text(assistant["reasoning_content"]));
        Assert.Equal(60, response.Usage!.InputTokenCount);
        Assert.Equal(30, response.Usage.CachedInputTokenCount);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
    }

    [Fact]
    public async Task A_wrong_key_is_a_401_at_once_with_the_servers_message()
    {
        var moonshot = new MoonshotStub();
        await using var stub = await StartAsync(moonshot.Handle);
        using var client = stub.Client(o => o with { ApiKey = "sk-wrong" });

        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, e.StatusCode);
        Assert.Equal("Invalid Authentication", e.ServerMessage);
        Assert.Contains("401", e.Message);
        Assert.Contains("Invalid Authentication", e.Message);
        Assert.Equal(1, stub.RequestCount);
    }
}
