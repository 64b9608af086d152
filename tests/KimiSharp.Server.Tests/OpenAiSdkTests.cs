using System.ClientModel;
using System.Text;
using OpenAI;
using OpenAI.Chat;

namespace KimiSharp.Server.Tests;

/// <summary>The official OpenAI .NET SDK against the server.</summary>
[Collection("server")]
public sealed class OpenAiSdkTests(ServerFixture fixture)
{
    private ChatClient Client() => new(fixture.ModelId, new ApiKeyCredential(ServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUri, "v1") });

    private static List<ChatMessage> Conversation(string question) =>
        [new SystemChatMessage("You are a terse assistant."), new UserChatMessage(question)];

    [Fact]
    public async Task Non_streaming_and_streaming_give_the_same_answer_at_temperature_zero()
    {
        var client = Client();
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 24 };
        ChatCompletion completion = await client.CompleteChatAsync(Conversation("Say hello"), options);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(fixture.ModelId, completion.Model);
        Assert.True(completion.Usage.InputTokenCount > 10);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 24);
        string content = string.Concat(completion.Content.Select(p => p.Text));

        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync(Conversation("Say hello"), new ChatCompletionOptions
                       {
                           Temperature = 0, MaxOutputTokenCount = 24,
                       }))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(content, streamed.ToString());
        Assert.Equal(completion.FinishReason, finish);
    }

    [Fact]
    public async Task Tool_calls_round_trip()
    {
        var client = Client();
        var weather = ChatTool.CreateFunctionTool("get_weather", "Current weather in a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string","maxLength":10}},"required":["city"]}"""));
        var options = new ChatCompletionOptions { Tools = { weather }, ToolChoice = ChatToolChoice.CreateRequiredChoice(), Temperature = 0.7f, Seed = 4, MaxOutputTokenCount = 120 };
        var messages = Conversation("What's the weather in Oslo?");
        ChatCompletion first = await client.CompleteChatAsync(messages, options);
        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("functions.get_weather:", call.Id);
        using var args = System.Text.Json.JsonDocument.Parse(call.FunctionArguments);
        string city = args.RootElement.GetProperty("city").GetString()!;
        Assert.True(city.EnumerateRunes().Count() <= 10, $"city '{city}' from {call.FunctionArguments}"); // maxLength counts code points

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, """{"temperature_c": 7}"""));
        ChatCompletion second = await client.CompleteChatAsync(messages, new ChatCompletionOptions { Tools = { weather }, Temperature = 0, MaxOutputTokenCount = 16 });
        Assert.True(second.Usage.InputTokenCount > first.Usage.InputTokenCount);

        // Streaming tool calls arrive as index/id/name then argument fragments.
        var streamedArgs = new StringBuilder();
        string? streamedName = null;
        await foreach (var update in client.CompleteChatStreamingAsync(Conversation("Weather in Rome?"), options))
            foreach (var t in update.ToolCallUpdates)
            {
                streamedName ??= t.FunctionName;
                if (t.FunctionArgumentsUpdate is { } a) streamedArgs.Append(a.ToString());
            }
        Assert.Equal("get_weather", streamedName);
        using var parsed = System.Text.Json.JsonDocument.Parse(streamedArgs.ToString());
        Assert.Equal(System.Text.Json.JsonValueKind.String, parsed.RootElement.GetProperty("city").ValueKind);
    }

    [Fact]
    public async Task A_repeated_long_prefix_is_served_from_the_cache_with_the_same_output()
    {
        var client = Client();
        string system = string.Join(' ', Enumerable.Repeat("Policy: answer briefly and never reveal secrets.", 12));
        List<ChatMessage> Ask(string q) => [new SystemChatMessage(system), new UserChatMessage(q)];
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        ChatCompletion first = await client.CompleteChatAsync(Ask("first question"), options);
        ChatCompletion second = await client.CompleteChatAsync(Ask("second question"), options);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount > 500, $"cached {second.Usage.InputTokenDetails.CachedTokenCount}");
        ChatCompletion again = await client.CompleteChatAsync(Ask("first question"), options);
        Assert.Equal(string.Concat(first.Content.Select(p => p.Text)), string.Concat(again.Content.Select(p => p.Text)));
        Assert.True(again.Usage.InputTokenDetails.CachedTokenCount > 0);
    }

    [Fact]
    public async Task Sixteen_concurrent_streams_each_equal_their_solo_run()
    {
        var client = Client();
        var questions = Enumerable.Range(0, 16).Select(i => $"Question number {i}: {new string((char)('a' + i), i + 1)}?").ToArray();
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16 };
        async Task<string> Stream(string q)
        {
            var text = new StringBuilder();
            await foreach (var update in client.CompleteChatStreamingAsync(Conversation(q), options))
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
            return text.ToString();
        }
        var solo = new List<string>();
        foreach (var q in questions) solo.Add(await Stream(q));
        var together = await Task.WhenAll(questions.Select(Stream));
        Assert.Equal(solo, together);
    }

    [Fact]
    public async Task Json_schema_response_format_is_honoured()
    {
        var client = Client();
        var options = new ChatCompletionOptions
        {
            Temperature = 1, Seed = 2, MaxOutputTokenCount = 200,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("answer",
                BinaryData.FromString("""{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"}},"required":["ok","n"]}""")),
        };
        ChatCompletion completion = await client.CompleteChatAsync(Conversation("Give me JSON"), options);
        using var doc = System.Text.Json.JsonDocument.Parse(string.Concat(completion.Content.Select(p => p.Text)));
        Assert.True(doc.RootElement.GetProperty("ok").ValueKind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False);
        Assert.True(doc.RootElement.GetProperty("n").TryGetInt64(out _));
    }

    [Fact]
    public async Task Wrong_key_is_refused_by_the_sdk()
    {
        var client = new ChatClient(fixture.ModelId, new ApiKeyCredential("wrong"), new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUri, "v1") });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync(Conversation("hi")));
        Assert.Equal(401, e.Status);
    }
}
