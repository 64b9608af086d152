using System.Numerics;

namespace KimiSharp.Model.Layers;

/// <summary>
/// DeepSeek-V3's noaux_tc expert choice, shared by inference (<see cref="MoeBlock.Route"/>) and training, so the
/// experts a trained model learns with are exactly the ones the engine later picks.
/// </summary>
public static class ExpertRouting
{
    /// <summary>
    /// Picks <c>chosen.Length</c> experts from biased scores: groups are ranked by the sum of their two best scores and
    /// experts outside the best <paramref name="topkGroup"/> groups are excluded; then top-k by score, the lower index
    /// winning a tie. <paramref name="choice"/> is used as scratch (excluded and taken entries are overwritten).
    /// </summary>
    /// <remarks>
    /// DeepSeek's inference code excludes the dropped groups with −∞; Hugging Face writes 0.0, which only differs when
    /// biased scores go negative — we exclude them outright.
    /// </remarks>
    public static void ChooseExperts<T>(Span<T> choice, int groups, int topkGroup, Span<int> chosen)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int count = choice.Length;
        if (groups > 1)
        {
            int perGroup = count / groups;
            Span<T> groupScores = stackalloc T[groups];
            Span<bool> kept = stackalloc bool[groups];
            ScoreGroups<T>(choice, groupScores);
            KeepBestGroups<T>(groupScores, topkGroup, kept);
            for (int g = 0; g < groups; g++)
                if (!kept[g]) choice.Slice(g * perGroup, perGroup).Fill(T.NegativeInfinity);
        }

        for (int j = 0; j < chosen.Length; j++)
        {
            int best = -1;
            for (int e = 0; e < count; e++)
            {
                T v = choice[e];
                if (!(v > T.NegativeInfinity)) continue; // excluded group, or already taken (NaN)
                if (best < 0 || v > choice[best]) best = e;
            }
            chosen[j] = best;
            choice[best] = T.NaN; // taken: NaN never compares greater
        }
    }

    /// <summary>Each group's worth: the sum of its two best biased scores (<c>groupScores.Length</c> equal groups).</summary>
    public static void ScoreGroups<T>(ReadOnlySpan<T> choice, Span<T> groupScores) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int groups = groupScores.Length, perGroup = choice.Length / groups;
        for (int g = 0; g < groups; g++)
        {
            T best = T.NegativeInfinity, second = T.NegativeInfinity;
            foreach (T v in choice.Slice(g * perGroup, perGroup))
            {
                if (v > best) { second = best; best = v; }
                else if (v > second) second = v;
            }
            groupScores[g] = best + second;
        }
    }

    /// <summary>Marks the <paramref name="topkGroup"/> best groups kept; on a tie the lower group index wins.</summary>
    public static void KeepBestGroups<T>(ReadOnlySpan<T> groupScores, int topkGroup, Span<bool> kept) where T : unmanaged, IFloatingPointIeee754<T>
    {
        kept.Clear();
        for (int pick = 0; pick < topkGroup; pick++)
        {
            int bestGroup = -1;
            for (int g = 0; g < groupScores.Length; g++)
                if (!kept[g] && (bestGroup < 0 || groupScores[g] > groupScores[bestGroup])) bestGroup = g;
            kept[bestGroup] = true;
        }
    }

    /// <summary>
    /// weights[j] = the unbiased score of chosen[j], normalized over the chosen when <paramref name="normalize"/> and
    /// k &gt; 1, times routed_scaling_factor.
    /// </summary>
    public static void Weigh<T>(ReadOnlySpan<T> scores, ReadOnlySpan<int> chosen, bool normalize, double scalingFactor, Span<T> weights)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = chosen.Length;
        T sum = T.Zero;
        for (int j = 0; j < k; j++)
        {
            weights[j] = scores[chosen[j]];
            sum += weights[j];
        }
        T scale = T.CreateChecked(scalingFactor);
        if (k > 1 && normalize) scale /= sum + T.CreateChecked(1e-20);
        for (int j = 0; j < k; j++) weights[j] *= scale;
    }
}
