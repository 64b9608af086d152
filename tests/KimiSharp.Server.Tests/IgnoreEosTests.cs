using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Server.Tests;

/// <summary><c>ignore_eos</c> (vLLM's extension, what <c>kimi bench-serve</c> sends): generation runs to max_tokens through end tokens.</summary>
[Collection("server")]
public sealed class IgnoreEosTests(ServerFixture fixture)
{
    private async Task<(string Finish, int Tokens)> Complete(HttpClient http, int seed, bool? ignoreEos)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
            ["max_tokens"] = 48, ["temperature"] = 1.5, ["seed"] = seed,
        };
        if (ignoreEos is bool flag) body["ignore_eos"] = flag;
        using var response = await http.PostAsJsonAsync("v1/chat/completions", body);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, json.ToJsonString());
        return (json["choices"]![0]!["finish_reason"]!.GetValue<string>(), json["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Ignore_eos_runs_every_request_to_max_tokens_where_end_tokens_stopped_some()
    {
        using var http = fixture.Http();
        var seeds = Enumerable.Range(1, 24).ToArray();
        var plain = await Task.WhenAll(seeds.Select(s => Complete(http, s, ignoreEos: null)));
        // At this temperature the random model ends some answers early with an end token...
        Assert.Contains(plain, r => r.Finish == "stop" && r.Tokens < 48);
        // ...which ignore_eos passes through: every one of the same requests runs to its limit.
        var forced = await Task.WhenAll(seeds.Select(s => Complete(http, s, ignoreEos: true)));
        Assert.All(forced, r => Assert.Equal(("length", 48), r));
    }

    [Fact]
    public async Task A_non_boolean_ignore_eos_is_a_400_naming_it()
    {
        using var http = fixture.Http();
        using var response = await http.PostAsync("v1/chat/completions", new StringContent(
            """{"messages":[{"role":"user","content":"hi"}],"ignore_eos":"yes"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("ignore_eos", await response.Content.ReadAsStringAsync());
    }
}
