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
    [InlineData("decode-photo.jpg", 0)] // Skia and Pillow both decode JPEG with libjpeg-turbo
    [InlineData("webp-lossless.webp", 0)]
    [InlineData("webp-lossless-alpha.webp", 0)]
    // Lossy VP8 decoding is bit-exact in libwebp (the spec fixes the IDCT and loop filter); Skia's bundled libwebp and
    // Debian's 1.2.4 agree exactly, and the expectation stays exact until a libwebp update proves otherwise.
    [InlineData("webp-lossy.webp", 0)]
    [InlineData("webp-lossy-alpha.webp", 0)]
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
        // Frames picked out of order of need (the sampler skips some) decode the same canvases.
        var picked = ImageDecoder.DecodeFrames(File.ReadAllBytes(Fixture("decode-animated.gif")), [0, 2]);
        Assert.Equal(expected.AsSpan(2 * 3600, 3600).ToArray(), picked[1].Pixels);
        var chunk = new ImagePreprocessor(new MediaProcessingConfig()).VideoChunk(frames);
        Assert.Equal(new VisionGrid(3, 4, 4), chunk.Grid); // 40×30 pads to 56×56
    }

    [Fact]
    public void HostileFilesGetClearErrors()
    {
        var png = TestImages.Png(31, 17, TestImages.Pattern(31, 17));
        Assert.Contains("truncated", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png.AsSpan(0, png.Length / 2))).Message);
        Assert.Contains("not a PNG, JPEG, WebP, GIF or BMP", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("hello, world"u8)).Message);
        Assert.Contains("empty", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode([])).Message);
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

    [Fact]
    public void AnimatedWebPFramesAndDurationsDecodeLikePillow()
    {
        var bytes = File.ReadAllBytes(Fixture("webp-animated.webp"));
        var expected = File.ReadAllBytes(Fixture("webp-animated.rgb"));
        var info = ImageDecoder.Probe(bytes);
        Assert.Equal(("WebP", 40, 30), (info.Format, info.Width, info.Height));
        Assert.Equal([100, 200, 300], info.FrameDurationsMs);
        var frames = ImageDecoder.DecodeFrames(bytes, maxFrames: 8);
        Assert.Equal(3, frames.Count);
        for (int f = 0; f < 3; f++)
            Assert.Equal(expected.AsSpan(f * 3600, 3600).ToArray(), frames[f].Pixels);
    }

    [Fact]
    public void HostileWebPFilesGetClearErrors()
    {
        var good = File.ReadAllBytes(Fixture("webp-lossy.webp"));
        // Cut short: the RIFF header declares more bytes than the file holds.
        Assert.Contains("truncated", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(good.AsSpan(0, good.Length - 100))).Message);
        // A chunk that declares more bytes than the RIFF holds.
        var lying = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(lying.AsSpan(16), 0x7FFF_FFF0);
        Assert.Contains("chunk 'VP8 '", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(lying)).Message);
        // A RIFF size too small to hold any image chunk.
        Assert.Contains("RIFF size", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("RIFF\x04\0\0\0WEBP"u8)).Message);
        // Huge declared canvases are refused from the header: a 16384² lossless image, a 60,000-wide VP8X canvas.
        Assert.Contains("decompression bomb", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(WebPHeader("VP8L", [0x2F, 0xFF, 0xFF, 0xFF, 0x0F]))).Message);
        int w = 60_000 - 1;
        Assert.Contains("50,000", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(
            WebPHeader("VP8X", [0, 0, 0, 0, (byte)w, (byte)(w >> 8), (byte)(w >> 16), 9, 0, 0]))).Message);
        // A lossy chunk whose start code is wrong, and a first chunk that is not an image chunk.
        var noStart = (byte[])good.Clone();
        noStart[23] ^= 0xFF;
        Assert.Contains("start code", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(noStart)).Message);
        Assert.Contains("'EXIF'", Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(WebPHeader("EXIF", [1, 2, 3, 4]))).Message);
        // Valid headers over garbage lossless data are refused by the decoder (its Huffman codes do not parse). Lossy
        // VP8 has no integrity check: garbage there decodes to noise, as in every decoder.
        var garbage = File.ReadAllBytes(Fixture("webp-lossless.webp"));
        for (int i = 30; i < garbage.Length; i++) garbage[i] = (byte)(i * 37);
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(garbage));
    }

    private static byte[] WebPHeader(string chunk, byte[] payload)
    {
        var bytes = new byte[12 + 8 + payload.Length + (payload.Length & 1)];
        "RIFF"u8.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)(bytes.Length - 8));
        "WEBP"u8.CopyTo(bytes.AsSpan(8));
        System.Text.Encoding.ASCII.GetBytes(chunk).CopyTo(bytes, 12);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), (uint)payload.Length);
        payload.CopyTo(bytes, 20);
        return bytes;
    }
}
