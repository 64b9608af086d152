using System.Globalization;
using System.Text;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;

namespace KimiSharp.Server;

/// <summary>Request counters and engine gauges in Prometheus text format (GET /metrics).</summary>
public sealed class ServerMetrics
{
    private long _requests, _errors, _promptTokens, _completionTokens, _cachedTokens;
    private readonly Dictionary<int, long> _byStatus = [];

    internal void RecordRequest(ChatUsage usage)
    {
        Interlocked.Add(ref _promptTokens, usage.PromptTokens);
        Interlocked.Add(ref _completionTokens, usage.CompletionTokens);
        Interlocked.Add(ref _cachedTokens, usage.CachedTokens);
    }

    internal void RecordResponse(int status)
    {
        Interlocked.Increment(ref _requests);
        if (status >= 400) Interlocked.Increment(ref _errors);
        lock (_byStatus) _byStatus[status] = _byStatus.GetValueOrDefault(status) + 1;
    }

    public string Render(EngineSnapshot engine)
    {
        var s = new StringBuilder();
        void Metric(string name, string type, string help, double value, string labels = "")
        {
            s.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            s.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            s.Append(name).Append(labels).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        Metric("kimi_requests_total", "counter", "HTTP requests answered.", Interlocked.Read(ref _requests));
        Metric("kimi_request_errors_total", "counter", "HTTP requests answered with status 400 or above.", Interlocked.Read(ref _errors));
        Metric("kimi_prompt_tokens_total", "counter", "Prompt tokens of finished generations.", Interlocked.Read(ref _promptTokens));
        Metric("kimi_generation_tokens_total", "counter", "Tokens generated.", Interlocked.Read(ref _completionTokens));
        Metric("kimi_cached_prompt_tokens_total", "counter", "Prompt tokens served from the prefix cache.", Interlocked.Read(ref _cachedTokens));
        Metric("kimi_prefix_cache_hit_rate", "gauge", "Share of prompt tokens served from the prefix cache.", engine.PrefixHitRate);
        Metric("kimi_tokens_per_second", "gauge", "Tokens computed per second of engine busy time.", engine.TokensPerSecond);
        Metric("kimi_requests_running", "gauge", "Requests in the running batch.", engine.Running);
        Metric("kimi_requests_waiting", "gauge", "Requests queued for admission.", engine.Waiting);
        var kv = engine.Cache;
        Metric("kimi_kv_cache_budget_bytes", "gauge", "KV cache budget (EngineOptions.KvCacheBudgetBytes).", kv.BudgetBytes);
        Metric("kimi_kv_block_tokens", "gauge", "Positions per KV cache block.", kv.BlockTokens);
        Metric("kimi_kv_block_bytes", "gauge", "Bytes per KV cache block.", kv.BlockBytes);
        Metric("kimi_kv_blocks_total", "gauge", "KV cache blocks the budget holds.", kv.TotalBlocks);
        Metric("kimi_kv_blocks_used", "gauge", "KV cache blocks referenced by running sequences or the prefix cache.", kv.UsedBlocks);
        Metric("kimi_kv_blocks_free", "gauge", "KV cache blocks free.", kv.FreeBlocks);
        Metric("kimi_kv_blocks_peak", "gauge", "Most KV cache blocks used at once.", kv.PeakUsedBlocks);
        Metric("kimi_kv_blocks_materialized", "gauge", "KV cache blocks whose memory exists (used or kept for reuse).", kv.MaterializedBlocks);
        Metric("kimi_kv_prefix_cache_blocks", "gauge", "Distinct KV cache blocks the prefix cache holds.", kv.PrefixCacheBlocks);
        Metric("kimi_kv_bytes_per_sequence", "gauge", "KV cache bytes per running sequence (block table × block size), on average.", kv.BytesPerSequence);
        Metric("kimi_kv_fragmentation", "gauge", "Share of running sequences' block slots holding no token.", kv.Fragmentation);
        lock (_byStatus)
        {
            s.Append("# HELP kimi_responses_total HTTP responses by status.\n# TYPE kimi_responses_total counter\n");
            foreach (var (status, count) in _byStatus.OrderBy(p => p.Key))
                s.Append("kimi_responses_total{status=\"").Append(status).Append("\"} ").Append(count).Append('\n');
        }
        return s.ToString();
    }
}
