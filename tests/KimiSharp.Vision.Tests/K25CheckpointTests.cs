using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

/// <summary>
/// One folder in the released K2.5 layout serves both halves: KimiModel reads <c>language_model.*</c> and text_config,
/// VisionConfig / VisionWeights read vision_config and <c>vision_tower.*</c> / <c>mm_projector.*</c>.
/// </summary>
public sealed class K25CheckpointTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kimisharp-k25-" + Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private static RandomCheckpointOptions Text(CheckpointFormat format) => new()
    {
        Format = format, VocabSize = 96, HiddenSize = 32, NumHiddenLayers = 2, NRoutedExperts = 4, NumExpertsPerTok = 2, Seed = 5,
        MaxShardBytes = 40_000, // shards, so the vision tensors join an index as in the release
    };

    [Theory]
    [InlineData(CheckpointFormat.Bf16)]
    [InlineData(CheckpointFormat.Int4)]
    public void Text_and_vision_load_from_one_K25_folder_exactly_as_from_their_own_folders(CheckpointFormat format)
    {
        string k25 = Path.Combine(_root, "k25"), k2 = Path.Combine(_root, "k2"), visionOnly = Path.Combine(_root, "vision");
        var vision = RandomVisionCheckpoint.Tiny() with { MediaPlaceholderTokenId = 90 };
        var files = RandomVisionCheckpoint.WriteK25(k25, Text(format), vision, SafetensorsDType.BF16, visionSeed: 11);
        RandomCheckpoint.Write(k2, Text(format));
        RandomVisionCheckpoint.WriteVisionOnly(visionOnly, vision with { TextHiddenSize = 32 }, SafetensorsDType.BF16, seed: 11);

        Assert.Contains(CheckpointTensors.IndexFileName, files);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(k25, "config.json")))!.AsObject();
        Assert.Equal("kimi_k25", (string?)config["model_type"]);
        Assert.Equal(90, (int?)config["media_placeholder_token_id"]);
        Assert.Equal(32, (int?)config["text_config"]!["hidden_size"]);
        Assert.Equal(32, (int?)config["vision_config"]!["text_hidden_size"]);
        using (var tensors = CheckpointTensors.Open(k25))
            Assert.All(tensors.Names, n => Assert.True(n.StartsWith("language_model.", StringComparison.Ordinal)
                || n.StartsWith("vision_tower.", StringComparison.Ordinal) || n.StartsWith("mm_projector.", StringComparison.Ordinal), n));

        // The language model: the same logits as the K2 layout, bit for bit.
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        using (var text = KimiModel.Load(k25))
        using (var plain = KimiModel.Load(k2))
        {
            Assert.True(text.Config.HasVisionConfig);
            Assert.Equal("language_model.", text.Config.TensorPrefix);
            Assert.Equal(plain.Logits(tokens), text.Logits(tokens));
        }

        // The vision part: the same features as a folder holding only the tower.
        var visionConfig = VisionConfig.Load(k25);
        Assert.Equal((32, (int?)90), (visionConfig.TextHiddenSize, visionConfig.MediaPlaceholderTokenId));
        var grid = new VisionGrid(1, 4, 6);
        var random = new Random(1);
        var patches = new float[grid.Patches * visionConfig.PatchElements];
        for (int i = 0; i < patches.Length; i++) patches[i] = (float)(random.NextDouble() * 2 - 1);
        using var fromK25 = VisionWeights.Load(k25, visionConfig);
        using var alone = VisionWeights.Load(visionOnly, VisionConfig.Load(visionOnly));
        var features = new VisionEncoder(fromK25).Encode([new VisionInput(patches, grid)])[0];
        Assert.Equal(new VisionEncoder(alone).Encode([new VisionInput(patches, grid)])[0], features);
        Assert.Contains(features, v => Math.Abs(v) > 0.1f);
        Assert.NotNull(MediaProcessingConfig.Load(k25));
    }
}
