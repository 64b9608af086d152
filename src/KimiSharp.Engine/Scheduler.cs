using System.Collections.Concurrent;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Engine;

/// <summary>
/// Decides what runs: admits queued requests while batch slots and the KV-cache budget allow (first come, first
/// served), hands each running sequence its next tokens for the step (a prompt chunk after a prefix-cache lookup,
/// or its last sampled token), and retires finished sequences, parking their caches for prefix reuse.
/// Lives on the engine's loop thread, except <see cref="Enqueue"/>.
/// </summary>
internal sealed class Scheduler(KimiModel model, EngineOptions options, EngineStatistics statistics)
{
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly PrefixCache _prefixCache = new();
    private long _reservedBytes;
    private int _queued;

    public int Running => _running.Count;
    public int Waiting => _waiting.Count;

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
        while (_waiting.First is { } first && _running.Count < options.MaxBatchSize)
        {
            var s = first.Value;
            // Parked prefix caches are evictable; running sequences are not, so a request that does not fit
            // beside them waits until some finish.
            if (s.ReservedBytes > options.KvCacheBudgetBytes - _reservedBytes) break;
            _prefixCache.TrimTo(options.KvCacheBudgetBytes - _reservedBytes - s.ReservedBytes);
            _waiting.RemoveFirst();
            _reservedBytes += s.ReservedBytes;
            s.Cache = model.CreateCache(s.ReservedTokens);
            _running.Add(s);
        }
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
                if (!s.PrefixLookedUp)
                {
                    s.PrefixLookedUp = true;
                    if (options.EnablePrefixCache && cache.Length == 0)
                    {
                        s.CachedTokens = _prefixCache.Reuse(s.Prompt, s.PromptEmbeddings?.PositionKeys, cache);
                        statistics.RecordPrefix(s.Prompt.Length, s.CachedTokens);
                    }
                }
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

    /// <summary>Removes finished sequences from the batch, releasing their budget and parking their caches.</summary>
    public void RetireFinished()
    {
        for (int i = 0; i < _running.Count; i++)
        {
            var s = _running[i];
            if (!s.IsDone) continue;
            Retire(s);
            _running.RemoveAt(i--);
        }
    }

    private void Retire(Sequence s)
    {
        _reservedBytes -= s.ReservedBytes;
        Interlocked.Decrement(ref _queued);
        if (options.EnablePrefixCache && s.Cache is { Length: > 0 } cache && s.Error is null)
        {
            cache.ReleaseWorkspace();
            // The cache holds the prompt and every generated token but the last (it was never fed back).
            var tokens = new int[cache.Length];
            s.Prompt.AsSpan(0, Math.Min(s.Prompt.Length, cache.Length)).CopyTo(tokens);
            for (int i = s.Prompt.Length; i < cache.Length; i++) tokens[i] = s.Generated[i - s.Prompt.Length];
            _prefixCache.Add(tokens, s.PromptEmbeddings?.PositionKeys, cache);
            _prefixCache.TrimTo(Math.Max(0, options.KvCacheBudgetBytes - _reservedBytes));
        }
        s.Cache = null;
    }

    /// <summary>Fails every running and waiting request (the engine is shutting down).</summary>
    public void FailAll(Exception error)
    {
        while (_incoming.TryDequeue(out var s)) _waiting.AddLast(s);
        foreach (var s in _running) s.Fail(error);
        foreach (var s in _waiting) s.Fail(error);
    }
}
