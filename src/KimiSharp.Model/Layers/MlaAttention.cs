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
                long work = (long)_heads * tokens * context * (absorbed ? _latentDim * 2 : _qkDim + _vDim);
                int parts = KernelThreading.PartsFor(work, _heads);
                if (parts <= 1) job.Run(0, _heads);
                else KernelThreading.ParallelRows(_heads, parts, job);
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

    /// <summary>Causal attention of every head, one head per work item.</summary>
    private sealed unsafe class HeadJob : IRowJob
    {
        private readonly MlaAttention _a;
        private readonly KvCache _cache;
        private readonly int _layer, _tokens, _start, _context;
        private readonly float* _q, _out;
        private float[] _expanded = [];
        private float[] _scratch = [];
        private bool _absorbed;

        public HeadJob(MlaAttention attention, int layer, KvCache cache, float* q, float* output, int tokens, int start)
        {
            _a = attention; _layer = layer; _cache = cache; _q = q; _out = output; _tokens = tokens; _start = start;
            _context = start + tokens;
        }

        private int ScratchPerHead => _context + (_absorbed ? 2 * _a._latentDim : 0);

        /// <summary>kv_b_proj applied to every cached latent: [context, heads, nope + v].</summary>
        public void PrepareExpanded()
        {
            _absorbed = false;
            var ws = _cache.Workspace;
            _expanded = ws.Array("attn.expanded", (long)_context * _a._heads * (_a._nope + _a._vDim));
            MatrixKernels.MatMul(_a.KvBProj, _cache.Latents(_layer, 0, _context), _expanded, _context);
            _scratch = ws.Array("attn.scratch", (long)_a._heads * ScratchPerHead);
        }

        public void PrepareAbsorbed()
        {
            _absorbed = true;
            _scratch = _cache.Workspace.Array("attn.scratch", (long)_a._heads * ScratchPerHead);
        }

        public void Run(int headStart, int headEnd)
        {
            for (int h = headStart; h < headEnd; h++)
                for (int t = 0; t < _tokens; t++)
                {
                    if (_absorbed) AttendAbsorbed(h, t);
                    else AttendExpanded(h, t);
                }
        }

        private void AttendExpanded(int h, int t)
        {
            var a = _a;
            int visible = _start + t + 1;
            int kvWidth = a._heads * (a._nope + a._vDim);
            var q = new ReadOnlySpan<float>(_q + ((long)t * a._heads + h) * a._qkDim, a._qkDim);
            var scores = _scratch.AsSpan(h * ScratchPerHead, visible);
            var ropeKeys = _cache.RopeKeys(_layer, 0, visible);
            for (int s = 0; s < visible; s++)
            {
                var key = _expanded.AsSpan(s * kvWidth + h * (a._nope + a._vDim), a._nope);
                float score = Reductions.Dot(q[..a._nope], key)
                    + Reductions.Dot(q[a._nope..], ropeKeys.Slice(s * a._ropeDim, a._ropeDim));
                scores[s] = score * a._rope.SoftmaxScale;
            }
            Ops.Softmax(scores);
            var output = new Span<float>(_out + ((long)t * a._heads + h) * a._vDim, a._vDim);
            output.Clear();
            for (int s = 0; s < visible; s++)
            {
                var value = _expanded.AsSpan(s * kvWidth + h * (a._nope + a._vDim) + a._nope, a._vDim);
                TensorPrimitives.MultiplyAdd(value, scores[s], output, output);
            }
        }

        private void AttendAbsorbed(int h, int t)
        {
            var a = _a;
            int visible = _start + t + 1;
            int rowsPerHead = a._nope + a._vDim;
            var q = new ReadOnlySpan<float>(_q + ((long)t * a._heads + h) * a._qkDim, a._qkDim);
            var scratch = _scratch.AsSpan(h * ScratchPerHead, ScratchPerHead);
            var scores = scratch[..visible];
            var absorbedQuery = scratch.Slice(_context, a._latentDim);
            var context = scratch.Slice(_context + a._latentDim, a._latentDim);

            // q̂ = W_UKᵀ q_nope: the key projection moved onto the query.
            absorbedQuery.Clear();
            for (int d = 0; d < a._nope; d++)
                MatrixKernels.AddScaledRow(a.KvBProj, h * rowsPerHead + d, q[d], absorbedQuery);

            var latents = _cache.Latents(_layer, 0, visible);
            var ropeKeys = _cache.RopeKeys(_layer, 0, visible);
            for (int s = 0; s < visible; s++)
            {
                float score = Reductions.Dot(absorbedQuery, latents.Slice(s * a._latentDim, a._latentDim))
                    + Reductions.Dot(q[a._nope..], ropeKeys.Slice(s * a._ropeDim, a._ropeDim));
                scores[s] = score * a._rope.SoftmaxScale;
            }
            Ops.Softmax(scores);

            // Σ p·c̃, then the value projection W_UV applied once to the mixed latent.
            context.Clear();
            for (int s = 0; s < visible; s++)
                TensorPrimitives.MultiplyAdd(latents.Slice(s * a._latentDim, a._latentDim), scores[s], context, context);
            float* output = _out + ((long)t * a._heads + h) * a._vDim;
            for (int j = 0; j < a._vDim; j++)
                output[j] = MatrixKernels.DotRow(a.KvBProj, h * rowsPerHead + a._nope + j, context);
        }
    }
}
