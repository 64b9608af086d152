using KimiSharp.Model.Configuration;

namespace KimiSharp.Training.Optimizers;

/// <summary>Load statistics of one MoE layer for one step.</summary>
/// <param name="Layer">Model layer index (or the position in the list passed to the balancer).</param>
/// <param name="LoadFractions">Fraction of routed token-slots that went to each expert (sums to 1; all 0 when no tokens).</param>
/// <param name="MaxViolation">MaxVio = max_e load_e / mean load − 1 (0 at perfect balance).</param>
public sealed record ExpertLayerLoad(int Layer, float[] LoadFractions, float MaxViolation);

/// <summary>Per-layer loads plus the mean and max MaxVio over layers.</summary>
public sealed record ExpertBalanceReport(IReadOnlyList<ExpertLayerLoad> Layers, float MeanMaxViolation, float MaxMaxViolation);

/// <summary>
/// Auxiliary-loss-free load balancing (Wang et al. 2024, Algorithm 1; DeepSeek-V3 §2.1.2): after each step, for every
/// MoE layer with expert loads c_e (tokens routed to e in this batch) and mean c̄, the routing bias moves by
/// b_e ← b_e + u·sign(c̄ − c_e): up for under-loaded experts, down for over-loaded ones. The bias only affects which
/// experts are selected, never the gate values. Optionally Moonlight's zero-mean variant
/// b_e ← b_e + u·(sign(e_e) − mean_j sign(e_j)). Deterministic (no reductions in parallel).
/// </summary>
public sealed class ExpertBiasBalancer(float updateRate = 1e-3f, bool zeroMean = false)
{
    public float UpdateRate { get; } = updateRate >= 0 ? updateRate : throw new ArgumentOutOfRangeException(nameof(updateRate));
    public bool ZeroMean { get; } = zeroMean;

    /// <summary>The HF name of layer <paramref name="layer"/>'s routing bias.</summary>
    public static string BiasName(int layer) => $"model.layers.{layer}.mlp.gate.e_score_correction_bias";

    /// <summary>
    /// Updates one bias vector per MoE layer in place from that layer's per-expert token counts, and reports the loads
    /// that drove the update. <paramref name="biases"/>[i] and <paramref name="loads"/>[i] belong to the same layer.
    /// </summary>
    public ExpertBalanceReport Update(IReadOnlyList<float[]> biases, IReadOnlyList<long[]> loads, IReadOnlyList<int>? layerIndices = null)
    {
        ArgumentNullException.ThrowIfNull(biases);
        ArgumentNullException.ThrowIfNull(loads);
        if (biases.Count != loads.Count) throw new ArgumentException($"{biases.Count} bias vectors but {loads.Count} load vectors");
        if (layerIndices is not null && layerIndices.Count != loads.Count) throw new ArgumentException("layerIndices must have one entry per layer");
        var layers = new ExpertLayerLoad[loads.Count];
        for (int i = 0; i < loads.Count; i++)
        {
            float[] bias = biases[i];
            long[] load = loads[i];
            if (bias.Length != load.Length) throw new ArgumentException($"layer {i}: {bias.Length} biases but {load.Length} loads");
            UpdateLayer(bias, load);
            layers[i] = Measure(load, layerIndices?[i] ?? i);
        }
        return Summarize(layers);
    }

    /// <summary>
    /// Same as <see cref="Update(IReadOnlyList{float[]}, IReadOnlyList{long[]}, IReadOnlyList{int}?)"/> over HF-named
    /// parameters: for each MoE layer l (per <paramref name="config"/>) present in <paramref name="loadsByLayer"/>,
    /// updates the parameter named <see cref="BiasName"/>(l).
    /// </summary>
    public ExpertBalanceReport Update(IReadOnlyList<Parameter> parameters, ModelConfig config, IReadOnlyDictionary<int, long[]> loadsByLayer)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loadsByLayer);
        var byName = parameters.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var biases = new List<float[]>();
        var loads = new List<long[]>();
        var indices = new List<int>();
        foreach (int layer in loadsByLayer.Keys.Order())
        {
            if (!config.IsMoeLayer(layer)) throw new ArgumentException($"layer {layer} is not an MoE layer");
            if (!byName.TryGetValue(BiasName(layer), out var p)) throw new ArgumentException($"no parameter named {BiasName(layer)}");
            if (p.Data.Length != config.NRoutedExperts)
                throw new ArgumentException($"{p.Name} has {p.Data.Length} values, the model has {config.NRoutedExperts} routed experts");
            biases.Add(p.Data);
            loads.Add(loadsByLayer[layer]);
            indices.Add(layer);
        }
        return Update(biases, loads, indices);
    }

    private void UpdateLayer(float[] bias, long[] load)
    {
        int n = load.Length;
        if (n == 0) return;
        double mean = 0;
        foreach (long c in load) mean += c;
        mean /= n;
        var sign = new int[n];
        int signSum = 0;
        for (int e = 0; e < n; e++)
        {
            double err = mean - load[e];
            sign[e] = err > 0 ? 1 : err < 0 ? -1 : 0;
            signSum += sign[e];
        }
        float shift = ZeroMean ? (float)signSum / n : 0f;
        for (int e = 0; e < n; e++) bias[e] += UpdateRate * (sign[e] - shift);
    }

    /// <summary>Load fractions and MaxVio of one layer's per-expert token counts (no update).</summary>
    public static ExpertLayerLoad Measure(ReadOnlySpan<long> load, int layer = 0)
    {
        var fractions = new float[load.Length];
        long total = 0, max = 0;
        foreach (long c in load)
        {
            if (c < 0) throw new ArgumentException("expert loads must be non-negative");
            total += c;
            max = Math.Max(max, c);
        }
        if (total == 0 || load.Length == 0) return new ExpertLayerLoad(layer, fractions, 0f);
        for (int e = 0; e < load.Length; e++) fractions[e] = (float)((double)load[e] / total);
        double mean = (double)total / load.Length;
        return new ExpertLayerLoad(layer, fractions, (float)(max / mean - 1.0));
    }

    /// <summary>Builds a report from per-layer loads (no update), e.g. for a validation pass.</summary>
    public static ExpertBalanceReport Report(IReadOnlyList<long[]> loads)
    {
        ArgumentNullException.ThrowIfNull(loads);
        return Summarize(loads.Select((l, i) => Measure(l, i)).ToArray());
    }

    private static ExpertBalanceReport Summarize(ExpertLayerLoad[] layers) =>
        new(layers,
            layers.Length == 0 ? 0f : (float)layers.Average(l => (double)l.MaxViolation),
            layers.Length == 0 ? 0f : layers.Max(l => l.MaxViolation));
}
