using KimiSharp.Testing;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Engine.Tests;

/// <summary>A random K2-architecture model with a byte-level Kimi tokenizer and the built-in chat template.</summary>
public sealed class ChatModelFixture : IAsyncLifetime
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("kimi-chat-").FullName;
    public KimiChatService Service { get; private set; } = null!;

    public Task InitializeAsync()
    {
        RandomChatModel.Write(Directory, new RandomCheckpointOptions { HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 4096, Format = CheckpointFormat.Int4, Seed = 5 });
        Service = KimiChatService.Load(Directory);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Service.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

public sealed class ChatServiceTests(ChatModelFixture fixture) : IClassFixture<ChatModelFixture>
{
    private static JsonArray Messages(string user) => new(
        new JsonObject { ["role"] = "system", ["content"] = "You are terse." },
        new JsonObject { ["role"] = "user", ["content"] = user });

    private static readonly JsonArray WeatherTools = JsonNode.Parse("""
        [{"type":"function","function":{"name":"get_weather","description":"Weather for a city",
          "parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":12},"unit":{"enum":["c","f"]}},"required":["city","unit"]}}},
         {"type":"function","function":{"name":"add","parameters":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}}}]
        """)!.AsArray();

    private async Task<(ParsedOutput Output, ChatCompleted Done, ChatStarted Started)> Run(ChatRequest request)
    {
        var pieces = new List<ParserEvent>();
        ChatCompleted? done = null;
        ChatStarted? started = null;
        await foreach (var e in fixture.Service.ChatAsync(request))
            switch (e)
            {
                case ChatOutput o: pieces.Add(o.Piece); break;
                case ChatCompleted c: done = c; break;
                case ChatStarted s: started = s; break;
            }
        pieces.Add(new End(Tokens.Parsing.FinishReason.Stop));
        return (ParsedOutput.FromEvents(pieces), done!, started!);
    }

    [Fact]
    public async Task Greedy_chat_is_deterministic_and_reports_usage()
    {
        var request = new ChatRequest { Messages = Messages("Hello there"), Generation = new GenerationOptions { Temperature = 0, MaxTokens = 24 } };
        var a = await Run(request);
        var b = await Run(request);
        Assert.Equal(a.Output.Content, b.Output.Content);
        Assert.Equal(a.Output.Reasoning, b.Output.Reasoning);
        int promptTokens = fixture.Service.Tokenizer.Encode(fixture.Service.RenderPrompt(request), true).Count;
        Assert.Equal(promptTokens, a.Done.Usage.PromptTokens);
        Assert.InRange(a.Done.Usage.CompletionTokens, 1, 24);
        Assert.True(b.Done.Usage.CachedTokens > 0, "the identical second prompt should reuse the cached prefix");
        Assert.Equal(b.Done.Usage.CachedTokens, b.Started.CachedTokens);
    }

    [Fact]
    public async Task Required_tool_choice_always_yields_a_valid_call()
    {
        for (int seed = 0; seed < 4; seed++)
        {
            var request = new ChatRequest
            {
                Messages = Messages("weather in Paris?"), Tools = WeatherTools, ToolChoice = ToolChoice.Required,
                Generation = new GenerationOptions { Temperature = 1, Seed = seed, MaxTokens = 200 },
            };
            var (output, done, _) = await Run(request);
            Assert.Equal(FinishReason.ToolCalls, done.FinishReason);
            var call = Assert.Single(output.ToolCalls);
            Assert.Null(call.Error);
            Assert.Equal($"functions.{call.Name}:0", call.Id);
            var args = JsonNode.Parse(call.Arguments)!.AsObject();
            if (call.Name == "get_weather")
            {
                Assert.True(args["city"]!.GetValue<string>().EnumerateRunes().Count() <= 12);
                Assert.Contains(args["unit"]!.GetValue<string>(), new[] { "c", "f" });
            }
            else
            {
                Assert.Equal("add", call.Name);
                _ = args["a"]!.GetValue<long>();
                _ = args["b"]!.GetValue<long>();
            }
        }
    }

    [Fact]
    public async Task Named_tool_choice_calls_that_tool_and_unknown_names_are_rejected()
    {
        var request = new ChatRequest
        {
            Messages = Messages("add 2 and 3"), Tools = WeatherTools, ToolChoice = ToolChoice.Function("add"),
            Generation = new GenerationOptions { Temperature = 0.8f, Seed = 3, MaxTokens = 200 },
        };
        var (output, _, _) = await Run(request);
        Assert.Equal("add", Assert.Single(output.ToolCalls).Name);
        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await Run(request with { ToolChoice = ToolChoice.Function("nope") }));
    }

    [Fact]
    public async Task Json_schema_response_format_yields_schema_valid_content()
    {
        var schema = JsonNode.Parse("""{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","maxLength":4},"maxItems":3}},"required":["name","age","tags"]}""")!;
        var request = new ChatRequest
        {
            Messages = Messages("describe a person as JSON"),
            ResponseFormat = new ResponseFormat.JsonSchema("person", schema),
            Generation = new GenerationOptions { Temperature = 1, Seed = 9, MaxTokens = 300 },
        };
        var (output, done, _) = await Run(request);
        Assert.Equal(FinishReason.Stop, done.FinishReason);
        using var doc = JsonDocument.Parse(output.Content);
        Assert.Equal(JsonValueKind.String, doc.RootElement.GetProperty("name").ValueKind);
        Assert.True(doc.RootElement.GetProperty("age").TryGetInt64(out _));
        Assert.True(doc.RootElement.GetProperty("tags").GetArrayLength() <= 3);
    }

    [Fact]
    public async Task Stop_strings_cut_the_content_and_finish_with_the_stop_sequence()
    {
        var request = new ChatRequest { Messages = Messages("count"), Generation = new GenerationOptions { Temperature = 0, MaxTokens = 40 } };
        var full = await Run(request with { Generation = request.Generation with { MaxTokens = 40 } });
        string content = full.Output.Content;
        Assert.True(content.Length >= 4, $"the model wrote too little content to test stop strings: {content}");
        string stop = content.Substring(content.Length / 2, 2);
        var cut = await Run(request with { Stop = [stop] });
        Assert.Equal(content[..content.IndexOf(stop, StringComparison.Ordinal)], cut.Output.Content);
        Assert.Equal(FinishReason.StopSequence, cut.Done.FinishReason);
        Assert.Equal(stop, cut.Done.StopSequence);
    }
}

/// <summary>Templates whose generation prompt opens the thinking block (K2.5) leave the model inside its reasoning.</summary>
public sealed class ThinkingPromptTests
{
    [Fact]
    public async Task A_prompt_that_ends_in_think_starts_the_answer_in_reasoning()
    {
        string dir = System.IO.Directory.CreateTempSubdirectory("kimi-k25-think-").FullName;
        try
        {
            RandomChatModel.Write(dir, new RandomCheckpointOptions { HiddenSize = 32, NumHiddenLayers = 1, Seed = 11 });
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), Tokens.Templates.ChatTemplate.BuiltInKimiK25().Source);
            await using var service = KimiChatService.Load(dir);

            async Task<ParsedOutput> Chat(bool thinking)
            {
                var request = new ChatRequest
                {
                    Messages = [new JsonObject { ["role"] = "user", ["content"] = "hi" }],
                    Generation = new GenerationOptions { MaxTokens = 12, IgnoreEos = true, Temperature = 0 },
                    TemplateVariables = new Dictionary<string, JsonNode?> { ["thinking"] = thinking },
                };
                Assert.EndsWith(thinking ? "<think>" : "<think></think>", service.RenderPrompt(request));
                var pieces = new List<ParserEvent>();
                await foreach (var e in service.ChatAsync(request))
                    if (e is ChatOutput o) pieces.Add(o.Piece);
                pieces.Add(new End(Tokens.Parsing.FinishReason.Length));
                return ParsedOutput.FromEvents(pieces);
            }

            // After an open <think> the model's first tokens are reasoning; after <think></think> they are the answer.
            var thinking = await Chat(thinking: true);
            Assert.False(string.IsNullOrEmpty(thinking.Reasoning));
            var instant = await Chat(thinking: false);
            Assert.True(string.IsNullOrEmpty(instant.Reasoning));
            Assert.NotEmpty(instant.Content);
        }
        finally
        {
            System.IO.Directory.Delete(dir, recursive: true);
        }
    }
}
