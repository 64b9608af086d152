namespace KimiSharp.Model.Tests.Reference;

/// <summary>Knobs for conventions the public references disagree on.</summary>
public sealed record ReferenceOptions
{
    /// <summary>Eps of q_a_layernorm and kv_a_layernorm; null uses config rms_norm_eps (vLLM/SGLang), 1e-6 mimics HF modeling code.</summary>
    public double? LatentNormEps { get; init; }

    /// <summary>
    /// How experts of dropped groups are masked before the top-k: false = -infinity (DeepSeek inference code, never chosen),
    /// true = 0.0 (HF masked_fill, chosen over kept experts whose biased score is negative).
    /// </summary>
    public bool MaskDroppedGroupsWithZero { get; init; }
}

/// <summary>
/// A naive float64 DeepSeek-V3 / Kimi K2 forward pass (full recompute, no KV cache, no weight absorption) written only
/// from the published math, as a second implementation to check the optimised engine and the golden logits against.
/// </summary>
public sealed class ReferenceModel
{
    private readonly Dictionary<string, RefTensor> _tensors;
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);
    private readonly ReferenceOptions _options;
    private readonly double[] _embed;
    private readonly Linear _lmHead;
    private readonly double[] _finalNorm;
    private readonly Layer[] _layers;
    private readonly double[] _invFreq;
    private readonly double _ropeMagnitude;
    private readonly double _softmaxScale;

    public RefConfig Config { get; }

    /// <summary>Tensors in the checkpoint the model never read (should be empty).</summary>
    public IReadOnlyList<string> UnusedTensors => _tensors.Keys.Where(k => !_used.Contains(k)).Order(StringComparer.Ordinal).ToList();

    private ReferenceModel(RefConfig config, Dictionary<string, RefTensor> tensors, ReferenceOptions options)
    {
        Config = config;
        _tensors = tensors;
        _options = options;
        var c = config;

        _embed = Vector("model.embed_tokens.weight", (long)c.VocabSize * c.HiddenSize);
        _finalNorm = Vector("model.norm.weight", c.HiddenSize);
        _lmHead = c.TieWordEmbeddings ? new Linear(c.VocabSize, c.HiddenSize, _embed) : LoadLinear("lm_head", c.VocabSize, c.HiddenSize);

        int h = c.NumAttentionHeads, qkHead = c.QkNopeHeadDim + c.QkRopeHeadDim;
        _layers = new Layer[c.NumHiddenLayers];
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            string a = p + "self_attn.";
            var layer = new Layer
            {
                InputNorm = Vector(p + "input_layernorm.weight", c.HiddenSize),
                PostNorm = Vector(p + "post_attention_layernorm.weight", c.HiddenSize),
                KvA = LoadLinear(a + "kv_a_proj_with_mqa", c.KvLoraRank + c.QkRopeHeadDim, c.HiddenSize),
                KvANorm = Vector(a + "kv_a_layernorm.weight", c.KvLoraRank),
                KvB = LoadLinear(a + "kv_b_proj", h * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank),
                O = LoadLinear(a + "o_proj", c.HiddenSize, h * c.VHeadDim),
            };
            if (c.QLoraRank is int qLora)
            {
                layer.QA = LoadLinear(a + "q_a_proj", qLora, c.HiddenSize);
                layer.QANorm = Vector(a + "q_a_layernorm.weight", qLora);
                layer.QB = LoadLinear(a + "q_b_proj", h * qkHead, qLora);
            }
            else
            {
                layer.Q = LoadLinear(a + "q_proj", h * qkHead, c.HiddenSize);
            }

            string m = p + "mlp.";
            if (c.IsMoeLayer(l))
            {
                layer.Router = LoadLinear(m + "gate", c.NRoutedExperts, c.HiddenSize);
                layer.RouterBias = Vector(m + "gate.e_score_correction_bias", c.NRoutedExperts);
                layer.Experts = new Mlp[c.NRoutedExperts];
                for (int e = 0; e < c.NRoutedExperts; e++)
                    layer.Experts[e] = LoadMlp($"{m}experts.{e}.", c.MoeIntermediateSize);
                if (c.NSharedExperts > 0)
                    layer.Shared = LoadMlp(m + "shared_experts.", c.MoeIntermediateSize * c.NSharedExperts);
            }
            else
            {
                layer.Dense = LoadMlp(m, c.IntermediateSize);
            }
            _layers[l] = layer;
        }

        // Ignored like HF does: precomputed rope buffers some exporters write.
        foreach (string name in _tensors.Keys.Where(k => k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal))) _used.Add(name);

        (_invFreq, _ropeMagnitude) = RopeFrequencies(c);
        _softmaxScale = SoftmaxScale(c);
    }

    public static ReferenceModel Load(string directory, ReferenceOptions? options = null) =>
        new(RefConfig.Load(Path.Combine(directory, "config.json")), RefSafetensors.LoadDirectory(directory), options ?? new ReferenceOptions());

    /// <summary>Logits for every position, row-major [tokens.Length, vocab].</summary>
    public double[] Logits(int[] tokens)
    {
        var c = Config;
        int t = tokens.Length, d = c.HiddenSize;
        var hidden = new double[t][];
        for (int i = 0; i < t; i++)
        {
            if ((uint)tokens[i] >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {tokens[i]} outside vocabulary.");
            hidden[i] = _embed.AsSpan(tokens[i] * d, d).ToArray();
        }

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            var normed = hidden.Select(x => RmsNorm(x, layer.InputNorm, c.RmsNormEps)).ToArray();
            var attn = Attention(layer, normed);
            for (int i = 0; i < t; i++) AddInPlace(hidden[i], attn[i]);

            for (int i = 0; i < t; i++)
            {
                double[] x = RmsNorm(hidden[i], layer.PostNorm, c.RmsNormEps);
                AddInPlace(hidden[i], layer.Dense is { } dense ? dense.Apply(x) : Moe(layer, x));
            }
        }

        var logits = new double[t * c.VocabSize];
        for (int i = 0; i < t; i++)
        {
            double[] row = _lmHead.Apply(RmsNorm(hidden[i], _finalNorm, c.RmsNormEps));
            row.CopyTo(logits, i * c.VocabSize);
        }
        return logits;
    }

    private double[][] Attention(Layer layer, double[][] x)
    {
        var c = Config;
        int t = x.Length, heads = c.NumAttentionHeads, nope = c.QkNopeHeadDim, rope = c.QkRopeHeadDim, v = c.VHeadDim;
        int qkHead = nope + rope, kvHead = nope + v;
        double latentEps = _options.LatentNormEps ?? c.RmsNormEps;

        var q = new double[t][];      // [heads * (nope + rope)], rope part rotated
        var kPe = new double[t][];    // [rope], shared by all heads, rotated
        var kv = new double[t][];     // [heads * (nope + v)]
        for (int i = 0; i < t; i++)
        {
            q[i] = layer.Q is { } qProj
                ? qProj.Apply(x[i])
                : layer.QB!.Apply(RmsNorm(layer.QA!.Apply(x[i]), layer.QANorm!, latentEps));
            double[] compressed = layer.KvA.Apply(x[i]);
            double[] latent = RmsNorm(compressed.AsSpan(0, c.KvLoraRank).ToArray(), layer.KvANorm, latentEps);
            kPe[i] = compressed.AsSpan(c.KvLoraRank, rope).ToArray();
            kv[i] = layer.KvB.Apply(latent);
            for (int h = 0; h < heads; h++) ApplyRope(q[i].AsSpan(h * qkHead + nope, rope), i);
            ApplyRope(kPe[i], i);
        }

        var output = new double[t][];
        var scores = new double[t];
        for (int i = 0; i < t; i++)
        {
            var concat = new double[heads * v];
            for (int h = 0; h < heads; h++)
            {
                ReadOnlySpan<double> qh = q[i].AsSpan(h * qkHead, qkHead);
                double max = double.NegativeInfinity;
                for (int j = 0; j <= i; j++)
                {
                    ReadOnlySpan<double> kNope = kv[j].AsSpan(h * kvHead, nope);
                    double dot = 0;
                    for (int k = 0; k < nope; k++) dot += qh[k] * kNope[k];
                    for (int k = 0; k < rope; k++) dot += qh[nope + k] * kPe[j][k];
                    scores[j] = dot * _softmaxScale;
                    max = Math.Max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) { scores[j] = Math.Exp(scores[j] - max); sum += scores[j]; }
                for (int j = 0; j <= i; j++)
                {
                    double p = scores[j] / sum;
                    ReadOnlySpan<double> vh = kv[j].AsSpan(h * kvHead + nope, v);
                    for (int k = 0; k < v; k++) concat[h * v + k] += p * vh[k];
                }
            }
            output[i] = layer.O.Apply(concat);
        }
        return output;
    }

    /// <summary>Interleaved (GPT-J) rotation of pairs (2i, 2i+1) by angle position * inv_freq[i], with the YaRN cos/sin magnitude.</summary>
    private void ApplyRope(Span<double> x, int position)
    {
        for (int i = 0; i < _invFreq.Length; i++)
        {
            double angle = position * _invFreq[i];
            double cos = Math.Cos(angle) * _ropeMagnitude, sin = Math.Sin(angle) * _ropeMagnitude;
            double x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * cos - x1 * sin;
            x[2 * i + 1] = x0 * sin + x1 * cos;
        }
    }

    private double[] Moe(Layer layer, double[] x)
    {
        var c = Config;
        var (chosen, weights) = Route(layer.Router!.Apply(x), layer.RouterBias!, c.NGroup, c.TopkGroup, c.NumExpertsPerTok,
            c.NormTopkProb, c.RoutedScalingFactor, _options.MaskDroppedGroupsWithZero);
        var y = layer.Shared is { } shared ? shared.Apply(x) : new double[c.HiddenSize];
        for (int j = 0; j < chosen.Length; j++)
        {
            double[] e = layer.Experts![chosen[j]].Apply(x);
            for (int k = 0; k < y.Length; k++) y[k] += weights[j] * e[k];
        }
        return y;
    }

    /// <summary>
    /// noaux_tc routing of one token: s = sigmoid(logits); choice = s + bias; with groups, a group scores the sum of its
    /// two best choice values, the best <paramref name="topkGroup"/> groups stay and the rest are masked (-inf, or 0);
    /// the <paramref name="topK"/> best choice values win (ties: lower index); weights are the unbiased s, normalised
    /// (sum + 1e-20) when asked and topK > 1, times <paramref name="scaling"/>.
    /// </summary>
    internal static (int[] Experts, double[] Weights) Route(double[] logits, double[] bias, int nGroup, int topkGroup, int topK,
        bool normTopkProb, double scaling, bool maskWithZero = false)
    {
        int experts = logits.Length;
        var score = new double[experts];
        var choice = new double[experts];
        for (int e = 0; e < experts; e++)
        {
            score[e] = 1.0 / (1.0 + Math.Exp(-logits[e]));
            choice[e] = score[e] + bias[e];
        }

        if (nGroup > 1)
        {
            int perGroup = experts / nGroup;
            var groupScore = new double[nGroup];
            for (int g = 0; g < nGroup; g++)
                groupScore[g] = choice.AsSpan(g * perGroup, perGroup).ToArray().OrderByDescending(v => v).Take(Math.Min(2, perGroup)).Sum();
            var keep = TopIndices(groupScore, topkGroup).ToHashSet();
            for (int e = 0; e < experts; e++)
                if (!keep.Contains(e / perGroup)) choice[e] = maskWithZero ? 0.0 : double.NegativeInfinity;
        }

        int[] chosen = TopIndices(choice, topK);
        var weights = chosen.Select(e => score[e]).ToArray();
        if (normTopkProb && topK > 1)
        {
            double sum = weights.Sum() + 1e-20;
            for (int j = 0; j < weights.Length; j++) weights[j] /= sum;
        }
        for (int j = 0; j < weights.Length; j++) weights[j] *= scaling;
        return (chosen, weights);
    }

    /// <summary>Indices of the k largest values; ties go to the lower index.</summary>
    private static int[] TopIndices(double[] values, int k) =>
        Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(k).ToArray();

    internal static (double[] InvFreq, double Magnitude) RopeFrequencies(RefConfig c)
    {
        int d = c.QkRopeHeadDim, half = d / 2;
        var invFreq = new double[half];
        for (int i = 0; i < half; i++) invFreq[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / d);
        if (c.Yarn is not { } y) return (invFreq, 1.0);

        double CorrectionDim(double rotations) =>
            d * Math.Log(y.OriginalMaxPositionEmbeddings / (2 * Math.PI * rotations)) / (2 * Math.Log(c.RopeTheta));
        double low = Math.Max(Math.Floor(CorrectionDim(y.BetaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(y.BetaSlow)), d - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < half; i++)
        {
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double keep = 1 - ramp; // 1 keeps the original (extrapolation) frequency
            double extrapolation = invFreq[i], interpolation = invFreq[i] / y.Factor;
            invFreq[i] = interpolation * (1 - keep) + extrapolation * keep;
        }
        return (invFreq, GetMscale(y.Factor, y.Mscale) / GetMscale(y.Factor, y.MscaleAllDim));
    }

    internal static double SoftmaxScale(RefConfig c)
    {
        double scale = 1.0 / Math.Sqrt(c.QkNopeHeadDim + c.QkRopeHeadDim);
        if (c.Yarn is { } y && y.MscaleAllDim != 0)
        {
            double m = GetMscale(y.Factor, y.MscaleAllDim);
            scale *= m * m;
        }
        return scale;
    }

    internal static double GetMscale(double factor, double mscale) => factor <= 1 ? 1.0 : 0.1 * mscale * Math.Log(factor) + 1.0;

    private static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double sumSquares = 0;
        foreach (double v in x) sumSquares += v * v;
        double inv = 1.0 / Math.Sqrt(sumSquares / x.Length + eps);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = weight[i] * x[i] * inv;
        return y;
    }

    private static void AddInPlace(double[] target, double[] add)
    {
        for (int i = 0; i < target.Length; i++) target[i] += add[i];
    }

    private RefTensor Take(string name)
    {
        if (!_tensors.TryGetValue(name, out var t)) throw new InvalidDataException($"Checkpoint lacks '{name}'.");
        _used.Add(name);
        return t;
    }

    private double[] Vector(string name, long expectedLength)
    {
        var t = Take(name);
        if (t.ElementCount != expectedLength) throw new InvalidDataException($"'{name}' has {t.ElementCount} elements, expected {expectedLength}.");
        return RefDecode.Floats(t);
    }

    /// <summary>A [rows, cols] linear weight in any supported storage: plain float, FP8 block, or INT4 pack-quantized.</summary>
    private Linear LoadLinear(string prefix, int rows, int cols)
    {
        double[] w;
        if (_tensors.ContainsKey(prefix + ".weight_packed"))
        {
            int group = Config.Int4GroupSize ?? throw new InvalidDataException($"'{prefix}' is pack-quantized but config has no group_size.");
            w = RefDecode.Int4Packed(Take(prefix + ".weight_packed"), Take(prefix + ".weight_scale"), Take(prefix + ".weight_shape"), group, out int r, out int cc);
            if (r != rows || cc != cols) throw new InvalidDataException($"'{prefix}' weight_shape is [{r},{cc}], expected [{rows},{cols}].");
        }
        else
        {
            var weight = Take(prefix + ".weight");
            if (weight.Shape.Length != 2 || weight.Shape[0] != rows || weight.Shape[1] != cols)
                throw new InvalidDataException($"'{weight.Name}' is [{string.Join(",", weight.Shape)}], expected [{rows},{cols}].");
            if (weight.DType == "F8_E4M3")
            {
                int[] block = Config.Fp8BlockSize ?? [128, 128];
                w = RefDecode.Fp8Block(weight, Take(prefix + ".weight_scale_inv"), block[0], block[1]);
            }
            else
            {
                w = RefDecode.Floats(weight);
            }
        }
        return new Linear(rows, cols, w);
    }

    private Mlp LoadMlp(string prefix, int width)
    {
        int hidden = Config.HiddenSize;
        return new Mlp(
            LoadLinear(prefix + "gate_proj", width, hidden),
            LoadLinear(prefix + "up_proj", width, hidden),
            LoadLinear(prefix + "down_proj", hidden, width));
    }

    private sealed record Linear(int Rows, int Cols, double[] W)
    {
        public double[] Apply(double[] x)
        {
            if (x.Length != Cols) throw new ArgumentException($"Linear expects {Cols} inputs, got {x.Length}.");
            var y = new double[Rows];
            for (int r = 0; r < Rows; r++)
            {
                double sum = 0;
                int offset = r * Cols;
                for (int k = 0; k < Cols; k++) sum += W[offset + k] * x[k];
                y[r] = sum;
            }
            return y;
        }
    }

    /// <summary>SwiGLU: down(silu(gate x) * up x).</summary>
    private sealed record Mlp(Linear Gate, Linear Up, Linear Down)
    {
        public double[] Apply(double[] x)
        {
            double[] g = Gate.Apply(x), u = Up.Apply(x);
            for (int i = 0; i < g.Length; i++) g[i] = g[i] / (1.0 + Math.Exp(-g[i])) * u[i];
            return Down.Apply(g);
        }
    }

    private sealed class Layer
    {
        public required double[] InputNorm { get; init; }
        public required double[] PostNorm { get; init; }
        public Linear? Q { get; set; }
        public Linear? QA { get; set; }
        public double[]? QANorm { get; set; }
        public Linear? QB { get; set; }
        public required Linear KvA { get; init; }
        public required double[] KvANorm { get; init; }
        public required Linear KvB { get; init; }
        public required Linear O { get; init; }
        public Mlp? Dense { get; set; }
        public Linear? Router { get; set; }
        public double[]? RouterBias { get; set; }
        public Mlp[]? Experts { get; set; }
        public Mlp? Shared { get; set; }
    }
}
