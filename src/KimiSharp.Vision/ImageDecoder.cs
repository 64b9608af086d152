using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace KimiSharp.Vision;

/// <summary>An 8-bit RGB image, pixels row-major and interleaved (R, G, B).</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    public static RgbImage Create(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"an image needs positive dimensions, got {width}×{height}");
        if (pixels.Length != (long)width * height * 3) throw new ArgumentException($"{pixels.Length} bytes do not fill a {width}×{height} RGB image");
        return new RgbImage(width, height, pixels);
    }
}

/// <summary>An image file that is refused: unsupported format, truncated, corrupt or beyond the size limits. The message says which.</summary>
public sealed class ImageDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Bounds on what a decode may allocate, checked from the header before any pixel buffer exists.</summary>
public sealed record ImageDecodeLimits
{
    /// <summary>Longest side accepted, in pixels.</summary>
    public int MaxSide { get; init; } = 50_000;
    /// <summary>Most pixels accepted (PIL's own decompression-bomb threshold, 89,478,485 ≈ 0.27 GB of RGB).</summary>
    public long MaxPixels { get; init; } = 89_478_485;
    /// <summary>Largest encoded file accepted.</summary>
    public long MaxBytes { get; init; } = 64L << 20;
}

/// <summary>The frame count, canvas size and per-frame durations of an image or animation, read without decoding pixels.</summary>
public sealed record ImageAnimationInfo(string Format, int Width, int Height, IReadOnlyList<int> FrameDurationsMs)
{
    public int FrameCount => FrameDurationsMs.Count;
}

/// <summary>
/// Decodes PNG, JPEG, WebP, GIF and BMP to RGB with SkiaSharp, after checking the magic bytes, the file's end marker or
/// chunk sizes (truncation) and the header's dimensions against <see cref="ImageDecodeLimits"/>.
/// </summary>
/// <remarks>
/// Library choice: SkiaSharp decodes through Skia's codecs over libpng, libjpeg-turbo, libwebp and Skia's own GIF and
/// BMP readers, all fuzzed continuously by OSS-Fuzz; its JPEG path is libjpeg-turbo, as Pillow's is, so its pixels equal
/// Pillow's on the fixtures (StbImageSharp, the managed stb_image port used before, differed by up to 3 levels and cannot
/// read WebP). The cost is a native library whose security fixes arrive as SkiaSharp updates, so every input is still
/// bounded here, from its header, before Skia sees it. Alpha is dropped, not composited, as PIL's convert("RGB") does.
/// </remarks>
public static class ImageDecoder
{
    public static RgbImage Decode(ReadOnlySpan<byte> data, ImageDecodeLimits? limits = null)
    {
        limits ??= new ImageDecodeLimits();
        var (format, width, height) = CheckHeader(data, limits);
        using var skData = CopyToNative(data);
        using var codec = OpenCodec(skData, format, width, height);
        var rgba = new byte[(long)width * height * 4];
        DecodeFrameInto(codec, format, rgba, width, height, frameIndex: 0, priorFrame: -1);
        return new RgbImage(width, height, DropAlpha(rgba));
    }

    /// <summary>Format, size and frame durations of <paramref name="data"/> (a still image is one frame), checked as <see cref="Decode"/> checks.</summary>
    public static ImageAnimationInfo Probe(ReadOnlySpan<byte> data, ImageDecodeLimits? limits = null)
    {
        limits ??= new ImageDecodeLimits();
        var (format, width, height) = CheckHeader(data, limits);
        using var skData = CopyToNative(data);
        using var codec = OpenCodec(skData, format, width, height);
        return new ImageAnimationInfo(format, width, height, Durations(codec));
    }

    /// <summary>
    /// The first <paramref name="maxFrames"/> frames of an animated GIF or WebP, each the full composited canvas (a still
    /// image gives one frame). The header limits apply per frame, and frames × pixels may not exceed
    /// <see cref="ImageDecodeLimits.MaxPixels"/>.
    /// </summary>
    public static IReadOnlyList<RgbImage> DecodeFrames(ReadOnlySpan<byte> data, int maxFrames, ImageDecodeLimits? limits = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrames, 1);
        var info = Probe(data, limits);
        return DecodeFrames(data, [.. Enumerable.Range(0, Math.Min(maxFrames, info.FrameCount))], limits);
    }

    /// <summary>
    /// The frames at <paramref name="frameIndices"/> (ascending, as a sampler picks them) of an animated GIF or WebP, each
    /// the full composited canvas; frames × pixels may not exceed <paramref name="maxTotalPixels"/> (by default
    /// <see cref="ImageDecodeLimits.MaxPixels"/>).
    /// </summary>
    public static IReadOnlyList<RgbImage> DecodeFrames(ReadOnlySpan<byte> data, IReadOnlyList<int> frameIndices, ImageDecodeLimits? limits = null,
        long? maxTotalPixels = null)
    {
        ArgumentNullException.ThrowIfNull(frameIndices);
        limits ??= new ImageDecodeLimits();
        var (format, width, height) = CheckHeader(data, limits);
        long framePixels = (long)width * height, total = maxTotalPixels ?? limits.MaxPixels;
        if (frameIndices.Count * framePixels > total)
            throw new ImageDecodeException($"{frameIndices.Count} frames of {width}×{height} hold more than the {total:N0} pixels accepted");
        using var skData = CopyToNative(data);
        using var codec = OpenCodec(skData, format, width, height);
        int count = Math.Max(1, codec.FrameCount);
        for (int i = 0; i < frameIndices.Count; i++)
            if (frameIndices[i] < 0 || frameIndices[i] >= count || (i > 0 && frameIndices[i] <= frameIndices[i - 1]))
                throw new ArgumentException($"frame indices must ascend within the {count} frame(s) of the {format} image; got {string.Join(", ", frameIndices)}");
        var frames = new List<RgbImage>(frameIndices.Count);
        if (frameIndices.Count == 0) return frames;
        var infos = codec.FrameCount > 0 ? codec.FrameInfo : [];
        // A frame that later frames are drawn over (their "required frame") is kept as RGBA until the last one that needs
        // it has been drawn, so an animation holds a copy or two of its canvas, not one per frame.
        var lastUse = new Dictionary<int, int>();
        for (int f = 0; f < infos.Length && f <= frameIndices[^1]; f++)
            if (infos[f].RequiredFrame >= 0) lastUse[infos[f].RequiredFrame] = f;
        var kept = new Dictionary<int, byte[]>();
        var canvas = new byte[framePixels * 4];
        int wanted = 0;
        for (int f = 0; f <= frameIndices[^1]; f++)
        {
            int requiredFrame = infos.Length > f ? infos[f].RequiredFrame : -1;
            if (requiredFrame >= 0)
            {
                if (!kept.TryGetValue(requiredFrame, out var basis))
                    throw new ImageDecodeException($"{format} frame {f} is drawn over frame {requiredFrame}, which is not available (a corrupt animation?)");
                basis.CopyTo(canvas, 0);
            }
            DecodeFrameInto(codec, format, canvas, width, height, f, requiredFrame);
            if (requiredFrame >= 0 && lastUse[requiredFrame] == f) kept.Remove(requiredFrame);
            if (lastUse.ContainsKey(f)) kept[f] = (byte[])canvas.Clone();
            if (f == frameIndices[wanted])
            {
                frames.Add(new RgbImage(width, height, DropAlpha(canvas)));
                wanted++;
            }
        }
        return frames;
    }

    public static RgbImage DecodeFile(string path, ImageDecodeLimits? limits = null)
    {
        limits ??= new ImageDecodeLimits();
        var file = new FileInfo(path);
        if (!file.Exists) throw new ImageDecodeException($"{path}: no such image file");
        if (file.Length > limits.MaxBytes) throw new ImageDecodeException($"{path}: {file.Length:N0} bytes; at most {limits.MaxBytes:N0} are accepted");
        try { return Decode(File.ReadAllBytes(path), limits); }
        catch (ImageDecodeException e) { throw new ImageDecodeException($"{path}: {e.Message}", e.InnerException); }
    }

    /// <summary>Size, magic, completeness and dimension checks, all before any decoder or pixel buffer exists.</summary>
    private static (string Format, int Width, int Height) CheckHeader(ReadOnlySpan<byte> data, ImageDecodeLimits limits)
    {
        if (data.Length == 0) throw new ImageDecodeException("the image is empty (0 bytes)");
        if (data.Length > limits.MaxBytes) throw new ImageDecodeException($"the image file is {data.Length:N0} bytes; at most {limits.MaxBytes:N0} are accepted");
        string format = Sniff(data);
        CheckComplete(data, format);
        var (width, height) = HeaderSize(data, format);
        if (width > limits.MaxSide || height > limits.MaxSide)
            throw new ImageDecodeException($"the {format} image is {width}×{height}; sides of at most {limits.MaxSide:N0} pixels are accepted");
        if ((long)width * height > limits.MaxPixels)
            throw new ImageDecodeException($"the {format} image is {width}×{height} = {(long)width * height:N0} pixels, more than the {limits.MaxPixels:N0} accepted (a decompression bomb?)");
        return (format, width, height);
    }

    /// <summary>The encoded bytes in Skia's memory; a platform without SkiaSharp's native library gets an error saying so.</summary>
    private static SKData CopyToNative(ReadOnlySpan<byte> data)
    {
        try { return SKData.CreateCopy(data); }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new ImageDecodeException($"the image decoder's native library (libSkiaSharp, from the SkiaSharp.NativeAssets packages) could not be loaded on this platform: {e.Message}", e);
        }
    }

    private static SKCodec OpenCodec(SKData data, string format, int width, int height)
    {
        var codec = SKCodec.Create(data);
        if (codec is null) throw new ImageDecodeException($"the {format} image is corrupt (the decoder refused its header)");
        // The decoder reads the same header; a disagreement means the bytes are not what the header checks saw.
        if (codec.Info.Width != width || codec.Info.Height != height)
        {
            codec.Dispose();
            throw new ImageDecodeException($"the {format} image is corrupt (its header says {width}×{height}, the decoder reads {codec.Info.Width}×{codec.Info.Height})");
        }
        return codec;
    }

    private static int[] Durations(SKCodec codec) =>
        codec.FrameCount <= 0 ? [0] : [.. codec.FrameInfo.Select(f => f.Duration)];

    /// <summary>Decodes one frame as unpremultiplied RGBA into <paramref name="rgba"/>, which holds <paramref name="priorFrame"/> when that is not −1.</summary>
    private static void DecodeFrameInto(SKCodec codec, string format, byte[] rgba, int width, int height, int frameIndex, int priorFrame)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        SKCodecResult result;
        try { result = codec.GetPixels(info, handle.AddrOfPinnedObject(), info.RowBytes, new SKCodecOptions(frameIndex, priorFrame)); }
        finally { handle.Free(); }
        string frame = codec.FrameCount > 1 ? $" frame {frameIndex}" : "";
        switch (result)
        {
            case SKCodecResult.Success:
                return;
            // Skia fills what it could not read and reports it; a partial picture is refused, never passed on.
            case SKCodecResult.IncompleteInput:
                throw new ImageDecodeException($"the {format} file{frame} is truncated (its image data ends early)");
            case SKCodecResult.ErrorInInput:
                throw new ImageDecodeException($"the {format} image{frame} is corrupt (its compressed data is invalid)");
            default:
                throw new ImageDecodeException($"the {format} image{frame} could not be decoded ({result})");
        }
    }

    private static byte[] DropAlpha(byte[] rgba)
    {
        var rgb = new byte[rgba.Length / 4 * 3];
        for (int p = 0, q = 0; p < rgba.Length; p += 4, q += 3)
        {
            rgb[q] = rgba[p];
            rgb[q + 1] = rgba[p + 1];
            rgb[q + 2] = rgba[p + 2];
        }
        return rgb;
    }

    /// <summary>The format named by the magic bytes, or an error naming what was found instead.</summary>
    private static string Sniff(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])) return "PNG";
        if (data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "JPEG";
        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8)) return "GIF";
        if (data.StartsWith("BM"u8)) return "BMP";
        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8)) return "WebP";
        string start = Convert.ToHexString(data[..Math.Min(8, data.Length)]);
        throw new ImageDecodeException($"not a PNG, JPEG, WebP, GIF or BMP image (the file starts with bytes {start})");
    }

    /// <summary>The dimensions the header declares, read here so the limits apply before any decoder allocates.</summary>
    private static (int Width, int Height) HeaderSize(ReadOnlySpan<byte> data, string format)
    {
        long width, height;
        switch (format)
        {
            case "PNG":
                if (data.Length < 24 || !data.Slice(12, 4).SequenceEqual("IHDR"u8)) throw new ImageDecodeException("the PNG header is corrupt (no IHDR chunk first)");
                width = BinaryPrimitives.ReadUInt32BigEndian(data[16..]);
                height = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
                break;
            case "GIF":
                if (data.Length < 10) throw new ImageDecodeException("the GIF header is corrupt (shorter than its screen descriptor)");
                width = BinaryPrimitives.ReadUInt16LittleEndian(data[6..]);
                height = BinaryPrimitives.ReadUInt16LittleEndian(data[8..]);
                break;
            case "BMP":
                width = BinaryPrimitives.ReadInt32LittleEndian(data[18..]);
                height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(data[22..]));
                break;
            case "WebP":
                (width, height) = WebPSize(data);
                break;
            default:
                (width, height) = JpegSize(data);
                break;
        }
        if (width <= 0 || height <= 0) throw new ImageDecodeException($"the {format} header is corrupt (it declares a {width}×{height} image)");
        if (width > int.MaxValue || height > int.MaxValue) return (int.MaxValue, int.MaxValue);
        return ((int)width, (int)height);
    }

    /// <summary>
    /// Walks the RIFF chunks of a WebP file (each size must fit inside the file) and reads the canvas size from the first
    /// chunk: VP8X (24-bit width−1, height−1), VP8 (14-bit sizes after the key-frame start code) or VP8L (14-bit
    /// width−1, height−1 after the 0x2F signature).
    /// </summary>
    private static (long Width, long Height) WebPSize(ReadOnlySpan<byte> data)
    {
        // CheckComplete has verified that the RIFF size covers the file and that every chunk lies inside it.
        var first = data[12..];
        var tag = first[..4];
        int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(first[4..]);
        var payload = first.Slice(8, size);
        if (tag.SequenceEqual("VP8X"u8))
        {
            if (size < 10) throw new ImageDecodeException($"the WebP header is corrupt (its VP8X chunk is {size} bytes, not 10)");
            return (1 + (payload[4] | payload[5] << 8 | payload[6] << 16), 1 + (payload[7] | payload[8] << 8 | payload[9] << 16));
        }
        if (tag.SequenceEqual("VP8 "u8))
        {
            if (size < 10 || payload[3] != 0x9D || payload[4] != 0x01 || payload[5] != 0x2A)
                throw new ImageDecodeException("the WebP header is corrupt (its VP8 chunk has no key-frame start code)");
            return (BinaryPrimitives.ReadUInt16LittleEndian(payload[6..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(payload[8..]) & 0x3FFF);
        }
        if (tag.SequenceEqual("VP8L"u8))
        {
            if (size < 5 || payload[0] != 0x2F) throw new ImageDecodeException("the WebP header is corrupt (its VP8L chunk lacks the 0x2F signature)");
            uint bits = BinaryPrimitives.ReadUInt32LittleEndian(payload[1..]);
            return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF));
        }
        throw new ImageDecodeException($"the WebP header is corrupt (its first chunk is '{System.Text.Encoding.ASCII.GetString(tag)}', not VP8, VP8L or VP8X)");
    }

    /// <summary>Walks the JPEG markers to the first start-of-frame and reads its size.</summary>
    private static (long Width, long Height) JpegSize(ReadOnlySpan<byte> data)
    {
        int at = 2;
        while (at + 4 <= data.Length)
        {
            if (data[at] != 0xFF) throw new ImageDecodeException($"the JPEG header is corrupt (expected a marker at byte {at})");
            byte marker = data[at + 1];
            if (marker == 0xFF) { at++; continue; }
            if (marker is 0xD8 or (>= 0xD0 and <= 0xD7) or 0x01) { at += 2; continue; }
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[(at + 2)..]);
            bool startOfFrame = marker is >= 0xC0 and <= 0xCF && marker is not (0xC4 or 0xC8 or 0xCC);
            if (startOfFrame)
            {
                if (at + 9 > data.Length) break;
                return (BinaryPrimitives.ReadUInt16BigEndian(data[(at + 7)..]), BinaryPrimitives.ReadUInt16BigEndian(data[(at + 5)..]));
            }
            if (marker == 0xDA || length < 2) break;
            at += 2 + length;
        }
        throw new ImageDecodeException("the JPEG header is corrupt or truncated (no start-of-frame marker with the image size)");
    }

    /// <summary>Refuses files whose end marker is missing or whose chunk sizes run past the end.</summary>
    private static void CheckComplete(ReadOnlySpan<byte> data, string format)
    {
        if (format == "WebP")
        {
            CheckWebPChunks(data);
            return;
        }
        bool complete = format switch
        {
            // The IEND chunk closes every PNG; some writers append bytes after it.
            "PNG" => data.LastIndexOf("IEND"u8) > 8,
            "JPEG" => data.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]) > 2,
            "GIF" => data.LastIndexOf((byte)0x3B) > 12,
            "BMP" => data.Length >= 26,
            _ => true,
        };
        if (!complete) throw new ImageDecodeException($"the {format} file is truncated (its end marker is missing)");
        if (format == "BMP" && data.Length >= 14 && BitConverter.ToUInt32(data.Slice(10, 4)) >= data.Length)
            throw new ImageDecodeException("the BMP file is truncated (its pixel data offset lies past the end)");
    }

    private static void CheckWebPChunks(ReadOnlySpan<byte> data)
    {
        long riffSize = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (riffSize + 8 > data.Length)
            throw new ImageDecodeException($"the WebP file is truncated (its RIFF header declares {riffSize + 8:N0} bytes, the file has {data.Length:N0})");
        if (riffSize < 4 + 8 + 1) throw new ImageDecodeException($"the WebP file is corrupt (its RIFF size {riffSize} leaves no room for an image chunk)");
        long at = 12, end = 8 + riffSize;
        while (at < end)
        {
            if (at + 8 > end) throw new ImageDecodeException($"the WebP file is corrupt (a chunk header at byte {at} runs past the RIFF size)");
            long size = BinaryPrimitives.ReadUInt32LittleEndian(data[(int)(at + 4)..]);
            long next = at + 8 + size + (size & 1);
            // The pad byte after an odd-sized final chunk is sometimes omitted by writers; the payload itself must fit.
            if (at + 8 + size > end)
            {
                string tag = System.Text.Encoding.ASCII.GetString(data.Slice((int)at, 4));
                throw new ImageDecodeException($"the WebP file is corrupt or truncated (chunk '{tag}' at byte {at} declares {size:N0} bytes, past the end of the file)");
            }
            at = next;
        }
    }
}
