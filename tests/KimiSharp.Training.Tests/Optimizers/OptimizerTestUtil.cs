using KimiSharp.Model.Configuration;
using KimiSharp.Training;

namespace KimiSharp.Training.Tests.Optimizers;

internal static class OptimizerTestUtil
{
    public static float[] Gaussian(Random rng, int n, float std = 1f)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    public static Parameter Make(string name, ParameterKind kind, int[] shape, Random rng, float std = 0.1f)
    {
        var p = new Parameter(name, shape, kind);
        Gaussian(rng, p.Data.Length, std).CopyTo(p.Data, 0);
        return p;
    }

    /// <summary>C = A·B in double (row-major).</summary>
    public static double[] MatMul(float[] a, float[] b, int m, int k, int n)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
            {
                double s = a[i * k + p];
                for (int j = 0; j < n; j++) c[i * n + j] += s * b[p * n + j];
            }
        return c;
    }

    public static ModelConfig TinyMla(int layers, int heads, int nope, int rope, int v, int kvLora, int hidden, int? qLora = null) => new()
    {
        ModelType = "deepseek_v3",
        VocabSize = 16,
        HiddenSize = hidden,
        IntermediateSize = 16,
        MoeIntermediateSize = 8,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NRoutedExperts = 4,
        NSharedExperts = 1,
        NumExpertsPerTok = 2,
        NGroup = 1,
        TopkGroup = 1,
        TopkMethod = "noaux_tc",
        ScoringFunc = "sigmoid",
        NormTopkProb = true,
        RoutedScalingFactor = 1.0,
        FirstKDenseReplace = 1,
        MoeLayerFreq = 1,
        QLoraRank = qLora,
        KvLoraRank = kvLora,
        QkNopeHeadDim = nope,
        QkRopeHeadDim = rope,
        VHeadDim = v,
        RopeTheta = 10000,
        Yarn = null,
        RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 64,
        TieWordEmbeddings = false,
        AttentionBias = false,
        Quantization = null,
    };
}
