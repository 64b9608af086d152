using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

/// <summary>Tiny encoders for test images, written here so the decoder is checked against files it did not produce.</summary>
internal static class TestImages
{
    public static byte[] Pattern(int width, int height)
    {
        var pixels = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                    pixels[(y * width + x) * 3 + c] = (byte)((x * 7 + y * 13 + c * 31 + x * y % 17) % 256);
        return pixels;
    }

    /// <summary>An 8-bit RGB PNG; <paramref name="headerWidth"/>/<paramref name="headerHeight"/> may lie about the size.</summary>
    public static byte[] Png(int width, int height, byte[] pixels, int? headerWidth = null, int? headerHeight = null)
    {
        using var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            raw.Write(pixels, y * width * 3, width * 3);
        }
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) z.Write(raw.ToArray());
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, headerWidth ?? width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), headerHeight ?? height);
        ihdr[8] = 8; ihdr[9] = 2;
        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var header = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, data.Length);
        Encoding.ASCII.GetBytes(type, header.AsSpan(4));
        s.Write(header);
        s.Write(data);
        var crcInput = header.AsSpan(4).ToArray().Concat(data).ToArray();
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(crcInput));
        s.Write(crc);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}

public sealed class ImagePipelineTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void BicubicResizeMatchesPillowByteForByte()
    {
        // Fixtures: Debian python3-pil 9.4.0, Image.resize(BICUBIC), from Fixtures/make_pil_bicubic.py.
        var data = File.ReadAllBytes(Fixture("pil-bicubic.bin")).AsSpan();
        int cases = 0;
        while (data.Length > 0)
        {
            int sw = BinaryPrimitives.ReadInt32LittleEndian(data), sh = BinaryPrimitives.ReadInt32LittleEndian(data[4..]);
            int dw = BinaryPrimitives.ReadInt32LittleEndian(data[8..]), dh = BinaryPrimitives.ReadInt32LittleEndian(data[12..]);
            var expected = data.Slice(16, dw * dh * 3).ToArray();
            data = data[(16 + dw * dh * 3)..];
            var resized = ImagePreprocessor.Resize(RgbImage.Create(sw, sh, TestImages.Pattern(sw, sh)), dw, dh);
            int mismatches = expected.Where((b, i) => b != resized.Pixels[i]).Count();
            Assert.True(mismatches == 0, $"{sw}×{sh} → {dw}×{dh}: {mismatches} of {expected.Length} bytes differ from Pillow");
            cases++;
        }
        Assert.Equal(7, cases);
    }

    [Fact]
    public void PreprocessingMatchesThePythonPipelineExactly()
    {
        // Fixtures: the published processor's steps run with Pillow and numpy (Fixtures/make_k25_preprocess.py):
        // scale plan, BICUBIC, zero pad, float32 normalisation, patch layout.
        var data = File.ReadAllBytes(Fixture("k25-preprocess.bin")).AsSpan();
        int cases = 0;
        while (data.Length > 0)
        {
            int limit = BinaryPrimitives.ReadInt32LittleEndian(data), side = BinaryPrimitives.ReadInt32LittleEndian(data[4..]);
            int w = BinaryPrimitives.ReadInt32LittleEndian(data[8..]), h = BinaryPrimitives.ReadInt32LittleEndian(data[12..]);
            int rows = BinaryPrimitives.ReadInt32LittleEndian(data[16..]), cols = BinaryPrimitives.ReadInt32LittleEndian(data[20..]);
            int count = rows * cols * 3 * 14 * 14;
            var expected = new float[count];
            for (int i = 0; i < count; i++) expected[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(24 + 4 * i)..]);
            data = data[(24 + 4 * count)..];

            var preprocessor = new ImagePreprocessor(new MediaProcessingConfig { InPatchLimit = limit, PatchLimitOnOneSide = side });
            var input = preprocessor.Image(RgbImage.Create(w, h, TestImages.Pattern(w, h)));
            Assert.Equal(new VisionGrid(1, rows, cols), input.Grid);
            Assert.Equal(expected, input.Patches);
            cases++;
        }
        Assert.Equal(5, cases);
    }

    [Fact]
    public void ScalePlanFollowsThePatchLimits()
    {
        var preprocessor = new ImagePreprocessor(new MediaProcessingConfig());
        // Small images are only padded: 100×61 → 112×84, 4×3 tokens of 2×2 patches.
        var small = preprocessor.Plan(100, 61);
        Assert.Equal((100, 61, 12, 23, 12), (small.NewWidth, small.NewHeight, small.PadWidth, small.PadHeight, small.Tokens));
        // A 10000×100 strip is held to 512 patches (7168 pixels) on its long side.
        var strip = preprocessor.Plan(10000, 100);
        Assert.Equal(7168, strip.NewWidth);
        Assert.True(strip.PatchColumns <= 512);
        // A 4000×4000 image (285² patches) is scaled by √(16384/285²) to 1796² pixels, which padding rounds up to
        // 130² patches: the limit bounds the scaled image, not the padded grid, as in the published processor.
        var big = preprocessor.Plan(4000, 4000);
        Assert.Equal((1796, 1796, 130, 130), (big.NewWidth, big.NewHeight, big.PatchRows, big.PatchColumns));
    }

    [Fact]
    public void DecodesPngAndKeepsPixels()
    {
        var pixels = TestImages.Pattern(31, 17);
        var image = ImageDecoder.Decode(TestImages.Png(31, 17, pixels));
        Assert.Equal((31, 17), (image.Width, image.Height));
        Assert.Equal(pixels, image.Pixels);
    }

    [Theory]
    [InlineData("decode-bitmap.bmp", 0)]
    [InlineData("decode-palette.gif", 0)]
    [InlineData("decode-alpha.png", 0)] // alpha dropped, not composited, like convert("RGB")
    [InlineData("decode-photo.jpg", 3)] // stb_image's IDCT and chroma upsampling are not libjpeg-turbo's
    public void DecodesLikePillow(string file, int tolerance)
    {
        var image = ImageDecoder.DecodeFile(Fixture(file));
        var expected = File.ReadAllBytes(Fixture(Path.ChangeExtension(file, ".rgb")));
        Assert.Equal((40, 30), (image.Width, image.Height));
        int worst = expected.Select((b, i) => Math.Abs(b - image.Pixels[i])).Max();
        Assert.True(worst <= tolerance, $"{file}: a channel differs from Pillow's decode by {worst}");
    }

    [Fact]
    public void AnimatedGifFramesDecodeLikePillowAndFormAChunk()
    {
        var frames = ImageDecoder.DecodeFrames(File.ReadAllBytes(Fixture("decode-animated.gif")), maxFrames: 4);
        var expected = File.ReadAllBytes(Fixture("decode-animated.rgb"));
        Assert.Equal(3, frames.Count);
        for (int f = 0; f < 3; f++)
            Assert.Equal(expected.AsSpan(f * 3600, 3600).ToArray(), frames[f].Pixels);
        Assert.Equal(2, ImageDecoder.DecodeFrames(File.ReadAllBytes(Fixture("decode-animated.gif")), maxFrames: 2).Count);
        // A still image is a one-frame sequence.
        Assert.Single(ImageDecoder.DecodeFrames(File.ReadAllBytes(Fixture("decode-bitmap.bmp")), maxFrames: 4));
        var chunk = new ImagePreprocessor(new MediaProcessingConfig()).VideoChunk(frames);
        Assert.Equal(new VisionGrid(3, 4, 4), chunk.Grid); // 40×30 pads to 56×56
    }

    [Fact]
    public void HostileFilesGetClearErrors()
    {
        var png = TestImages.Png(31, 17, TestImages.Pattern(31, 17));
        Assert.Contains("truncated", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png.AsSpan(0, png.Length / 2))).Message);
        Assert.Contains("not a PNG, JPEG, GIF or BMP", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("hello, world"u8)).Message);
        Assert.Contains("empty", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode([])).Message);
        Assert.Contains("WebP", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("RIFF\0\0\0\0WEBPVP8 "u8)).Message);
        Assert.Contains("truncated", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode([0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3])).Message);
        // Headers claiming huge sizes are refused from the header, before any pixel buffer is allocated.
        var wide = TestImages.Png(1, 1, [1, 2, 3], headerWidth: 60_000, headerHeight: 1);
        Assert.Contains("50,000", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(wide)).Message);
        var bomb = TestImages.Png(1, 1, [1, 2, 3], headerWidth: 20_000, headerHeight: 20_000);
        Assert.Contains("decompression bomb", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bomb)).Message);
        // A header that lies about a small size is corrupt, not silently padded.
        var liar = TestImages.Png(4, 4, TestImages.Pattern(4, 4), headerWidth: 40, headerHeight: 40);
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(liar));
    }

    [Fact]
    public void PaddedImageThroughTheTowerMatchesTheReference()
    {
        using var model = new TinyVisionModel(SafetensorsDType.BF16);
        var reference = new VisionReference(model.Directory);
        using var weights = VisionWeights.Load(model.Directory, model.Config);
        var encoder = new VisionEncoder(weights);
        // 100×61 pads to 112×84: the last patch row and column hold mostly padding (normalised to −1).
        var input = new ImagePreprocessor(new MediaProcessingConfig()).Image(ImageDecoder.Decode(TestImages.Png(100, 61, TestImages.Pattern(100, 61))));
        Assert.Equal(new VisionGrid(1, 6, 8), input.Grid);
        int lastPatch = input.Grid.Patches - 1, pe = model.Config.PatchElements;
        Assert.Equal(-1f, input.Patches[lastPatch * pe + pe - 1]);
        var engine = encoder.Encode([input])[0];
        var expected = reference.Forward(input.Patches, 1, 6, 8);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < engine.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i / reference.TextHidden, i % reference.TextHidden] - engine[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i / reference.TextHidden, i % reference.TextHidden]));
        }
        Assert.True(maxDiff <= 1e-5 * maxRef, $"max |diff| {maxDiff:E3} vs max |ref| {maxRef:E3}");
    }

    [Fact]
    public void VideoChunkFramesShareOnePlan()
    {
        var preprocessor = new ImagePreprocessor(new MediaProcessingConfig { InPatchLimitEachFrame = 64 });
        var frames = Enumerable.Range(0, 3).Select(_ => RgbImage.Create(200, 150, TestImages.Pattern(200, 150))).ToArray();
        var chunk = preprocessor.VideoChunk(frames);
        var single = new ImagePreprocessor(new MediaProcessingConfig { InPatchLimit = 64 }).Image(frames[0]);
        Assert.Equal(3, chunk.Grid.Frames);
        Assert.Equal((single.Grid.Rows, single.Grid.Columns), (chunk.Grid.Rows, chunk.Grid.Columns));
        Assert.Equal(single.Patches, chunk.Patches.AsSpan(0, single.Patches.Length).ToArray());
        Assert.Throws<ArgumentException>(() => preprocessor.VideoChunk([.. frames, frames[0], frames[0]]));
    }
}
