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
    private readonly ModelConfig _config;
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
    /// <summary>kv_b_proj repacked for the int8 kernels, when the load made that copy: prefill expands the latents with it.</summary>
    public WeightMatrix? KvBProjRows16 { get; init; }
    /// <summary>Each head's key rows of that copy, transposed: int8 decode folds them into the queries with the int8 kernels.</summary>
    public TransposedRowBlocks? KvBKeysTransposed { get; init; }
    public required WeightMatrix OProj { get; init; }
    public float[]? OBias { get; init; }

    public MlaAttention(ModelConfig config, RotaryEmbedding rope)
    {
        _config = config;
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
    /// Attends <paramref name="tokens"/> new tokens (at positions cache.Length…) over the cache plus themselves,
    /// appending their latents to layer <paramref name="layer"/> of the cache. x: [tokens, hidden] normalized input;
    /// output: [tokens, hidden].
    /// </summary>
    internal void Forward(int layer, ReadOnlySpan<float> x, Span<float> output, int tokens, KvCache cache,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, AttentionMode mode)
    {
        var ws = cache.Workspace;
        int start = cache.Length, context = start + tokens;
        int pairs = _ropeDim / 2;

        // Queries [tokens, heads, nope + rope].
        // The query projection and kv_a_proj_with_mqa read the same input: one parallel job for both.
        int kvWidth = _latentDim + _ropeDim;
        var kva = ws.Get("attn.kva", (long)tokens * kvWidth);
        var q = ws.Get("attn.q", (long)tokens * _heads * _qkDim);
        long clock = ForwardProfile.Start();
        if (QProj is not null) MatrixKernels.MatMulPair(QProj, KvAProj, x, q, kva, tokens);
        else
        {
            int rank = QAProj!.Rows;
            var qa = ws.Get("attn.qa", (long)tokens * rank);
            MatrixKernels.MatMulPair(QAProj, KvAProj, x, qa, kva, tokens);
            for (int t = 0; t < tokens; t++)
            {
                var row = qa.Slice(t * rank, rank);
                if (QABias is not null) TensorPrimitives.Add(row, QABias, row);
                Ops.RmsNorm(row, QANorm!, _eps, row);
            }
            MatrixKernels.MatMul(QBProj!, qa, q, tokens);
        }

        ForwardProfile.Stop(ForwardPhase.AttentionProjections, clock);

        // Latents and the shared rope key, written straight into the cache.
        clock = ForwardProfile.Start();
        var latents = cache.Latents(layer, start, tokens);
        var ropeKeys = cache.RopeKeys(layer, start, tokens);
        for (int t = 0; t < tokens; t++)
        {
            var row = kva.Slice(t * kvWidth, kvWidth);
            if (KvABias is not null) TensorPrimitives.Add(row, KvABias, row);
            Ops.RmsNorm(row[.._latentDim], KvANorm, _eps, latents.Slice(t * _latentDim, _latentDim));
            var key = ropeKeys.Slice(t * _ropeDim, _ropeDim);
            row[_latentDim..].CopyTo(key);
            Ops.RotatePairs(key, cos.Slice(t * pairs, pairs), sin.Slice(t * pairs, pairs));
            for (int h = 0; h < _heads; h++)
                Ops.RotatePairs(q.Slice((t * _heads + h) * _qkDim + _nope, _ropeDim), cos.Slice(t * pairs, pairs), sin.Slice(t * pairs, pairs));
        }

        ForwardProfile.Stop(ForwardPhase.AttentionLatents, clock);

        var attended = ws.Get("attn.out", (long)tokens * _heads * _vDim);
        bool absorbed = mode == AttentionMode.Absorbed || (mode == AttentionMode.Auto && tokens == 1);
        unsafe
        {
            fixed (float* pq = q)
            fixed (float* pOut = attended)
            {
                var job = new HeadJob(this, layer, cache, pq, pOut, tokens, start);
                clock = ForwardProfile.Start();
                if (absorbed) job.PrepareAbsorbed();
                else job.PrepareExpanded();
                ForwardProfile.Stop(ForwardPhase.AttentionExpand, clock);
                clock = ForwardProfile.Start();
                if (absorbed) job.RunAbsorbed();
                else
                {
                    long work = (long)_heads * tokens * context * (_qkDim + _vDim);
                    job.RunParallel(job.Units, work);
                }
                ForwardProfile.Stop(ForwardPhase.AttentionHeads, clock);
            }
        }
        clock = ForwardProfile.Start();
        MatrixKernels.MatMul(OProj, attended, output, tokens);
        if (OBias is not null)
            for (int t = 0; t < tokens; t++)
                TensorPrimitives.Add(output.Slice(t * OProj.Rows, OProj.Rows), OBias, output.Slice(t * OProj.Rows, OProj.Rows));
        ForwardProfile.Stop(ForwardPhase.AttentionOutput, clock);
    }

    /// <summary>
    /// Causal attention of every head. Expanded (prefill): one head per work item, its queries 4 tokens at a time
    /// against the head's expanded keys and values, gathered into dense blocks first. Absorbed (decode): four parallel
    /// steps per token, each split so that the latent cache is read from memory once for all heads, not once per
    /// thread: fold kv_b_proj into every head's query (heads split), score every head against blocks of positions
    /// (positions split), softmax, mix the latents for every head in 64-column chunks (columns split), project each
    /// mixed latent to the head's value (heads split). The products are <see cref="AttentionKernels"/>', whose
    /// per-element arithmetic does not depend on the split.
    /// </summary>
    private sealed unsafe class HeadJob : IRowJob
    {
        private const int TokenBlock = 4;
        /// <summary>Positions per scoring work item and columns per mixing work item.</summary>
        private const int PositionChunk = 64, ColumnChunk = 64;
        private enum Step { Expanded, Fold, Scores, Mix, Values }

        private readonly MlaAttention _a;
        private readonly KvCache _cache;
        private readonly int _layer, _tokens, _start, _context;
        private readonly float* _q, _out;
        private float[] _expanded = [];
        private float[] _scratch = [];
        private Step _step;
        private int _token;
        private float* _latents, _ropeKeys, _scores, _absorbedQueries, _mixed;

        public HeadJob(MlaAttention attention, int layer, KvCache cache, float* q, float* output, int tokens, int start)
        {
            _a = attention; _layer = layer; _cache = cache; _q = q; _out = output; _tokens = tokens; _start = start;
            _context = start + tokens;
        }

        /// <summary>Expanded work items: one per head.</summary>
        public int Units => _a._heads;

        /// <summary>kv_b_proj applied to every cached latent: [context, heads, nope + v].</summary>
        public void PrepareExpanded()
        {
            _step = Step.Expanded;
            var ws = _cache.Workspace;
            _expanded = ws.Array("attn.expanded", (long)_context * _a._heads * (_a._nope + _a._vDim));
            MatrixKernels.MatMul(_a.KvBProjRows16 ?? _a.KvBProj, _cache.Latents(_layer, 0, _context), _expanded, _context);
            // Per head: scores of 4 token rows.
            _scratch = ws.Array("attn.scratch", Units * (long)TokenBlock * _context);
        }

        /// <summary>Scratch: scores [heads, context], absorbed queries [heads, latent], mixed latents [heads, latent].</summary>
        public void PrepareAbsorbed() =>
            _scratch = _cache.Workspace.Array("attn.scratch", (long)_a._heads * (_context + 2 * _a._latentDim));

        public void RunParallel(int units, long work)
        {
            int parts = KernelThreading.PartsFor(work, units);
            if (parts <= 1) Run(0, units);
            else KernelThreading.ParallelRows(units, parts, this);
        }

        public void RunAbsorbed()
        {
            var a = _a;
            int heads = a._heads, latentDim = a._latentDim;
            fixed (float* scratch = _scratch)
            fixed (float* latents = _cache.Latents(_layer, 0, _context))
            fixed (float* ropeKeys = _cache.RopeKeys(_layer, 0, _context))
            {
                _latents = latents; _ropeKeys = ropeKeys;
                _scores = scratch; _absorbedQueries = scratch + (long)heads * _context; _mixed = _absorbedQueries + (long)heads * latentDim;
                for (int t = 0; t < _tokens; t++)
                {
                    _token = t;
                    int visible = _start + t + 1;
                    _step = Step.Fold;
                    RunParallel(heads, (long)heads * a._nope * latentDim);
                    _step = Step.Scores;
                    RunParallel((visible + PositionChunk - 1) / PositionChunk, (long)heads * visible * (latentDim + a._ropeDim));
                    for (int h = 0; h < heads; h++) Ops.Softmax(new Span<float>(_scores + (long)h * _context, visible));
                    _step = Step.Mix;
                    RunParallel((latentDim + ColumnChunk - 1) / ColumnChunk, (long)heads * visible * latentDim);
                    _step = Step.Values;
                    RunParallel(heads, (long)heads * a._vDim * latentDim);
                }
                _latents = _ropeKeys = _scores = _absorbedQueries = _mixed = null;
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
            fixed (float* ropeKeys = _cache.RopeKeys(_layer, 0, _context))
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
                    if (a.KvBKeysTransposed is { } keys && MatrixKernels.Int8Activations) keys.TransposeMultiplyInt8(unit, queryNope, target);
                    else
                    {
                        target.Clear();
                        MatrixKernels.AddScaledRows(a.KvBProj, unit * rowsPerHead, queryNope, target);
                    }
                    break;
                }
                case Step.Scores:
                {
                    int first = unit * PositionChunk, count = Math.Min(PositionChunk, visible - first);
                    AttentionKernels.Scores(_absorbedQueries, latentDim, q + a._nope, a._qkDim, heads,
                        _latents + (long)first * latentDim, latentDim, latentDim, _ropeKeys + (long)first * a._ropeDim, a._ropeDim, a._ropeDim,
                        count, a._rope.SoftmaxScale, _scores + first, _context);
                    break;
                }
                case Step.Mix:
                {
                    // Σ p·c̃ for every head over one chunk of the latent's columns.
                    int first = unit * ColumnChunk, count = Math.Min(ColumnChunk, latentDim - first);
                    AttentionKernels.WeightedSum(_scores, _context, heads, _latents + first, latentDim, count, visible, _mixed + first, latentDim);
                    break;
                }
                case Step.Values:
                {
                    // The value projection W_UV applied once to the head's mixed latent; with int8 activations, by the
                    // int8 kernels on kv_b_proj's 16-row copy, as prefill's expansion computes it.
                    var output = new Span<float>(_out + ((long)t * heads + unit) * a._vDim, a._vDim);
                    float* mixed = _mixed + (long)unit * latentDim;
                    int firstRow = unit * rowsPerHead + a._nope;
                    if (a.KvBProjRows16 is { } rows16 && MatrixKernels.Int8Activations && firstRow % 16 == 0 && a._vDim % 16 == 0)
                        MatrixKernels.DotRowsInt8(rows16, firstRow, new ReadOnlySpan<float>(mixed, latentDim), output);
                    else MatrixKernels.DotRows(a.KvBProj, firstRow, new ReadOnlySpan<float>(mixed, latentDim), output);
                    break;
                }
            }
        }
    }
}
