using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Tests.Reference;

namespace KimiSharp.Model.Tests;

/// <summary>
/// The engine against the independent float64 reference on random checkpoints of shapes and options the goldens
/// do not cover: q_lora, YaRN with blended frequencies, several routing groups, several dense layers, odd sizes,
/// every storage format, single file and sharded.
/// </summary>
public sealed class EngineVsReferenceTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kimisharp-engine-ref-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly RandomCheckpointOptions Odd = new()
    {
        VocabSize = 97, HiddenSize = 72, IntermediateSize = 88, MoeIntermediateSize = 20, NumHiddenLayers = 4,
        NumAttentionHeads = 3, NRoutedExperts = 12, NSharedExperts = 2, NumExpertsPerTok = 3, NGroup = 4, TopkGroup = 2,
        RoutedScalingFactor = 2.5, FirstKDenseReplace = 2, QLoraRank = 40, KvLoraRank = 24, QkNopeHeadDim = 10,
        QkRopeHeadDim = 6, VHeadDim = 14, RopeTheta = 10000, RmsNormEps = 1e-6, MaxPositionEmbeddings = 64,
        Yarn = new YarnOptions { Factor = 16, OriginalMaxPositionEmbeddings = 32, BetaFast = 32, BetaSlow = 1, Mscale = 0.707, MscaleAllDim = 1.0 },
        Fp8BlockRows = 16, Fp8BlockCols = 16, Int4GroupSize = 32, Seed = 7,
    };

    public static TheoryData<string, CheckpointFormat> Cases()
    {
        var data = new TheoryData<string, CheckpointFormat>();
        foreach (var variant in Variants.Keys)
            foreach (var format in Enum.GetValues<CheckpointFormat>())
                data.Add(variant, format);
        return data;
    }

    private static readonly Dictionary<string, RandomCheckpointOptions> Variants = new()
    {
        ["odd-qlora-yarn-groups"] = Odd,
        ["deepseek-v3-like"] = Odd with { HiddenSize = 64, QLoraRank = 32, NGroup = 2, TopkGroup = 1, NumExpertsPerTok = 2, FirstKDenseReplace = 1, NumHiddenLayers = 3, Yarn = new YarnOptions { Factor = 40, OriginalMaxPositionEmbeddings = 16, BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 1 }, Seed = 11 },
        ["moonlight-like-no-scaling"] = Odd with { QLoraRank = null, Yarn = null, NGroup = 1, TopkGroup = 1, NSharedExperts = 2, MoeLayerFreq = 2, FirstKDenseReplace = 1, Seed = 3 },
        ["tied-no-shared"] = Odd with { TieWordEmbeddings = true, NSharedExperts = 0, NormTopkProb = false, Seed = 5 },
        ["mscale-ratio"] = Odd with { Yarn = new YarnOptions { Factor = 8, OriginalMaxPositionEmbeddings = 16, BetaFast = 4, BetaSlow = 2, Mscale = 1.0, MscaleAllDim = 0.5 }, Seed = 9 },
    };

    private static readonly int[] Tokens = [5, 90, 13, 42, 7, 7, 61, 0, 88, 23, 17, 54, 31, 2, 76, 45, 19, 96, 8, 33];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Engine_matches_the_float64_reference_full_and_incremental(string variant, CheckpointFormat format)
    {
        string dir = Path.Combine(_root, variant + "-" + format);
        RandomCheckpoint.Write(dir, Variants[variant] with { Format = format, MaxShardBytes = format == CheckpointFormat.Int4 ? 40_000 : null });
        double[] expected = ReferenceModel.Load(dir).Logits(Tokens);

        using var model = KimiModel.Load(dir);
        int vocab = model.Config.VocabSize;
        var full = model.Logits(Tokens);
        var incremental = new float[full.Length];
        var cache = model.CreateCache(1);
        for (int t = 0; t < Tokens.Length; t++) model.Forward(Tokens.AsSpan(t, 1), cache, incremental.AsSpan(t * vocab, vocab));

        AssertRelative(expected, full, $"{variant}/{format} full");
        AssertRelative(expected, incremental, $"{variant}/{format} incremental");
    }

    [Fact]
    public void A_cached_prefix_gives_bit_identical_logits()
    {
        string dir = Path.Combine(_root, "prefix");
        RandomCheckpoint.Write(dir, Odd with { Format = CheckpointFormat.Int4 });
        using var model = KimiModel.Load(dir);
        int vocab = model.Config.VocabSize;
        var whole = model.Logits(Tokens);

        var cache = model.CreateCache();
        var split = new float[whole.Length];
        model.Forward(Tokens.AsSpan(0, 7), cache, split.AsSpan(0, 7 * vocab));
        model.Forward(Tokens.AsSpan(7), cache, split.AsSpan(7 * vocab));
        Assert.Equal(whole, split);

        // Truncating back to the prefix and continuing reproduces the same numbers (what a prefix cache relies on).
        cache.Truncate(7);
        var again = new float[whole.Length - 7 * vocab];
        model.Forward(Tokens.AsSpan(7), cache, again);
        Assert.Equal(whole.AsSpan(7 * vocab).ToArray(), again);
    }

    private static void AssertRelative(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]), $"{what}: non-finite logit at {i}");
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        Assert.True(maxDiff <= 1e-4 * maxRef, $"{what}: relative error {maxDiff / maxRef:E3}");
    }
}
