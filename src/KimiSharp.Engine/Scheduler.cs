using System.Collections.Concurrent;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Engine;

/// <summary>
/// Decides what runs: admits queued requests while batch slots and free KV-cache blocks allow (first come, first
/// served), hands each running sequence its next tokens for the step (a prompt chunk, or its last sampled token), and
/// retires finished sequences, parking their caches for prefix reuse.
/// <para>
/// Memory: every sequence's cache is a block table over one <see cref="KvBlockPool"/> sized by
/// <see cref="EngineOptions.KvCacheBudgetBytes"/>; the prefix cache holds references to the same blocks. A request is
/// admitted once the pool's free blocks, less the blocks running sequences may still take (each up to its prompt plus
/// max_tokens), cover what it may take — after sharing its cached prefix and evicting least recently used prefix
/// entries. Otherwise it waits (first in line blocks those behind it) until running sequences finish: a running
/// sequence never runs out of blocks, so no request fails or is preempted for memory.
/// </para>
/// Lives on the engine's loop thread, except <see cref="Enqueue"/> and <see cref="ClearPrefixCacheAsync"/>.
/// </summary>
internal sealed class Scheduler(KimiModel model, EngineOptions options, EngineStatistics statistics)
{
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly ConcurrentQueue<TaskCompletionSource> _clearRequests = new();
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly PrefixCache _prefixCache = new();
    private readonly KvBlockPool _pool = new(model.Config, options.KvCacheBudgetBytes, options.KvCacheBlockTokens);
    private int _queued;

    public int Running => _running.Count;
    public int Waiting => _waiting.Count;
    /// <summary>The block pool (its size properties are safe to read from any thread).</summary>
    public KvBlockPool Pool => _pool;

    /// <summary>Drops every prefix-cache entry at the start of the next step (any thread).</summary>
    public Task ClearPrefixCacheAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _clearRequests.Enqueue(done);
        return done.Task;
    }

    /// <summary>Queues a request (any thread), or throws <see cref="EngineBusyException"/> when the queue is full.</summary>
    public void Enqueue(Sequence sequence)
    {
        if (Interlocked.Increment(ref _queued) > options.MaxQueueLength + options.MaxBatchSize)
        {
            Interlocked.Decrement(ref _queued);
            throw new EngineBusyException($"the server is busy: {options.MaxQueueLength} requests are already waiting");
        }
        _incoming.Enqueue(sequence);
    }

    /// <summary>Drops cancelled waiters, then moves waiting requests into the batch while slots and memory allow.</summary>
    public void Admit()
    {
        bool cleared = false;
        while (_clearRequests.TryDequeue(out var request))
        {
            _prefixCache.Clear();
            cleared = true;
            statistics.RecordCache(CacheSnapshot());
            request.TrySetResult();
        }
        while (_incoming.TryDequeue(out var s)) _waiting.AddLast(s);
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            var s = node.Value;
            if (s.IsCancelled)
            {
                _waiting.Remove(node);
                s.Finish(FinishReason.Cancelled);
                Interlocked.Decrement(ref _queued);
            }
            node = next;
        }
        bool admitted = false;
        while (_waiting.First is { } first && _running.Count < options.MaxBatchSize && TryAdmit(first.Value))
        {
            _waiting.RemoveFirst();
            _running.Add(first.Value);
            admitted = true;
        }
        if (admitted && !cleared) statistics.RecordCache(CacheSnapshot());
    }

    /// <summary>
    /// Gives <paramref name="s"/> a cache — its prompt's cached prefix shared by reference — if the pool can also hold
    /// everything it may still write; otherwise takes nothing and returns false (the request waits).
    /// </summary>
    private bool TryAdmit(Sequence s)
    {
        var cache = new KvCache(model.Config, _pool);
        int cached = options.EnablePrefixCache ? _prefixCache.Reuse(s.Prompt, s.PromptEmbeddings?.PositionKeys, cache) : 0;
        int needed = cache.BlocksToReach(s.ReservedTokens), promised = PromisedBlocks();
        // Parked prefix caches are evictable (a block the new cache now shares stays, held by its reference);
        // running sequences are not, so a request that does not fit beside them waits until some finish.
        while (_pool.FreeBlocks - promised < needed && _prefixCache.EvictOldest()) { }
        if (_pool.FreeBlocks - promised < needed)
        {
            cache.Reset();
            return false;
        }
        s.Cache = cache;
        s.PrefixLookedUp = true;
        s.CachedTokens = cached;
        if (options.EnablePrefixCache) statistics.RecordPrefix(s.Prompt.Length, cached);
        return true;
    }

    /// <summary>Blocks the running sequences may still take from the pool, each up to its prompt plus max_tokens.</summary>
    private int PromisedBlocks()
    {
        int promised = 0;
        foreach (var s in _running)
            if (s.Cache is { } cache) promised += cache.BlocksToReach(s.ReservedTokens);
        return promised;
    }

    /// <summary>The pool's occupancy and the running sequences' share of it, for /metrics and the bench.</summary>
    public KvCacheSnapshot CacheSnapshot()
    {
        int sequences = 0, blocks = 0;
        long tokens = 0;
        foreach (var s in _running)
            if (s.Cache is { } cache)
            {
                sequences++;
                blocks += cache.Blocks.Count;
                tokens += cache.Length;
            }
        return new KvCacheSnapshot(options.KvCacheBudgetBytes, _pool.BlockTokens, _pool.BlockBytes, _pool.TotalBlocks, _pool.UsedBlocks,
            _pool.PeakUsedBlocks, _pool.MaterializedBlocks, _prefixCache.DistinctBlocks(), _prefixCache.Count, sequences, blocks, tokens);
    }

    /// <summary>
    /// Fills <paramref name="batch"/> with every running sequence that has work this step, each with its
    /// <see cref="Sequence.StepTokens"/> set. Cancelled sequences finish instead. Returns the step's token count.
    /// </summary>
    public int ScheduleStep(List<Sequence> batch)
    {
        batch.Clear();
        int tokens = 0;
        foreach (var s in _running)
        {
            if (s.IsDone) continue;
            if (s.IsCancelled) { s.Finish(FinishReason.Cancelled); continue; }
            var cache = s.Cache!;
            if (!s.PromptDone)
            {
                int start = cache.Length;
                s.StepTokens = s.Prompt.AsMemory(start, Math.Min(options.PrefillChunkTokens, s.Prompt.Length - start));
                s.StepEmbeddings = s.PromptEmbeddings?.Slice(start, s.StepTokens.Length);
            }
            else
            {
                s.StepEmbeddings = null;
                s.NextToken[0] = s.LastToken;
                s.StepTokens = s.NextToken;
            }
            batch.Add(s);
            tokens += s.StepTokens.Length;
        }
        return tokens;
    }

    /// <summary>Removes finished sequences from the batch, parking their caches, and records the pool's state after the step.</summary>
    public void RetireFinished()
    {
        // The step's final state before the finished let go of their blocks: the fullest moment of a batch that ends together.
        if (_running.Exists(s => s.IsDone)) statistics.RecordCache(CacheSnapshot());
        for (int i = 0; i < _running.Count; i++)
        {
            var s = _running[i];
            if (!s.IsDone) continue;
            Retire(s);
            _running.RemoveAt(i--);
        }
        statistics.RecordCache(CacheSnapshot());
    }

    /// <summary>Hands a finished sequence's blocks to the prefix cache, or back to the pool.</summary>
    private void Retire(Sequence s)
    {
        Interlocked.Decrement(ref _queued);
        var cache = s.Cache;
        s.Cache = null;
        if (cache is null) return;
        if (options.EnablePrefixCache && cache.Length > 0 && s.Error is null)
        {
            cache.ReleaseWorkspace();
            // The cache holds the prompt and every generated token but the last (it was never fed back).
            var tokens = new int[cache.Length];
            s.Prompt.AsSpan(0, Math.Min(s.Prompt.Length, cache.Length)).CopyTo(tokens);
            for (int i = s.Prompt.Length; i < cache.Length; i++) tokens[i] = s.Generated[i - s.Prompt.Length];
            // Blocks past the cached tokens (taken for a step that failed) are not the entry's.
            cache.Truncate(cache.Length);
            _prefixCache.Add(tokens, s.PromptEmbeddings?.PositionKeys, cache);
        }
        else cache.Reset();
    }

    /// <summary>Fails every running and waiting request and returns every block (the engine is shutting down).</summary>
    public void FailAll(Exception error)
    {
        while (_incoming.TryDequeue(out var s)) _waiting.AddLast(s);
        foreach (var s in _running)
        {
            s.Fail(error);
            s.Cache?.Reset();
            s.Cache = null;
        }
        foreach (var s in _waiting) s.Fail(error);
        _prefixCache.Clear();
        while (_clearRequests.TryDequeue(out var request)) request.TrySetResult();
        statistics.RecordCache(CacheSnapshot());
    }
}
