using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace KimiSharp.Server.Tests;

/// <summary>
/// Thousands of seeded, mutated requests (wrong types, missing and extra fields, huge numbers, deep nesting, bad
/// UTF-8, truncation, odd content types and methods, with and without the key) against the real server: no 5xx,
/// every error in its API's shape, the key enforced everywhere but /health, and the server healthy and its memory
/// bounded afterwards.
/// </summary>
[Collection("server")]
public sealed class ApiFuzzTests(ServerFixture fixture, ITestOutputHelper output)
{
    private const int Requests = 3000;
    private const int Seed = 22;

    private sealed record Endpoint(string Path, HttpMethod Method, string? Body, bool Anthropic = false);

    private string Model(string body) => body.Replace("MODEL", fixture.ModelId, StringComparison.Ordinal);

    private Endpoint[] Endpoints() =>
    [
        new("v1/chat/completions", HttpMethod.Post, Model("""
            {"model":"MODEL","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"ok"}],
             "max_tokens":4,"temperature":0.7,"top_p":0.9,"n":1,"stream":false,"stream_options":{"include_usage":true},"stop":["\n\n"],
             "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"x":{"type":"integer"}}}}}],
             "tool_choice":"auto","response_format":{"type":"text"},"seed":1,"logprobs":false}
            """)),
        new("v1/chat/completions", HttpMethod.Post, Model("""
            {"model":"MODEL","messages":[{"role":"user","content":"json please"}],"max_tokens":6,
             "response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}
            """)),
        new("v1/completions", HttpMethod.Post, $$"""{"model":"{{fixture.ModelId}}","prompt":"Once upon","max_tokens":4,"temperature":0,"stop":"x","stream":false}"""),
        new("v1/completions", HttpMethod.Post, """{"prompt":[104,105],"max_tokens":3}"""),
        new("v1/messages", HttpMethod.Post, Model("""
            {"model":"MODEL","max_tokens":4,"system":[{"type":"text","text":"be brief"}],"temperature":0.5,"stop_sequences":["zz"],
             "messages":[{"role":"user","content":"weather?"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":""},{"type":"tool_use","id":"t1","name":"w","input":{"c":"P"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"sun"}]}]}],
             "tools":[{"name":"w","description":"weather","input_schema":{"type":"object"}}],"tool_choice":{"type":"auto"},"stream":false}
            """), Anthropic: true),
        new("tokenize", HttpMethod.Post, """{"prompt":"héllo","add_special_tokens":false}"""),
        new("tokenize", HttpMethod.Post, """{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true}"""),
        new("detokenize", HttpMethod.Post, """{"tokens":[104,105]}"""),
        new("v1/models", HttpMethod.Get, null),
        new("metrics", HttpMethod.Get, null),
        new("health", HttpMethod.Get, null),
    ];

    [Fact]
    public async Task Mutated_requests_never_get_a_5xx_and_errors_keep_their_shape()
    {
        var endpoints = Endpoints();
        var statuses = new ConcurrentDictionary<int, int>();
        var failures = new ConcurrentQueue<string>();
        using var http = fixture.Http(key: null);
        var stopwatch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, Requests), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var random = new Random(HashCode.Combine(Seed, i));
            var endpoint = endpoints[random.Next(endpoints.Length)];
            var (request, description, keyed) = Build(endpoint, random);
            try
            {
                int status = await Check(http, request, endpoint, keyed, failures, description);
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                failures.Enqueue($"{description}: connection failed: {e.Message}");
            }
        });
        var elapsed = stopwatch.Elapsed;
        string distribution = string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"));
        output.WriteLine($"{Requests} requests in {elapsed.TotalSeconds:F1} s; statuses {distribution}");
        Assert.True(failures.IsEmpty, $"{failures.Count} failures, e.g.:\n{string.Join("\n", failures.Take(10))}");
        Assert.True(statuses.Keys.Count(s => s >= 400) >= 4, $"the mutations should provoke several kinds of error: {distribution}");

        // Still healthy: health, a real generation, and the managed heap back near its size.
        using var keyed = fixture.Http();
        Assert.Equal(HttpStatusCode.OK, (await keyed.GetAsync("health")).StatusCode);
        using var chat = await keyed.PostAsync("v1/chat/completions", new StringContent(
            $$"""{"model":"{{fixture.ModelId}}","messages":[{"role":"user","content":"still there?"}],"max_tokens":3}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        for (int i = 0; i < 100 && fixture.Server.Service.Engine.Statistics.Snapshot().Running > 0; i++) await Task.Delay(50);
        Assert.Equal(0, fixture.Server.Service.Engine.Statistics.Snapshot().Running);
        long heap = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"managed heap after: {heap >> 20} MiB");
        Assert.True(heap < 256L << 20, $"managed heap {heap >> 20} MiB after the fuzz run");
    }

    private static async Task<int> Check(HttpClient http, HttpRequestMessage request, Endpoint endpoint, bool keyed,
        ConcurrentQueue<string> failures, string description)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        int status = (int)response.StatusCode;
        if (status >= 500) failures.Enqueue($"{description}: {status} {await response.Content.ReadAsStringAsync(timeout.Token)}");
        if (!keyed && endpoint.Path != "health" && status != 401) failures.Enqueue($"{description}: no key but {status}");
        if (status < 400)
        {
            // A success: read a little (a stream's first frame), then hang up, which must free the engine slot.
            await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
            _ = await body.ReadAsync(new byte[512], timeout.Token);
            return status;
        }
        string text = await response.Content.ReadAsStringAsync(timeout.Token);
        if (response.Content.Headers.ContentType?.MediaType != "application/json")
        {
            failures.Enqueue($"{description}: {status} with content type {response.Content.Headers.ContentType}: {text}");
            return status;
        }
        if (status == 429 && response.Headers.RetryAfter is null) failures.Enqueue($"{description}: 429 without Retry-After");
        try
        {
            var error = JsonNode.Parse(text)!;
            if (endpoint.Anthropic && error["type"]!.GetValue<string>() != "error") failures.Enqueue($"{description}: not Anthropic's shape: {text}");
            var inner = error["error"]!;
            _ = inner["type"]!.GetValue<string>();
            if (inner["message"]!.GetValue<string>().Length == 0) failures.Enqueue($"{description}: empty message");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or NullReferenceException or InvalidOperationException)
        {
            failures.Enqueue($"{description}: {status} with a body in no API's shape: {text}");
        }
        return status;
    }

    private static readonly string[] s_contentTypes = ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""];

    private static (HttpRequestMessage Request, string Description, bool Keyed) Build(Endpoint endpoint, Random random)
    {
        var what = new List<string>();
        var method = endpoint.Method;
        if (random.Next(50) == 0) { method = random.Next(2) == 0 ? HttpMethod.Put : HttpMethod.Get; what.Add($"method {method}"); }
        var request = new HttpRequestMessage(method, endpoint.Path);

        byte[]? body = null;
        if (endpoint.Body is not null)
        {
            var node = JsonNode.Parse(endpoint.Body)!;
            if (node is JsonObject root && random.Next(3) == 0) { root["stream"] = true; what.Add("stream"); }
            int mutations = random.Next(0, 4);
            for (int m = 0; m < mutations; m++) node = Mutate(node, random, what);
            string text = node.ToJsonString();
            body = Encoding.UTF8.GetBytes(text);
            body = Corrupt(body, text, random, what);
        }
        else if (random.Next(10) == 0) body = Encoding.UTF8.GetBytes("{\"unexpected\":true}");
        if (body is not null)
        {
            var content = new ByteArrayContent(body);
            string type = s_contentTypes[random.Next(s_contentTypes.Length)];
            if (type.Length > 0) content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            request.Content = content;
        }

        bool keyed = true;
        switch (random.Next(10))
        {
            case 0: keyed = false; what.Add("no key"); break;
            case 1: keyed = false; request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "wrong"); what.Add("wrong key"); break;
            case 2: request.Headers.Add("x-api-key", ServerFixture.ApiKey); break;
            default: request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.ApiKey); break;
        }
        return (request, $"{method} /{endpoint.Path} [{string.Join("; ", what)}]", keyed);
    }

    /// <summary>Replaces, removes or adds one value somewhere in the document.</summary>
    private static JsonNode Mutate(JsonNode root, Random random, List<string> what)
    {
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        var target = nodes[random.Next(nodes.Count)];
        if (target == root)
        {
            if (random.Next(5) == 0) { what.Add("root replaced"); return Value(random, what) ?? JsonValue.Create(0); }
            if (root is JsonObject o) { string key = Key(random); o[key] = Value(random, what); what.Add($"added {key}"); }
            return root;
        }
        var parent = target.Parent!;
        switch (random.Next(3))
        {
            case 0 when parent is JsonObject po:
                string name = target.GetPropertyName();
                po.Remove(name);
                what.Add($"removed {target.GetPath()}");
                break;
            case 1 when parent is JsonObject po2:
                string extra = Key(random);
                po2[extra] = Value(random, what);
                what.Add($"added {extra} at {parent.GetPath()}");
                break;
            default:
                string path = target.GetPath();
                target.ReplaceWith(Value(random, what));
                what.Add($"replaced {path}");
                break;
        }
        return root;
    }

    private static void Collect(JsonNode? node, List<JsonNode> nodes)
    {
        if (node is null) return;
        nodes.Add(node);
        if (node is JsonObject o) foreach (var (_, v) in o) Collect(v, nodes);
        else if (node is JsonArray a) foreach (var v in a) Collect(v, nodes);
    }

    private static readonly string[] s_keys = ["model", "messages", "max_tokens", "temperature", "stream", "tools", "content", "role", "type", "text", "zzz", "n", "stop", "prompt", "tokens", "response_format", "tool_choice", "system", "input", "json_schema", "strict", "top_k"];

    private static string Key(Random random) => s_keys[random.Next(s_keys.Length)];

    private static JsonNode? Value(Random random, List<string> what) => random.Next(22) switch
    {
        0 => null,
        1 => JsonValue.Create(0),
        2 => JsonValue.Create(-1),
        3 => JsonValue.Create(1e12),
        4 => JsonValue.Create(1e308),
        5 => JsonValue.Create(3.5),
        6 => JsonValue.Create(int.MaxValue),
        7 => JsonValue.Create(""),
        8 => JsonValue.Create("x"),
        9 => JsonValue.Create(new string('y', random.Next(1, 20_000))),
        10 => JsonValue.Create("\u0000\u202e"),
        11 => JsonValue.Create(true),
        12 => new JsonArray(),
        13 => new JsonArray(1, 2, "x", null),
        14 => new JsonObject(),
        15 => Deep(random.Next(10, 120), what),
        16 => new JsonObject { ["type"] = "text", ["text"] = 5 },
        17 => new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = 5 } },
        18 => new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(1, 2, "x", null) }),
        19 => new JsonArray(new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "nope", ["content"] = "x" }),
        20 => JsonValue.Create(2_000_000),
        _ => JsonValue.Create(false),
    };

    private static JsonNode Deep(int depth, List<string> what)
    {
        what.Add($"depth {depth}");
        JsonNode node = new JsonArray();
        for (int i = 1; i < depth; i++) node = i % 2 == 0 ? new JsonArray(node) : new JsonObject { ["a"] = node };
        return node;
    }

    /// <summary>Byte-level damage the JSON layer cannot express: truncation, bad UTF-8, lone surrogates, duplicate keys.</summary>
    private static byte[] Corrupt(byte[] body, string text, Random random, List<string> what)
    {
        switch (random.Next(12))
        {
            case 0:
                what.Add("truncated");
                return body[..random.Next(body.Length)];
            case 1:
            {
                what.Add("bad UTF-8");
                var bytes = body.ToList();
                bytes.InsertRange(random.Next(bytes.Count), new byte[] { 0xC3, 0x28, 0xFF, 0xFE }[..random.Next(1, 5)]);
                return bytes.ToArray();
            }
            case 2:
            {
                int quote = text.IndexOf(":\"", StringComparison.Ordinal);
                if (quote < 0) return body;
                what.Add("lone surrogate");
                return Encoding.UTF8.GetBytes(text.Insert(quote + 2, random.Next(2) == 0 ? "\\ud800" : "\\udfff\\ud800"));
            }
            case 3:
            {
                what.Add("duplicate key");
                int brace = text.IndexOf('{');
                return Encoding.UTF8.GetBytes(text.Insert(brace + 1, $"\"{Key(random)}\":1,\"{Key(random)}\":2,"));
            }
            case 4:
                what.Add("flipped byte");
                var copy = (byte[])body.Clone();
                if (copy.Length > 0) copy[random.Next(copy.Length)] = (byte)random.Next(256);
                return copy;
            case 5 when random.Next(20) == 0:
                what.Add("over the size limit");
                return Encoding.UTF8.GetBytes(text.Insert(1, $"\"pad\":\"{new string('p', 5 << 20)}\","));
            default:
                return body;
        }
    }
}
