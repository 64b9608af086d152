using System.Numerics.Tensors;
using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// DeepSeek-V3 mixture of experts: sigmoid router with an expert-choice bias (noaux_tc), group-limited top-k,
/// SwiGLU experts weighted by their unbiased scores, plus always-on shared experts.
/// </summary>
public sealed class MoeBlock
{
    private readonly ModelConfig _config;

    public required WeightMatrix Router { get; init; }
    /// <summary>e_score_correction_bias: added to the scores to choose experts, never to weight them.</summary>
    public required float[] ChoiceBias { get; init; }
    public required FeedForward[] Experts { get; init; }
    public FeedForward? Shared { get; init; }

    public MoeBlock(ModelConfig config) => _config = config;

    /// <summary>The experts chosen for one token and their weights.</summary>
    public void Route(ReadOnlySpan<float> routerLogits, Span<int> experts, Span<float> weights, Span<float> scratch)
    {
        int count = _config.NRoutedExperts, k = _config.NumExpertsPerTok;
        int groups = _config.NGroup, perGroup = count / groups;
        var scores = scratch[..count];
        var choice = scratch.Slice(count, count);
        TensorPrimitives.Sigmoid(routerLogits, scores);
        TensorPrimitives.Add(scores, ChoiceBias, choice);

        if (groups > 1)
        {
            // A group is worth the sum of its two best biased scores; experts outside the best topk_group groups
            // are excluded. DeepSeek's inference code excludes them with −∞; Hugging Face writes 0.0, which only
            // differs when biased scores go negative — we exclude them outright.
            Span<float> groupScores = stackalloc float[groups];
            for (int g = 0; g < groups; g++)
            {
                var member = choice.Slice(g * perGroup, perGroup);
                float best = float.NegativeInfinity, second = float.NegativeInfinity;
                foreach (float v in member)
                {
                    if (v > best) { second = best; best = v; }
                    else if (v > second) second = v;
                }
                groupScores[g] = best + second;
            }
            Span<bool> kept = stackalloc bool[groups];
            for (int pick = 0; pick < _config.TopkGroup; pick++)
            {
                int bestGroup = -1;
                for (int g = 0; g < groups; g++)
                    if (!kept[g] && (bestGroup < 0 || groupScores[g] > groupScores[bestGroup])) bestGroup = g;
                kept[bestGroup] = true;
            }
            for (int g = 0; g < groups; g++)
                if (!kept[g]) choice.Slice(g * perGroup, perGroup).Fill(float.NegativeInfinity);
        }

        // Top-k by biased score; on a tie the lower expert index wins.
        float sum = 0;
        for (int j = 0; j < k; j++)
        {
            int best = -1;
            for (int e = 0; e < count; e++)
            {
                float v = choice[e];
                if (!(v > float.NegativeInfinity)) continue; // excluded group, or already taken (NaN)
                if (best < 0 || v > choice[best]) best = e;
            }
            experts[j] = best;
            weights[j] = scores[best];
            sum += scores[best];
            choice[best] = float.NaN; // taken: NaN never compares greater
        }
        float scale = (float)_config.RoutedScalingFactor;
        if (k > 1 && _config.NormTopkProb) scale /= sum + 1e-20f;
        for (int j = 0; j < k; j++) weights[j] *= scale;
    }

    /// <summary>
    /// Decode: the shared expert and every routed expert of the token as two parallel jobs (all gate/up projections,
    /// then all down projections) instead of three per expert. Each product and the order the weighted expert outputs
    /// are added in (ascending expert id, after the shared expert) are those of the batched path, so the result is
    /// bit-identical to running the token in a batch.
    /// </summary>
    private unsafe void ForwardOneToken(ReadOnlySpan<float> x, Span<float> output, ReadOnlySpan<float> chosen, ReadOnlySpan<float> weights, ForwardWorkspace ws)
    {
        int hidden = _config.HiddenSize, k = chosen.Length;
        Span<int> order = stackalloc int[k];
        for (int j = 0; j < k; j++) order[j] = j;
        for (int a = 1; a < k; a++) // insertion sort by expert id (ids are distinct)
            for (int b = a; b > 0 && chosen[order[b]] < chosen[order[b - 1]]; b--)
                (order[b], order[b - 1]) = (order[b - 1], order[b]);

        int width = Experts.Length > 0 ? Experts[0].Width : 0, sharedWidth = Shared?.Width ?? 0;
        var hiddenBuffer = ws.Array("moe.one.hidden", (long)k * hidden);
        var gateUp = ws.Array("moe.one.gateUp", 2L * k * width + 2L * sharedWidth);
        var xCopy = ws.Array("moe.one.x", hidden);
        x.CopyTo(xCopy);
        var batch = ws.Batch;
        fixed (float* px = xCopy)
        fixed (float* pg = gateUp)
        fixed (float* ph = hiddenBuffer)
        fixed (float* po = output)
        {
            float* sharedGate = pg + 2L * k * width, sharedUp = sharedGate + sharedWidth;
            batch.Clear();
            if (Shared is not null)
            {
                batch.Add(Shared.Gate, px, sharedGate);
                batch.Add(Shared.Up, px, sharedUp);
            }
            for (int j = 0; j < k; j++)
            {
                var expert = Experts[(int)chosen[order[j]]];
                batch.Add(expert.Gate, px, pg + 2L * j * width);
                batch.Add(expert.Up, px, pg + (2L * j + 1) * width);
            }
            batch.Run();

            batch.Clear();
            if (Shared is not null)
            {
                var g = new Span<float>(sharedGate, sharedWidth);
                Ops.SiluMultiply(g, new Span<float>(sharedUp, sharedWidth), g);
                batch.Add(Shared.Down, sharedGate, po);
            }
            for (int j = 0; j < k; j++)
            {
                var g = new Span<float>(pg + 2L * j * width, width);
                Ops.SiluMultiply(g, new Span<float>(pg + (2L * j + 1) * width, width), g);
                batch.Add(Experts[(int)chosen[order[j]]].Down, pg + 2L * j * width, ph + (long)j * hidden);
            }
            batch.Run();
        }
        if (Shared is null) output.Clear();
        for (int j = 0; j < k; j++)
            TensorPrimitives.MultiplyAdd(hiddenBuffer.AsSpan(j * hidden, hidden), weights[order[j]], output, output);
    }

    /// <summary>output[t] = Σ_j w_tj·Expert_j(x[t]) + Shared(x[t]); experts run once on all the tokens routed to them.</summary>
    internal void Forward(ReadOnlySpan<float> x, Span<float> output, int tokens, ForwardWorkspace ws)
    {
        int hidden = _config.HiddenSize, count = _config.NRoutedExperts, k = _config.NumExpertsPerTok;
        var logits = ws.Get("moe.logits", (long)tokens * count);
        long clock = ForwardProfile.Start();
        MatrixKernels.MatMul(Router, x, logits, tokens);

        var chosen = ws.Get("moe.chosen", (long)tokens * k);      // expert ids, stored as floats for one workspace type
        var weights = ws.Get("moe.weights", (long)tokens * k);
        var routeScratch = ws.Get("moe.routeScratch", 2L * count);
        Span<int> ids = stackalloc int[k];
        for (int t = 0; t < tokens; t++)
        {
            Route(logits.Slice(t * count, count), ids, weights.Slice(t * k, k), routeScratch);
            for (int j = 0; j < k; j++) chosen[t * k + j] = ids[j];
        }

        ForwardProfile.Stop(ForwardPhase.Router, clock);

        if (tokens == 1)
        {
            clock = ForwardProfile.Start();
            ForwardOneToken(x[..hidden], output[..hidden], chosen[..k], weights[..k], ws);
            ForwardProfile.Stop(ForwardPhase.RoutedExperts, clock);
            return;
        }

        clock = ForwardProfile.Start();
        if (Shared is not null)
            Shared.Forward(x, output, tokens, ws.Get("moe.sharedScratch", 2L * tokens * Shared.Width));
        else
            output[..(tokens * hidden)].Clear();
        ForwardProfile.Stop(ForwardPhase.SharedExperts, clock);
        clock = ForwardProfile.Start();

        // Gather each expert's tokens, run it once over the batch, scatter the weighted results back.
        var gathered = ws.Get("moe.gathered", (long)tokens * hidden);
        var expertOut = ws.Get("moe.expertOut", (long)tokens * hidden);
        var rows = ws.Get("moe.rows", tokens);
        var rowWeights = ws.Get("moe.rowWeights", tokens);
        for (int e = 0; e < count; e++)
        {
            int n = 0;
            for (int t = 0; t < tokens; t++)
                for (int j = 0; j < k; j++)
                    if ((int)chosen[t * k + j] == e)
                    {
                        x.Slice(t * hidden, hidden).CopyTo(gathered.Slice(n * hidden, hidden));
                        rows[n] = t;
                        rowWeights[n] = weights[t * k + j];
                        n++;
                    }
            if (n == 0) continue;
            var expert = Experts[e];
            expert.Forward(gathered[..(n * hidden)], expertOut, n, ws.Get("moe.expertScratch", 2L * n * expert.Width));
            for (int i = 0; i < n; i++)
            {
                var target = output.Slice((int)rows[i] * hidden, hidden);
                TensorPrimitives.MultiplyAdd(expertOut.Slice(i * hidden, hidden), rowWeights[i], target, target);
            }
        }
        ForwardProfile.Stop(ForwardPhase.RoutedExperts, clock);
    }
}
