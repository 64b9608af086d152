using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Server;
using KimiSharp.Testing;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace KimiSharp.Client.Tests;

/// <summary>
/// The client against our own server (<c>kimi serve</c>) over a random-weight model: its text is noise, so these check
/// the protocol: the requests are accepted, tool calls come back whole with Kimi's ids, the assistant's reasoning and
/// calls go back through the server's parser, and usage is reported.
/// </summary>
public sealed class KimiServerTests : IAsyncLifetime
{
    private const string ApiKey = "client-test-key";
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-client-").FullName;
    private KimiServer _server = null!;
    private string _baseUrl = null!;

    public async Task InitializeAsync()
    {
        RandomChatModel.Write(_directory, new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 2048, Format = CheckpointFormat.Int4, Seed = 23,
        });
        var service = KimiChatService.Load(_directory, new EngineOptions { MaxBatchSize = 4, MaxQueueLength = 16 }, modelId: "kimi-test");
        _server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = ApiKey, ServeUi = false });
        await _server.StartAsync();
        _baseUrl = _server.Urls.First().Replace("[::]", "127.0.0.1") + "/v1";
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _server.Service.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private OpenAICompatibleChatClient Client() => new(new OpenAICompatibleClientOptions
    {
        BaseUrl = _baseUrl, ApiKey = ApiKey, Model = "kimi-test", Thinking = true, MaxRetries = 1, RequestTimeout = TimeSpan.FromMinutes(1),
    });

    /// <summary>A declaration only: the test answers the call itself. maxLength keeps the noise model's city short.</summary>
    private static AIFunctionDeclaration Weather() => AIFunctionFactory.CreateDeclaration("get_weather", "Current weather in a city",
        JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string","maxLength":10}},"required":["city"]}""").RootElement);

    [Fact]
    public async Task A_tool_call_turn_and_its_follow_up_with_reasoning_round_trip_through_kimi_serve()
    {
        using var client = Client();
        var tools = new ChatOptions { Tools = [Weather()], ToolMode = ChatToolMode.RequireAny, Temperature = 0.7f, Seed = 4, MaxOutputTokens = 120 };
        List<ChatMessage> history = [new(ChatRole.System, "You are terse."), new(ChatRole.User, "What's the weather in Oslo?")];

        var first = await client.GetResponseAsync(history, tools);

        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        Assert.Equal("kimi-test", first.ModelId);
        var call = Assert.Single(first.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_weather", call.Name);
        Assert.StartsWith("functions.get_weather:", call.CallId);
        Assert.Null(call.Exception); // constrained decoding makes the arguments valid JSON even from noise
        Assert.True(call.Arguments!.ContainsKey("city"), $"arguments: {string.Join(", ", call.Arguments.Keys)}");
        Assert.True(first.Usage!.InputTokenCount > 10, $"input tokens {first.Usage.InputTokenCount}");
        Assert.True(first.Usage.OutputTokenCount > 0);

        // The follow-up carries the call, a hand-written reasoning (so the server's parser sees reasoning_content on an
        // assistant tool-call message whatever the noise produced) and the result.
        var assistant = first.Messages.Single(m => m.Role == ChatRole.Assistant);
        assistant.Contents.Insert(0, new TextReasoningContent("The user wants Oslo's weather; call the tool."));
        history.Add(assistant);
        history.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, $"7 °C in {call.Arguments["city"]}")]));

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(history, new ChatOptions { Tools = [Weather()], Temperature = 0, MaxOutputTokens = 16 }))
            updates.Add(update);

        var usage = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>()).Details;
        Assert.True(usage.InputTokenCount > first.Usage.InputTokenCount,
            $"the follow-up prompt ({usage.InputTokenCount} tokens) should hold the first ({first.Usage.InputTokenCount}) plus the call and result");
        Assert.InRange(usage.OutputTokenCount!.Value, 1, 16);
        Assert.NotNull(updates.Single(u => u.FinishReason is not null).FinishReason);
    }

    [Fact]
    public async Task Kimi_serve_turns_away_a_wrong_key_and_an_unknown_model_at_once()
    {
        using var wrongKey = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions { BaseUrl = _baseUrl, ApiKey = "nope", Model = "kimi-test" });
        var e = await Assert.ThrowsAsync<ChatEndpointException>(() => wrongKey.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, e.StatusCode);
        Assert.Contains("invalid or missing API key", e.Message);

        using var client = Client();
        e = await Assert.ThrowsAsync<ChatEndpointException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { ModelId = "gpt-4o" }));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, e.StatusCode);
        Assert.Contains("'gpt-4o' does not exist", e.Message);
    }
}
