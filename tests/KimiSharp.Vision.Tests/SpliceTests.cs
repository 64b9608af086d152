using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

/// <summary>Image features enter the language model at the expanded media placeholders of a hybrid K2.5 checkpoint.</summary>
public sealed class SpliceTests : IDisposable
{
    private const int Placeholder = 7;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "kimisharp-splice-" + Guid.NewGuid().ToString("N")[..12]);

    public SpliceTests()
    {
        var text = new RandomCheckpointOptions { Format = CheckpointFormat.Bf16, VocabSize = 64, HiddenSize = 32, NumHiddenLayers = 2 };
        RandomCheckpoint.Write(_directory, text);
        RandomVisionCheckpoint.AddToCheckpoint(_directory, RandomVisionCheckpoint.Tiny(textHiddenSize: 32) with { MediaPlaceholderTokenId = Placeholder },
            SafetensorsDType.BF16, seed: 3);
    }

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void ExpansionPutsOneCopyPerFeatureRow()
    {
        var (tokens, patch) = MediaPlaceholders.Expand([1, 2, Placeholder, 3, Placeholder, 4], Placeholder,
            [new float[3 * 4], new float[2 * 4]], hiddenSize: 4);
        Assert.Equal([1, 2, Placeholder, Placeholder, Placeholder, 3, Placeholder, Placeholder, 4], tokens);
        Assert.Equal([2, 3, 4, 6, 7], patch.Positions);
        Assert.Contains("2 media placeholder(s)", Assert.Throws<ArgumentException>(() =>
            MediaPlaceholders.Expand([Placeholder, Placeholder], Placeholder, [new float[4]], 4)).Message);
        Assert.Contains("whole rows", Assert.Throws<ArgumentException>(() =>
            MediaPlaceholders.Expand([Placeholder], Placeholder, [new float[5]], 4)).Message);
    }

    [Fact]
    public void ReplacedEmbeddingsEqualTheTokensTheyCopy()
    {
        // Features that are the embedding rows of tokens 10..12 must give exactly the logits of those tokens.
        using var model = KimiModel.Load(_directory);
        int hidden = model.Config.HiddenSize, vocab = model.Config.VocabSize;
        var rows = new float[3 * hidden];
        for (int i = 0; i < 3; i++) MatrixKernels.DecodeRow(model.Embedding, 10 + i, rows.AsSpan(i * hidden, hidden));
        var (tokens, patch) = MediaPlaceholders.Expand([1, 2, Placeholder, 3], Placeholder, [rows], hidden);
        var spliced = new float[tokens.Length * vocab];
        model.Forward(tokens, patch, model.CreateCache(), spliced);
        var plain = new float[tokens.Length * vocab];
        model.Forward([1, 2, 10, 11, 12, 3], model.CreateCache(), plain);
        Assert.Equal(plain, spliced);
    }

    [Fact]
    public void ImageFeaturesChangeOnlyTheLogitsFromTheImageOn()
    {
        using var model = KimiModel.Load(_directory);
        var vision = VisionConfig.Load(_directory);
        using var weights = VisionWeights.Load(_directory, vision);
        var pixels = new float[16 * vision.PatchElements];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = MathF.Sin(i * 0.37f);
        var features = new VisionEncoder(weights).Encode([new VisionInput(pixels, new VisionGrid(1, 4, 4))])[0];
        var (tokens, patch) = MediaPlaceholders.Expand([1, 2, 3, Placeholder, 4, 5], vision.MediaPlaceholderTokenId!.Value, [features], model.Config.HiddenSize);
        Assert.Equal(6 - 1 + 4, tokens.Length);
        int vocab = model.Config.VocabSize;
        var spliced = new float[tokens.Length * vocab];
        model.Forward(tokens, patch, model.CreateCache(), spliced);
        var plain = new float[tokens.Length * vocab];
        model.Forward(tokens, model.CreateCache(), plain);
        // Causal: the three text tokens before the image are untouched; every later position sees the image.
        Assert.Equal(plain.AsSpan(0, 3 * vocab).ToArray(), spliced.AsSpan(0, 3 * vocab).ToArray());
        for (int t = 3; t < tokens.Length; t++)
            Assert.NotEqual(plain.AsSpan(t * vocab, vocab).ToArray(), spliced.AsSpan(t * vocab, vocab).ToArray());
    }
}
