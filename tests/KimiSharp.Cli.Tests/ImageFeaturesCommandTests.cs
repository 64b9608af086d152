using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Testing;
using KimiSharp.Vision;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi init-random</c> with a vision_config writes a K2.5 tower; <c>kimi image-features</c> writes its projector output.</summary>
public sealed class ImageFeaturesCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-vision-cli-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private string WriteConfig()
    {
        var config = JsonNode.Parse(Kimi.SmallConfig(40))!.AsObject();
        config["media_placeholder_token_id"] = 163605;
        config["vision_config"] = new JsonObject
        {
            ["vt_hidden_size"] = 32, ["vt_intermediate_size"] = 48, ["vt_num_hidden_layers"] = 2, ["vt_num_attention_heads"] = 4,
            ["patch_size"] = 14, ["init_pos_emb_height"] = 4, ["init_pos_emb_width"] = 4, ["init_pos_emb_time"] = 4,
            ["merge_kernel_size"] = new JsonArray(2, 2), ["projector_ln_eps"] = 1e-5,
        };
        string path = Path.Combine(_scratch, "k25.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Fact]
    public async Task InitRandomWritesAK25CheckpointWhoseImageFeaturesMatchTheEngine()
    {
        string dir = Path.Combine(_scratch, "k25");
        var (code, _, error) = await Kimi.Run("init-random", "--config", WriteConfig(), "--out", dir, "--quant", "bf16");
        Assert.True(code == 0, error);
        // The text model still loads from the same folder; the vision part is configured for its width.
        using (var text = KimiModel.Load(dir)) Assert.Equal(96, text.Config.HiddenSize);
        var vision = VisionConfig.Load(dir);
        Assert.Equal((96, 163605), (vision.TextHiddenSize, vision.MediaPlaceholderTokenId));

        string image = Path.Combine(_scratch, "strip.png");
        File.WriteAllBytes(image, Png(100, 61));
        string output = Path.Combine(_scratch, "features.f32");
        (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--image", image, "--out", output);
        Assert.True(code == 0, error);
        Assert.Contains("12×96", error);
        // 100×61 pads to 112×84 pixels = 6×8 patches = 3×4 tokens of 96 floats.
        byte[] bytes = File.ReadAllBytes(output);
        Assert.Equal(12 * 96 * 4, bytes.Length);
        using var weights = VisionWeights.Load(dir, vision);
        var input = new ImagePreprocessor(MediaProcessingConfig.Load(dir)).Image(ImageDecoder.DecodeFile(image));
        var expected = new VisionEncoder(weights).Encode([input])[0];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i)));
    }

    [Fact]
    public async Task BadImagesAndFoldersAreErrorsNotCrashes()
    {
        string dir = Path.Combine(_scratch, "k25");
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", WriteConfig(), "--out", dir, "--quant", "bf16")).Code);
        string output = Path.Combine(_scratch, "out.f32");
        string notImage = Path.Combine(_scratch, "notes.txt");
        File.WriteAllText(notImage, "just text");
        var (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--image", notImage, "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("not a PNG, JPEG, WebP, GIF or BMP", error);
        string truncated = Path.Combine(_scratch, "cut.png");
        File.WriteAllBytes(truncated, Png(40, 40)[..60]);
        (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--image", truncated, "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("truncated", error);
        // A text-only checkpoint has no vision_config.
        string textOnly = Path.Combine(_scratch, "text");
        string plain = Path.Combine(_scratch, "plain.json");
        File.WriteAllText(plain, Kimi.SmallConfig(40));
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", plain, "--out", textOnly, "--quant", "bf16")).Code);
        (code, _, error) = await Kimi.Run("image-features", "--model", textOnly, "--image", truncated, "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("no vision_config", error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task VideoFeaturesAreEachChunksFeaturesInOrder()
    {
        string dir = Path.Combine(_scratch, "k25");
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", WriteConfig(), "--out", dir, "--quant", "bf16")).Code);
        // Five frames in a directory, read as an already-sampled sequence: chunks of 4 and 1 frames.
        string frames = Path.Combine(_scratch, "frames");
        Directory.CreateDirectory(frames);
        for (int i = 0; i < 5; i++) File.WriteAllBytes(Path.Combine(frames, $"{i:000}.png"), Png(60, 40, shift: 50 * i));
        string output = Path.Combine(_scratch, "video.f32");
        var (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--video", frames, "--out", output);
        Assert.True(code == 0, error);
        Assert.Contains("2 chunk(s)", error);
        Assert.Contains("00:00:02.000: 1 frame(s) [4]", error);
        var media = MediaProcessingConfig.Load(dir);
        var chunker = new VideoChunker(media);
        var chunks = chunker.Chunks(VideoFrames.FromDirectory(frames, media));
        using var weights = VisionWeights.Load(dir, VisionConfig.Load(dir));
        var encoder = new VisionEncoder(weights);
        var expected = chunks.SelectMany(c => encoder.Encode([chunker.Preprocess(c)])[0]).ToArray();
        // 60×40 pads to 84×56: 2×3 tokens of 96 floats per chunk.
        byte[] bytes = File.ReadAllBytes(output);
        Assert.Equal(2 * 6 * 96 * 4, bytes.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i)));

        (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("--image FILE or --video", error);
        (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--video", Path.Combine(_scratch, "missing.mp4"), "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("no such video", error);
    }

    [Fact]
    public async Task BenchReportsImageEncodeTimePerMegapixel()
    {
        string dir = Path.Combine(_scratch, "k25");
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", WriteConfig(), "--out", dir, "--quant", "bf16")).Code);
        var (code, output, error) = await Kimi.Run("bench", "--model", dir, "--prompt", "4", "--gen", "2", "--rounds", "1",
            "--bandwidth-mb", "1", "--float32", "--image-size", "56");
        Assert.True(code == 0, error);
        Assert.Contains("test image 56×56 (0.003 MP) → 4×4 patches → 4 tokens", output);
        Assert.Matches(@"image encode +\d+\.\d{3} s/MP", output);
    }

    /// <summary>A valid RGB PNG; a different <paramref name="shift"/> gives different pixels.</summary>
    internal static byte[] Png(int width, int height, int shift = 0) => RandomVisionChatModel.Png(width, height, seed: shift);
}
