using KimiSharp.Model.Layers;

namespace KimiSharp.Engine;

/// <summary>
/// KV caches of finished sequences, kept so a new prompt that starts the same way (same system prompt and tools,
/// a growing conversation) shares the cached prefix instead of recomputing it. Entries hold references to pool
/// blocks: a reuse adds references to the same blocks (no copy; a partly covered last block is copied when the new
/// sequence first writes into it), and dropping an entry releases its references, so a block returns to the pool
/// when neither an entry nor a running sequence still holds it. Least recently used entries go first when the
/// engine needs blocks. Prefix reuse is exact: the kernels compute every token the same way whatever was cached
/// before it.
/// </summary>
internal sealed class PrefixCache(int minimumReuse = 1)
{
    private sealed class Entry(int[] tokens, KvCache cache)
    {
        public int[] Tokens { get; } = tokens;
        public KvCache Cache { get; } = cache;
        public long LastUsed { get; set; }
    }

    private readonly List<Entry> _entries = [];
    private readonly HashSet<int> _blocks = [];
    private bool _blocksStale;
    private long _clock;

    public int Count => _entries.Count;
    public long Lookups { get; private set; }
    public long Hits { get; private set; }

    /// <summary>The caches the entries hold (for block accounting).</summary>
    public IEnumerable<KvCache> Caches => _entries.Select(e => e.Cache);

    /// <summary>Distinct pool blocks the entries hold (entries may share blocks with each other); recounted only after a change.</summary>
    public int DistinctBlocks()
    {
        if (_blocksStale)
        {
            _blocks.Clear();
            foreach (var e in _entries) _blocks.UnionWith(e.Cache.Blocks);
            _blocksStale = false;
        }
        return _blocks.Count;
    }

    /// <summary>
    /// Shares the longest cached prefix of <paramref name="prompt"/> into <paramref name="target"/> and returns its
    /// length. At least one prompt token is always left to compute, since its logits start the generation.
    /// </summary>
    public int Reuse(ReadOnlySpan<int> prompt, KvCache target)
    {
        Lookups++;
        Entry? best = null;
        int bestLength = 0;
        foreach (var entry in _entries)
        {
            int common = prompt.CommonPrefixLength(entry.Tokens);
            common = Math.Min(common, prompt.Length - 1);
            if (common > bestLength) { best = entry; bestLength = common; }
        }
        if (best is null || bestLength < minimumReuse) return 0;
        best.LastUsed = ++_clock;
        target.SharePrefixFrom(best.Cache, bestLength);
        Hits++;
        return bestLength;
    }

    /// <summary>
    /// Keeps <paramref name="cache"/> (whose contents are <paramref name="tokens"/>) for later prompts; the cache and its
    /// block references now belong to the prefix cache, which releases them when it drops the entry (at once when an
    /// existing entry already covers it).
    /// </summary>
    public void Add(int[] tokens, KvCache cache)
    {
        if (tokens.Length == 0) { cache.Reset(); return; }
        // An entry that is a prefix of the new one adds nothing; an entry the new one is a prefix of already covers it.
        foreach (var e in _entries)
            if (e.Tokens.Length >= tokens.Length && e.Tokens.AsSpan(0, tokens.Length).SequenceEqual(tokens))
            {
                e.LastUsed = ++_clock;
                cache.Reset();
                return;
            }
        for (int i = _entries.Count - 1; i >= 0; i--)
            if (_entries[i].Tokens.Length < tokens.Length && tokens.AsSpan(0, _entries[i].Tokens.Length).SequenceEqual(_entries[i].Tokens))
            {
                _entries[i].Cache.Reset();
                _entries.RemoveAt(i);
            }
        _entries.Add(new Entry(tokens, cache) { LastUsed = ++_clock });
        _blocksStale = true;
    }

    /// <summary>Drops the least recently used entry, releasing its blocks; false when there is none.</summary>
    public bool EvictOldest()
    {
        if (_entries.Count == 0) return false;
        var oldest = _entries.MinBy(e => e.LastUsed)!;
        _entries.Remove(oldest);
        oldest.Cache.Reset();
        _blocksStale = true;
        return true;
    }

    public void Clear()
    {
        foreach (var e in _entries) e.Cache.Reset();
        _entries.Clear();
        _blocksStale = true;
    }
}
