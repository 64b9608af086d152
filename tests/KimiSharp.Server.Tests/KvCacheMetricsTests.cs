using KimiSharp.Testing;
using System.Globalization;
using System.Net;
using System.Text;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Server.Tests;

/// <summary>The paged KV cache seen from /metrics: a client that hangs up mid-stream leaves no block behind.</summary>
public sealed class KvCacheMetricsTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-kvmetrics-").FullName;
    private KimiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        RandomChatModel.Write(_directory, new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 8192, Format = CheckpointFormat.Int4, Seed = 9,
        });
        var service = KimiChatService.Load(_directory, new EngineOptions { MaxBatchSize = 4, KvCacheBlockTokens = 16 }, modelId: "kv");
        _server = new KimiServer(service, new ServerOptions { Port = 0 });
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

    private async Task<Dictionary<string, double>> Metrics()
    {
        var values = new Dictionary<string, double>();
        foreach (var line in (await _http.GetStringAsync("metrics")).Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#') || line.Contains('{')) continue;
            var parts = line.Split(' ');
            values[parts[0]] = double.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return values;
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_leaks_no_blocks()
    {
        // A stream that cannot end early (a JSON string of at least 100000 characters), read a little, then dropped.
        using var hold = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""
                {"messages":[{"role":"user","content":"go"}],"stream":true,"max_tokens":4000,"temperature":0,
                 "response_format":{"type":"json_schema","json_schema":{"name":"hold","schema":{"type":"string","minLength":100000}}}}
                """, Encoding.UTF8, "application/json"),
        };
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, hold.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync(hold.Token);
        var buffer = new byte[4096];
        for (int read = 0; read < 2000;) read += await stream.ReadAsync(buffer, hold.Token);

        var during = await Metrics();
        Assert.Equal(1, during["kimi_requests_running"]);
        Assert.True(during["kimi_kv_blocks_used"] >= 1);
        Assert.True(during["kimi_kv_bytes_per_sequence"] >= during["kimi_kv_block_bytes"]);
        Assert.InRange(during["kimi_kv_fragmentation"], 0, 1);

        await stream.DisposeAsync();
        response.Dispose();
        Dictionary<string, double> after;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await Task.Delay(20);
            after = await Metrics();
        } while (after["kimi_requests_running"] > 0 && waited.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Equal(0, after["kimi_requests_running"]);
        // The dropped stream's cache is parked for prefix reuse; nothing else holds a block.
        Assert.True(after["kimi_kv_prefix_cache_blocks"] >= 1);
        Assert.Equal(after["kimi_kv_prefix_cache_blocks"], after["kimi_kv_blocks_used"]);
        Assert.Equal(after["kimi_kv_blocks_total"] - after["kimi_kv_blocks_used"], after["kimi_kv_blocks_free"]);
        Assert.Equal(0, after["kimi_kv_bytes_per_sequence"]);
    }
}
