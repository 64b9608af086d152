using System.Numerics;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;

namespace KimiSharp.Training;

/// <summary>A weight of <see cref="Network{T}"/>: values and gradient, [rows, cols] row-major.</summary>
internal sealed class Weight<T>(string name, T[] data, T[] grad, int rows, int cols)
{
    public string Name { get; } = name;
    public T[] W { get; } = data;
    public T[] G { get; } = grad;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
}

/// <summary>
/// The K2 decoder as a training graph over element type <typeparamref name="T"/>: forward caches activations,
/// backward accumulates into each weight's gradient. <see cref="TrainableModel"/> runs it in float32 over its
/// <see cref="Parameter"/>s; gradient tests run it in float64.
/// </summary>
internal sealed class Network<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private sealed class Ffn
    {
        public required Weight<T> Gate, Up, Down;
        public int Width => Gate.Rows;
    }

    private sealed class Layer
    {
        public required Weight<T> InputNorm, PostNorm, KvA, KvANorm, KvB, O;
        public Weight<T>? Q, QA, QANorm, QB;
        public Ffn? Dense, Shared;
        public Weight<T>? Router;
        public Ffn[] Experts = [];
        public float[]? Bias;
        public bool IsMoe => Router is not null;
    }

    /// <summary>Activations of one layer from the last forward.</summary>
    private sealed class LayerCache
    {
        public T[] HIn = [], X1 = [], R1 = [], Qa = [], QaN = [], QaR = [], Q = [], Kva = [], Latent = [], LatentN = [], LatentR = [],
            Kr = [], Kvb = [], Probs = [], Attn = [], HMid = [], X2 = [], R2 = [];
        public T[] G = [], U = [], Act = [];              // dense
        public T[] SG = [], SU = [], SAct = [];           // shared experts
        public T[] RouterLogits = [], Scores = [], RouteWeights = [];
        public int[] Chosen = [];
        public int[][] ExpertRows = [], ExpertSlots = [];
        public T[][] EX = [], EG = [], EU = [], EAct = [], EOut = [];
    }

    private readonly ModelConfig _c;
    private readonly Layer[] _layers;
    private readonly Weight<T> _embed, _norm, _head;
    private readonly double[] _invFreq;
    private readonly double _cosSinScale, _softmaxScale;
    private readonly TrainOps.RouterShape _router;
    private readonly T _eps;

    public IReadOnlyList<Weight<T>> Weights { get; }

    /// <summary>Sequence-wise balance loss coefficient α (0: off).</summary>
    public double BalanceAlpha { get; set; }

    public float[][] MaxAttentionLogits { get; }
    public int[]?[] ExpertLoad { get; }

    // forward cache
    private LayerCache[] _cache = [];
    private int[] _tokens = [];
    private int[]? _targets;
    private float[]? _mask;
    private int _batch, _seq;
    private T[] _cos = [], _sin = [], _hFinal = [], _xFinal = [], _rFinal = [], _probs = [];
    private T _lossWeight;

    /// <summary>The logits [batch·seq, vocab] of the last forward.</summary>
    public T[] Logits { get; private set; } = [];

    public Network(ModelConfig config, Func<string, int[], ParameterKind, (T[] Data, T[] Grad)> allocate, Func<int, float[]> bias)
    {
        if (config.AttentionBias) throw new NotSupportedException("attention_bias is not supported by the trainer");
        if (config.Quantization is not null) throw new NotSupportedException("the trainer builds unquantized models");
        _c = config;
        _eps = T.CreateChecked(config.RmsNormEps);
        var weights = new List<Weight<T>>();
        Weight<T> Add(string name, ParameterKind kind, params int[] shape)
        {
            var (d, g) = allocate(name, shape, kind);
            var w = new Weight<T>(name, d, g, shape[0], shape.Length > 1 ? shape[1] : 1);
            weights.Add(w);
            return w;
        }
        int hidden = config.HiddenSize, heads = config.NumAttentionHeads;
        _embed = Add("model.embed_tokens.weight", ParameterKind.Embedding, config.VocabSize, hidden);
        _layers = new Layer[config.NumHiddenLayers];
        for (int l = 0; l < _layers.Length; l++)
        {
            string p = $"model.layers.{l}.";
            Ffn Mlp(string prefix, int width) => new()
            {
                Gate = Add(prefix + "gate_proj.weight", ParameterKind.Matrix, width, hidden),
                Up = Add(prefix + "up_proj.weight", ParameterKind.Matrix, width, hidden),
                Down = Add(prefix + "down_proj.weight", ParameterKind.Matrix, hidden, width),
            };
            var layer = new Layer
            {
                InputNorm = Add(p + "input_layernorm.weight", ParameterKind.Norm, hidden),
                KvA = null!, KvANorm = null!, KvB = null!, O = null!, PostNorm = null!,
            };
            if (config.QLoraRank is int rank)
            {
                layer.QA = Add(p + "self_attn.q_a_proj.weight", ParameterKind.Matrix, rank, hidden);
                layer.QANorm = Add(p + "self_attn.q_a_layernorm.weight", ParameterKind.Norm, rank);
                layer.QB = Add(p + "self_attn.q_b_proj.weight", ParameterKind.Matrix, heads * config.QkHeadDim, rank);
            }
            else layer.Q = Add(p + "self_attn.q_proj.weight", ParameterKind.Matrix, heads * config.QkHeadDim, hidden);
            layer.KvA = Add(p + "self_attn.kv_a_proj_with_mqa.weight", ParameterKind.Matrix, config.KvLoraRank + config.QkRopeHeadDim, hidden);
            layer.KvANorm = Add(p + "self_attn.kv_a_layernorm.weight", ParameterKind.Norm, config.KvLoraRank);
            layer.KvB = Add(p + "self_attn.kv_b_proj.weight", ParameterKind.Matrix, heads * (config.QkNopeHeadDim + config.VHeadDim), config.KvLoraRank);
            layer.O = Add(p + "self_attn.o_proj.weight", ParameterKind.Matrix, hidden, heads * config.VHeadDim);
            layer.PostNorm = Add(p + "post_attention_layernorm.weight", ParameterKind.Norm, hidden);
            if (config.IsMoeLayer(l))
            {
                layer.Router = Add(p + "mlp.gate.weight", ParameterKind.Router, config.NRoutedExperts, hidden);
                layer.Bias = bias(l);
                layer.Experts = new Ffn[config.NRoutedExperts];
                for (int e = 0; e < layer.Experts.Length; e++) layer.Experts[e] = Mlp($"{p}mlp.experts.{e}.", config.MoeIntermediateSize);
                if (config.NSharedExperts > 0) layer.Shared = Mlp(p + "mlp.shared_experts.", config.MoeIntermediateSize * config.NSharedExperts);
            }
            else layer.Dense = Mlp(p + "mlp.", config.IntermediateSize);
            _layers[l] = layer;
        }
        _norm = Add("model.norm.weight", ParameterKind.Norm, hidden);
        _head = config.TieWordEmbeddings ? _embed : Add("lm_head.weight", ParameterKind.Head, config.VocabSize, hidden);
        Weights = weights;

        var rope = new RotaryEmbedding(config);
        _invFreq = rope.InverseFrequencies.ToArray();
        _cosSinScale = rope.CosSinScale;
        double softmaxScale = 1.0 / Math.Sqrt(config.QkHeadDim);
        if (config.Yarn is { MscaleAllDim: not 0 } y)
        {
            double m = RotaryEmbedding.Mscale(y.Factor, y.MscaleAllDim);
            softmaxScale *= m * m;
        }
        _softmaxScale = softmaxScale;
        _router = new TrainOps.RouterShape(config.NRoutedExperts, config.NumExpertsPerTok, config.NGroup, config.TopkGroup,
            config.NormTopkProb, config.RoutedScalingFactor);
        MaxAttentionLogits = new float[_layers.Length][];
        ExpertLoad = new int[]?[_layers.Length];
        for (int l = 0; l < _layers.Length; l++)
        {
            MaxAttentionLogits[l] = new float[heads];
            if (_layers[l].IsMoe) ExpertLoad[l] = new int[config.NRoutedExperts];
        }
    }

    private TrainOps.AttentionShape Shape => new(_seq, _c.NumAttentionHeads, _c.QkNopeHeadDim, _c.QkRopeHeadDim, _c.VHeadDim, _softmaxScale);

    private static void Linear(T[] x, Weight<T> w, T[] y, int n) => TrainOps.MatMul(x, w.W, y, n, w.Cols, w.Rows);

    private static void LinearBackward(T[] dy, T[] x, Weight<T> w, T[]? dx, int n) =>
        TrainOps.MatMulBackward(dy, x, w.W, dx, w.G, n, w.Cols, w.Rows);

    private void FfnForward(Ffn f, T[] x, int n, out T[] g, out T[] u, out T[] act, T[] y)
    {
        g = new T[n * f.Width]; u = new T[n * f.Width]; act = new T[n * f.Width];
        Linear(x, f.Gate, g, n);
        Linear(x, f.Up, u, n);
        TrainOps.SwiGlu(g, u, act, n * f.Width);
        Linear(act, f.Down, y, n);
    }

    private static void FfnBackward(Ffn f, T[] dy, T[] x, T[] g, T[] u, T[] act, T[] dx, int n)
    {
        var dAct = new T[n * f.Width];
        LinearBackward(dy, act, f.Down, dAct, n);
        var dg = new T[n * f.Width];
        var du = new T[n * f.Width];
        TrainOps.SwiGluBackward(dAct, g, u, dg, du, n * f.Width);
        LinearBackward(dg, x, f.Gate, dx, n);
        LinearBackward(du, x, f.Up, dx, n);
    }

    /// <summary>Runs the model; returns the loss (mean masked cross-entropy plus the balance loss) or 0 without targets.</summary>
    public T Forward(int[] tokens, int batch, int seq, int[]? targets, float[]? lossMask)
    {
        int n = batch * seq, hidden = _c.HiddenSize, vocab = _c.VocabSize;
        if (tokens.Length != n) throw new ArgumentException($"tokens holds {tokens.Length} ids; batch×seq = {n}", nameof(tokens));
        if (targets is not null && targets.Length != n) throw new ArgumentException("targets must have batch×seq entries", nameof(targets));
        if (lossMask is not null && lossMask.Length != n) throw new ArgumentException("lossMask must have batch×seq entries", nameof(lossMask));
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), t, "token id outside the vocabulary");
        if (targets is not null)
            foreach (int t in targets)
                if (t >= vocab) throw new ArgumentOutOfRangeException(nameof(targets), t, "target id outside the vocabulary (use −1 to ignore a position)");
        _tokens = tokens; _targets = targets; _mask = lossMask; _batch = batch; _seq = seq;

        int pairs = _invFreq.Length;
        _cos = new T[seq * pairs]; _sin = new T[seq * pairs];
        for (int s = 0; s < seq; s++)
            for (int i = 0; i < pairs; i++)
            {
                double angle = s * _invFreq[i];
                _cos[s * pairs + i] = T.CreateChecked(Math.Cos(angle) * _cosSinScale);
                _sin[s * pairs + i] = T.CreateChecked(Math.Sin(angle) * _cosSinScale);
            }

        var h = new T[n * hidden];
        TrainOps.Embedding(tokens, _embed.W, h, hidden);
        _cache = new LayerCache[_layers.Length];
        RoutingMargin = double.PositiveInfinity;
        T balance = T.Zero;
        for (int l = 0; l < _layers.Length; l++)
        {
            var L = _layers[l];
            var c = _cache[l] = new LayerCache { HIn = h };
            AttentionForward(L, c, l, n);
            var hMid = new T[n * hidden];
            var delta = new T[n * hidden];
            for (int i = 0; i < hMid.Length; i++) hMid[i] = h[i];
            AddAttentionOutput(L, c, n, hMid);
            c.HMid = hMid;
            c.X2 = new T[n * hidden]; c.R2 = new T[n];
            TrainOps.RmsNorm(hMid, L.PostNorm.W, _eps, c.X2, c.R2, n, hidden);
            if (L.IsMoe) balance += MoeForward(L, c, l, n, delta);
            else FfnForward(L.Dense!, c.X2, n, out c.G, out c.U, out c.Act, delta);
            h = new T[n * hidden];
            for (int i = 0; i < h.Length; i++) h[i] = hMid[i] + delta[i];
        }
        _hFinal = h;
        _xFinal = new T[n * hidden]; _rFinal = new T[n];
        TrainOps.RmsNorm(h, _norm.W, _eps, _xFinal, _rFinal, n, hidden);
        Logits = new T[n * vocab];
        Linear(_xFinal, _head, Logits, n);
        if (targets is null) return T.Zero;
        _probs = new T[n * vocab];
        var (loss, weight) = TrainOps.CrossEntropy(Logits, targets, lossMask, _probs, n, vocab);
        _lossWeight = weight;
        return loss + balance;
    }

    private void AttentionForward(Layer L, LayerCache c, int l, int n)
    {
        int hidden = _c.HiddenSize, heads = _c.NumAttentionHeads, qk = _c.QkHeadDim, nope = _c.QkNopeHeadDim, rope = _c.QkRopeHeadDim;
        int kvl = _c.KvLoraRank;
        c.X1 = new T[n * hidden]; c.R1 = new T[n];
        TrainOps.RmsNorm(c.HIn, L.InputNorm.W, _eps, c.X1, c.R1, n, hidden);
        c.Q = new T[n * heads * qk];
        if (L.Q is not null) Linear(c.X1, L.Q, c.Q, n);
        else
        {
            int rank = L.QA!.Rows;
            c.Qa = new T[n * rank]; c.QaN = new T[n * rank]; c.QaR = new T[n];
            Linear(c.X1, L.QA, c.Qa, n);
            TrainOps.RmsNorm(c.Qa, L.QANorm!.W, _eps, c.QaN, c.QaR, n, rank);
            Linear(c.QaN, L.QB!, c.Q, n);
        }
        c.Kva = new T[n * (kvl + rope)];
        Linear(c.X1, L.KvA, c.Kva, n);
        c.Latent = new T[n * kvl]; c.Kr = new T[n * rope];
        for (int i = 0; i < n; i++)
        {
            Array.Copy(c.Kva, i * (kvl + rope), c.Latent, i * kvl, kvl);
            Array.Copy(c.Kva, i * (kvl + rope) + kvl, c.Kr, i * rope, rope);
            int pos = i % _seq;
            TrainOps.Rope(c.Kr, i * rope, rope, _cos, _sin, pos);
            for (int hh = 0; hh < heads; hh++) TrainOps.Rope(c.Q, (i * heads + hh) * qk + nope, rope, _cos, _sin, pos);
        }
        c.LatentN = new T[n * kvl]; c.LatentR = new T[n];
        TrainOps.RmsNorm(c.Latent, L.KvANorm.W, _eps, c.LatentN, c.LatentR, n, kvl);
        c.Kvb = new T[n * L.KvB.Rows];
        Linear(c.LatentN, L.KvB, c.Kvb, n);
        c.Probs = new T[_batch * heads * _seq * _seq];
        c.Attn = new T[n * heads * _c.VHeadDim];
        var shape = Shape;
        var maxes = new T[_batch * heads];
        TrainOps.Rows(_batch * heads, (long)_batch * heads * _seq * _seq * qk, bh =>
            maxes[bh] = TrainOps.AttentionHead(shape, bh / heads, bh % heads, c.Q, c.Kvb, c.Kr, c.Probs, c.Attn));
        for (int hh = 0; hh < heads; hh++)
        {
            T m = T.NegativeInfinity;
            for (int b = 0; b < _batch; b++) if (maxes[b * heads + hh] > m) m = maxes[b * heads + hh];
            MaxAttentionLogits[l][hh] = float.CreateChecked(m);
        }
    }

    private void AddAttentionOutput(Layer L, LayerCache c, int n, T[] hMid)
    {
        var o = new T[n * _c.HiddenSize];
        Linear(c.Attn, L.O, o, n);
        for (int i = 0; i < o.Length; i++) hMid[i] += o[i];
    }

    private T MoeForward(Layer L, LayerCache c, int l, int n, T[] y)
    {
        int hidden = _c.HiddenSize, E = _c.NRoutedExperts, k = _c.NumExpertsPerTok;
        c.RouterLogits = new T[n * E];
        Linear(c.X2, L.Router!, c.RouterLogits, n);
        c.Scores = new T[n * E]; c.RouteWeights = new T[n * k]; c.Chosen = new int[n * k];
        for (int i = 0; i < n; i++)
            TrainOps.Route<T>(_router, c.RouterLogits.AsSpan(i * E, E), L.Bias!, c.Chosen.AsSpan(i * k, k),
                c.RouteWeights.AsSpan(i * k, k), c.Scores.AsSpan(i * E, E));
        for (int i = 0; i < n; i++) TrackMargin(L.Bias!, c.Scores.AsSpan(i * E, E), c.Chosen.AsSpan(i * k, k));
        var load = ExpertLoad[l]!;
        Array.Clear(load);
        foreach (int e in c.Chosen) load[e]++;

        if (L.Shared is not null) FfnForward(L.Shared, c.X2, n, out c.SG, out c.SU, out c.SAct, y);
        c.ExpertRows = new int[E][]; c.ExpertSlots = new int[E][];
        c.EX = new T[E][]; c.EG = new T[E][]; c.EU = new T[E][]; c.EAct = new T[E][]; c.EOut = new T[E][];
        for (int e = 0; e < E; e++)
        {
            var rows = new List<int>();
            var slots = new List<int>();
            for (int i = 0; i < n; i++)
                for (int j = 0; j < k; j++)
                    if (c.Chosen[i * k + j] == e) { rows.Add(i); slots.Add(i * k + j); }
            c.ExpertRows[e] = rows.ToArray(); c.ExpertSlots[e] = slots.ToArray();
            int m = rows.Count;
            var x = new T[m * hidden];
            for (int r = 0; r < m; r++) Array.Copy(c.X2, rows[r] * hidden, x, r * hidden, hidden);
            c.EX[e] = x;
            c.EOut[e] = new T[m * hidden];
            if (m > 0) FfnForward(L.Experts[e], x, m, out c.EG[e], out c.EU[e], out c.EAct[e], c.EOut[e]);
            else { c.EG[e] = []; c.EU[e] = []; c.EAct[e] = []; }
        }
        // Scatter in ascending expert order, like the engine.
        for (int e = 0; e < E; e++)
            for (int r = 0; r < c.ExpertRows[e].Length; r++)
                TrainOps.Axpy(c.RouteWeights[c.ExpertSlots[e][r]], c.EOut[e].AsSpan(r * hidden, hidden), y.AsSpan(c.ExpertRows[e][r] * hidden, hidden));
        return BalanceAlpha == 0 ? T.Zero : BalanceLoss(c, null);
    }

    /// <summary>
    /// Smallest gap, over the MoE tokens of the last forward, between a chosen expert's biased score and the best
    /// unchosen one of a kept group, and between the group scores of kept and dropped groups. The top-k choice is
    /// piecewise constant: a finite-difference step that moves scores by less than this cannot change the routing.
    /// </summary>
    public double RoutingMargin { get; private set; } = double.PositiveInfinity;

    private void TrackMargin(float[] bias, ReadOnlySpan<T> scores, ReadOnlySpan<int> chosen)
    {
        int E = scores.Length, groups = _router.Groups, per = E / groups;
        Span<double> choice = stackalloc double[E];
        for (int e = 0; e < E; e++) choice[e] = double.CreateChecked(scores[e]) + bias[e];
        Span<bool> kept = stackalloc bool[groups];
        double margin = double.PositiveInfinity;
        if (groups > 1)
        {
            Span<double> groupScore = stackalloc double[groups];
            ExpertRouting.ScoreGroups<double>(choice, groupScore);
            ExpertRouting.KeepBestGroups<double>(groupScore, _router.TopkGroup, kept);
            double keptMin = double.PositiveInfinity, droppedMax = double.NegativeInfinity;
            for (int g = 0; g < groups; g++)
                if (kept[g]) keptMin = Math.Min(keptMin, groupScore[g]);
                else droppedMax = Math.Max(droppedMax, groupScore[g]);
            if (droppedMax > double.NegativeInfinity) margin = keptMin - droppedMax;
        }
        double chosenMin = double.PositiveInfinity, otherMax = double.NegativeInfinity;
        for (int e = 0; e < E; e++)
        {
            if (groups > 1 && !kept[e / per]) continue;
            if (chosen.Contains(e)) chosenMin = Math.Min(chosenMin, choice[e]);
            else otherMax = Math.Max(otherMax, choice[e]);
        }
        if (otherMax > double.NegativeInfinity) margin = Math.Min(margin, chosenMin - otherMax);
        RoutingMargin = Math.Min(RoutingMargin, margin);
    }

    /// <summary>
    /// DeepSeek-V3 sequence-wise balance loss α·Σ_i f_i·P_i averaged over the batch, with f_i = E/(k·S)·(tokens of the
    /// sequence routed to i) (not differentiated) and P_i = mean over the sequence of s_i/Σ_j s_j. With
    /// <paramref name="dLogits"/> it accumulates the gradient instead and returns zero.
    /// </summary>
    private T BalanceLoss(LayerCache c, T[]? dLogits)
    {
        int E = _c.NRoutedExperts, k = _c.NumExpertsPerTok;
        T alpha = T.CreateChecked(BalanceAlpha), total = T.Zero;
        var f = new T[E];
        for (int b = 0; b < _batch; b++)
        {
            Array.Clear(f);
            for (int t = 0; t < _seq; t++)
                for (int j = 0; j < k; j++) f[c.Chosen[(b * _seq + t) * k + j]] += T.One;
            for (int e = 0; e < E; e++) f[e] *= T.CreateChecked((double)E / (k * _seq));
            for (int t = 0; t < _seq; t++)
            {
                int i = b * _seq + t;
                var s = c.Scores.AsSpan(i * E, E);
                T sum = T.Zero;
                foreach (var v in s) sum += v;
                if (dLogits is null)
                {
                    for (int e = 0; e < E; e++) total += alpha * f[e] * s[e] / sum / T.CreateChecked(_seq * _batch);
                    continue;
                }
                // L_t = α/(S·B)·Σ_e f_e s_e/Σs; ∂/∂s_e = α/(S·B)·(f_e − Σ_j f_j s_j/Σs)/Σs; ∂s/∂logit = s(1−s).
                T coef = alpha / T.CreateChecked(_seq * _batch), fs = T.Zero;
                for (int e = 0; e < E; e++) fs += f[e] * s[e];
                for (int e = 0; e < E; e++)
                    dLogits[i * E + e] += coef * (f[e] - fs / sum) / sum * s[e] * (T.One - s[e]);
            }
        }
        return total;
    }

    /// <summary>Gradients of the last forward's loss into every weight's G (accumulating).</summary>
    public void Backward()
    {
        if (_targets is null) throw new InvalidOperationException("Backward needs a forward with targets");
        int n = _batch * _seq, hidden = _c.HiddenSize, vocab = _c.VocabSize;
        var dLogits = new T[n * vocab];
        TrainOps.CrossEntropyBackward(_probs, _targets, _mask, _lossWeight, T.One, dLogits, n, vocab);
        var dx = new T[n * hidden];
        LinearBackward(dLogits, _xFinal, _head, dx, n);
        var dh = new T[n * hidden];
        TrainOps.RmsNormBackward(dx, _hFinal, _norm.W, _rFinal, dh, _norm.G, n, hidden);
        for (int l = _layers.Length - 1; l >= 0; l--)
        {
            var L = _layers[l];
            var c = _cache[l];
            // h = hMid + FFN(norm(hMid)): dh flows to hMid directly and through the FFN.
            var dx2 = new T[n * hidden];
            if (L.IsMoe) MoeBackward(L, c, n, dh, dx2);
            else FfnBackward(L.Dense!, dh, c.X2, c.G, c.U, c.Act, dx2, n);
            var dMid = (T[])dh.Clone();
            TrainOps.RmsNormBackward(dx2, c.HMid, L.PostNorm.W, c.R2, dMid, L.PostNorm.G, n, hidden);
            // hMid = hIn + Attn(norm(hIn)).
            var dx1 = new T[n * hidden];
            AttentionBackward(L, c, n, dMid, dx1);
            dh = dMid;
            TrainOps.RmsNormBackward(dx1, c.HIn, L.InputNorm.W, c.R1, dh, L.InputNorm.G, n, hidden);
        }
        TrainOps.EmbeddingBackward(_tokens, dh, _embed.G, hidden);
    }

    private void AttentionBackward(Layer L, LayerCache c, int n, T[] dOut, T[] dx1)
    {
        int heads = _c.NumAttentionHeads, qk = _c.QkHeadDim, nope = _c.QkNopeHeadDim, rope = _c.QkRopeHeadDim, kvl = _c.KvLoraRank;
        var dAttn = new T[c.Attn.Length];
        LinearBackward(dOut, c.Attn, L.O, dAttn, n);
        var dq = new T[c.Q.Length];
        var dkvb = new T[c.Kvb.Length];
        var shape = Shape;
        // Each head gets its own rope-key gradient (shared by all heads), summed in head order afterwards.
        var dkrHeads = new T[heads][];
        for (int hh = 0; hh < heads; hh++) dkrHeads[hh] = new T[c.Kr.Length];
        TrainOps.Rows(_batch * heads, (long)_batch * heads * _seq * _seq * qk * 2, bh =>
            TrainOps.AttentionHeadBackward(shape, bh / heads, bh % heads, c.Q, c.Kvb, c.Kr, c.Probs, dAttn, dq, dkvb, dkrHeads[bh % heads]));
        var dkr = dkrHeads[0];
        for (int hh = 1; hh < heads; hh++) TrainOps.Axpy(T.One, dkrHeads[hh], dkr);
        var dLatentN = new T[c.LatentN.Length];
        LinearBackward(dkvb, c.LatentN, L.KvB, dLatentN, n);
        var dLatent = new T[c.Latent.Length];
        TrainOps.RmsNormBackward(dLatentN, c.Latent, L.KvANorm.W, c.LatentR, dLatent, L.KvANorm.G, n, kvl);
        var dKva = new T[c.Kva.Length];
        for (int i = 0; i < n; i++)
        {
            int pos = i % _seq;
            TrainOps.RopeBackward(dkr, i * rope, rope, _cos, _sin, pos);
            for (int hh = 0; hh < heads; hh++) TrainOps.RopeBackward(dq, (i * heads + hh) * qk + nope, rope, _cos, _sin, pos);
            Array.Copy(dLatent, i * kvl, dKva, i * (kvl + rope), kvl);
            Array.Copy(dkr, i * rope, dKva, i * (kvl + rope) + kvl, rope);
        }
        LinearBackward(dKva, c.X1, L.KvA, dx1, n);
        if (L.Q is not null) LinearBackward(dq, c.X1, L.Q, dx1, n);
        else
        {
            var dQaN = new T[c.QaN.Length];
            LinearBackward(dq, c.QaN, L.QB!, dQaN, n);
            var dQa = new T[c.Qa.Length];
            TrainOps.RmsNormBackward(dQaN, c.Qa, L.QANorm!.W, c.QaR, dQa, L.QANorm.G, n, L.QA!.Rows);
            LinearBackward(dQa, c.X1, L.QA, dx1, n);
        }
    }

    private void MoeBackward(Layer L, LayerCache c, int n, T[] dy, T[] dx2)
    {
        int hidden = _c.HiddenSize, E = _c.NRoutedExperts, k = _c.NumExpertsPerTok;
        if (L.Shared is not null) FfnBackward(L.Shared, dy, c.X2, c.SG, c.SU, c.SAct, dx2, n);
        var dWeights = new T[n * k];
        for (int e = 0; e < E; e++)
        {
            var rows = c.ExpertRows[e];
            int m = rows.Length;
            if (m == 0) continue;
            var dOut = new T[m * hidden];
            for (int r = 0; r < m; r++)
            {
                var dyr = dy.AsSpan(rows[r] * hidden, hidden);
                int slot = c.ExpertSlots[e][r];
                dWeights[slot] = TrainOps.Dot<T>(dyr, c.EOut[e].AsSpan(r * hidden, hidden));
                TrainOps.Axpy(c.RouteWeights[slot], dyr, dOut.AsSpan(r * hidden, hidden));
            }
            var dxe = new T[m * hidden];
            FfnBackward(L.Experts[e], dOut, c.EX[e], c.EG[e], c.EU[e], c.EAct[e], dxe, m);
            for (int r = 0; r < m; r++) TrainOps.Axpy(T.One, dxe.AsSpan(r * hidden, hidden), dx2.AsSpan(rows[r] * hidden, hidden));
        }
        var dLogits = new T[n * E];
        for (int i = 0; i < n; i++)
            TrainOps.RouteBackward<T>(_router, c.Chosen.AsSpan(i * k, k), c.Scores.AsSpan(i * E, E), dWeights.AsSpan(i * k, k), dLogits.AsSpan(i * E, E));
        if (BalanceAlpha != 0) BalanceLoss(c, dLogits);
        LinearBackward(dLogits, c.X2, L.Router!, dx2, n);
    }
}
