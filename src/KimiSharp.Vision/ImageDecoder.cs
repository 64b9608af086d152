using System.Buffers.Binary;
using StbImageSharp;

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

/// <summary>
/// Decodes PNG, JPEG, GIF (first frame) and BMP to RGB with StbImageSharp, after checking the magic bytes, the file's
/// end marker (truncation) and the header's dimensions against <see cref="ImageDecodeLimits"/>.
/// </summary>
/// <remarks>
/// Library choice: StbImageSharp is fully managed (no native binary to ship or patch per platform) but is a pointer-level
/// port of stb_image, whose C original has had fuzzing-found memory bugs, so every input is bounded here before it is
/// handed over. SkiaSharp decodes through Google's fuzzed libpng / libjpeg-turbo / libwebp (and reads WebP, which
/// StbImageSharp cannot) but is a native dependency whose security depends on shipping updated native assets, and whose
/// JPEG output is closer to PIL's libjpeg-turbo. Alpha is dropped, not composited, as PIL's convert("RGB") does.
/// </remarks>
public static class ImageDecoder
{
    public static RgbImage Decode(ReadOnlySpan<byte> data, ImageDecodeLimits? limits = null)
    {
        limits ??= new ImageDecodeLimits();
        if (data.Length == 0) throw new ImageDecodeException("the image is empty (0 bytes)");
        if (data.Length > limits.MaxBytes) throw new ImageDecodeException($"the image file is {data.Length:N0} bytes; at most {limits.MaxBytes:N0} are accepted");
        string format = Sniff(data);
        CheckComplete(data, format);
        var (width, height) = HeaderSize(data, format);
        if (width > limits.MaxSide || height > limits.MaxSide)
            throw new ImageDecodeException($"the {format} image is {width}×{height}; sides of at most {limits.MaxSide:N0} pixels are accepted");
        if ((long)width * height > limits.MaxPixels)
            throw new ImageDecodeException($"the {format} image is {width}×{height} = {(long)width * height:N0} pixels, more than the {limits.MaxPixels:N0} accepted (a decompression bomb?)");
        var bytes = data.ToArray();
        ImageResult result;
        try { result = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ImageDecodeException($"the {format} image is corrupt ({e.Message})", e);
        }
        if (result is null || result.Data is null || result.Width != width || result.Height != height
            || result.Data.Length != (long)result.Width * result.Height * 3)
            throw new ImageDecodeException($"the {format} image is corrupt (decoded size does not match its header)");
        return new RgbImage(result.Width, result.Height, result.Data);
    }

    /// <summary>
    /// The first <paramref name="maxFrames"/> frames of a GIF, each the full composited canvas (a still image gives one
    /// frame). The header limits apply per frame, and frames × pixels may not exceed <see cref="ImageDecodeLimits.MaxPixels"/>.
    /// </summary>
    public static IReadOnlyList<RgbImage> DecodeFrames(ReadOnlySpan<byte> data, int maxFrames, ImageDecodeLimits? limits = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrames, 1);
        limits ??= new ImageDecodeLimits();
        var first = Decode(data, limits);
        if (Sniff(data) != "GIF") return [first];
        long framePixels = (long)first.Width * first.Height;
        var frames = new List<RgbImage>();
        try
        {
            using var stream = new MemoryStream(data.ToArray(), writable: false);
            // The animation enumerator composites onto an RGBA canvas (whatever components are asked for), so ask for
            // RGBA and drop the alpha, as convert("RGB") does.
            foreach (var frame in ImageResult.AnimatedGifFramesFromStream(stream, ColorComponents.RedGreenBlueAlpha))
            {
                if (frame.Width != first.Width || frame.Height != first.Height || frame.Data is null || frame.Data.Length != framePixels * 4)
                    throw new ImageDecodeException($"GIF frame {frames.Count} does not fill the {first.Width}×{first.Height} canvas");
                if ((frames.Count + 1) * framePixels > limits.MaxPixels)
                    throw new ImageDecodeException($"the GIF's frames hold more than the {limits.MaxPixels:N0} pixels accepted");
                var rgb = new byte[framePixels * 3];
                for (long p = 0; p < framePixels; p++)
                {
                    rgb[3 * p] = frame.Data[4 * p];
                    rgb[3 * p + 1] = frame.Data[4 * p + 1];
                    rgb[3 * p + 2] = frame.Data[4 * p + 2];
                }
                frames.Add(new RgbImage(frame.Width, frame.Height, rgb));
                if (frames.Count == maxFrames) break;
            }
        }
        catch (Exception e) when (e is not (ImageDecodeException or OutOfMemoryException))
        {
            throw new ImageDecodeException($"the GIF animation is corrupt ({e.Message})", e);
        }
        return frames.Count > 0 ? frames : [first];
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

    /// <summary>The format named by the magic bytes, or an error naming what was found instead.</summary>
    private static string Sniff(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])) return "PNG";
        if (data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "JPEG";
        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8)) return "GIF";
        if (data.StartsWith("BM"u8)) return "BMP";
        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8))
            throw new ImageDecodeException("WebP images are not supported yet (PNG, JPEG, GIF and BMP are)");
        string start = Convert.ToHexString(data[..Math.Min(8, data.Length)]);
        throw new ImageDecodeException($"not a PNG, JPEG, GIF or BMP image (the file starts with bytes {start})");
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
            default:
                (width, height) = JpegSize(data);
                break;
        }
        if (width <= 0 || height <= 0) throw new ImageDecodeException($"the {format} header is corrupt (it declares a {width}×{height} image)");
        if (width > int.MaxValue || height > int.MaxValue) return (int.MaxValue, int.MaxValue);
        return ((int)width, (int)height);
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

    /// <summary>Refuses files whose end marker is missing: stb_image would otherwise fill a cut-off image with zeros.</summary>
    private static void CheckComplete(ReadOnlySpan<byte> data, string format)
    {
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
}
