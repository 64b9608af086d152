using KimiSharp.Testing;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Server.Tests;

/// <summary>Issue 22: keys on every endpoint, body limits, field-level 400s, Anthropic strictness.</summary>
[Collection("server")]
public sealed class HardeningTests(ServerFixture fixture)
{
    private async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> Send(string path, HttpContent? content, string? key = ServerFixture.ApiKey, HttpMethod? method = null)
    {
        using var http = fixture.Http(key);
        var response = await http.SendAsync(new HttpRequestMessage(method ?? HttpMethod.Post, path) { Content = content });
        string text = await response.Content.ReadAsStringAsync();
        bool json = response.Content.Headers.ContentType?.MediaType == "application/json";
        return (response.StatusCode, json ? JsonNode.Parse(text) : null, response);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string OpenAiMessage(JsonNode? body) => body!["error"]!["message"]!.GetValue<string>();

    private static string AnthropicMessage(JsonNode? body)
    {
        Assert.Equal("error", body!["type"]!.GetValue<string>());
        return body["error"]!["message"]!.GetValue<string>();
    }

    [Theory]
    [InlineData("tokenize", "POST")]
    [InlineData("detokenize", "POST")]
    [InlineData("metrics", "GET")]
    [InlineData("v1/models", "GET")]
    public async Task Every_endpoint_but_health_needs_the_key(string path, string method)
    {
        var content = method == "POST" ? Json(path == "tokenize" ? """{"prompt":"hi"}""" : """{"tokens":[104]}""") : null;
        var (status, body, _) = await Send(path, content, key: null, new HttpMethod(method));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("authentication_error", body!["error"]!["type"]!.GetValue<string>());
        (status, _, _) = await Send(path, method == "POST" ? Json(path == "tokenize" ? """{"prompt":"hi"}""" : """{"tokens":[104]}""") : null, ServerFixture.ApiKey, new HttpMethod(method));
        Assert.Equal(HttpStatusCode.OK, status);
        (status, _, _) = await Send("health", null, key: null, HttpMethod.Get);
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task A_body_limit_above_kestrels_own_cap_is_honoured_and_named_when_exceeded()
    {
        await using var server = new KimiServer(fixture.Server.Service, new ServerOptions { Port = 0, MaxRequestBodyBytes = 40 << 20 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Urls.First().Replace("[::]", "127.0.0.1") + "/") };
        string Body(int padding) => $$"""{"model":"{{fixture.ModelId}}","temperature":7,{{new string(' ', padding)}}"messages":[{"role":"user","content":"hi"}]}""";

        // 32 MB (past Kestrel's 30 MB default, under the configured 40 MiB) is read whole and parsed: the field error comes back.
        using (var response = await http.PostAsync("v1/chat/completions", Json(Body(32_000_000))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("temperature must be between 0 and 2", await response.Content.ReadAsStringAsync());
        }
        // Over it (but under Kestrel's cap, 64 KiB above ours, which Kestrel enforces while draining the unread body).
        using (var response = await http.PostAsync("v1/chat/completions", Json(Body(42_000_000))))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            string message = await response.Content.ReadAsStringAsync();
            Assert.Contains("41,943,040 bytes", message);
            Assert.Contains("--max-body-mb", message);
        }
    }

    [Fact]
    public async Task Bodies_over_the_endpoint_limit_are_413_in_the_api_shape()
    {
        // 25 MB to /tokenize is refused from its Content-Length, before anything is read or tokenized.
        string huge = new('a', 25_000_000);
        var (status, body, _) = await Send("tokenize", Json($$"""{"prompt":"{{huge}}"}"""));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("/tokenize", OpenAiMessage(body));
        Assert.Equal("request_too_large", body!["error"]!["code"]!.GetValue<string>());

        // Without a Content-Length (chunked) the limit holds while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($$"""{"prompt":"{{new string('b', 2_000_000)}}"}""")));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "tokenize") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using (var http = fixture.Http())
        using (var response = await http.SendAsync(request))
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);

        string big = new('c', 5 << 20);
        (status, body, _) = await Send("v1/messages", Json($$"""{"model":"{{fixture.ModelId}}","max_tokens":5,"messages":[{"role":"user","content":"{{big}}"}]}"""));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("request_too_large", body!["error"]!["type"]!.GetValue<string>());
        AnthropicMessage(body);

        // Under the limit, tokenize still answers (the response is written without a node per token).
        (status, body, _) = await Send("tokenize", Json($$"""{"prompt":"{{new string('d', 100_000)}}"}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(100_000, body!["count"]!.GetValue<int>());
    }

    private string Chat(string messages, string extra = "") => $$"""{"model":"{{fixture.ModelId}}","messages":{{messages}}{{extra}}}""";

    private const string Hi = """[{"role":"user","content":"hi"}]""";

    public static TheoryData<string, string, string> MalformedOpenAi() => new()
    {
        { "content parts of the wrong kinds", """[{"role":"user","content":[1,2,"x",null]}]""", "messages[0].content[0] must be an object" },
        { "stream_options a string", Hi + "|,\"stream_options\":\"x\"", "stream_options must be an object" },
        { "response_format a string", Hi + "|,\"response_format\":\"json\"", "response_format must be an object" },
        { "json_schema.name a number", Hi + "|,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":5,\"schema\":{}}}", "response_format.json_schema.name must be a string" },
        { "lone surrogate", """[{"role":"user","content":"a\ud800b"}]""", "messages[0].content" },
        { "duplicate key", Hi + "|,\"temperature\":0.5,\"temperature\":1", "the key 'temperature' appears twice in the request body" },
        { "duplicate nested key", """[{"role":"user","content":"a","role":"system"}]""", "the key 'role' appears twice in messages[0]" },
        { "text part with a number", """[{"role":"user","content":[{"type":"text","text":5}]}]""", "messages[0].content[0].text must be a string" },
        { "text part without text", """[{"role":"user","content":[{"type":"text"}]}]""", "messages[0].content[0].text is required" },
        { "temperature above the bound", Hi + "|,\"temperature\":7", "temperature must be between 0 and 2; got 7" },
        { "max_tokens out of range", Hi + "|,\"max_tokens\":1e12", "max_tokens must be an integer from 1 to 2147483647; got 1000000000000" },
        { "max_tokens fractional", Hi + "|,\"max_tokens\":1.5", "max_tokens must be an integer; got 1.5" },
        { "stream a string", Hi + "|,\"stream\":\"yes\"", "stream must be true or false" },
        { "stop with a number", Hi + "|,\"stop\":[\"a\",3]", "stop[1] must be a string" },
        { "tools entry null", Hi + "|,\"tools\":[null]", "tools[0] must be an object" },
        { "messages an object", "{}", "messages must be an array" },
        { "thinking type unknown", Hi + "|,\"thinking\":{\"type\":\"auto\"}", "'thinking' must be true, false or {\"type\": \"enabled\"|\"disabled\"}" },
        { "thinking a string", Hi + "|,\"thinking\":\"on\"", "'thinking' must be true, false" },
        { "nesting too deep", Hi + "|,\"x\":" + new string('[', 100) + new string(']', 100), "deeper than 64" },
    };

    [Theory]
    [MemberData(nameof(MalformedOpenAi))]
    public Task Malformed_openai_fields_are_400s_naming_the_field(string name, string body, string mentions) =>
        AssertBadRequest("v1/chat/completions", name, body, Chat, OpenAiMessage, mentions);

    /// <summary>Sends <paramref name="body"/> ("MESSAGES|EXTRA FIELDS") and expects a 400 whose message mentions <paramref name="mentions"/>.</summary>
    private async Task AssertBadRequest(string path, string name, string body, Func<string, string, string> wrap, Func<JsonNode?, string> message, string mentions)
    {
        var parts = body.Split('|');
        var (status, error, _) = await Send(path, Json(wrap(parts[0], parts.Length > 1 ? parts[1] : "")));
        Assert.True(status == HttpStatusCode.BadRequest, $"{name}: {status} {error}");
        Assert.Contains(mentions, message(error));
    }

    [Fact]
    public async Task Invalid_utf8_is_a_400()
    {
        var bytes = Encoding.UTF8.GetBytes(Chat("""[{"role":"user","content":"ab"}]""")).ToList();
        bytes.InsertRange(bytes.IndexOf((byte)'a'), new byte[] { 0xC3, 0x28, 0xFF });
        var content = new ByteArrayContent(bytes.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var (status, error, _) = await Send("v1/chat/completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not valid UTF-8", OpenAiMessage(error));
    }

    private string Messages(string messages, string extra = "") =>
        $$"""{"model":"{{fixture.ModelId}}","max_tokens":5,"messages":{{messages}}{{extra}}}""";

    public static TheoryData<string, string, string> MalformedAnthropic() => new()
    {
        { "tool_result without tool_use", """[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"42"}]}]""", "messages[0].content[0].tool_use_id 'toolu_1' answers no tool_use" },
        { "tool_result answering an older message", """[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"}]},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"again"}]}]""", "messages[3].content[0].tool_use_id" },
        { "thinking without signature", """[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"a"}]},{"role":"user","content":"more"}]""", "messages[1].content[0].signature is required" },
        { "temperature above Anthropic's bound", """[{"role":"user","content":"q"}]|,"temperature":4""", "temperature must be between 0 and 1; got 4" },
        { "tool_use input a string", """[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}]""", "messages[1].content[0].input must be an object" },
        { "text block with a number", """[{"role":"user","content":[{"type":"text","text":5}]}]""", "messages[0].content[0].text must be a string" },
        { "system a number", """[{"role":"user","content":"q"}]|,"system":5""", "system must be a string or an array of text blocks" },
        { "thinking type unknown", """[{"role":"user","content":"q"}]|,"thinking":{"type":"auto"}""", "thinking.type 'auto' is not one of enabled, disabled" },
        { "thinking a boolean", """[{"role":"user","content":"q"}]|,"thinking":true""", "thinking must be an object with a type" },
        { "thinking enabled without budget", """[{"role":"user","content":"q"}]|,"thinking":{"type":"enabled"}""", "thinking.budget_tokens is required" },
        { "thinking budget too small", """[{"role":"user","content":"q"}]|,"thinking":{"type":"enabled","budget_tokens":100}""", "thinking.budget_tokens must be at least 1024" },
        { "thinking budget over max_tokens", """[{"role":"user","content":"q"}]|,"thinking":{"type":"enabled","budget_tokens":2048}""", "thinking.budget_tokens must be less than max_tokens" },
    };

    [Theory]
    [MemberData(nameof(MalformedAnthropic))]
    public Task Anthropic_requests_are_checked_as_strictly_as_anthropic_does(string name, string body, string mentions) =>
        AssertBadRequest("v1/messages", name, body, Messages, AnthropicMessage, mentions);

    [Fact]
    public async Task A_tool_result_answering_the_previous_tool_use_and_a_signed_thinking_block_are_accepted()
    {
        var (status, body, _) = await Send("v1/messages", Json(Messages("""
            [{"role":"user","content":"weather?"},
             {"role":"assistant","content":[{"type":"thinking","thinking":"use the tool","signature":""},{"type":"tool_use","id":"t1","name":"weather","input":{"city":"Paris"}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"sunny"}]}]}]
            """, ""","tools":[{"name":"weather","input_schema":{"type":"object"}}]""")));
        Assert.True(status == HttpStatusCode.OK, $"{status} {body}");
        Assert.Equal("message", body!["type"]!.GetValue<string>());
    }

    [Fact]
    public void Anthropic_thinking_switch_reaches_the_template_as_a_boolean()
    {
        var openAi = new OpenAiApi(fixture.Server.Service, new ServerMetrics(), new ServerOptions());
        var api = new AnthropicApi(fixture.Server.Service, openAi, new ServerMetrics(), new ServerOptions());
        ChatRequest Parse(string extra) => api.Parse(Protocol.ProtocolJson.Parse(Encoding.UTF8.GetBytes(
            $$"""{"model":"{{fixture.ModelId}}","max_tokens":4096,"messages":[{"role":"user","content":"q"}]{{extra}}}"""),
            Protocol.ProtocolJsonContext.Default.MessagesRequest));

        Assert.Null(Parse("").TemplateVariables);
        Assert.False(Parse(""","thinking":{"type":"disabled"}""").TemplateVariables!["thinking"]!.GetValue<bool>());
        Assert.True(Parse(""","thinking":{"type":"enabled","budget_tokens":2048}""").TemplateVariables!["thinking"]!.GetValue<bool>());
    }

    [Fact]
    public void Strict_flags_of_schemas_and_tools_reach_the_engine_request()
    {
        var api = new OpenAiApi(fixture.Server.Service, new ServerMetrics(), new ServerOptions());
        ChatRequest Parse(string extra) => api.ParseChat(Protocol.ProtocolJson.Parse(Encoding.UTF8.GetBytes(Chat(Hi, extra)),
            Protocol.ProtocolJsonContext.Default.ChatCompletionRequest)).Request;

        var strict = Parse(""","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}""");
        Assert.True(Assert.IsType<ResponseFormat.JsonSchema>(strict.ResponseFormat).Strict);
        var lax = Parse(""","response_format":{"type":"json_schema","json_schema":{"name":"x","strict":false,"schema":{"type":"object"}}}""");
        Assert.False(Assert.IsType<ResponseFormat.JsonSchema>(lax.ResponseFormat).Strict);

        var tools = Parse(""","tools":[{"type":"function","function":{"name":"a","strict":false}},{"type":"function","function":{"name":"b"}}]""").Tools!;
        Assert.False(tools[0]!["function"]!["strict"]!.GetValue<bool>());
        Assert.Null(tools[1]!["function"]!["strict"]); // absent means strict
        var e = Assert.Throws<ApiException>(() => Parse(""","tools":[{"type":"function","function":{"name":"a","strict":"no"}}]"""));
        Assert.Equal("tools[0].function.strict", e.Param);
    }
}

/// <summary>The one <see cref="Tokens.Parsing.FinishReason"/> and its names in each API.</summary>
[Collection("server")]
public sealed class FinishReasonTests(ServerFixture fixture)
{
    [Theory]
    [InlineData(Tokens.Parsing.FinishReason.Stop, "stop", "end_turn")]
    [InlineData(Tokens.Parsing.FinishReason.StopSequence, "stop", "stop_sequence")]
    [InlineData(Tokens.Parsing.FinishReason.ToolCalls, "tool_calls", "tool_use")]
    [InlineData(Tokens.Parsing.FinishReason.Length, "length", "max_tokens")]
    [InlineData(Tokens.Parsing.FinishReason.Cancelled, "stop", "end_turn")]
    public void Each_api_names_each_reason(Tokens.Parsing.FinishReason reason, string openAi, string anthropic)
    {
        Assert.Equal(openAi, FinishReasons.OpenAi(reason));
        Assert.Equal(anthropic, FinishReasons.Anthropic(reason));
    }

    [Fact]
    public async Task Stop_sequences_and_the_token_limit_reach_both_apis()
    {
        using var http = fixture.Http();
        async Task<JsonNode> Post(string path, string body)
        {
            using var response = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            return JsonNode.Parse(text)!;
        }
        string Anthropic(string extra) => $$"""{"max_tokens":30,"temperature":0,"messages":[{"role":"user","content":"count"}]{{extra}}}""";

        var full = await Post("v1/messages", Anthropic(""));
        string text = string.Concat(full["content"]!.AsArray().Where(b => b!["type"]!.GetValue<string>() == "text").Select(b => b!["text"]!.GetValue<string>()));
        Assert.True(text.Length >= 4, $"too little text to test stop sequences: {full}");
        string stop = text.Substring(text.Length / 2, 2);
        var cut = await Post("v1/messages", Anthropic($$""","stop_sequences":[{{System.Text.Json.JsonSerializer.Serialize(stop)}}]"""));
        Assert.Equal("stop_sequence", cut["stop_reason"]!.GetValue<string>());
        Assert.Equal(stop, cut["stop_sequence"]!.GetValue<string>());

        var limited = await Post("v1/messages", """{"max_tokens":1,"temperature":0,"messages":[{"role":"user","content":"count"}]}""");
        Assert.Equal("max_tokens", limited["stop_reason"]!.GetValue<string>());
        var chat = await Post("v1/chat/completions", """{"max_tokens":1,"temperature":0,"messages":[{"role":"user","content":"count"}]}""");
        Assert.Equal("length", chat["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }
}

/// <summary>A server whose engine takes one request and queues none, so a second one is refused.</summary>
public sealed class AdmissionTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-busy-").FullName;
    private KimiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        RandomChatModel.Write(_directory, new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 8192, Format = CheckpointFormat.Int4, Seed = 5,
        });
        var service = KimiChatService.Load(_directory, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 0 }, modelId: "busy");
        _server = new KimiServer(service, new ServerOptions { Port = 0, RetryAfterSeconds = 3 });
        await _server.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(_server.Urls.First().Replace("[::]", "127.0.0.1") + "/"), Timeout = TimeSpan.FromMinutes(2) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _server.Service.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public async Task A_request_refused_part_way_frees_the_runs_it_had_queued()
    {
        // n = 2 on an engine with one slot: the first run is queued, the second refused, so the request is a 429 and
        // the first run is cancelled unread (EngineTests.Cancelling_a_queued_request_that_was_never_read_frees_it).
        // The first run cannot end early (a string of at least 100000 characters), or a quick end-of-text could free the
        // slot before the second run is submitted.
        using var refused = await _http.PostAsync("v1/chat/completions",
            Json("""
                {"messages":[{"role":"user","content":"go"}],"n":2,"max_tokens":8000,"temperature":0,
                 "response_format":{"type":"json_schema","json_schema":{"name":"hold","schema":{"type":"string","minLength":100000}}}}
                """));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var next = await _http.PostAsync("v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
            if (next.StatusCode == HttpStatusCode.OK) break;
            Assert.Equal(HttpStatusCode.TooManyRequests, next.StatusCode);
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), "the refused request's first run still holds the slot");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_full_queue_is_a_429_with_retry_after_before_any_stream_starts()
    {
        // Occupy the only slot with a stream that cannot end early: a JSON string of at least 100000 characters
        // (constrained decoding masks the end tokens) in at most 8000 tokens.
        using var hold = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var first = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = Json("""
                {"messages":[{"role":"user","content":"go"}],"stream":true,"max_tokens":8000,"temperature":0,
                 "response_format":{"type":"json_schema","json_schema":{"name":"hold","schema":{"type":"string","minLength":100000}}}}
                """),
        };
        var running = await _http.SendAsync(first, HttpCompletionOption.ResponseHeadersRead, hold.Token);
        Assert.Equal(HttpStatusCode.OK, running.StatusCode);
        var stream = await running.Content.ReadAsStreamAsync(hold.Token);
        _ = await stream.ReadAsync(new byte[64], hold.Token);

        var cases = new (string Path, string Body, bool Anthropic)[]
        {
            ("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"stream":true}""", false),
            ("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}]}""", false),
            ("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n":2,"stream":true}""", false),
            ("v1/completions", """{"prompt":"hi","stream":true}""", false),
            ("v1/messages", """{"max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":true}""", true),
            ("v1/messages", """{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""", true),
        };
        foreach (var (path, body, anthropic) in cases)
        {
            using var response = await _http.PostAsync(path, Json(body));
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.TooManyRequests, $"{path} {body}: {response.StatusCode} {text}");
            Assert.Equal(TimeSpan.FromSeconds(3), response.Headers.RetryAfter?.Delta);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var error = JsonNode.Parse(text)!;
            if (anthropic)
            {
                Assert.Equal("error", error["type"]!.GetValue<string>());
                Assert.Equal("rate_limit_error", error["error"]!["type"]!.GetValue<string>());
            }
            else Assert.Equal("rate_limit_error", error["error"]!["type"]!.GetValue<string>());
        }

        // Once the holder hangs up, its slot frees and requests are served again.
        await stream.DisposeAsync();
        running.Dispose();
        for (int i = 0; i < 100; i++)
        {
            using var again = await _http.PostAsync("v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
            if (again.StatusCode == HttpStatusCode.OK) return;
            Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
            await Task.Delay(50);
        }
        Assert.Fail("the slot was never freed");
    }
}
