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
/// Wall-clock totals per <see cref="ForwardPhase"/> of the forward passes of the model that carries it (attach one at
/// load with <see cref="KimiModelLoadOptions.Profile"/>; used by <c>kimi bench --profile</c>). A model without one
/// pays one branch per phase. Timing is of the thread that runs the forward pass (phases themselves may be parallel);
/// passes on several threads at once add up.
/// </summary>
public sealed class ForwardProfile
{
    private readonly long[] _ticks = new long[Enum.GetValues<ForwardPhase>().Length];
    private readonly bool _recording;

    public ForwardProfile() : this(recording: true) { }

    private ForwardProfile(bool recording) => _recording = recording;

    /// <summary>What a model without a profile times with: nothing.</summary>
    internal static ForwardProfile Off { get; } = new(recording: false);

    internal long Start() => _recording ? Stopwatch.GetTimestamp() : 0;

    internal void Stop(ForwardPhase phase, long start)
    {
        if (start != 0) Interlocked.Add(ref _ticks[(int)phase], Stopwatch.GetTimestamp() - start);
    }

    /// <summary>Sets every total back to zero.</summary>
    public void Reset()
    {
        for (int i = 0; i < _ticks.Length; i++) Interlocked.Exchange(ref _ticks[i], 0);
    }

    /// <summary>Seconds spent in each phase since the last <see cref="Reset"/>.</summary>
    public IReadOnlyDictionary<ForwardPhase, double> Seconds() =>
        Enum.GetValues<ForwardPhase>().ToDictionary(p => p, p => (double)Interlocked.Read(ref _ticks[(int)p]) / Stopwatch.Frequency);
}
