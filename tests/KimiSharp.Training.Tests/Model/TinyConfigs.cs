using KimiSharp.Model.Configuration;

namespace KimiSharp.Training.Tests.Model;

internal static class TinyConfigs
{
    /// <summary>hidden 16, 2 layers (first dense), 2 heads, q_lora 8, kv_lora 8, nope 4, rope 4, v 4, 4 experts top-2 in 2 groups, YaRN, vocab 32.</summary>
    public static ModelConfig Tiny(bool yarn = true, int? qLora = 8, bool tied = false, int shared = 1) => new()
    {
        ModelType = "deepseek_v3",
        VocabSize = 32,
        HiddenSize = 16,
        IntermediateSize = 24,
        MoeIntermediateSize = 8,
        NumHiddenLayers = 2,
        NumAttentionHeads = 2,
        NRoutedExperts = 4,
        NSharedExperts = shared,
        NumExpertsPerTok = 2,
        NGroup = 2,
        TopkGroup = 1,
        TopkMethod = "noaux_tc",
        ScoringFunc = "sigmoid",
        NormTopkProb = true,
        RoutedScalingFactor = 2.5,
        FirstKDenseReplace = 1,
        MoeLayerFreq = 1,
        QLoraRank = qLora,
        KvLoraRank = 8,
        QkNopeHeadDim = 4,
        QkRopeHeadDim = 4,
        VHeadDim = 4,
        RopeTheta = 10000,
        Yarn = yarn ? new YarnScaling(Factor: 4, OriginalMaxPositionEmbeddings: 16, BetaFast: 32, BetaSlow: 1, Mscale: 1, MscaleAllDim: 0.7) : null,
        RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 64,
        TieWordEmbeddings = tied,
        AttentionBias = false,
        Quantization = null,
    };

    public static int[] RandomTokens(int count, int vocab, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => r.Next(vocab)).ToArray();
    }
}
