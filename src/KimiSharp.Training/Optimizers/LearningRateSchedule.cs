namespace KimiSharp.Training.Optimizers;

/// <summary>What the schedule does after warm-up.</summary>
public enum ScheduleShape
{
    /// <summary>Hold the peak learning rate.</summary>
    Constant,
    /// <summary>Cosine from the peak (end of warm-up) to MinFraction·peak at TotalSteps.</summary>
    Cosine,
    /// <summary>Warmup–stable–decay: hold the peak, then decay linearly to MinFraction·peak over the last DecayFraction of TotalSteps.</summary>
    WarmupStableDecay,
}

/// <summary>
/// Learning rate per step (0-based). Linear warm-up: At(s) = peak·(s+1)/WarmupSteps for s &lt; WarmupSteps, so the first
/// step is not wasted at lr 0 and step WarmupSteps−1 reaches the peak. After that the <see cref="Shape"/> applies;
/// Cosine and WSD reach exactly MinFraction·peak at step TotalSteps (and stay there beyond it).
/// </summary>
public sealed class LearningRateSchedule
{
    private LearningRateSchedule(ScheduleShape shape, float peak, int warmup, int total, float minFraction, float decayFraction)
    {
        if (!(peak >= 0) || float.IsInfinity(peak)) throw new ArgumentOutOfRangeException(nameof(peak), "peak learning rate must be finite and ≥ 0");
        if (warmup < 0) throw new ArgumentOutOfRangeException(nameof(warmup), "warm-up steps must be ≥ 0");
        if (minFraction is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(minFraction), "min fraction must be in [0, 1]");
        if (decayFraction is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(decayFraction), "decay fraction must be in [0, 1]");
        if (shape != ScheduleShape.Constant && total <= warmup)
            throw new ArgumentOutOfRangeException(nameof(total), $"total steps ({total}) must exceed warm-up steps ({warmup})");
        Shape = shape;
        PeakLearningRate = peak;
        WarmupSteps = warmup;
        TotalSteps = total;
        MinFraction = minFraction;
        DecayFraction = decayFraction;
        if (shape == ScheduleShape.WarmupStableDecay)
        {
            int decaySteps = (int)Math.Round(decayFraction * total);
            DecayStart = Math.Max(warmup, total - decaySteps);
        }
    }

    public ScheduleShape Shape { get; }
    public float PeakLearningRate { get; }
    public int WarmupSteps { get; }
    public int TotalSteps { get; }
    public float MinFraction { get; }
    public float DecayFraction { get; }
    /// <summary>WSD only: the first step of the decay phase.</summary>
    public int DecayStart { get; }

    public static LearningRateSchedule Constant(float peak, int warmupSteps = 0) =>
        new(ScheduleShape.Constant, peak, warmupSteps, warmupSteps, 1f, 0f);

    public static LearningRateSchedule Cosine(float peak, int warmupSteps, int totalSteps, float minFraction = 0.1f) =>
        new(ScheduleShape.Cosine, peak, warmupSteps, totalSteps, minFraction, 0f);

    public static LearningRateSchedule WarmupStableDecay(float peak, int warmupSteps, int totalSteps, float decayFraction = 0.2f, float minFraction = 0f) =>
        new(ScheduleShape.WarmupStableDecay, peak, warmupSteps, totalSteps, minFraction, decayFraction);

    public float At(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), "step must be ≥ 0");
        double peak = PeakLearningRate, min = MinFraction * peak;
        if (step < WarmupSteps) return (float)(peak * (step + 1) / WarmupSteps);
        switch (Shape)
        {
            case ScheduleShape.Constant:
                return PeakLearningRate;
            case ScheduleShape.Cosine:
            {
                if (step >= TotalSteps) return (float)min;
                double progress = (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps);
                return (float)(min + (peak - min) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
            }
            default:
            {
                if (step >= TotalSteps) return (float)min;
                if (step < DecayStart) return PeakLearningRate;
                double progress = (double)(step - DecayStart) / (TotalSteps - DecayStart);
                return (float)(peak + (min - peak) * progress);
            }
        }
    }
}
