using KimiSharp.Model.Checkpoints;
using KimiSharp.Kernels;

namespace KimiSharp.Model.Tests;

public sealed class PostTrainingQuantizerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kimi-ptq-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData(QuantizationTarget.Int4Experts, WeightFormat.PackedInt, 0.05)]
    [InlineData(QuantizationTarget.Fp8Block, WeightFormat.Fp8Block, 0.05)]
    public void Quantized_copy_loads_in_the_real_format_with_a_small_loss_change(QuantizationTarget target, WeightFormat expected, double maxLossDelta)
    {
        string source = Path.Combine(_root, "bf16"), output = Path.Combine(_root, target.ToString());
        RandomCheckpoint.Write(source, new RandomCheckpointOptions { VocabSize = 97, HiddenSize = 64, NumHiddenLayers = 3, Format = CheckpointFormat.Bf16, Seed = 3 });
        int count = PostTrainingQuantizer.Quantize(source, output, target);
        Assert.True(count > 0);

        using var original = KimiModel.Load(source);
        using var quantized = KimiModel.Load(output);
        var moe = quantized.Layers.First(l => l.Moe is not null).Moe!;
        Assert.Equal(expected, moe.Experts[0].Gate.Format);
        Assert.Equal(target == QuantizationTarget.Fp8Block ? WeightFormat.Fp8Block : WeightFormat.BF16, quantized.Layers[0].Attention.OProj.Format);

        var rng = new Random(1);
        var tokens = Enumerable.Range(0, 200).Select(_ => rng.Next(97)).ToArray();
        double before = Evaluation.MeanNegativeLogLikelihood(original, tokens, 64);
        double after = Evaluation.MeanNegativeLogLikelihood(quantized, tokens, 64);
        Assert.True(Math.Abs(after - before) < maxLossDelta, $"loss {before:F4} → {after:F4}");
        Assert.NotEqual(before, after); // it really is a different (quantized) model
        Assert.Throws<ArgumentException>(() => PostTrainingQuantizer.Quantize(output, Path.Combine(_root, "again"), target));
    }
}
