namespace KimiSharp.Engine;

/// <summary>A token with its log-probability under the model's distribution.</summary>
public readonly record struct TokenLogprob(int Token, float Logprob);

/// <summary>
/// Turns one row of logits into a token: penalties, constraint mask, temperature, top-k, top-p, min-p, then a
/// draw from the request's own random stream. Buffers are sized to the vocabulary once per request.
/// </summary>
public sealed class Sampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;
    private readonly int[] _counts;
    private readonly float[] _work;
    private readonly int[] _order;
    private readonly float[] _logits;

    public Sampler(GenerationOptions options, int vocabSize)
    {
        _options = options;
        _random = options.Seed is long seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
        _counts = new int[vocabSize];
        _work = new float[vocabSize];
        _order = new int[vocabSize];
        _logits = new float[vocabSize];
    }

    /// <summary>Picks the next token from <paramref name="logits"/> (which it may modify).</summary>
    public int Sample(Span<float> logits, out float logprob, Span<TokenLogprob> top)
    {
        int vocab = _counts.Length;
        if (logits.Length != vocab) throw new ArgumentException($"expected {vocab} logits, got {logits.Length}");

        if (_options.PresencePenalty != 0 || _options.FrequencyPenalty != 0)
            for (int t = 0; t < vocab; t++)
                if (_counts[t] > 0) logits[t] -= _options.PresencePenalty + _options.FrequencyPenalty * _counts[t];
        _options.Constraint?.Mask(logits);

        // Log-probabilities of the (penalized, masked) model distribution, reported as logprobs.
        float max = float.NegativeInfinity;
        foreach (float v in logits) if (v > max) max = v;
        if (float.IsNegativeInfinity(max)) throw new InvalidOperationException("every token is masked: the constraint allows nothing next");
        double sumExp = 0;
        foreach (float v in logits) sumExp += Math.Exp(v - max);
        float logNormalizer = max + (float)Math.Log(sumExp);

        int chosen = _options.Temperature == 0 ? ArgMax(logits) : Draw(logits);
        logprob = logits[chosen] - logNormalizer;
        if (!top.IsEmpty) TopTokens(logits, logNormalizer, top);
        _counts[chosen]++;
        _options.Constraint?.Accept(chosen);
        return chosen;
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int t = 1; t < logits.Length; t++) if (logits[t] > logits[best]) best = t;
        return best;
    }

    private int Draw(ReadOnlySpan<float> logits)
    {
        int vocab = logits.Length;
        float inverseTemperature = 1f / _options.Temperature;
        logits.CopyTo(_logits);
        var values = _logits;
        int n = 0;
        for (int t = 0; t < vocab; t++)
            if (!float.IsNegativeInfinity(logits[t])) _order[n++] = t;
        var candidates = _order.AsSpan(0, n);
        // Most likely first; ties by lower id so the order (and so the draw) is reproducible.
        candidates.Sort((a, b) => values[b].CompareTo(values[a]) is var c && c != 0 ? c : a.CompareTo(b));
        if (_options.TopK > 0 && _options.TopK < n) n = _options.TopK;

        float top = logits[_order[0]];
        double total = 0;
        for (int i = 0; i < n; i++) total += _work[i] = MathF.Exp((logits[_order[i]] - top) * inverseTemperature);

        if (_options.MinP > 0)
        {
            double threshold = _options.MinP * _work[0];
            int kept = 1;
            while (kept < n && _work[kept] >= threshold) kept++;
            for (int i = kept; i < n; i++) total -= _work[i];
            n = kept;
        }
        if (_options.TopP < 1)
        {
            double cumulative = 0, target = _options.TopP * total;
            int kept = 0;
            while (kept < n && cumulative < target) cumulative += _work[kept++];
            total = cumulative;
            n = Math.Max(kept, 1);
        }

        double u = _random.NextDouble() * total;
        for (int i = 0; i < n; i++)
        {
            u -= _work[i];
            if (u < 0) return _order[i];
        }
        return _order[n - 1];
    }

    private static void TopTokens(ReadOnlySpan<float> logits, float logNormalizer, Span<TokenLogprob> top)
    {
        int filled = 0;
        for (int t = 0; t < logits.Length; t++)
        {
            float v = logits[t];
            if (float.IsNegativeInfinity(v)) continue;
            if (filled < top.Length) { top[filled++] = new TokenLogprob(t, v); }
            else if (v > top[filled - 1].Logprob) top[filled - 1] = new TokenLogprob(t, v);
            else continue;
            for (int i = filled - 1; i > 0 && top[i].Logprob > top[i - 1].Logprob; i--) (top[i], top[i - 1]) = (top[i - 1], top[i]);
        }
        for (int i = 0; i < filled; i++) top[i] = top[i] with { Logprob = top[i].Logprob - logNormalizer };
        for (int i = filled; i < top.Length; i++) top[i] = new TokenLogprob(-1, float.NegativeInfinity);
    }
}
