namespace KimiSharp.Engine;

/// <summary>Running totals for /metrics: throughput, queue, and prefix-cache effectiveness.</summary>
public sealed class EngineStatistics
{
    private readonly object _lock = new();
    private long _tokens, _promptTokens, _cachedTokens, _steps;
    private double _busySeconds;
    private int _running, _waiting;
    private KvCacheSnapshot _cache, _fullestCache;

    internal void RecordStep(int tokens, TimeSpan elapsed, int running, int waiting)
    {
        lock (_lock)
        {
            _tokens += tokens;
            _steps++;
            _busySeconds += elapsed.TotalSeconds;
            _running = running;
            _waiting = waiting;
        }
    }

    internal void RecordPrefix(int promptTokens, int cachedTokens)
    {
        lock (_lock)
        {
            _promptTokens += promptTokens;
            _cachedTokens += cachedTokens;
        }
    }

    internal void RecordCache(KvCacheSnapshot cache)
    {
        lock (_lock)
        {
            _cache = cache;
            if (cache.SequenceTokens >= _fullestCache.SequenceTokens) _fullestCache = cache;
        }
    }

    public EngineSnapshot Snapshot()
    {
        lock (_lock)
            return new EngineSnapshot(_tokens, _steps, _busySeconds, _running, _waiting, _promptTokens, _cachedTokens) { Cache = _cache, FullestCache = _fullestCache };
    }
}

/// <param name="TokensComputed">Prompt and generated tokens pushed through the model.</param>
/// <param name="BusySeconds">Time spent computing (idle time excluded).</param>
public readonly record struct EngineSnapshot(long TokensComputed, long Steps, double BusySeconds, int Running, int Waiting,
    long PromptTokens, long CachedPromptTokens)
{
    public double TokensPerSecond => BusySeconds > 0 ? TokensComputed / BusySeconds : 0;
    public double PrefixHitRate => PromptTokens > 0 ? (double)CachedPromptTokens / PromptTokens : 0;
    /// <summary>The KV block pool after the engine's last admission or retirement.</summary>
    public KvCacheSnapshot Cache { get; init; }
    /// <summary>The pool when the running sequences held the most cached tokens (the latest such moment).</summary>
    public KvCacheSnapshot FullestCache { get; init; }
}

/// <summary>
/// The paged KV cache at one moment: the pool's blocks and how the running sequences use them.
/// </summary>
/// <param name="BudgetBytes">EngineOptions.KvCacheBudgetBytes.</param>
/// <param name="BlockTokens">Positions per block.</param>
/// <param name="BlockBytes">Bytes per block (all layers' latents and rope keys of BlockTokens positions).</param>
/// <param name="TotalBlocks">Blocks the budget holds.</param>
/// <param name="UsedBlocks">Blocks referenced by a running sequence or a prefix-cache entry.</param>
/// <param name="PeakUsedBlocks">The most blocks used at once since the engine started.</param>
/// <param name="MaterializedBlocks">Blocks whose memory exists (used now or kept for reuse); the pool's resident bytes are this × BlockBytes.</param>
/// <param name="PrefixCacheBlocks">Distinct blocks the prefix cache holds (some may also be in running sequences' tables).</param>
/// <param name="PrefixCacheEntries">Finished sequences kept for prefix reuse.</param>
/// <param name="Sequences">Running sequences with a cache.</param>
/// <param name="SequenceBlocks">Blocks in the running sequences' tables (a block shared by two counts twice).</param>
/// <param name="SequenceTokens">Positions the running sequences have cached.</param>
public readonly record struct KvCacheSnapshot(long BudgetBytes, int BlockTokens, long BlockBytes, int TotalBlocks, int UsedBlocks,
    int PeakUsedBlocks, int MaterializedBlocks, int PrefixCacheBlocks, int PrefixCacheEntries, int Sequences, int SequenceBlocks, long SequenceTokens)
{
    public int FreeBlocks => TotalBlocks - UsedBlocks;
    public long UsedBytes => UsedBlocks * BlockBytes;
    /// <summary>Bytes of cache blocks per running sequence (its block table × block size), on average.</summary>
    public double BytesPerSequence => Sequences > 0 ? (double)SequenceBlocks * BlockBytes / Sequences : 0;
    /// <summary>Share of the running sequences' block slots not holding a token: the unused tail of each last block.</summary>
    public double Fragmentation => SequenceBlocks > 0 ? 1 - (double)SequenceTokens / ((long)SequenceBlocks * BlockTokens) : 0;
}
