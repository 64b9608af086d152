using System.ComponentModel;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.AI;

namespace KimiSharp.Engine.Tests;

/// <summary>The in-process IChatClient, alone and under Microsoft.Extensions.AI's FunctionInvokingChatClient.</summary>
public sealed class KimiChatClientTests(ChatModelFixture fixture) : IClassFixture<ChatModelFixture>
{
    [Theory]
    [InlineData("""{"city":"Ostdor","attribute":"population","attribute":"area"}""", "argument 'attribute' is given more than once")]
    [InlineData("""["Ostdor"]""", "arguments are not a JSON object")]
    [InlineData("""{"city":""", "invalid arguments")]
    public void Unusable_arguments_become_a_call_with_the_problem_and_the_raw_text(string arguments, string problem)
    {
        var call = KimiChatClient.CallContent("functions.lookup:0", "lookup", arguments, parserError: null);

        Assert.Null(call.Arguments);
        Assert.Contains(problem, call.Exception!.Message);
        Assert.Equal(arguments, call.AdditionalProperties![KimiChatClient.RawArgumentsKey]);
    }

    [Fact]
    public void Well_formed_arguments_are_parsed()
    {
        var call = KimiChatClient.CallContent("functions.lookup:0", "lookup", """{"city":"Ostdor","attribute":"area"}""", parserError: null);

        Assert.Null(call.Exception);
        Assert.Equal(["city", "attribute"], call.Arguments!.Keys);
    }

    [Fact]
    public async Task Streaming_and_non_streaming_agree_and_report_usage()
    {
        IChatClient client = new KimiChatClient(fixture.Service);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 20 };
        List<ChatMessage> messages = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi!")];
        var response = await client.GetResponseAsync(messages, options);
        var streamed = await client.GetStreamingResponseAsync(messages, options).ToChatResponseAsync();
        Assert.Equal(response.Text, streamed.Text);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage!.InputTokenCount > 0);
        Assert.InRange(response.Usage.OutputTokenCount!.Value, 1, 20);
        Assert.True(streamed.Usage!.CachedInputTokenCount > 0, "the repeated prompt should hit the prefix cache");
        Assert.Equal(fixture.Service.ModelId, client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }

    [Fact]
    public async Task Function_invoking_client_calls_the_tool_and_sends_back_its_result()
    {
        int calls = 0;
        string? seenCity = null;
        var weather = AIFunctionFactory.Create(
            ([Description("city name")] string city) => { calls++; seenCity = city; return $"7 degrees in {city}"; },
            "get_weather", "Current weather in a city");
        IChatClient client = new ChatClientBuilder(new KimiChatClient(fixture.Service))
            .UseFunctionInvocation(configure: f => f.MaximumIterationsPerRequest = 2)
            .Build();
        var options = new ChatOptions
        {
            Tools = [weather], ToolMode = ChatToolMode.RequireSpecific("get_weather"), Temperature = 0.5f, Seed = 1, MaxOutputTokens = 400,
        };
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Weather in Oslo?")], options);
        Assert.True(calls >= 1, "the tool was never invoked: " + string.Join(" | ", response.Messages.SelectMany(m => m.Contents).Select(c => c switch { FunctionCallContent f => $"call {f.Name} {f.CallId} {System.Text.Json.JsonSerializer.Serialize(f.Arguments)} ex={f.Exception?.Message}", FunctionResultContent r => $"result {r.CallId} {r.Result} {r.Exception?.Message}", TextContent t => "text " + t.Text, _ => c.GetType().Name })));
        Assert.NotNull(seenCity);
        var call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
        Assert.Equal("get_weather", call.Name);
        Assert.StartsWith("functions.get_weather:", call.CallId);
        var result = response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().First();
        Assert.Equal(call.CallId, result.CallId);
        Assert.Contains("7 degrees", result.Result?.ToString());
    }
}
