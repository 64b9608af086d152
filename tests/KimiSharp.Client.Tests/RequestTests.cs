using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using static KimiSharp.Client.Tests.StubEndpoint;

namespace KimiSharp.Client.Tests;

/// <summary>What goes on the wire: the thinking switch in both spellings, sampling options, tools, formats, messages.</summary>
public sealed class RequestTests
{
    private static readonly OpenAICompatibleClientOptions s_options = new() { BaseUrl = "http://127.0.0.1:1/v1", Model = "kimi-k2" };
    private static readonly List<ChatMessage> s_question = [new(ChatRole.User, "hi")];

    private static JsonObject Build(IEnumerable<ChatMessage> messages, ChatOptions? options = null, OpenAICompatibleClientOptions? client = null) =>
        ChatRequestBuilder.Build(messages, options, client ?? s_options);

    [Fact]
    public async Task Thinking_is_sent_in_both_spellings_by_default_and_a_call_can_turn_it_off()
    {
        await using var stub = await StartAsync((_, _, context) => Answer(context, "ok"));
        using var client = stub.Client(o => o with { Thinking = true });

        await client.GetResponseAsync(s_question);
        await client.GetResponseAsync(s_question, new ChatOptions { AdditionalProperties = new() { ["thinking"] = false } });

        var on = stub.Requests[0].Body;
        Assert.Equal("enabled", Text(on["thinking"]!["type"]));
        Assert.True(on["chat_template_kwargs"]!["thinking"]!.GetValue<bool>());
        var off = stub.Requests[1].Body;
        Assert.Equal("disabled", Text(off["thinking"]!["type"]));
        Assert.False(off["chat_template_kwargs"]!["thinking"]!.GetValue<bool>());
        Assert.True(on["stream"]!.GetValue<bool>());
        Assert.True(on["stream_options"]!["include_usage"]!.GetValue<bool>());
        Assert.Equal("Bearer sk-test", stub.Requests[0].Authorization);
    }

    [Fact]
    public void Each_thinking_style_sends_only_its_own_spelling()
    {
        var moonshot = Build(s_question, client: s_options with { Thinking = false, ThinkingStyle = ThinkingStyle.Moonshot });
        Assert.Equal("disabled", Text(moonshot["thinking"]!["type"]));
        Assert.Null(moonshot["chat_template_kwargs"]);

        var kwargs = Build(s_question, client: s_options with { Thinking = true, ThinkingStyle = ThinkingStyle.ChatTemplateKwargs });
        Assert.Null(kwargs["thinking"]);
        Assert.True(kwargs["chat_template_kwargs"]!["thinking"]!.GetValue<bool>());

        var none = Build(s_question, client: s_options with { Thinking = true, ThinkingStyle = ThinkingStyle.None });
        Assert.Null(none["thinking"]);
        Assert.Null(none["chat_template_kwargs"]);
    }

    [Fact]
    public void Without_a_switch_nothing_is_sent_unless_the_call_asks()
    {
        var unset = Build(s_question);
        Assert.Null(unset["thinking"]);
        Assert.Null(unset["chat_template_kwargs"]);

        var perCall = Build(s_question, new ChatOptions { AdditionalProperties = new() { ["thinking"] = JsonDocument.Parse("true").RootElement } });
        Assert.Equal("enabled", Text(perCall["thinking"]!["type"]));

        var effortOff = Build(s_question, new ChatOptions { Reasoning = new ReasoningOptions { Effort = ReasoningEffort.None } }, s_options with { Thinking = true });
        Assert.Equal("disabled", Text(effortOff["thinking"]!["type"]));
        var effortHigh = Build(s_question, new ChatOptions { Reasoning = new ReasoningOptions { Effort = ReasoningEffort.High } });
        Assert.Equal("enabled", Text(effortHigh["thinking"]!["type"]));
        var propertyWins = Build(s_question, new ChatOptions
        {
            Reasoning = new ReasoningOptions { Effort = ReasoningEffort.High }, AdditionalProperties = new() { ["thinking"] = false },
        });
        Assert.Equal("disabled", Text(propertyWins["thinking"]!["type"]));

        var e = Assert.Throws<ArgumentException>(() => Build(s_question, new ChatOptions { AdditionalProperties = new() { ["thinking"] = "yes" } }));
        Assert.Contains("must be a bool", e.Message);
    }

    [Fact]
    public void Sampling_options_and_the_model_override_are_sent_under_their_OpenAI_names()
    {
        var body = Build(s_question, new ChatOptions
        {
            ModelId = "moonshot-v1-8k", Temperature = 0.6f, TopP = 0.95f, TopK = 40, MaxOutputTokens = 256, Seed = 7,
            PresencePenalty = 0.5f, FrequencyPenalty = 0.25f, StopSequences = ["</end>", "\n\n"],
        });
        Assert.Equal("moonshot-v1-8k", Text(body["model"]));
        Assert.Equal(0.6f, body["temperature"]!.GetValue<float>());
        Assert.Equal(0.95f, body["top_p"]!.GetValue<float>());
        Assert.Equal(40, body["top_k"]!.GetValue<int>());
        Assert.Equal(256, body["max_tokens"]!.GetValue<int>());
        Assert.Equal(7, body["seed"]!.GetValue<long>());
        Assert.Equal(0.5f, body["presence_penalty"]!.GetValue<float>());
        Assert.Equal(0.25f, body["frequency_penalty"]!.GetValue<float>());
        Assert.Equal(["</end>", "\n\n"], body["stop"]!.AsArray().Select(Text));

        var plain = Build(s_question);
        Assert.Equal("kimi-k2", Text(plain["model"]));
        foreach (string absent in (string[])["temperature", "top_p", "max_tokens", "seed", "stop", "tools", "tool_choice", "response_format"])
            Assert.Null(plain[absent]);
    }

    [Description("Current weather in a city")]
    private static string Weather([Description("The city")] string city) => $"sunny in {city}";

    [Fact]
    public void Tools_and_tool_modes_become_tools_and_tool_choice()
    {
        var weather = AIFunctionFactory.Create(Weather, "get_weather");
        var body = Build(s_question, new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.RequireAny });
        var function = body["tools"]![0]!["function"]!;
        Assert.Equal("function", Text(body["tools"]![0]!["type"]));
        Assert.Equal("get_weather", Text(function["name"]));
        Assert.Equal("Current weather in a city", Text(function["description"]));
        Assert.Equal("string", Text(function["parameters"]!["properties"]!["city"]!["type"]));
        Assert.Equal("required", Text(body["tool_choice"]));

        Assert.Equal("auto", Text(Build(s_question, new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.Auto })["tool_choice"]));
        Assert.Equal("none", Text(Build(s_question, new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.None })["tool_choice"]));
        var named = Build(s_question, new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.RequireSpecific("get_weather") })["tool_choice"]!;
        Assert.Equal("function", Text(named["type"]));
        Assert.Equal("get_weather", Text(named["function"]!["name"]));

        var e = Assert.Throws<NotSupportedException>(() => Build(s_question, new ChatOptions { Tools = [new HostedWebSearchTool()] }));
        Assert.Contains("not a function", e.Message);
    }

    [Fact]
    public void Response_formats_become_json_object_and_json_schema()
    {
        Assert.Equal("json_object", Text(Build(s_question, new ChatOptions { ResponseFormat = ChatResponseFormat.Json })["response_format"]!["type"]));
        Assert.Null(Build(s_question, new ChatOptions { ResponseFormat = ChatResponseFormat.Text })["response_format"]);

        var schema = JsonDocument.Parse("""{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}""").RootElement;
        var format = Build(s_question, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema, "count", "A count") })["response_format"]!;
        Assert.Equal("json_schema", Text(format["type"]));
        Assert.Equal("count", Text(format["json_schema"]!["name"]));
        Assert.Equal("A count", Text(format["json_schema"]!["description"]));
        Assert.Equal("integer", Text(format["json_schema"]!["schema"]!["properties"]!["n"]!["type"]));
    }

    [Fact]
    public void Messages_map_to_their_roles_with_reasoning_tool_calls_and_results()
    {
        List<ChatMessage> history =
        [
            new(ChatRole.System, "Be terse."),
            new(ChatRole.User, "Weather in Oslo and Rome?") { AuthorName = "ana" },
            new(ChatRole.Assistant,
            [
                new TextReasoningContent("Two cities, "), new TextReasoningContent("two calls."), new TextContent("Checking."),
                new FunctionCallContent("functions.get_weather:0", "get_weather", new Dictionary<string, object?> { ["city"] = "Oslo" }),
                new FunctionCallContent("call_9f2", "get_weather", new Dictionary<string, object?> { ["city"] = "Rome" }),
            ]),
            new(ChatRole.Tool, [new FunctionResultContent("functions.get_weather:0", "rain"), new FunctionResultContent("call_9f2", new { temperature_c = 21 })]),
            new(ChatRole.Assistant, [new TextContent("Rain in Oslo, 21 °C in Rome."), new UsageContent(new UsageDetails { InputTokenCount = 3 })]),
        ];

        var messages = Build(history, new ChatOptions { Instructions = "Answer in English." })["messages"]!.AsArray();

        Assert.Equal(["system", "system", "user", "assistant", "tool", "tool", "assistant"], messages.Select(m => Text(m!["role"])));
        Assert.Equal("Answer in English.", Text(messages[0]!["content"]));
        Assert.Equal("ana", Text(messages[2]!["name"]));
        var caller = messages[3]!;
        Assert.Equal("Checking.", Text(caller["content"]));
        Assert.Equal("Two cities, two calls.", Text(caller["reasoning_content"]));
        Assert.Equal(["functions.get_weather:0", "call_9f2"], caller["tool_calls"]!.AsArray().Select(c => Text(c!["id"])));
        Assert.Equal("Rome", JsonNode.Parse(Text(caller["tool_calls"]![1]!["function"]!["arguments"]))!["city"]!.GetValue<string>());
        Assert.Equal("functions.get_weather:0", Text(messages[4]!["tool_call_id"]));
        Assert.Equal("rain", Text(messages[4]!["content"]));
        Assert.Equal("call_9f2", Text(messages[5]!["tool_call_id"]));
        Assert.Equal(21, JsonNode.Parse(Text(messages[5]!["content"]))!["temperature_c"]!.GetValue<int>());
        // A final answer without reasoning carries no reasoning_content; nothing forces one there.
        Assert.Null(messages[6]!["reasoning_content"]);
        Assert.Null(messages[6]!["tool_calls"]);
        Assert.Equal("Rain in Oslo, 21 °C in Rome.", Text(messages[6]!["content"]));
    }

    [Fact]
    public void Images_are_sent_as_content_parts_and_other_media_is_refused()
    {
        var image = new ChatMessage(ChatRole.User, [new TextContent("What is this?"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);
        var parts = Build([image])["messages"]![0]!["content"]!.AsArray();
        Assert.Equal("text", Text(parts[0]!["type"]));
        Assert.Equal("image_url", Text(parts[1]!["type"]));
        Assert.Equal("data:image/png;base64,AQID", Text(parts[1]!["image_url"]!["url"]));

        var audio = new ChatMessage(ChatRole.User, [new DataContent(new byte[] { 1 }, "audio/wav")]);
        var e = Assert.Throws<NotSupportedException>(() => Build([audio]));
        Assert.Contains("audio/wav", e.Message);
    }

    [Fact]
    public void FromEnvironment_reads_the_three_variables_and_names_a_missing_one()
    {
        var all = new Dictionary<string, string?> { ["KIMI_BASE_URL"] = "https://api.moonshot.ai/v1", ["KIMI_MODEL_NAME"] = "kimi-k2-thinking", ["KIMI_API_KEY"] = "sk-1" };
        var options = OpenAICompatibleClientOptions.FromEnvironment(name => all.GetValueOrDefault(name));
        Assert.Equal("https://api.moonshot.ai/v1", options.BaseUrl);
        Assert.Equal("kimi-k2-thinking", options.Model);
        Assert.Equal("sk-1", options.ApiKey);

        var keyless = OpenAICompatibleClientOptions.FromEnvironment(name => name == "KIMI_API_KEY" ? null : all.GetValueOrDefault(name));
        Assert.Null(keyless.ApiKey);

        foreach (string missing in (string[])["KIMI_BASE_URL", "KIMI_MODEL_NAME"])
        {
            var e = Assert.Throws<InvalidOperationException>(() => OpenAICompatibleClientOptions.FromEnvironment(name => name == missing ? "" : all.GetValueOrDefault(name)));
            Assert.Contains(missing, e.Message);
        }
    }

    [Fact]
    public void Bad_options_are_refused_when_the_client_is_built()
    {
        Assert.Contains("not an absolute http(s) URL", Assert.Throws<ArgumentException>(() => new OpenAICompatibleChatClient(s_options with { BaseUrl = "api.moonshot.ai/v1" })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OpenAICompatibleChatClient(s_options with { MaxRetries = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OpenAICompatibleChatClient(s_options with { RequestTimeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new OpenAICompatibleChatClient(s_options with { Model = " " }));
    }
}
