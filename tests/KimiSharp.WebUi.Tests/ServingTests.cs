using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Server;

namespace KimiSharp.WebUi.Tests;

/// <summary>How the server serves the page and its endpoints (plain HTTP, no browser).</summary>
[Collection("webui")]
public sealed class ServingTests(WebUiFixture fixture)
{
    private static HttpClient Client(KimiServer server, string? key = null)
    {
        var client = new HttpClient(new HttpClientHandler { AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = new Uri(WebUiFixture.BaseUrl(server) + "/") };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return client;
    }

    [Fact]
    public async Task ThePage_LoadsWithoutAKey_ButItsApiNeedsOne()
    {
        using var http = Client(fixture.KeyedServer);
        var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/ui/app.js")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/v1/ui/config")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync("/v1/agent/chat", new StringContent("{}"))).StatusCode);
        using var keyed = Client(fixture.KeyedServer, WebUiFixture.ApiKey);
        var config = JsonNode.Parse(await keyed.GetStringAsync("/v1/ui/config"))!;
        Assert.Equal("k2-nano", config["model"]!.GetValue<string>());
        Assert.Equal(8192, config["context_length"]!.GetValue<int>());
        Assert.False(config["vision"]!.GetValue<bool>());
        Assert.True(config["api_key_required"]!.GetValue<bool>());
        Assert.Equal(4096, config["defaults"]!["max_tokens"]!.GetValue<int>());
        Assert.Equal(["calculator", "convert_units", "calendar", "lookup", "memory"], config["tools"]!.AsArray().Select(t => t!["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Assets_AreGzippedCachedAndSmall()
    {
        using var http = Client(fixture.Server);
        var request = new HttpRequestMessage(HttpMethod.Get, "/ui/app.js");
        request.Headers.AcceptEncoding.ParseAdd("gzip");
        var response = await http.SendAsync(request);
        Assert.Equal("gzip", response.Content.Headers.ContentEncoding.Single());
        using (var gzip = new GZipStream(await response.Content.ReadAsStreamAsync(), CompressionMode.Decompress))
        using (var reader = new StreamReader(gzip))
            Assert.Contains("renderMarkdown", await reader.ReadToEndAsync());
        var again = new HttpRequestMessage(HttpMethod.Get, "/ui/app.js");
        again.Headers.IfNoneMatch.Add(response.Headers.ETag!);
        Assert.Equal(HttpStatusCode.NotModified, (await http.SendAsync(again)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/ui/nothing.js")).StatusCode);
        Assert.InRange(KimiSharp.Server.WebUi.Assets.Values.Sum(a => a.Gzip.Length), 1, 1 << 20);
    }

    [Fact]
    public void Assets_AreSelfContained()
    {
        // Every file the page names is embedded, and nothing is loaded from another host (works offline, no CDN).
        var index = Encoding.UTF8.GetString(KimiSharp.Server.WebUi.Assets["index.html"].Content);
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(index, "(?:src|href)=\"/ui/([^\"]+)\""))
            Assert.True(KimiSharp.Server.WebUi.Assets.ContainsKey(m.Groups[1].Value), m.Value);
        foreach (var asset in KimiSharp.Server.WebUi.Assets.Values.Where(a => a.Name.EndsWith(".js") || a.Name.EndsWith(".html") || a.Name.EndsWith(".css")))
        {
            string text = Encoding.UTF8.GetString(asset.Content);
            Assert.DoesNotMatch("(?:src|href)=\"(?:https?:)?//|from ['\"](?:https?:)?//|import\\(['\"](?:https?:)?//|url\\((?:https?:)?//|@import", text);
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(text, "from '\\./([^']+)'"))
                Assert.True(KimiSharp.Server.WebUi.Assets.ContainsKey(m.Groups[1].Value), $"{asset.Name} imports {m.Groups[1].Value}");
        }
    }

    [Fact]
    public async Task WithoutTheUi_NothingIsServedAtTheRoot()
    {
        await using var server = new KimiServer(fixture.Service, new ServerOptions { Port = 0, ServeUi = false }, _ => { });
        await server.StartAsync();
        using var http = Client(server);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/ui/app.js")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/v1/ui/config")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task AgentEndpoint_StreamsReasoningToolCallResultAndAnswer()
    {
        using var http = Client(fixture.Server);
        var body = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "What is 17.5% of 2,340 plus 99?" }) };
        var response = await http.PostAsync("/v1/agent/chat", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<(string Name, JsonNode Data)>();
        foreach (string frame in (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = frame.Split('\n');
            events.Add((lines[0]["event: ".Length..], JsonNode.Parse(lines[1]["data: ".Length..])!));
        }
        Assert.Equal(["reasoning", "tool_call", "tool_result", "reasoning", "answer", "usage", "done"], events.Select(e => e.Name).Where((n, i) => i == 0 || events[i - 1].Name != n));
        Assert.Equal("calculator", events.First(e => e.Name == "tool_call").Data["name"]!.GetValue<string>());
        Assert.Equal("508.5", events.First(e => e.Name == "tool_result").Data["content"]!.GetValue<string>());
        Assert.Contains("508.5", string.Concat(events.Where(e => e.Name == "answer").Select(e => e.Data["text"]!.GetValue<string>())));
        var usage = events.Single(e => e.Name == "usage").Data;
        Assert.Equal(2, usage["steps"]!.GetValue<int>());
        Assert.True(usage["completion_tokens"]!.GetValue<int>() > 10);
        var done = events.Single(e => e.Name == "done").Data;
        Assert.Equal("answer", done["stop_reason"]!.GetValue<string>());
        // The turn's messages (assistant with the call, the tool result, the answer) for the next request.
        Assert.Equal(["assistant", "tool", "assistant"], done["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("{\"messages\":[]}", "'messages' must be a non-empty array")]
    [InlineData("{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "needs a user message")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", "temperature must be between 0 and 2; got 3")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_steps\":0}", "max_steps must be between 1 and 400; got 0")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"thinking\":\"yes\"}", "'thinking' must be true or false")]
    [InlineData("not json", "not valid JSON")]
    public async Task AgentEndpoint_RefusesBadRequestsWith400(string body, string message)
    {
        using var http = Client(fixture.Server);
        var response = await http.PostAsync("/v1/agent/chat", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(message, JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["message"]!.GetValue<string>());
    }
}
