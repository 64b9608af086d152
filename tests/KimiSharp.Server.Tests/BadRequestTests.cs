using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Server.Tests;

/// <summary>Bad requests get the right status and an error body in each API's shape; the server keeps serving.</summary>
[Collection("server")]
public sealed class BadRequestTests(ServerFixture fixture)
{
    private async Task<(HttpStatusCode Status, JsonNode Body)> Post(string path, string body, string? key = ServerFixture.ApiKey)
    {
        using var http = fixture.Http(key);
        using var response = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonNode.Parse(text)!);
    }

    private string Chat(string messages, string extra = "") =>
        $$"""{"model":"{{fixture.ModelId}}","messages":{{messages}}{{extra}}}""";

    public static TheoryData<string, string, HttpStatusCode, string> OpenAiCases() => new()
    {
        { "malformed JSON", "{\"model\": ", HttpStatusCode.BadRequest, "not valid JSON" },
        { "unknown role", "MSG:[{\"role\":\"wizard\",\"content\":\"hi\"}]", HttpStatusCode.BadRequest, "role 'wizard'" },
        { "empty messages", "MSG:[]", HttpStatusCode.BadRequest, "must not be empty" },
        { "tool_choice naming no tool", "MSG:[{\"role\":\"user\",\"content\":\"hi\"}]|,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"b\"}}", HttpStatusCode.BadRequest, "'b'" },
        { "bad temperature", "MSG:[{\"role\":\"user\",\"content\":\"hi\"}]|,\"temperature\":7", HttpStatusCode.BadRequest, "temperature" },
        { "unknown model", "{\"model\":\"gpt-17\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", HttpStatusCode.NotFound, "gpt-17" },
    };

    [Theory]
    [MemberData(nameof(OpenAiCases))]
    public async Task OpenAi_errors_have_the_right_status_and_shape(string name, string body, HttpStatusCode status, string mentions)
    {
        if (body.StartsWith("MSG:", StringComparison.Ordinal))
        {
            var parts = body[4..].Split('|');
            body = Chat(parts[0], parts.Length > 1 ? parts[1] : "");
        }
        var (actual, error) = await Post("v1/chat/completions", body);
        Assert.True(status == actual, $"{name}: expected {status}, got {actual}: {error}");
        Assert.Contains(mentions, error["error"]!["message"]!.GetValue<string>());
        Assert.NotNull(error["error"]!["type"]);
        await ServerStillServes();
    }

    [Fact]
    public async Task Over_long_prompt_is_a_400_naming_the_limit()
    {
        string longText = new('x', 3000); // byte-level tokenizer: > 2048 tokens
        var (status, error) = await Post("v1/chat/completions", Chat($$"""[{"role":"user","content":"{{longText}}"}]"""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("context_length_exceeded", error["error"]!["code"]!.GetValue<string>());
        Assert.Contains("2048", error["error"]!["message"]!.GetValue<string>());
        await ServerStillServes();
    }

    [Fact]
    public async Task Wrong_or_missing_key_is_401_in_both_shapes()
    {
        var (status, error) = await Post("v1/chat/completions", Chat("""[{"role":"user","content":"hi"}]"""), key: "nope");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("authentication_error", error["error"]!["type"]!.GetValue<string>());
        (status, error) = await Post("v1/messages", $$"""{"model":"{{fixture.ModelId}}","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""", key: null);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("error", error["type"]!.GetValue<string>());
        Assert.Equal("authentication_error", error["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Anthropic_errors_use_the_anthropic_shape()
    {
        var (status, error) = await Post("v1/messages", $$"""{"model":"{{fixture.ModelId}}","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request_error", error["error"]!["type"]!.GetValue<string>());
        Assert.Contains("max_tokens", error["error"]!["message"]!.GetValue<string>());
        (status, error) = await Post("v1/messages", $$"""{"model":"{{fixture.ModelId}}","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("role 'system'", error["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Models_health_metrics_tokenize_and_detokenize()
    {
        using var http = fixture.Http();
        var models = JsonNode.Parse(await http.GetStringAsync("v1/models"))!;
        Assert.Equal(fixture.ModelId, models["data"]![0]!["id"]!.GetValue<string>());
        var tokens = JsonNode.Parse(await (await http.PostAsync("tokenize", new StringContent("""{"prompt":"héllo"}""", Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        Assert.Equal(6, tokens["count"]!.GetValue<int>()); // byte-level: h, é (2 bytes), l, l, o
        var text = JsonNode.Parse(await (await http.PostAsync("detokenize", new StringContent($$"""{"tokens":{{tokens["tokens"]!.ToJsonString()}}}""", Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        Assert.Equal("héllo", text["prompt"]!.GetValue<string>());
        var (status, _) = await Post("detokenize", """{"tokens":[99999999]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        string metrics = await http.GetStringAsync("metrics");
        Assert.Contains("kimi_requests_total", metrics);
        Assert.Contains("kimi_prefix_cache_hit_rate", metrics);
        var completion = JsonNode.Parse(await (await http.PostAsync("v1/completions", new StringContent($$"""{"model":"{{fixture.ModelId}}","prompt":"Once upon","max_tokens":5,"temperature":0}""", Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        Assert.Equal("text_completion", completion["object"]!.GetValue<string>());
        Assert.InRange(completion["usage"]!["completion_tokens"]!.GetValue<int>(), 1, 5);
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_frees_its_slot()
    {
        var engine = fixture.Server.Service.Engine.Statistics;
        long stepsBefore = engine.Snapshot().Steps;
        using (var http = fixture.Http())
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
            {
                Content = new StringContent(Chat("""[{"role":"user","content":"go on forever"}]""", ",\"stream\":true,\"max_tokens\":1500,\"temperature\":1"), Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[256];
            _ = await stream.ReadAsync(buffer); // first chunk arrived; now hang up
        }
        // The abandoned request must leave the batch promptly. The statistics are recorded after each step's tokens
        // go out, so a snapshot taken before this request's first step was recorded still shows the previous idle 0.
        static bool Idle(KimiSharp.Engine.EngineSnapshot s, long since) => s.Steps > since && s.Running == 0;
        for (int i = 0; i < 100 && !Idle(engine.Snapshot(), stepsBefore); i++) await Task.Delay(50);
        var after = engine.Snapshot();
        Assert.True(Idle(after, stepsBefore), $"still running: {after}");
        await ServerStillServes();
    }

    private async Task ServerStillServes()
    {
        using var http = fixture.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
    }
}
