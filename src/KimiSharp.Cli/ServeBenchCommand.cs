using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi bench-serve</c>: drives a running <c>kimi serve</c> (or any OpenAI-compatible server) with N concurrent
/// streaming chat clients per level and reports, from the clients' side, aggregate and per-client decode tokens/s and
/// time to first token — the figures <c>kimi bench --concurrency</c> gives from inside the engine.
/// </summary>
internal static class ServeBenchCommand
{
    public static Command Create()
    {
        var url = CliOptions.Text("--url", "URL", "The server's base URL", "http://127.0.0.1:8000");
        var apiKey = CliOptions.Text("--api-key", "KEY", "Bearer key for the server [default: $KIMI_API_KEY, else none]");
        var concurrency = CliOptions.Parsed("--concurrency", "N,N,…", "Concurrent streaming clients per level [default: 1,4,16]", BenchCommand.ParseLevels);
        var prompt = CliOptions.Int("--prompt", "Words in each client's prompt (distinct per client)", 64, min: 1);
        var gen = CliOptions.Int("--gen", "max_tokens of each request", 64, min: 2);
        var model = CliOptions.Text("--model", "NAME", "The model name to send [default: the server's first model]");
        var command = new Command("bench-serve", """
            Drive a running server with N concurrent streaming chat clients per level (/v1/chat/completions, stream,
            temperature 0); report aggregate and per-client decode tokens/s and time to first token, client side.
            """)
        {
            url, apiKey, concurrency, prompt, gen, model,
        };
        command.SetAction((r, ct) => RunAsync(r.GetValue(url)!, r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("KIMI_API_KEY"),
            r.GetValue(concurrency) ?? [1, 4, 16], r.GetValue(prompt), r.GetValue(gen), r.GetValue(model), r.Out(), ct));
        return command;
    }

    private readonly record struct ClientResult(double FirstToken, double Finished, int CompletionTokens, string? Error);

    public static async Task<int> RunAsync(string url, string? apiKey, int[] levels, int promptWords, int gen, string? model,
        TextWriter stdout, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new UsageException($"--url must be an http(s) URL, got '{url}'");
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
        if (apiKey is { Length: > 0 }) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        model ??= await FirstModelAsync(http, cancellationToken);

        stdout.WriteLine($"server       {baseUri} model {model}; each client: a distinct {promptWords}-word prompt, max_tokens {gen} (ignore_eos), temperature 0, streamed");
        stdout.WriteLine("   N  aggregate t/s  per-client t/s  TTFT mean ms  TTFT max ms  tokens  errors");
        int run = Random.Shared.Next(1 << 20); // fresh prompts each run: an earlier run's prompts sit in the server's prefix cache
        foreach (int n in levels)
        {
            var clock = Stopwatch.StartNew();
            var clients = new Task<ClientResult>[n];
            for (int i = 0; i < n; i++)
                clients[i] = RunClientAsync(http, model, Prompt(HashCode.Combine(run, n, i), promptWords), gen, clock, cancellationToken);
            var results = await Task.WhenAll(clients);
            var ok = results.Where(c => c.Error is null && c.CompletionTokens > 0).ToArray();
            int errors = n - ok.Length;
            double aggregate = 0, ttftMean = 0, ttftMax = 0;
            int tokens = ok.Sum(c => c.CompletionTokens);
            if (ok.Length > 0)
            {
                double window = ok.Max(c => c.Finished) - ok.Max(c => c.FirstToken);
                aggregate = window > 0 ? ok.Sum(c => c.CompletionTokens - 1) / window : 0;
                ttftMean = ok.Average(c => c.FirstToken) * 1e3;
                ttftMax = ok.Max(c => c.FirstToken) * 1e3;
            }
            stdout.WriteLine($"{n,4}  {aggregate,13:F1}  {aggregate / n,14:F2}  {ttftMean,12:F0}  {ttftMax,11:F0}  {tokens,6}  {errors,6}");
            foreach (var failed in results.Where(c => c.Error is not null).Select(c => c.Error).Distinct().Take(3))
                stdout.WriteLine($"      error: {failed}");
        }
        stdout.WriteLine("  (aggregate: completion tokens of all clients after their first ÷ the time from the last first token to the last finish)");
        return 0;
    }

    private static async Task<string> FirstModelAsync(HttpClient http, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync("v1/models", cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new InvalidDataException($"GET /v1/models answered {(int)response.StatusCode}: {Shorten(body)}");
        try
        {
            return JsonNode.Parse(body)?["data"]?[0]?["id"]?.GetValue<string>()
                ?? throw new InvalidDataException("GET /v1/models listed no model; pass --model NAME");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"GET /v1/models did not answer JSON ({e.Message}); pass --model NAME");
        }
    }

    /// <summary>A distinct prompt per client, so the prefix cache cannot serve one client's prompt to another.</summary>
    private static string Prompt(int seed, int words)
    {
        var random = new Random(seed);
        var text = new StringBuilder("Continue this list:");
        for (int i = 0; i < words; i++) text.Append(' ').Append((char)('a' + random.Next(26))).Append((char)('a' + random.Next(26))).Append(random.Next(100));
        return text.ToString();
    }

    private static async Task<ClientResult> RunClientAsync(HttpClient http, string model, string prompt, int gen, Stopwatch clock,
        CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
            ["max_tokens"] = gen,
            ["temperature"] = 0,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["ignore_eos"] = true, // fixed lengths, so every client decodes for the whole window
        };
        double first = double.NaN;
        int chunks = 0, completionTokens = -1;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
            {
                Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
                return new ClientResult(0, 0, 0, $"HTTP {(int)response.StatusCode}: {Shorten(await response.Content.ReadAsStringAsync(cancellationToken))}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]") break;
                var chunk = JsonNode.Parse(data);
                if (chunk?["error"] is { } error) return new ClientResult(0, 0, 0, Shorten(error.ToJsonString()));
                if (chunk?["usage"]?["completion_tokens"] is JsonValue used) completionTokens = used.GetValue<int>();
                var delta = chunk?["choices"] is JsonArray { Count: > 0 } choices ? choices[0]?["delta"] : null;
                if (NonEmpty(delta?["content"]) || NonEmpty(delta?["reasoning_content"]) || delta?["tool_calls"] is not null)
                {
                    chunks++;
                    if (double.IsNaN(first)) first = clock.Elapsed.TotalSeconds;
                }
            }
        }
        catch (HttpRequestException e)
        {
            return new ClientResult(0, 0, 0, e.Message);
        }
        catch (JsonException e)
        {
            return new ClientResult(0, 0, 0, "malformed stream: " + e.Message);
        }
        if (double.IsNaN(first)) return new ClientResult(0, 0, 0, "the stream carried no tokens");
        return new ClientResult(first, clock.Elapsed.TotalSeconds, completionTokens >= 0 ? completionTokens : chunks, null);
    }

    private static bool NonEmpty(JsonNode? text) => text is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0;

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
