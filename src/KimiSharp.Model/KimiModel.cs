using System.Numerics.Tensors;
using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Safetensors;
using KimiSharp.Model.Weights;

namespace KimiSharp.Model;

/// <summary>One decoder layer: h += Attn(RMSNorm(h)); h += FFN(RMSNorm(h)), the FFN dense or mixture-of-experts.</summary>
public sealed class DecoderLayer
{
    public required float[] InputNorm { get; init; }
    public required MlaAttention Attention { get; init; }
    public required float[] PostAttentionNorm { get; init; }
    public FeedForward? Dense { get; init; }
    public MoeBlock? Moe { get; init; }
}

/// <summary>Progress of a model load, for progress bars.</summary>
public readonly record struct LoadProgress(string Stage, int Done, int Total);

/// <summary>
/// A K2-family causal language model (Kimi K2 / K2 Thinking, Moonlight, DeepSeek-V3) loaded from a Hugging Face
/// folder. Weights stay memory-mapped in their stored format; the forward pass runs in float32.
/// </summary>
public sealed class KimiModel : IDisposable
{
    private readonly CheckpointTensors _tensors;

    public ModelConfig Config { get; }
    public string Directory { get; }
    public RotaryEmbedding Rope { get; }
    public WeightMatrix Embedding { get; }
    public IReadOnlyList<DecoderLayer> Layers { get; }
    public float[] FinalNorm { get; }
    public WeightMatrix LmHead { get; }

    private KimiModel(string directory, ModelConfig config, CheckpointTensors tensors, RotaryEmbedding rope,
        WeightMatrix embedding, DecoderLayer[] layers, float[] finalNorm, WeightMatrix lmHead)
    {
        Directory = directory; Config = config; _tensors = tensors; Rope = rope; Embedding = embedding;
        Layers = layers; FinalNorm = finalNorm; LmHead = lmHead;
    }

    private NativeArena? _arena;

    /// <summary>
    /// The kernel settings (activation precision, threads) of every forward pass of this model, on whatever thread it
    /// runs: they travel with the model, not with the thread that loaded it. Set at load (<see cref="KimiModelLoadOptions.Kernels"/>).
    /// </summary>
    public KernelSettings Kernels { get; private init; } = KernelSettings.Default;

    /// <summary>Where this model's forward passes add their time per phase, if anywhere (<see cref="KimiModelLoadOptions.Profile"/>).</summary>
    public ForwardProfile? Profile { get; private init; }

    /// <summary>Weights repacked into 16-row blocks at load (<see cref="KimiModelLoadOptions.RepackInt4ForInt8"/>).</summary>
    public int RepackedWeights { get; private init; }

    /// <summary>Bytes of the checkpoint files (what a full pass over all weights could read).</summary>
    public long CheckpointBytes => _tensors.TotalBytes;

    /// <summary>The safetensors files the weights are mapped from.</summary>
    public IReadOnlyList<string> CheckpointFiles => _tensors.Files.Select(f => f.Path).ToArray();

    public static KimiModel Load(string directory, IProgress<LoadProgress>? progress = null) => Load(directory, new KimiModelLoadOptions(), progress);

    public static KimiModel Load(string directory, KimiModelLoadOptions options, IProgress<LoadProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Kernels, nameof(options.Kernels));
        var config = ModelConfig.Load(directory);
        var tensors = CheckpointTensors.Open(directory,
            progress is null ? null : new Progress<(int Done, int Total)>(p => progress.Report(new LoadProgress("mapping", p.Done, p.Total))));
        var arena = options.RepackInt4ForInt8 ?? options.Kernels.Int8Activations ? new NativeArena() : null;
        var w = new WeightLoader(tensors, config) { RepackArena = arena };
        try
        {
            var rope = new RotaryEmbedding(config);
            int hidden = config.HiddenSize, vocab = config.VocabSize;
            var embedding = w.Dense("model.embed_tokens.weight", vocab, hidden);
            var layers = new DecoderLayer[config.NumHiddenLayers];
            for (int l = 0; l < layers.Length; l++)
            {
                layers[l] = LoadLayer(w, config, rope, l);
                progress?.Report(new LoadProgress("layers", l + 1, layers.Length));
            }
            var finalNorm = w.Vector("model.norm.weight", hidden);
            var lmHead = config.TieWordEmbeddings ? embedding : w.MatMulLinear("lm_head", vocab, hidden); // only ever multiplied whole
            return new KimiModel(directory, config, tensors, rope, embedding, layers, finalNorm, lmHead) {
                RepackedWeights = w.Repacked, _arena = arena, Kernels = options.Kernels, Profile = options.Profile,
            };
        }
        catch
        {
            tensors.Dispose();
            arena?.Dispose();
            throw;
        }
        finally
        {
            w.CloseFiles();
        }
    }

    private static DecoderLayer LoadLayer(WeightLoader w, ModelConfig c, RotaryEmbedding rope, int l)
    {
        string p = $"model.layers.{l}.";
        int hidden = c.HiddenSize, heads = c.NumAttentionHeads;
        float[]? Bias(string module, int rows) =>
            c.AttentionBias ? w.Vector(module + ".bias", rows) : null;
        var kvB = w.Linear(p + "self_attn.kv_b_proj", heads * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank);
        var kvBBlocks = w.Rows16Copy(kvB, p + "self_attn.kv_b_proj");
        var kvBKeys = w.TransposedKeys(kvBBlocks, c);
        var attention = c.QLoraRank is int rank
            ? new MlaAttention(c, rope)
            {
                QAProj = w.MatMulLinear(p + "self_attn.q_a_proj", rank, hidden),
                QABias = Bias(p + "self_attn.q_a_proj", rank),
                QANorm = w.Vector(p + "self_attn.q_a_layernorm.weight", rank),
                QBProj = w.MatMulLinear(p + "self_attn.q_b_proj", heads * c.QkHeadDim, rank),
                KvAProj = w.MatMulLinear(p + "self_attn.kv_a_proj_with_mqa", c.KvLoraRank + c.QkRopeHeadDim, hidden),
                KvABias = Bias(p + "self_attn.kv_a_proj_with_mqa", c.KvLoraRank + c.QkRopeHeadDim),
                KvANorm = w.Vector(p + "self_attn.kv_a_layernorm.weight", c.KvLoraRank),
                KvBProj = kvB,
                KvBProjRows16 = kvBBlocks,
                KvBKeysTransposed = kvBKeys,
                OProj = w.MatMulLinear(p + "self_attn.o_proj", hidden, heads * c.VHeadDim),
                OBias = Bias(p + "self_attn.o_proj", hidden),
            }
            : new MlaAttention(c, rope)
            {
                QProj = w.MatMulLinear(p + "self_attn.q_proj", heads * c.QkHeadDim, hidden),
                KvAProj = w.MatMulLinear(p + "self_attn.kv_a_proj_with_mqa", c.KvLoraRank + c.QkRopeHeadDim, hidden),
                KvABias = Bias(p + "self_attn.kv_a_proj_with_mqa", c.KvLoraRank + c.QkRopeHeadDim),
                KvANorm = w.Vector(p + "self_attn.kv_a_layernorm.weight", c.KvLoraRank),
                KvBProj = kvB,
                KvBProjRows16 = kvBBlocks,
                KvBKeysTransposed = kvBKeys,
                OProj = w.MatMulLinear(p + "self_attn.o_proj", hidden, heads * c.VHeadDim),
                OBias = Bias(p + "self_attn.o_proj", hidden),
            };

        FeedForward Mlp(string prefix, int width) => new(
            w.MatMulLinear(prefix + "gate_proj", width, hidden),
            w.MatMulLinear(prefix + "up_proj", width, hidden),
            w.MatMulLinear(prefix + "down_proj", hidden, width));

        FeedForward? dense = null;
        MoeBlock? moe = null;
        if (c.IsMoeLayer(l))
        {
            var experts = new FeedForward[c.NRoutedExperts];
            for (int e = 0; e < experts.Length; e++) experts[e] = Mlp($"{p}mlp.experts.{e}.", c.MoeIntermediateSize);
            moe = new MoeBlock(c)
            {
                Router = w.Dense(p + "mlp.gate.weight", c.NRoutedExperts, hidden),
                ChoiceBias = w.Has(p + "mlp.gate.e_score_correction_bias")
                    ? w.Vector(p + "mlp.gate.e_score_correction_bias", c.NRoutedExperts)
                    : throw new CheckpointFormatException($"missing tensor '{p}mlp.gate.e_score_correction_bias' (required by topk_method noaux_tc)"),
                Experts = experts,
                Shared = c.NSharedExperts > 0 ? Mlp(p + "mlp.shared_experts.", c.MoeIntermediateSize * c.NSharedExperts) : null,
            };
        }
        else dense = Mlp(p + "mlp.", c.IntermediateSize);

        return new DecoderLayer
        {
            InputNorm = w.Vector(p + "input_layernorm.weight", hidden),
            Attention = attention,
            PostAttentionNorm = w.Vector(p + "post_attention_layernorm.weight", hidden),
            Dense = dense,
            Moe = moe,
        };
    }

    public KvCache CreateCache(int initialCapacity = 256) => new(Config, initialCapacity);

    /// <summary>
    /// Runs <paramref name="tokens"/> through the model at positions cache.Length… and appends them to the cache.
    /// Writes logits [tokens, vocab] for every new position, or only the last one when
    /// <paramref name="lastOnly"/> (then <paramref name="logits"/> needs just vocab values).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool lastOnly = false,
        AttentionMode mode = AttentionMode.Auto, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (tokens.Length == 0) return;
        var ws = cache.Workspace;
        var segments = ws.Segments(1);
        segments[0] = new AttentionSegment(cache, 0, tokens.Length, mode);
        ForwardRows(tokens, segments, lastOnly, logits, ws, cancellationToken, embeddings: null);
    }

    /// <summary>
    /// <see cref="Forward(ReadOnlySpan{int}, KvCache, Span{float}, bool, AttentionMode, CancellationToken)"/> with some
    /// input embeddings replaced: row i of <paramref name="embeddings"/> stands in for the embedding of the token at
    /// position Positions[i] of <paramref name="tokens"/> (a multimodal model's image features at its media placeholders).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, EmbeddingPatch embeddings, KvCache cache, Span<float> logits, bool lastOnly = false,
        AttentionMode mode = AttentionMode.Auto, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        ArgumentNullException.ThrowIfNull(cache);
        int hidden = Config.HiddenSize;
        if (embeddings.Rows.Length != (long)embeddings.Positions.Count * hidden)
            throw new ArgumentException($"{embeddings.Rows.Length} replacement values are not {embeddings.Positions.Count} rows of hidden_size {hidden}", nameof(embeddings));
        foreach (int position in embeddings.Positions)
            if ((uint)position >= (uint)tokens.Length)
                throw new ArgumentOutOfRangeException(nameof(embeddings), position, $"replacement position {position} is outside the {tokens.Length} tokens");
        if (tokens.Length == 0) return;
        var ws = cache.Workspace;
        var segments = ws.Segments(1);
        segments[0] = new AttentionSegment(cache, 0, tokens.Length, mode);
        ForwardRows(tokens, segments, lastOnly, logits, ws, cancellationToken, embeddings);
    }

    /// <summary>
    /// One forward pass over new tokens of several sequences at once (continuous batching): every weight matrix runs
    /// once over all their rows — MoE tokens grouped by expert across sequences — while each sequence attends over its
    /// own cache. Writes, segment after segment, the logits of each segment's last token (<paramref name="lastOnly"/>:
    /// [segments, vocab]) or of all its tokens ([tokens, vocab]). Each sequence gets exactly the logits it would get
    /// alone: every output element has one reduction order whatever else shares the batch.
    /// </summary>
    public void Forward(ReadOnlySpan<ForwardSegment> segments, Span<float> logits, BatchWorkspace workspace,
        bool lastOnly = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        if (segments.Length == 0) return;
        int total = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment.Cache is null) throw new ArgumentException($"segment {i} has no cache", nameof(segments));
            if (segment.Tokens.Length == 0) throw new ArgumentException($"segment {i} has no tokens", nameof(segments));
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(segment.Cache, segments[j].Cache))
                    throw new ArgumentException($"segments {j} and {i} share a cache", nameof(segments));
            total = checked(total + segment.Tokens.Length);
        }
        var ws = workspace.Workspace;
        var attention = ws.Segments(segments.Length);
        var tokens = workspace.Tokens(total);
        int row = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            segment.Tokens.Span.CopyTo(tokens.AsSpan(row));
            attention[i] = new AttentionSegment(segment.Cache, row, segment.Tokens.Length, segment.Mode);
            row += segment.Tokens.Length;
        }
        ForwardRows(tokens.AsSpan(0, total), attention, lastOnly, logits, ws, cancellationToken, CombinedEmbeddings(segments, total));
    }

    /// <summary>The segments' <see cref="ForwardSegment.Embeddings"/> as one patch over the batch's rows, or null when none has any.</summary>
    private EmbeddingPatch? CombinedEmbeddings(ReadOnlySpan<ForwardSegment> segments, int totalRows)
    {
        int hidden = Config.HiddenSize, count = 0;
        foreach (var segment in segments)
        {
            if (segment.Embeddings is not { } patch) continue;
            if (patch.Rows.Length != (long)patch.Positions.Count * hidden)
                throw new ArgumentException($"{patch.Rows.Length} replacement values are not {patch.Positions.Count} rows of hidden_size {hidden}", nameof(segments));
            foreach (int position in patch.Positions)
                if ((uint)position >= (uint)segment.Tokens.Length)
                    throw new ArgumentOutOfRangeException(nameof(segments), position, $"replacement position {position} is outside the segment's {segment.Tokens.Length} tokens");
            count += patch.Positions.Count;
        }
        if (count == 0) return null;
        var positions = new int[count];
        var rows = new float[(long)count * hidden];
        int at = 0, firstRow = 0;
        foreach (var segment in segments)
        {
            if (segment.Embeddings is { } patch)
            {
                for (int i = 0; i < patch.Positions.Count; i++) positions[at + i] = firstRow + patch.Positions[i];
                patch.Rows.CopyTo(rows, (long)at * hidden);
                at += patch.Positions.Count;
            }
            firstRow += segment.Tokens.Length;
        }
        System.Diagnostics.Debug.Assert(firstRow == totalRows);
        return new EmbeddingPatch(positions, rows);
    }

    /// <summary>
    /// The forward pass over rows that belong to <paramref name="segments"/>: logits of each segment's last row
    /// (<paramref name="lastOnly"/>) or of every row.
    /// </summary>
    private void ForwardRows(ReadOnlySpan<int> tokens, AttentionSegment[] segments, bool lastOnly, Span<float> logits,
        ForwardWorkspace ws, CancellationToken cancellationToken, EmbeddingPatch? embeddings)
    {
        int count = tokens.Length, hidden = Config.HiddenSize, vocab = Config.VocabSize;
        var parts = segments.AsSpan(0, ws.SegmentCount);
        foreach (var segment in parts)
        {
            var cache = segment.Cache;
            if (cache.Layers != Config.NumHiddenLayers || cache.LatentDim != Config.KvLoraRank || cache.RopeDim != Config.QkRopeHeadDim)
                throw new ArgumentException("the cache was made for a different model", nameof(segments));
        }
        long logitRows = lastOnly ? parts.Length : count;
        if (logits.Length < logitRows * vocab)
            throw new ArgumentException($"logits buffer holds {logits.Length} values; {logitRows}×{vocab} needed", nameof(logits));
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id {token} is outside the vocabulary (vocab_size {vocab})");
        foreach (var segment in parts) segment.Cache.Reserve(segment.Tokens);
        ws.DecodeOnly = count == parts.Length;
        // This model's settings, for every layer of this pass (whichever thread runs it).
        var kernels = ws.Kernels = Kernels;
        var profile = ws.Profile = Profile ?? ForwardProfile.Off;

        var h = ws.Hidden.Get((long)count * hidden);
        var x = ws.Normed.Get((long)count * hidden);
        var delta = ws.Delta.Get((long)count * hidden);
        long clock = profile.Start();
        for (int t = 0; t < count; t++) MatrixKernels.DecodeRow(Embedding, tokens[t], h.Slice(t * hidden, hidden));
        if (embeddings is not null)
            for (int i = 0; i < embeddings.Positions.Count; i++)
                embeddings.Rows.AsSpan(i * hidden, hidden).CopyTo(h.Slice(embeddings.Positions[i] * hidden, hidden));
        profile.Stop(ForwardPhase.Embedding, clock);

        int pairs = Rope.Pairs;
        var cos = ws.Cos.Get((long)count * pairs);
        var sin = ws.Sin.Get((long)count * pairs);
        foreach (var segment in parts)
            for (int i = 0; i < segment.Tokens; i++)
            {
                int t = segment.FirstRow + i;
                Rope.Angles(segment.Cache.Length + i, cos.Slice(t * pairs, pairs), sin.Slice(t * pairs, pairs));
            }

        float eps = (float)Config.RmsNormEps;
        for (int l = 0; l < Layers.Count; l++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var layer = Layers[l];
            clock = profile.Start();
            for (int t = 0; t < count; t++) Ops.RmsNorm(h.Slice(t * hidden, hidden), layer.InputNorm, eps, x.Slice(t * hidden, hidden));
            profile.Stop(ForwardPhase.Norms, clock);
            layer.Attention.Forward(l, x, delta, count, parts, ws, cos, sin);
            clock = profile.Start();
            TensorPrimitives.Add(h, delta, h);
            profile.Stop(ForwardPhase.Residual, clock);

            clock = profile.Start();
            for (int t = 0; t < count; t++) Ops.RmsNorm(h.Slice(t * hidden, hidden), layer.PostAttentionNorm, eps, x.Slice(t * hidden, hidden));
            profile.Stop(ForwardPhase.Norms, clock);
            if (layer.Moe is not null) layer.Moe.Forward(x, delta, count, ws);
            else
            {
                clock = profile.Start();
                layer.Dense!.Forward(x, delta, count, ws.MlpScratch.Get(2L * count * layer.Dense.Width), kernels);
                profile.Stop(ForwardPhase.DenseMlp, clock);
            }
            clock = profile.Start();
            TensorPrimitives.Add(h, delta, h);
            profile.Stop(ForwardPhase.Residual, clock);
        }
        foreach (var segment in parts) segment.Cache.Commit(segment.Tokens);

        clock = profile.Start();
        int rows = 0;
        if (lastOnly)
            foreach (var segment in parts)
            {
                int t = segment.FirstRow + segment.Tokens - 1;
                Ops.RmsNorm(h.Slice(t * hidden, hidden), FinalNorm, eps, x.Slice(rows++ * hidden, hidden));
            }
        else
            for (int t = 0; t < count; t++) Ops.RmsNorm(h.Slice(t * hidden, hidden), FinalNorm, eps, x.Slice(rows++ * hidden, hidden));
        MatrixKernels.MatMul(LmHead, x[..(rows * hidden)], logits, rows, kernels);
        profile.Stop(ForwardPhase.LmHead, clock);
    }

    /// <summary>Logits [tokens, vocab] of a whole sequence from an empty cache.</summary>
    public float[] Logits(ReadOnlySpan<int> tokens, AttentionMode mode = AttentionMode.Auto)
    {
        var cache = CreateCache(tokens.Length);
        var logits = new float[(long)tokens.Length * Config.VocabSize];
        Forward(tokens, cache, logits, mode: mode);
        return logits;
    }

    public void Dispose()
    {
        _tensors.Dispose();
        _arena?.Dispose();
    }
}

/// <summary>
/// One sequence's new tokens in a batched <see cref="KimiModel.Forward(ReadOnlySpan{ForwardSegment}, Span{float}, BatchWorkspace, bool, CancellationToken)"/>:
/// they are appended to <paramref name="Cache"/> at positions Cache.Length….
/// </summary>
public readonly record struct ForwardSegment(ReadOnlyMemory<int> Tokens, KvCache Cache, AttentionMode Mode = AttentionMode.Auto)
{
    /// <summary>Input embeddings that replace those of some of <see cref="Tokens"/> (positions within this segment), or null.</summary>
    public EmbeddingPatch? Embeddings { get; init; }
}

/// <summary>
/// Input embeddings that replace those of the tokens at <paramref name="Positions"/> (0-based within the tokens of one
/// forward call): <paramref name="Rows"/> holds [Positions.Count, hidden_size] row-major.
/// </summary>
public sealed record EmbeddingPatch(IReadOnlyList<int> Positions, float[] Rows);

/// <summary>Scratch of batched forward passes, kept between steps so a running batch allocates nothing per step. One caller at a time.</summary>
public sealed class BatchWorkspace
{
    private int[] _tokens = [];
    internal ForwardWorkspace Workspace { get; } = new();

    internal int[] Tokens(int count) => _tokens.Length >= count ? _tokens : _tokens = new int[Math.Max(count, 2 * _tokens.Length)];
}

/// <summary>How <see cref="KimiModel.Load(string, KimiModelLoadOptions, IProgress{LoadProgress}?)"/> prepares the weights.</summary>
public sealed record KimiModelLoadOptions
{
    /// <summary>
    /// Repack INT4 (group 32) projection and expert weights into 16-row blocks, the layout of the fast int8-activation
    /// kernels (<see cref="KernelSettings.Int8Activations"/>). They are read into huge-page native memory and repacked there;
    /// their mapped originals are never touched, so resident memory stays at one copy. Float activations still work
    /// on repacked weights, but slowly. CPUs without AVX-512BW keep the stored layout. Null (the default): repack exactly
    /// when <see cref="Kernels"/> ask for int8 activations; false keeps the stored layout even then (int8 products on
    /// the stored rows, slower).
    /// </summary>
    public bool? RepackInt4ForInt8 { get; init; }

    /// <summary>
    /// The model's <see cref="KimiModel.Kernels"/>: activation precision and threads of its forward passes (default:
    /// the exact float32 path on every core). Int8 activations also repack the INT4 weights (unless
    /// <see cref="RepackInt4ForInt8"/> says otherwise), the layout their kernels read fastest.
    /// </summary>
    public KernelSettings Kernels { get; init; } = KernelSettings.Default;

    /// <summary>Where the model's forward passes add their time per phase (<c>kimi bench --profile</c>); none by default.</summary>
    public ForwardProfile? Profile { get; init; }
}
