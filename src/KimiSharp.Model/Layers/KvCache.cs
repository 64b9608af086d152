using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// MLA's cache for one sequence: per layer and per token, the normalized latent c̃ (kv_lora_rank values) and
/// the already-rotated shared rope key (qk_rope_head_dim values). Per-head keys and values are never stored;
/// they are folded into the query and output sides at decode time.
/// <para>
/// The cache is a block table over a <see cref="KvBlockPool"/>: position p lives in block table[p / BlockTokens].
/// Blocks may be shared with other caches of the same pool (a reused prefix): they are shared by reference, and a
/// shared block is copied before this cache writes into it (copy on write), so sharing never changes what another
/// cache reads.
/// </para>
/// </summary>
public sealed unsafe class KvCache
{
    private readonly KvBlockPool _pool;
    private readonly List<int> _blocks = [];

    public int LatentDim { get; }
    public int RopeDim { get; }
    public int Layers { get; }
    /// <summary>Tokens cached so far: the position the next token takes.</summary>
    public int Length { get; private set; }
    /// <summary>Positions the blocks held now can take.</summary>
    public int Capacity => _blocks.Count * _pool.BlockTokens;
    /// <summary>The model's context limit (max_position_embeddings).</summary>
    public int MaxLength { get; }
    /// <summary>The pool this cache's blocks come from.</summary>
    public KvBlockPool Pool => _pool;
    /// <summary>The block table: the pool's block ids holding positions [i·BlockTokens, (i+1)·BlockTokens).</summary>
    public IReadOnlyList<int> Blocks => _blocks;

    private ForwardWorkspace? _workspace;

    /// <summary>Scratch buffers for forward passes over this sequence, created on first use.</summary>
    internal ForwardWorkspace Workspace => _workspace ??= new ForwardWorkspace();

    /// <summary>Frees the scratch buffers (a cache parked for reuse needs only its latents).</summary>
    public void ReleaseWorkspace() => _workspace = null;

    /// <summary>Bytes of the blocks this cache holds (shared blocks counted in full).</summary>
    public long AllocatedBytes => _blocks.Count * _pool.BlockBytes;

    /// <summary>A standalone cache with its own pool, holding blocks for <paramref name="initialCapacity"/> positions up front.</summary>
    public KvCache(ModelConfig config, int initialCapacity = 256) : this(config, KvBlockPool.ForOneSequence(config))
    {
        Grow(Math.Clamp(initialCapacity, 1, MaxLength));
    }

    /// <summary>An empty cache whose blocks come from <paramref name="pool"/> (shared with other sequences).</summary>
    public KvCache(ModelConfig config, KvBlockPool pool)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(pool);
        LatentDim = config.KvLoraRank;
        RopeDim = config.QkRopeHeadDim;
        Layers = config.NumHiddenLayers;
        MaxLength = config.MaxPositionEmbeddings;
        if (pool.Layers != Layers || pool.LatentDim != LatentDim || pool.RopeDim != RopeDim)
            throw new ArgumentException("the pool was made for a different model shape", nameof(pool));
        _pool = pool;
    }

    /// <summary>Bytes held per cached token across all layers.</summary>
    public long BytesPerToken => BytesPerTokenOf(Layers, LatentDim, RopeDim);

    /// <summary>
    /// Bytes a cache of <paramref name="config"/>'s model holds per token, without making one: every layer keeps one
    /// float32 latent (kv_lora_rank) and one rope key (qk_rope_head_dim) per token — MLA's whole KV cache.
    /// </summary>
    public static long BytesPerTokenFor(ModelConfig config) => BytesPerTokenOf(config.NumHiddenLayers, config.KvLoraRank, config.QkRopeHeadDim);

    /// <summary>The one place the per-token size is computed.</summary>
    internal static long BytesPerTokenOf(int layers, int latentDim, int ropeDim) => sizeof(float) * (long)layers * (latentDim + ropeDim);

    /// <summary>
    /// Blocks this cache would still take from the pool to hold <paramref name="tokens"/> positions in all: new blocks
    /// past its table, plus one when its last block is shared and partly filled (it is copied before the next write).
    /// </summary>
    public int BlocksToReach(int tokens)
    {
        int needed = Math.Max(0, _pool.BlocksFor(tokens) - _blocks.Count);
        if (Length % _pool.BlockTokens != 0 && tokens > Length && _pool.RefCount(_blocks[Length / _pool.BlockTokens]) > 1) needed++;
        return needed;
    }

    /// <summary>
    /// Makes room for <paramref name="additional"/> more tokens, or throws if that passes the context limit or the pool
    /// has no free block. The block the next token lands in is this cache's own afterwards (copied if it was shared).
    /// </summary>
    internal void Reserve(int additional)
    {
        long needed = (long)Length + additional;
        if (needed > MaxLength)
            throw new ContextLengthExceededException(
                $"{needed} tokens exceed the model's context limit of {MaxLength} (max_position_embeddings)", (int)Math.Min(needed, int.MaxValue), MaxLength);
        if (additional <= 0) return;
        int offset = Length % _pool.BlockTokens;
        if (offset != 0)
        {
            int index = Length / _pool.BlockTokens, shared = _blocks[index];
            if (_pool.RefCount(shared) > 1)
            {
                int own = RentBlock();
                _pool.CopyBlock(shared, own, offset);
                _pool.Release(shared);
                _blocks[index] = own;
            }
        }
        Grow((int)needed);
    }

    private void Grow(int tokens)
    {
        while (Capacity < tokens) _blocks.Add(RentBlock());
    }

    private int RentBlock() => _pool.TryRent(out int block) ? block
        : throw new KvCacheExhaustedException($"all {_pool.TotalBlocks} KV cache blocks ({_pool.BlockTokens} tokens each) are in use");

    /// <summary>Latent of <paramref name="position"/> in <paramref name="layer"/> (the position's block must be held).</summary>
    internal Span<float> LatentRow(int layer, int position) =>
        new(_pool.Latents(_blocks[position / _pool.BlockTokens], layer) + (long)(position % _pool.BlockTokens) * LatentDim, LatentDim);

    /// <summary>Rope key of <paramref name="position"/> in <paramref name="layer"/>.</summary>
    internal Span<float> RopeKeyRow(int layer, int position) =>
        new(_pool.RopeKeys(_blocks[position / _pool.BlockTokens], layer) + (long)(position % _pool.BlockTokens) * RopeDim, RopeDim);

    /// <summary>Positions per block.</summary>
    public int BlockTokens => _pool.BlockTokens;

    /// <summary>Contiguous latents [BlockTokens, LatentDim] of block <paramref name="index"/> of the table in <paramref name="layer"/>.</summary>
    internal float* LatentBlock(int layer, int index) => _pool.Latents(_blocks[index], layer);

    /// <summary>Contiguous rope keys [BlockTokens, RopeDim] of block <paramref name="index"/> of the table in <paramref name="layer"/>.</summary>
    internal float* RopeKeyBlock(int layer, int index) => _pool.RopeKeys(_blocks[index], layer);

    /// <summary>Copies positions [0, <paramref name="count"/>) of <paramref name="layer"/> into dense [count, LatentDim] and [count, RopeDim] rows.</summary>
    internal void Gather(int layer, int count, Span<float> latents, Span<float> ropeKeys)
    {
        int block = _pool.BlockTokens;
        for (int first = 0, index = 0; first < count; first += block, index++)
        {
            int n = Math.Min(block, count - first);
            new ReadOnlySpan<float>(LatentBlock(layer, index), n * LatentDim).CopyTo(latents.Slice(first * LatentDim, n * LatentDim));
            new ReadOnlySpan<float>(RopeKeyBlock(layer, index), n * RopeDim).CopyTo(ropeKeys.Slice(first * RopeDim, n * RopeDim));
        }
    }

    internal void Commit(int tokens) => Length += tokens;

    /// <summary>Forgets everything from position <paramref name="length"/> on (to reuse a shared prefix); whole blocks past it go back to the pool.</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
        int keep = _pool.BlocksFor(length);
        for (int i = _blocks.Count - 1; i >= keep; i--) _pool.Release(_blocks[i]);
        _blocks.RemoveRange(keep, _blocks.Count - keep);
    }

    /// <summary>Empties the cache and returns all its blocks to the pool.</summary>
    public void Reset() => Truncate(0);

    /// <summary>
    /// Replaces this cache's contents with the first <paramref name="length"/> tokens of <paramref name="source"/>: by
    /// reference to the same blocks when both caches share a pool (a partly covered last block is copied on this
    /// cache's first write into it), by copying otherwise.
    /// </summary>
    public void SharePrefixFrom(KvCache source, int length)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Layers != Layers || source.LatentDim != LatentDim || source.RopeDim != RopeDim)
            throw new ArgumentException("the caches belong to different model shapes", nameof(source));
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, source.Length);
        if (ReferenceEquals(source, this)) { Truncate(length); return; }
        Reset();
        if (ReferenceEquals(source._pool, _pool))
        {
            for (int i = 0; i < _pool.BlocksFor(length); i++)
            {
                _pool.AddRef(source._blocks[i]);
                _blocks.Add(source._blocks[i]);
            }
        }
        else
        {
            Grow(length);
            for (int l = 0; l < Layers; l++)
                for (int p = 0; p < length; p++)
                {
                    source.LatentRow(l, p).CopyTo(LatentRow(l, p));
                    source.RopeKeyRow(l, p).CopyTo(RopeKeyRow(l, p));
                }
        }
        Length = length;
    }
}

/// <summary>A prompt or generation would run past max_position_embeddings.</summary>
public sealed class ContextLengthExceededException(string message, int requested, int limit) : Exception(message)
{
    public int Requested { get; } = requested;
    public int Limit { get; } = limit;
}

/// <summary>Rows [FirstRow, FirstRow + Tokens) of a batched forward belong to the sequence of <paramref name="Cache"/>.</summary>
internal readonly record struct AttentionSegment(KvCache Cache, int FirstRow, int Tokens, AttentionMode Mode);

/// <summary>Scratch buffers of one forward pass, kept between calls so decoding allocates nothing per token.</summary>
internal sealed class ForwardWorkspace
{
    // The model's residual stream, its normalized copy, each sublayer's output, and the rows' rotary angles.
    public ScratchBuffer Hidden { get; } = new();
    public ScratchBuffer Normed { get; } = new();
    public ScratchBuffer Delta { get; } = new();
    public ScratchBuffer Cos { get; } = new();
    public ScratchBuffer Sin { get; } = new();
    public ScratchBuffer MlpScratch { get; } = new();

    // Attention: queries (and their low-rank latents), kv_a output, attended values, expanded keys/values (prefill),
    // and the head jobs' scores and partial sums.
    public ScratchBuffer Queries { get; } = new();
    public ScratchBuffer QueryLatents { get; } = new();
    public ScratchBuffer KvA { get; } = new();
    public ScratchBuffer Attended { get; } = new();
    public ScratchBuffer ExpandedKv { get; } = new();
    // Prefill's dense copy of a sequence's cached latents and rope keys, gathered out of its blocks.
    public ScratchBuffer CacheLatents { get; } = new();
    public ScratchBuffer CacheRopeKeys { get; } = new();
    public ScratchBuffer AttentionScratch { get; } = new();

    // Mixture of experts: router logits, the chosen experts and their weights, routing scratch, the shared expert's
    // scratch, the touched-expert marks, the one-token path's buffers and the batched path's expert outputs.
    public ScratchBuffer RouterLogits { get; } = new();
    public ScratchBuffer ChosenExperts { get; } = new();
    public ScratchBuffer ExpertWeights { get; } = new();
    public ScratchBuffer RouteScratch { get; } = new();
    public ScratchBuffer SharedScratch { get; } = new();
    public ScratchBuffer ExpertSeen { get; } = new();
    public ScratchBuffer OneTokenInput { get; } = new();
    public ScratchBuffer OneTokenHidden { get; } = new();
    public ScratchBuffer OneTokenGateUp { get; } = new();
    public ScratchBuffer ExpertOutputs { get; } = new();

    private AttentionSegment[] _segments = [];

    /// <summary>Whether the current pass feeds one token per sequence (a decode step).</summary>
    public bool DecodeOnly { get; set; }

    /// <summary>The kernel settings and profile of the current pass: its model's.</summary>
    public KimiSharp.Kernels.KernelSettings Kernels { get; set; } = KimiSharp.Kernels.KernelSettings.Default;
    public ForwardProfile Profile { get; set; } = ForwardProfile.Off;

    /// <summary>How many entries of the last <see cref="Segments"/> array belong to the current pass.</summary>
    public int SegmentCount { get; private set; }

    /// <summary>A reusable array for <paramref name="count"/> segments of one forward pass.</summary>
    public AttentionSegment[] Segments(int count)
    {
        if (_segments.Length < count) _segments = new AttentionSegment[Math.Max(count, 2 * _segments.Length)];
        SegmentCount = count;
        return _segments;
    }

    /// <summary>Reusable multi-product job (a decoded token's experts run as one parallel job).</summary>
    public KimiSharp.Kernels.MatVecBatch Batch { get; } = new();
}

/// <summary>One scratch buffer of a forward pass: grows to the largest size asked for and is kept between calls.</summary>
internal sealed class ScratchBuffer
{
    private float[] _buffer = [];

    /// <summary>The buffer, at least <paramref name="length"/> long (it may be longer).</summary>
    public float[] Array(long length)
    {
        if (_buffer.Length < length)
        {
            long grown = _buffer.Length == 0 ? length : Math.Max(length, Math.Min(2L * _buffer.Length, System.Array.MaxLength));
            // Pinned, so kernels may hold raw pointers into workspace buffers across a whole layer.
            _buffer = GC.AllocateArray<float>(checked((int)grown), pinned: true);
        }
        return _buffer;
    }

    /// <summary>The first <paramref name="length"/> values of the buffer.</summary>
    public Span<float> Get(long length) => Array(length).AsSpan(0, checked((int)length));
}
