using KimiSharp.Engine;

namespace KimiSharp.Engine.Tests;

public sealed class SamplerTests
{
    private static float[] Logits(params float[] values) => values;

    [Fact]
    public void Temperature_zero_is_argmax_with_lowest_id_on_ties_and_reports_logprobs()
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 0 }, 4);
        var top = new TokenLogprob[2];
        int token = sampler.Sample(Logits(1, 3, 3, 0), out float logprob, top);
        Assert.Equal(1, token);
        double normalizer = Math.Log(Math.Exp(1) + 2 * Math.Exp(3) + 1);
        Assert.Equal(3 - normalizer, logprob, 5);
        Assert.Equal([1, 2], top.Select(t => t.Token));
    }

    [Fact]
    public void Seeded_sampling_is_reproducible_and_follows_the_distribution()
    {
        var options = new GenerationOptions { Temperature = 1, Seed = 42 };
        var a = new Sampler(options, 3);
        var b = new Sampler(options, 3);
        var counts = new int[3];
        for (int i = 0; i < 3000; i++)
        {
            int x = a.Sample(Logits(0, MathF.Log(2), MathF.Log(7)), out _, default);
            Assert.Equal(x, b.Sample(Logits(0, MathF.Log(2), MathF.Log(7)), out _, default));
            counts[x]++;
        }
        Assert.InRange(counts[0] / 3000.0, 0.07, 0.13); // 1/10
        Assert.InRange(counts[2] / 3000.0, 0.65, 0.75); // 7/10
    }

    [Fact]
    public void Top_k_top_p_and_min_p_cut_the_tail()
    {
        for (int seed = 0; seed < 50; seed++)
        {
            Assert.Equal(2, new Sampler(new GenerationOptions { TopK = 1, Seed = seed }, 4).Sample(Logits(1, 2, 5, 4), out _, default));
            Assert.Equal(2, new Sampler(new GenerationOptions { TopP = 0.5f, Seed = seed }, 4).Sample(Logits(1, 2, 5, 4), out _, default));
            int minP = new Sampler(new GenerationOptions { MinP = 0.5f, Seed = seed }, 4).Sample(Logits(1, 2, 5, 4.5f), out _, default);
            Assert.Contains(minP, new[] { 2, 3 });
        }
    }

    [Fact]
    public void Presence_and_frequency_penalties_discourage_repeats()
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 0, FrequencyPenalty = 1.5f }, 3);
        Assert.Equal(0, sampler.Sample(Logits(2, 1, 0), out _, default));
        Assert.Equal(1, sampler.Sample(Logits(2, 1, 0), out _, default)); // 2 − 1.5 < 1
        Assert.Equal(2, sampler.Sample(Logits(2, 1.2f, 0.6f), out _, default)); // 0.5 and −0.3 vs 0.6
    }

    private sealed class OnlyEven : ITokenConstraint
    {
        public int Accepted { get; private set; }
        public void Mask(Span<float> logits) { for (int i = 1; i < logits.Length; i += 2) logits[i] = float.NegativeInfinity; }
        public void Accept(int token) => Accepted++;
        public bool IsComplete => Accepted >= 2;
    }

    [Fact]
    public void A_constraint_masks_tokens_whatever_the_temperature()
    {
        var constraint = new OnlyEven();
        var sampler = new Sampler(new GenerationOptions { Temperature = 2, Seed = 1, Constraint = constraint }, 6);
        for (int i = 0; i < 100; i++) Assert.Equal(0, sampler.Sample(Logits(0, 9, 0, 9, 0, 9), out _, default) % 2);
        Assert.Equal(100, constraint.Accepted);
    }
}
