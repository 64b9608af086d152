using KimiSharp.Model.Configuration;

namespace KimiSharp.Training.Optimizers;

/// <summary>Outcome of one QK-Clip pass.</summary>
/// <param name="HeadsClipped">Heads whose S_max exceeded τ and were rescaled.</param>
/// <param name="HeadsChecked">Heads looked at.</param>
/// <param name="MaxLogit">Largest S_max supplied (before clipping).</param>
/// <param name="MaxLayer">Layer of <paramref name="MaxLogit"/> (−1 when none).</param>
/// <param name="MaxHead">Head of <paramref name="MaxLogit"/> (−1 when none).</param>
/// <param name="MinGamma">Smallest γ = τ/S_max applied (1 when nothing was clipped).</param>
public sealed record QkClipReport(int HeadsClipped, int HeadsChecked, float MaxLogit, int MaxLayer, int MaxHead, float MinGamma);

/// <summary>
/// QK-Clip (Kimi K2 §2.1): after the optimizer step, for every head h whose max pre-softmax logit S_maxʰ (from the
/// step's forward) exceeds τ, rescale that head's query/key weights so its logits shrink by γ = τ/S_maxʰ.
/// MLA rule (<see cref="Apply"/>): the head's q_C rows (nope rows of q_proj / q_b_proj) and k_C rows (k-nope rows of
/// kv_b_proj) × √γ, its rotary q_R rows × γ; the shared rotary key (rope rows of kv_a_proj_with_mqa), the value rows
/// and all shared down-projections are left untouched. Every logit of the head is then multiplied by exactly γ.
/// </summary>
public static class QkClip
{
    /// <summary>
    /// Per-head MLA QK-Clip over the HF-named parameters of a K2/DeepSeek-V3 model.
    /// <paramref name="maxLogits"/>[layer][head] is S_max (the largest softmax input over unmasked positions of the batch,
    /// including the softmax scale); a null row skips that layer.
    /// </summary>
    public static QkClipReport Apply(IReadOnlyList<Parameter> parameters, ModelConfig config, float[][] maxLogits, float tau = 100f)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(maxLogits);
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), "tau must be positive");
        int layers = config.NumHiddenLayers, heads = config.NumAttentionHeads;
        if (maxLogits.Length != layers)
            throw new ArgumentException($"QK-Clip: maxLogits has {maxLogits.Length} layers, the model has {layers}", nameof(maxLogits));

        int dn = config.QkNopeHeadDim, dr = config.QkRopeHeadDim, dv = config.VHeadDim;
        int qHead = dn + dr, kvHead = dn + dv;
        var byName = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (var p in parameters) byName[p.Name] = p;
        string qName = config.QLoraRank is null ? "q_proj" : "q_b_proj";

        int clipped = 0, checkedHeads = 0, maxLayer = -1, maxHead = -1;
        float maxLogit = float.NegativeInfinity, minGamma = 1f;
        for (int l = 0; l < layers; l++)
        {
            float[]? row = maxLogits[l];
            if (row is null) continue;
            if (row.Length != heads)
                throw new ArgumentException($"QK-Clip: maxLogits[{l}] has {row.Length} heads, the model has {heads}", nameof(maxLogits));
            for (int h = 0; h < heads; h++)
            {
                checkedHeads++;
                if (row[h] > maxLogit || maxLayer < 0) { maxLogit = row[h]; maxLayer = l; maxHead = h; }
            }
            if (!row.Any(s => s > tau)) continue;

            var q = Find(byName, l, qName);
            var kvB = Find(byName, l, "kv_b_proj");
            RequireRows(q, heads * qHead, $"heads × (qk_nope + qk_rope) = {heads} × {qHead}");
            RequireRows(kvB, heads * kvHead, $"heads × (qk_nope + v) = {heads} × {kvHead}");
            for (int h = 0; h < heads; h++)
            {
                float s = row[h];
                if (!(s > tau)) continue; // NaN or ≤ τ: leave the head alone
                float gamma = tau / s;
                float sqrtGamma = MathF.Sqrt(gamma);
                ScaleRows(q, h * qHead, dn, sqrtGamma);        // q_C
                ScaleRows(q, h * qHead + dn, dr, gamma);       // q_R (the shared k_R is not touched)
                ScaleRows(kvB, h * kvHead, dn, sqrtGamma);     // k_C; v rows follow and are not touched
                clipped++;
                minGamma = Math.Min(minGamma, gamma);
            }
        }
        return new QkClipReport(clipped, checkedHeads, checkedHeads == 0 ? 0f : maxLogit, maxLayer, maxHead, minGamma);
    }

    /// <summary>
    /// The simpler published form (K2 launch blog; the report's "naïve" rule) for a non-MLA layer with one logit bound:
    /// η = min(τ/S_max, 1); W_q ← η^α·W_q, W_k ← η^(1−α)·W_k. Returns η.
    /// </summary>
    public static float ApplyUniform(Parameter query, Parameter key, float maxLogit, float tau = 100f, float alpha = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), "tau must be positive");
        if (alpha is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(alpha), "alpha must be in [0, 1]");
        if (!(maxLogit > tau)) return 1f;
        float eta = tau / maxLogit;
        ScaleRows(query, 0, query.Rows, MathF.Pow(eta, alpha));
        ScaleRows(key, 0, key.Rows, MathF.Pow(eta, 1f - alpha));
        return eta;
    }

    /// <summary>
    /// Per-head form of <see cref="ApplyUniform"/> for multi-head attention with separate q and k projections of
    /// <paramref name="headDim"/> rows per head (same head count in both): head h's q rows × η_h^α, k rows × η_h^(1−α).
    /// Returns the number of heads clipped.
    /// </summary>
    public static int ApplyPerHead(Parameter query, Parameter key, int headDim, ReadOnlySpan<float> maxLogits, float tau = 100f, float alpha = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), "tau must be positive");
        if (alpha is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(alpha), "alpha must be in [0, 1]");
        int heads = maxLogits.Length;
        RequireRows(query, heads * headDim, $"heads × head_dim = {heads} × {headDim}");
        RequireRows(key, heads * headDim, $"heads × head_dim = {heads} × {headDim}");
        int clipped = 0;
        for (int h = 0; h < heads; h++)
        {
            if (!(maxLogits[h] > tau)) continue;
            float eta = tau / maxLogits[h];
            ScaleRows(query, h * headDim, headDim, MathF.Pow(eta, alpha));
            ScaleRows(key, h * headDim, headDim, MathF.Pow(eta, 1f - alpha));
            clipped++;
        }
        return clipped;
    }

    private static Parameter Find(Dictionary<string, Parameter> byName, int layer, string projection)
    {
        string name = $"model.layers.{layer}.self_attn.{projection}.weight";
        if (byName.TryGetValue(name, out var p)) return p;
        string suffix = name["model.".Length..];
        var match = byName.Values.Where(v => v.Name.EndsWith("." + suffix, StringComparison.Ordinal) || v.Name == suffix).ToArray();
        return match.Length == 1 ? match[0] : throw new ArgumentException($"QK-Clip: no parameter named {name}");
    }

    private static void RequireRows(Parameter p, int rows, string what)
    {
        if (p.Shape.Length != 2 || p.Rows != rows)
            throw new ArgumentException($"QK-Clip: {p.Name} has shape [{string.Join(", ", p.Shape)}], expected {rows} rows ({what})");
    }

    private static void ScaleRows(Parameter p, int firstRow, int count, float factor)
    {
        if (count == 0) return;
        p.Data.AsSpan(firstRow * p.Cols, count * p.Cols).MultiplyInPlace(factor);
    }

    private static void MultiplyInPlace(this Span<float> span, float factor)
    {
        for (int i = 0; i < span.Length; i++) span[i] *= factor;
    }
}
