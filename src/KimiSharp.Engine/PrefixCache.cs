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
    private sealed class Entry(int[] tokens, ulong[]? keys, KvCache cache)
    {
        public int[] Tokens { get; } = tokens;
        /// <summary>Content keys of positions whose embeddings were given (images); see <see cref="PromptEmbeddings"/>.</summary>
        public ulong[]? Keys { get; } = keys;
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
    public int Reuse(ReadOnlySpan<int> prompt, KvCache target) => Reuse(prompt, null, target);

    /// <summary>
    /// As <see cref="Reuse(ReadOnlySpan{int}, KvCache)"/>, where <paramref name="keys"/>[i] (when non-zero) is the
    /// content key of position i's given embedding: a position matches only if its token and its key both do.
    /// </summary>
    public int Reuse(ReadOnlySpan<int> prompt, ulong[]? keys, KvCache target)
    {
        Lookups++;
        Entry? best = null;
        int bestLength = 0;
        foreach (var entry in _entries)
        {
            int common = CommonPrefix(prompt, keys, entry.Tokens, entry.Keys);
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
    public void Add(int[] tokens, KvCache cache) => Add(tokens, null, cache);

    /// <summary>As <see cref="Add(int[], KvCache)"/>, with the content keys of positions whose embeddings were given.</summary>
    public void Add(int[] tokens, ulong[]? keys, KvCache cache)
    {
        if (tokens.Length == 0) { cache.Reset(); return; }
        if (keys is not null && Array.TrueForAll(keys, k => k == 0)) keys = null;
        // An entry that is a prefix of the new one adds nothing; an entry the new one is a prefix of already covers it.
        foreach (var e in _entries)
            if (e.Tokens.Length >= tokens.Length && CommonPrefix(tokens, keys, e.Tokens, e.Keys) == tokens.Length)
            {
                e.LastUsed = ++_clock;
                cache.Reset();
                return;
            }
        for (int i = _entries.Count - 1; i >= 0; i--)
            if (_entries[i].Tokens.Length < tokens.Length && CommonPrefix(tokens, keys, _entries[i].Tokens, _entries[i].Keys) == _entries[i].Tokens.Length)
            {
                _entries[i].Cache.Reset();
                _entries.RemoveAt(i);
            }
        _entries.Add(new Entry(tokens, keys, cache) { LastUsed = ++_clock });
        _blocksStale = true;
    }

    /// <summary>
    /// How many leading positions two sequences share: equal tokens and equal content keys (a missing key is 0, a
    /// token's own embedding), so identical placeholder tokens of different images end the shared prefix.
    /// </summary>
    private static int CommonPrefix(ReadOnlySpan<int> a, ulong[]? aKeys, ReadOnlySpan<int> b, ulong[]? bKeys)
    {
        int common = a.CommonPrefixLength(b);
        if (aKeys is null && bKeys is null) return common;
        int keyed = Math.Min(common, Math.Max(aKeys?.Length ?? 0, bKeys?.Length ?? 0));
        for (int i = 0; i < keyed; i++)
            if (KeyAt(aKeys, i) != KeyAt(bKeys, i)) return i;
        return common;
    }

    private static ulong KeyAt(ulong[]? keys, int position) => keys is not null && position < keys.Length ? keys[position] : 0;

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
