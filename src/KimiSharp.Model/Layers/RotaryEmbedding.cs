using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// RoPE frequencies for the rotary part of each head, with YaRN's blend of original and interpolated
/// frequencies when the config asks for it, and the softmax scale that goes with them.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly double[] _inverseFrequencies;

    /// <summary>Magnitude applied to cos and sin: mscale(factor, mscale) / mscale(factor, mscale_all_dim).</summary>
    public double CosSinScale { get; }

    /// <summary>(qk_nope + qk_rope)^-0.5, times mscale(factor, mscale_all_dim)² under YaRN.</summary>
    public float SoftmaxScale { get; }

    public int Pairs => _inverseFrequencies.Length;

    public ReadOnlySpan<double> InverseFrequencies => _inverseFrequencies;

    public RotaryEmbedding(ModelConfig config)
    {
        int dim = config.QkRopeHeadDim;
        double theta = config.RopeTheta;
        _inverseFrequencies = new double[dim / 2];
        double softmaxScale = 1.0 / Math.Sqrt(config.QkHeadDim);
        CosSinScale = 1.0;
        var yarn = config.Yarn;
        for (int i = 0; i < dim / 2; i++)
            _inverseFrequencies[i] = 1.0 / Math.Pow(theta, 2.0 * i / dim);
        if (yarn is not null)
        {
            // Pairs that turn fewer than beta_slow times over the original context are interpolated (divided by
            // the factor); more than beta_fast times keep their frequency; a linear ramp blends those between.
            double CorrectionDim(double rotations) =>
                dim * Math.Log(yarn.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
            double low = Math.Max(Math.Floor(CorrectionDim(yarn.BetaFast)), 0);
            double high = Math.Min(Math.Ceiling(CorrectionDim(yarn.BetaSlow)), dim - 1);
            if (low == high) high += 0.001;
            for (int i = 0; i < dim / 2; i++)
            {
                double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                double keep = 1 - ramp;
                double extrapolated = _inverseFrequencies[i];
                double interpolated = extrapolated / yarn.Factor;
                _inverseFrequencies[i] = interpolated * (1 - keep) + extrapolated * keep;
            }
            CosSinScale = Mscale(yarn.Factor, yarn.Mscale) / Mscale(yarn.Factor, yarn.MscaleAllDim);
            if (yarn.MscaleAllDim != 0)
            {
                double m = Mscale(yarn.Factor, yarn.MscaleAllDim);
                softmaxScale *= m * m;
            }
        }
        SoftmaxScale = (float)softmaxScale;
    }

    /// <summary>YaRN's attention temperature: 0.1·m·ln(s) + 1 for s &gt; 1.</summary>
    public static double Mscale(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;

    /// <summary>cos and sin of each pair's angle at <paramref name="position"/>, already scaled by <see cref="CosSinScale"/>.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < _inverseFrequencies.Length; i++)
        {
            double angle = position * _inverseFrequencies[i];
            cos[i] = (float)(Math.Cos(angle) * CosSinScale);
            sin[i] = (float)(Math.Sin(angle) * CosSinScale);
        }
    }
}
