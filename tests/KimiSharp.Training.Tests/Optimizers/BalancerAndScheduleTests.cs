using Xunit.Abstractions;
using KimiSharp.Training.Optimizers;
using static KimiSharp.Training.Tests.Optimizers.OptimizerTestUtil;

namespace KimiSharp.Training.Tests.Optimizers;

public class BalancerAndScheduleTests(ITestOutputHelper output)
{
    [Fact]
    public void BiasMovesTowardUnderloadedExperts()
    {
        var balancer = new ExpertBiasBalancer(1e-3f);
        float[] bias = new float[4];
        var report = balancer.Update([bias], [new long[] { 10, 0, 5, 5 }]);
        Assert.Equal([-1e-3f, 1e-3f, 0f, 0f], bias);
        var layer = Assert.Single(report.Layers);
        Assert.Equal([0.5f, 0f, 0.25f, 0.25f], layer.LoadFractions);
        Assert.Equal(1f, layer.MaxViolation, 6);
        Assert.Equal(1f, report.MaxMaxViolation, 6);
    }

    [Fact]
    public void ZeroMeanVariantKeepsBiasCentered()
    {
        var balancer = new ExpertBiasBalancer(1e-3f, zeroMean: true);
        float[] bias = new float[4];
        balancer.Update([bias], [new long[] { 10, 1, 1, 4 }]); // mean 4: signs −1, +1, +1, 0
        Assert.Equal(-1.25e-3f, bias[0], 7);
        Assert.Equal(0.75e-3f, bias[1], 7);
        Assert.Equal(0.75e-3f, bias[2], 7);
        Assert.Equal(-0.25e-3f, bias[3], 7);
        Assert.Equal(0f, bias.Sum(), 6);
    }

    /// <summary>Top-1 routing on skewed scores: the bias rule must drive MaxVio down.</summary>
    [Fact]
    public void SimulatedRoutingBecomesBalanced()
    {
        int experts = 8, tokens = 512;
        var rng = new Random(17);
        var balancer = new ExpertBiasBalancer(2e-3f);
        float[] bias = new float[experts];
        float firstVio = 0, lastVio = 0;
        for (int step = 0; step < 300; step++)
        {
            var load = new long[experts];
            for (int t = 0; t < tokens; t++)
            {
                int best = 0;
                double bestScore = double.NegativeInfinity;
                for (int e = 0; e < experts; e++)
                {
                    double s = 1 / (1 + Math.Exp(-(rng.NextDouble() * 0.4 + (e == 0 ? 0.15 : 0) - e * 0.01))) + bias[e];
                    if (s > bestScore) { bestScore = s; best = e; }
                }
                load[best]++;
            }
            var report = balancer.Update([bias], [load]);
            if (step == 0) firstVio = report.MaxMaxViolation;
            lastVio = report.MaxMaxViolation;
        }
        output.WriteLine($"MaxVio {firstVio:F3} → {lastVio:F3}; biases {string.Join(", ", bias.Select(b => b.ToString("F4")))}");
        Assert.True(firstVio > 1, $"initial MaxVio {firstVio}");
        Assert.True(lastVio < 0.35, $"MaxVio {firstVio} → {lastVio}");
        // Only relative biases matter for top-k: the favoured expert must end below the others.
        Assert.True(bias[0] < bias.Skip(1).Min(), $"favoured expert's bias {bias[0]} vs others {string.Join(", ", bias.Skip(1))}");
    }

    [Fact]
    public void UpdatesHfNamedBiasParameters()
    {
        var config = TinyMla(3, 2, 4, 2, 3, 5, 8); // 4 routed experts, first layer dense
        var ps = new List<Parameter>
        {
            new(ExpertBiasBalancer.BiasName(1), [4], ParameterKind.Bias),
            new(ExpertBiasBalancer.BiasName(2), [4], ParameterKind.Bias),
        };
        var report = new ExpertBiasBalancer().Update(ps, config, new Dictionary<int, long[]>
        {
            [2] = [0, 4, 4, 4],
            [1] = [4, 4, 4, 0],
        });
        Assert.Equal([1, 2], report.Layers.Select(l => l.Layer));
        Assert.True(ps[0].Data[3] > 0 && ps[0].Data[0] < 0);
        Assert.True(ps[1].Data[0] > 0 && ps[1].Data[1] < 0);
        Assert.Throws<ArgumentException>(() => new ExpertBiasBalancer().Update(ps, config, new Dictionary<int, long[]> { [0] = [1, 1, 1, 1] }));
    }

    [Fact]
    public void ReportWithoutUpdate()
    {
        var report = ExpertBiasBalancer.Report([new long[] { 1, 1, 1, 1 }, new long[] { 3, 1, 0, 0 }]);
        Assert.Equal(0f, report.Layers[0].MaxViolation);
        Assert.Equal(2f, report.Layers[1].MaxViolation, 6);
        Assert.Equal(1f, report.MeanMaxViolation, 6);
        Assert.Equal(0f, ExpertBiasBalancer.Measure(new long[] { 0, 0 }).MaxViolation);
    }

    [Fact]
    public void ConstantScheduleWarmsUpThenHolds()
    {
        var s = LearningRateSchedule.Constant(1e-3f, 10);
        Assert.Equal(1e-4f, s.At(0), 9);
        Assert.Equal(1e-3f, s.At(9));
        Assert.Equal(1e-3f, s.At(10));
        Assert.Equal(1e-3f, s.At(100000));
        Assert.Equal(2e-3f, LearningRateSchedule.Constant(2e-3f).At(0));
    }

    [Fact]
    public void CosineHitsPeakMidpointAndFloor()
    {
        var s = LearningRateSchedule.Cosine(1e-3f, 10, 110, 0.1f);
        Assert.Equal(1e-3f, s.At(9));
        Assert.Equal(1e-3f, s.At(10));
        Assert.Equal(0.55e-3f, s.At(60), 8);
        Assert.Equal(1e-4f, s.At(110), 9);
        Assert.Equal(1e-4f, s.At(5000), 9);
        for (int t = 10; t < 110; t++) Assert.True(s.At(t + 1) <= s.At(t));
    }

    [Fact]
    public void WsdHoldsThenDecaysToItsFloor()
    {
        var s = LearningRateSchedule.WarmupStableDecay(2e-4f, 5, 100, decayFraction: 0.2f, minFraction: 0.1f);
        Assert.Equal(80, s.DecayStart);
        Assert.Equal(2e-4f / 5, s.At(0), 9);
        Assert.Equal(2e-4f, s.At(4));
        Assert.Equal(2e-4f, s.At(50));
        Assert.Equal(2e-4f, s.At(80));
        Assert.Equal(1.1e-4f, s.At(90), 9);
        Assert.Equal(2e-5f, s.At(100), 9);
        Assert.Equal(2e-5f, s.At(1000), 9);
        for (int t = 0; t < 100; t++) Assert.True(t < 4 ? s.At(t + 1) >= s.At(t) : s.At(t + 1) <= s.At(t));
    }

    [Fact]
    public void ScheduleRejectsBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedule.Cosine(1e-3f, 10, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedule.WarmupStableDecay(1e-3f, 0, 10, 1.5f));
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedule.Constant(1e-3f).At(-1));
    }
}
