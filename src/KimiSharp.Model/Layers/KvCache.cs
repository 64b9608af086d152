using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// MLA's cache for one sequence: per layer and per token, the normalized latent c̃ (kv_lora_rank values) and
/// the already-rotated shared rope key (qk_rope_head_dim values). Per-head keys and values are never stored;
/// they are folded into the query and output sides at decode time.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _latents;
    private readonly float[][] _ropeKeys;

    public int LatentDim { get; }
    public int RopeDim { get; }
    public int Layers => _latents.Length;
    /// <summary>Tokens cached so far: the position the next token takes.</summary>
    public int Length { get; private set; }
    public int Capacity { get; private set; }
    /// <summary>The model's context limit (max_position_embeddings).</summary>
    public int MaxLength { get; }

    private ForwardWorkspace? _workspace;

    /// <summary>Scratch buffers for forward passes over this sequence, created on first use.</summary>
    internal ForwardWorkspace Workspace => _workspace ??= new ForwardWorkspace();

    /// <summary>Frees the scratch buffers (a cache parked for reuse needs only its latents).</summary>
    public void ReleaseWorkspace() => _workspace = null;

    /// <summary>Bytes the cached latents and rope keys occupy at the current capacity.</summary>
    public long AllocatedBytes => (long)Capacity * BytesPerToken;

    public KvCache(ModelConfig config, int initialCapacity = 256)
    {
        LatentDim = config.KvLoraRank;
        RopeDim = config.QkRopeHeadDim;
        MaxLength = config.MaxPositionEmbeddings;
        Capacity = Math.Clamp(initialCapacity, 1, MaxLength);
        _latents = new float[config.NumHiddenLayers][];
        _ropeKeys = new float[config.NumHiddenLayers][];
        for (int l = 0; l < _latents.Length; l++)
        {
            _latents[l] = new float[Capacity * LatentDim];
            _ropeKeys[l] = new float[Capacity * RopeDim];
        }
    }

    /// <summary>Bytes held per cached token across all layers.</summary>
    public long BytesPerToken => BytesPerTokenOf(Layers, LatentDim, RopeDim);

    /// <summary>
    /// Bytes a cache of <paramref name="config"/>'s model holds per token, without making one: every layer keeps one
    /// float32 latent (kv_lora_rank) and one rope key (qk_rope_head_dim) per token — MLA's whole KV cache.
    /// </summary>
    public static long BytesPerTokenFor(ModelConfig config) => BytesPerTokenOf(config.NumHiddenLayers, config.KvLoraRank, config.QkRopeHeadDim);

    private static long BytesPerTokenOf(int layers, int latentDim, int ropeDim) => sizeof(float) * (long)layers * (latentDim + ropeDim);

    /// <summary>Makes room for <paramref name="additional"/> more tokens, or throws if that passes the context limit.</summary>
    internal void Reserve(int additional)
    {
        long needed = (long)Length + additional;
        if (needed > MaxLength)
            throw new ContextLengthExceededException(
                $"{needed} tokens exceed the model's context limit of {MaxLength} (max_position_embeddings)", (int)Math.Min(needed, int.MaxValue), MaxLength);
        if (needed <= Capacity) return;
        int capacity = (int)Math.Min(MaxLength, Math.Max(needed, 2L * Capacity));
        for (int l = 0; l < _latents.Length; l++)
        {
            Array.Resize(ref _latents[l], capacity * LatentDim);
            Array.Resize(ref _ropeKeys[l], capacity * RopeDim);
        }
        Capacity = capacity;
    }

    internal Span<float> Latents(int layer, int start, int count) => _latents[layer].AsSpan(start * LatentDim, count * LatentDim);
    internal Span<float> RopeKeys(int layer, int start, int count) => _ropeKeys[layer].AsSpan(start * RopeDim, count * RopeDim);

    internal void Commit(int tokens) => Length += tokens;

    /// <summary>Forgets everything from position <paramref name="length"/> on (to reuse a shared prefix).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
    }

    public void Reset() => Length = 0;

    /// <summary>Replaces this cache's contents with the first <paramref name="length"/> tokens of <paramref name="source"/>.</summary>
    public void CopyPrefixFrom(KvCache source, int length)
    {
        if (source.Layers != Layers || source.LatentDim != LatentDim || source.RopeDim != RopeDim)
            throw new ArgumentException("the caches belong to different model shapes", nameof(source));
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, source.Length);
        Length = 0;
        Reserve(length);
        for (int l = 0; l < Layers; l++)
        {
            source.Latents(l, 0, length).CopyTo(Latents(l, 0, length));
            source.RopeKeys(l, 0, length).CopyTo(RopeKeys(l, 0, length));
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
