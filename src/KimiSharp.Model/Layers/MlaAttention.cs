using System.Numerics.Tensors;
using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>How attention reads the latent cache.</summary>
public enum AttentionMode
{
    /// <summary>Expanded for several new tokens at once (prefill), absorbed for one (decode).</summary>
    Auto,
    /// <summary>Expand every cached latent into per-head keys and values with kv_b_proj, then attend (the reference formulation).</summary>
    Expanded,
    /// <summary>Fold kv_b_proj into the query and output sides and attend over the latents directly.</summary>
    Absorbed,
}

/// <summary>
/// Multi-head Latent Attention. Queries: q_proj, or q_a_proj → RMSNorm → q_b_proj, per head [q_nope | q_rope].
/// Keys and values come from one latent per token: kv_a_proj_with_mqa → [c_kv | k_rope]; c̃ = RMSNorm(c_kv);
/// kv_b_proj(c̃) → per head [k_nope | v]. k_rope is one rotary key shared by all heads.
/// </summary>
public sealed class MlaAttention
{
    private readonly RotaryEmbedding _rope;
    private readonly int _heads, _nope, _ropeDim, _vDim, _latentDim, _qkDim;
    private readonly float _eps;

    public WeightMatrix? QProj { get; init; }
    public WeightMatrix? QAProj { get; init; }
    public float[]? QANorm { get; init; }
    public float[]? QABias { get; init; }
    public WeightMatrix? QBProj { get; init; }
    public required WeightMatrix KvAProj { get; init; }
    public float[]? KvABias { get; init; }
    public required float[] KvANorm { get; init; }
    public required WeightMatrix KvBProj { get; init; }
    /// <summary>kv_b_proj repacked for the int8 kernels, when the load made that copy: prefill expands the latents with it, int8 decode projects the values.</summary>
    public WeightMatrix? KvBProjRows16 { get; init; }
    /// <summary>Each head's key rows of that copy, transposed: int8 decode folds them into the queries with the int8 kernels.</summary>
    public TransposedRowBlocks? KvBKeysTransposed { get; init; }
    public required WeightMatrix OProj { get; init; }
    public float[]? OBias { get; init; }

    public MlaAttention(ModelConfig config, RotaryEmbedding rope)
    {
        _rope = rope;
        _heads = config.NumAttentionHeads;
        _nope = config.QkNopeHeadDim;
        _ropeDim = config.QkRopeHeadDim;
        _vDim = config.VHeadDim;
        _latentDim = config.KvLoraRank;
        _qkDim = config.QkHeadDim;
        // The latent norms use config rms_norm_eps like every other norm (as vLLM and the training code do);
        // Hugging Face's modeling file builds them with its class default 1e-6 instead.
        _eps = (float)config.RmsNormEps;
    }

    /// <summary>
    /// Attends a batch of new tokens from one or more sequences: <paramref name="segments"/> say which rows of
    /// <paramref name="x"/> belong to which sequence's cache. Every matrix runs once over all the rows; each sequence
    /// attends over its own cache (at positions cache.Length…) plus its own new tokens, and its latents are appended
    /// to layer <paramref name="layer"/> of that cache. x: [tokens, hidden] normalized input; output: [tokens, hidden];
    /// cos/sin: each row's rotary angles.
    /// </summary>
    internal void Forward(int layer, ReadOnlySpan<float> x, Span<float> output, int tokens, ReadOnlySpan<AttentionSegment> segments,
        ForwardWorkspace ws, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        // Queries [tokens, heads, nope + rope].
        // The query projection and kv_a_proj_with_mqa read the same input: one parallel job for both.
        int kvWidth = _latentDim + _ropeDim;
        var kva = ws.KvA.Get((long)tokens * kvWidth);
        var q = ws.Queries.Get((long)tokens * _heads * _qkDim);
        var kernels = ws.Kernels;
        var profile = ws.Profile;
        long clock = profile.Start();
        if (QProj is not null) MatrixKernels.MatMulPair(QProj, KvAProj, x, q, kva, tokens, kernels);
        else
        {
            int rank = QAProj!.Rows;
            var qa = ws.QueryLatents.Get((long)tokens * rank);
            MatrixKernels.MatMulPair(QAProj, KvAProj, x, qa, kva, tokens, kernels);
            for (int t = 0; t < tokens; t++)
            {
                var row = qa.Slice(t * rank, rank);
                if (QABias is not null) TensorPrimitives.Add(row, QABias, row);
                Ops.RmsNorm(row, QANorm!, _eps, row);
            }
            MatrixKernels.MatMul(QBProj!, qa, q, tokens, kernels);
        }
        profile.Stop(ForwardPhase.AttentionProjections, clock);

        var attended = ws.Attended.Get((long)tokens * _heads * _vDim);
        foreach (var segment in segments)
        {
            int first = segment.FirstRow, count = segment.Tokens, pairs = _ropeDim / 2;
            Attend(layer, segment.Cache, ws, count, segment.Mode,
                q.Slice(first * _heads * _qkDim, count * _heads * _qkDim), kva.Slice(first * kvWidth, count * kvWidth),
                attended.Slice(first * _heads * _vDim, count * _heads * _vDim),
                cos.Slice(first * pairs, count * pairs), sin.Slice(first * pairs, count * pairs), kernels, profile);
        }

        clock = profile.Start();
        MatrixKernels.MatMul(OProj, attended, output, tokens, kernels);
        if (OBias is not null)
            for (int t = 0; t < tokens; t++)
                TensorPrimitives.Add(output.Slice(t * OProj.Rows, OProj.Rows), OBias, output.Slice(t * OProj.Rows, OProj.Rows));
        profile.Stop(ForwardPhase.AttentionOutput, clock);
    }

    /// <summary>One sequence's share of <see cref="Forward"/>: its latents into its cache, then its heads' attention.</summary>
    private void Attend(int layer, KvCache cache, ForwardWorkspace ws, int tokens, AttentionMode mode, Span<float> q, Span<float> kva,
        Span<float> attended, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, KernelSettings kernels, ForwardProfile profile)
    {
        int start = cache.Length, context = start + tokens;
        int pairs = _ropeDim / 2, kvWidth = _latentDim + _ropeDim;

        // Latents and the shared rope key, written straight into the cache.
        long clock = profile.Start();
        for (int t = 0; t < tokens; t++)
        {
            var row = kva.Slice(t * kvWidth, kvWidth);
            if (KvABias is not null) TensorPrimitives.Add(row, KvABias, row);
            Ops.RmsNorm(row[.._latentDim], KvANorm, _eps, cache.LatentRow(layer, start + t));
            var key = cache.RopeKeyRow(layer, start + t);
            row[_latentDim..].CopyTo(key);
            Ops.RotatePairs(key, cos.Slice(t * pairs, pairs), sin.Slice(t * pairs, pairs));
            for (int h = 0; h < _heads; h++)
                Ops.RotatePairs(q.Slice((t * _heads + h) * _qkDim + _nope, _ropeDim), cos.Slice(t * pairs, pairs), sin.Slice(t * pairs, pairs));
        }
        profile.Stop(ForwardPhase.AttentionLatents, clock);

        bool absorbed = mode == AttentionMode.Absorbed || (mode == AttentionMode.Auto && tokens == 1);
        unsafe
        {
            fixed (float* pq = q)
            fixed (float* pOut = attended)
            {
                var job = new HeadJob(this, layer, cache, ws, pq, pOut, tokens, start, kernels);
                clock = profile.Start();
                if (absorbed) job.PrepareAbsorbed();
                else job.PrepareExpanded();
                profile.Stop(ForwardPhase.AttentionExpand, clock);
                clock = profile.Start();
                if (absorbed) job.RunAbsorbed();
                else
                {
                    long work = (long)_heads * tokens * context * (_qkDim + _vDim);
                    job.RunParallel(job.Units, work);
                }
                profile.Stop(ForwardPhase.AttentionHeads, clock);
            }
        }
    }

    /// <summary>
    /// Causal attention of every head. Expanded (prefill): one head per work item, its queries 4 tokens at a time
    /// against the head's expanded keys and values, gathered into dense blocks first. Absorbed (decode): three parallel
    /// steps per token. Fold kv_b_proj into every head's query (heads split); attend every head over chunks of positions
    /// (chunks split: each chunk's scores, their exponentials against the chunk's maximum and the weighted sum of its
    /// latents, so each cached latent is read once, by one thread, while it is in cache); then per head combine the
    /// chunks into the softmax-weighted latent and project it to the head's value (heads split). Chunk sizes follow the
    /// context alone and the products are <see cref="AttentionKernels"/>', whose per-element arithmetic does not depend
    /// on the split, so the thread count never changes a result.
    /// </summary>
    private sealed unsafe class HeadJob : IRowJob
    {
        private const int TokenBlock = 4;
        private enum Step { Expanded, Fold, Attend, Values }
        /// <summary>Positions per chunk at least, and chunks per decoded token at most (chunks grow with the context past that).</summary>
        private const int MinChunk = 64, MaxChunks = 64;

        private readonly MlaAttention _a;
        private readonly KvCache _cache;
        private readonly ForwardWorkspace _ws;
        private float[] _gatheredRopeKeys = [];
        private readonly int _layer, _tokens, _start, _context;
        private readonly float* _q, _out;
        private readonly KernelSettings _kernels;
        private float[] _expanded = [];
        private float[] _scratch = [];
        private Step _step;
        private int _token;
        private float* _scores, _absorbedQueries, _mixed, _partials, _chunkMax, _chunkSum;
        private int _chunk, _chunks;

        /// <summary>Positions per chunk for a token that sees <paramref name="visible"/>: fixed by the context alone, never by the thread count.</summary>
        private static int ChunkFor(int visible) => Math.Max(MinChunk, (visible + MaxChunks - 1) / MaxChunks);

        public HeadJob(MlaAttention attention, int layer, KvCache cache, ForwardWorkspace ws, float* q, float* output, int tokens, int start,
            KernelSettings kernels)
        {
            _a = attention; _layer = layer; _cache = cache; _ws = ws; _q = q; _out = output; _tokens = tokens; _start = start; _kernels = kernels;
            _context = start + tokens;
        }

        /// <summary>Expanded work items: one per head.</summary>
        public int Units => _a._heads;

        /// <summary>
        /// kv_b_proj applied to every cached latent: [context, heads, nope + v]. The latents and rope keys are first
        /// gathered out of the cache's blocks into dense rows (a copy of context × 576 floats per layer, small beside the
        /// expansion's context × 576 × heads × 256 products), so the expansion is the one matrix product it always was.
        /// </summary>
        public void PrepareExpanded()
        {
            _step = Step.Expanded;
            var ws = _ws;
            var latents = ws.CacheLatents.Get((long)_context * _a._latentDim);
            _gatheredRopeKeys = ws.CacheRopeKeys.Array((long)_context * _a._ropeDim);
            _cache.Gather(_layer, _context, latents, _gatheredRopeKeys);
            _expanded = ws.ExpandedKv.Array((long)_context * _a._heads * (_a._nope + _a._vDim));
            MatrixKernels.MatMul(_a.KvBProjRows16 ?? _a.KvBProj, latents, _expanded, _context, _kernels);
            // Per head: scores of 4 token rows.
            _scratch = ws.AttentionScratch.Array(Units * (long)TokenBlock * _context);
        }

        /// <summary>
        /// Scratch: scores [heads, context], absorbed queries [heads, latent], mixed latents [heads, latent], and per
        /// position chunk its heads' partial mixes [chunks, heads, latent], score maxima and exponential sums [chunks, heads].
        /// </summary>
        public void PrepareAbsorbed()
        {
            // No token's chunk count exceeds this: ⌈visible/64⌉ up to 64 chunks of 64, then 64 (or fewer) longer ones.
            int heads = _a._heads, chunks = Math.Min(MaxChunks, (_context + MinChunk - 1) / MinChunk);
            _scratch = _ws.AttentionScratch.Array((long)heads * (_context + 2 * _a._latentDim) + (long)chunks * heads * (_a._latentDim + 2));
        }

        public void RunParallel(int units, long work)
        {
            int parts = KernelThreading.PartsFor(work, units, _kernels.MaxThreads);
            if (parts <= 1) Run(0, units);
            else KernelThreading.ParallelRows(units, parts, this, _kernels.MaxThreads);
        }

        public void RunAbsorbed()
        {
            var a = _a;
            int heads = a._heads, latentDim = a._latentDim;
            fixed (float* scratch = _scratch)
            {
                _scores = scratch; _absorbedQueries = scratch + (long)heads * _context; _mixed = _absorbedQueries + (long)heads * latentDim;
                _partials = _mixed + (long)heads * latentDim;
                for (int t = 0; t < _tokens; t++)
                {
                    _token = t;
                    int visible = _start + t + 1;
                    _step = Step.Fold;
                    RunParallel(heads, (long)heads * a._nope * latentDim);
                    _chunk = ChunkFor(visible);
                    _chunks = (visible + _chunk - 1) / _chunk;
                    _chunkMax = _partials + (long)_chunks * heads * latentDim;
                    _chunkSum = _chunkMax + (long)_chunks * heads;
                    _step = Step.Attend;
                    RunParallel(_chunks, (long)heads * visible * (2 * latentDim + a._ropeDim));
                    _step = Step.Values;
                    RunParallel(heads, (long)heads * a._vDim * latentDim);
                }
                _scores = _absorbedQueries = _mixed = _partials = _chunkMax = _chunkSum = null;
            }
        }

        public void Run(int unitStart, int unitEnd)
        {
            if (_step != Step.Expanded)
            {
                for (int u = unitStart; u < unitEnd; u++) RunAbsorbedUnit(u);
                return;
            }
            fixed (float* scratch = _scratch)
            fixed (float* expanded = _expanded)
            fixed (float* ropeKeys = _gatheredRopeKeys)
                for (int h = unitStart; h < unitEnd; h++)
                    AttendExpanded(h, expanded, ropeKeys, scratch + h * (long)TokenBlock * _context);
        }

        private void AttendExpanded(int h, float* expanded, float* ropeKeys, float* scores)
        {
            var a = _a;
            int perHead = a._nope + a._vDim, kvWidth = a._heads * perHead;
            // The head's keys and values, gathered out of the [context, heads, nope + v] expansion into two dense
            // blocks: every pass over them then streams contiguous rows instead of 512-byte pieces a whole
            // expansion row apart (the products, and so the results, are the same).
            long need = (long)_context * perHead;
            var gathered = t_headKv is { } buffer && buffer.Length >= need ? buffer : t_headKv = new float[need];
            fixed (float* kv = gathered)
            {
                float* keys = kv, values = kv + (long)_context * a._nope;
                for (int s = 0; s < _context; s++)
                {
                    float* row = expanded + (long)s * kvWidth + h * perHead;
                    new ReadOnlySpan<float>(row, a._nope).CopyTo(new Span<float>(keys + (long)s * a._nope, a._nope));
                    new ReadOnlySpan<float>(row + a._nope, a._vDim).CopyTo(new Span<float>(values + (long)s * a._vDim, a._vDim));
                }
                AttendExpanded(h, keys, values, ropeKeys, scores);
            }
        }

        [ThreadStatic] private static float[]? t_headKv;

        /// <summary>Causal attention of head <paramref name="h"/>'s queries over its dense keys [context, nope] and values [context, v].</summary>
        private void AttendExpanded(int h, float* keys, float* values, float* ropeKeys, float* scores)
        {
            var a = _a;
            long qStride = (long)a._heads * a._qkDim;
            for (int t0 = 0; t0 < _tokens; t0 += TokenBlock)
            {
                int n = Math.Min(TokenBlock, _tokens - t0), span = _start + t0 + n;
                float* q = _q + ((long)t0 * a._heads + h) * a._qkDim;
                AttentionKernels.Scores(q, qStride, q + a._nope, qStride, n, keys, a._nope, a._nope, ropeKeys, a._ropeDim, a._ropeDim,
                    span, a._rope.SoftmaxScale, scores, _context);
                for (int i = 0; i < n; i++)
                {
                    // Causal: token t0+i sees positions up to its own; later ones weigh exactly 0 in the shared sum.
                    int visible = _start + t0 + i + 1;
                    Ops.Softmax(new Span<float>(scores + (long)i * _context, visible));
                    new Span<float>(scores + (long)i * _context + visible, span - visible).Clear();
                }
                AttentionKernels.WeightedSum(scores, _context, n, values, a._vDim, a._vDim, span,
                    _out + ((long)t0 * a._heads + h) * a._vDim, (long)a._heads * a._vDim);
            }
        }

        /// <summary>
        /// Head <paramref name="head"/>'s mixed latent from its chunks, in chunk order: with M the largest chunk maximum,
        /// w_u = exp(m_u − M) and L = Σ w_u·l_u, mixed = Σ_u (w_u / L)·partial_u — the softmax-weighted sum over all positions.
        /// </summary>
        private void Combine(int head)
        {
            int heads = _a._heads, latentDim = _a._latentDim;
            float max = float.NegativeInfinity, total = 0;
            for (int u = 0; u < _chunks; u++) max = MathF.Max(max, _chunkMax[u * heads + head]);
            for (int u = 0; u < _chunks; u++) total += MathF.Exp(_chunkMax[u * heads + head] - max) * _chunkSum[u * heads + head];
            var mixed = new Span<float>(_mixed + (long)head * latentDim, latentDim);
            for (int u = 0; u < _chunks; u++)
            {
                float weight = MathF.Exp(_chunkMax[u * heads + head] - max) / total;
                var partial = new ReadOnlySpan<float>(_partials + ((long)u * heads + head) * latentDim, latentDim);
                if (u == 0) TensorPrimitives.Multiply(partial, weight, mixed);
                else TensorPrimitives.MultiplyAdd(partial, weight, mixed, mixed);
            }
        }

        /// <summary>One work item of the current absorbed step for token <see cref="_token"/>.</summary>
        private void RunAbsorbedUnit(int unit)
        {
            var a = _a;
            int t = _token, heads = a._heads, visible = _start + t + 1, rowsPerHead = a._nope + a._vDim, latentDim = a._latentDim;
            float* q = _q + (long)t * heads * a._qkDim;
            switch (_step)
            {
                case Step.Fold:
                {
                    // q̂ = W_UKᵀ q_nope: the key projection moved onto the query.
                    var target = new Span<float>(_absorbedQueries + (long)unit * latentDim, latentDim);
                    var queryNope = new ReadOnlySpan<float>(q + (long)unit * a._qkDim, a._nope);
                    if (a.KvBKeysTransposed is { } keys && _kernels.Int8Activations) keys.TransposeMultiplyInt8(unit, queryNope, target);
                    else
                    {
                        target.Clear();
                        MatrixKernels.AddScaledRows(a.KvBProj, unit * rowsPerHead, queryNope, target);
                    }
                    break;
                }
                case Step.Attend:
                {
                    // One chunk of positions for every head: scores, their exponentials against the chunk's own
                    // maximum, and the exponential-weighted sum of the chunk's latents. The value step combines chunks.
                    int first = unit * _chunk, count = Math.Min(_chunk, visible - first);
                    // The chunk's positions may span cache blocks (always one whole block up to 4K context): scores per
                    // block piece, then the sum continued piece by piece, which the kernels compute with one call's bits.
                    int blockTokens = _cache.BlockTokens;
                    for (int pos = first, end = first + count; pos < end;)
                    {
                        int index = pos / blockTokens, offset = pos % blockTokens, n = Math.Min(blockTokens - offset, end - pos);
                        AttentionKernels.Scores(_absorbedQueries, latentDim, q + a._nope, a._qkDim, heads,
                            _cache.LatentBlock(_layer, index) + (long)offset * latentDim, latentDim, latentDim,
                            _cache.RopeKeyBlock(_layer, index) + (long)offset * a._ropeDim, a._ropeDim, a._ropeDim,
                            n, a._rope.SoftmaxScale, _scores + pos, _context);
                        pos += n;
                    }
                    for (int h = 0; h < heads; h++)
                    {
                        var row = new Span<float>(_scores + (long)h * _context + first, count);
                        float max = TensorPrimitives.Max(row);
                        TensorPrimitives.Subtract(row, max, row);
                        TensorPrimitives.Exp(row, row);
                        _chunkMax[unit * heads + h] = max;
                        _chunkSum[unit * heads + h] = Reductions.Sum(row);
                    }
                    for (int pos = first, end = first + count; pos < end;)
                    {
                        int index = pos / blockTokens, offset = pos % blockTokens, n = Math.Min(blockTokens - offset, end - pos);
                        AttentionKernels.WeightedSum(_scores + pos, _context, heads, _cache.LatentBlock(_layer, index) + (long)offset * latentDim,
                            latentDim, latentDim, n, _partials + (long)unit * heads * latentDim, latentDim, accumulate: pos > first);
                        pos += n;
                    }
                    break;
                }
                case Step.Values:
                {
                    Combine(unit);
                    // The value projection W_UV applied once to the head's mixed latent; with int8 activations, by the
                    // int8 kernels on kv_b_proj's 16-row copy, as prefill's expansion computes it.
                    var output = new Span<float>(_out + ((long)t * heads + unit) * a._vDim, a._vDim);
                    float* mixed = _mixed + (long)unit * latentDim;
                    int firstRow = unit * rowsPerHead + a._nope;
                    if (a.KvBProjRows16 is { } rows16 && _kernels.Int8Activations && firstRow % 16 == 0 && a._vDim % 16 == 0)
                        MatrixKernels.DotRowsInt8(rows16, firstRow, new ReadOnlySpan<float>(mixed, latentDim), output);
                    else MatrixKernels.DotRows(a.KvBProj, firstRow, new ReadOnlySpan<float>(mixed, latentDim), output);
                    break;
                }
            }
        }
    }
}
