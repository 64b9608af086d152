using System.Diagnostics;

namespace KimiSharp.Model;

/// <summary>The parts of a forward pass that <see cref="ForwardProfile"/> times separately.</summary>
public enum ForwardPhase
{
    Embedding,
    Norms,
    /// <summary>q (or q_a → q_b) and kv_a_proj_with_mqa.</summary>
    AttentionProjections,
    /// <summary>Latent norm, RoPE and the cache writes.</summary>
    AttentionLatents,
    /// <summary>kv_b_proj applied to the cached latents (prefill's expanded form).</summary>
    AttentionExpand,
    /// <summary>Scores, softmax and the weighted sums of every head.</summary>
    AttentionHeads,
    AttentionOutput,
    Router,
    SharedExperts,
    RoutedExperts,
    DenseMlp,
    Residual,
    LmHead,
}

/// <summary>
/// Opt-in wall-clock totals per <see cref="ForwardPhase"/> for the calling process (used by <c>kimi bench --profile</c>).
/// Off by default; when off, <see cref="Start"/> returns 0 and <see cref="Stop"/> does nothing, so the forward pass
/// pays one branch per phase. Timing is of the thread that runs the forward pass (phases themselves may be parallel).
/// </summary>
public static class ForwardProfile
{
    private static readonly long[] s_ticks = new long[Enum.GetValues<ForwardPhase>().Length];

    public static bool Enabled { get; set; }

    public static long Start() => Enabled ? Stopwatch.GetTimestamp() : 0;

    public static void Stop(ForwardPhase phase, long start)
    {
        if (start != 0) s_ticks[(int)phase] += Stopwatch.GetTimestamp() - start;
    }

    public static void Reset() => Array.Clear(s_ticks);

    /// <summary>Seconds spent in each phase since the last <see cref="Reset"/>.</summary>
    public static IReadOnlyDictionary<ForwardPhase, double> Seconds() =>
        Enum.GetValues<ForwardPhase>().ToDictionary(p => p, p => (double)s_ticks[(int)p] / Stopwatch.Frequency);
}
