using System.CommandLine;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Vision;

namespace KimiSharp.Cli;

/// <summary>
/// The repeatable <c>--image FILE</c> of chat and generate, and chat's <c>--video FILE</c>: media files checked up front
/// and sent as data: URLs in <c>image_url</c> / <c>video_url</c> content parts.
/// </summary>
internal static class ImageInputs
{
    public static Option<string[]> Option(string description, string name = "--image") => new(name)
    {
        Description = description, HelpName = "FILE", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Refuses images (or videos, for <paramref name="option"/> --video) before any work when the model cannot read them.</summary>
    public static void RequireVision(KimiChatService service, IReadOnlyList<string> files, string option = "--image")
    {
        if (files.Count > 0 && service.Vision is null)
            throw new UsageException($"{option}: the model '{service.ModelId}' has no vision tower (its config.json has no vision_config), so it cannot read {(option == "--video" ? "videos" : "images")}");
    }

    /// <summary>An image file as an <c>image_url</c> content part (decoded first, so a bad image is refused here).</summary>
    public static JsonObject ImagePart(string path, ChatMediaOptions options) =>
        new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = DataUrl(path, options) } };

    /// <summary>
    /// A video file (anything ffmpeg reads, or an animated GIF/WebP) as a <c>video_url</c> content part. Its frames are
    /// sampled once here, so a file that is no video, or a machine without ffmpeg, is refused before the question.
    /// </summary>
    public static async Task<JsonObject> VideoPart(string path, KimiChatService service, CancellationToken cancellationToken)
    {
        RequireVision(service, [path], "--video");
        if (Directory.Exists(path)) throw new UsageException($"--video: {path} is a directory; name a video file");
        long maxBytes = service.MediaOptions.DecodeLimits.MaxBytes;
        if (File.Exists(path) && new FileInfo(path).Length > maxBytes)
            throw new UsageException($"--video: {path} is {new FileInfo(path).Length:N0} bytes; at most {maxBytes:N0} are accepted");
        try { await VideoFrames.LoadAsync(path, service.Vision!.Chunker.Config, cancellationToken: cancellationToken); }
        catch (Exception e) when (e is VideoDecodeException or ImageDecodeException) { throw new UsageException($"--video: {e.Message}"); }
        byte[] bytes = await File.ReadAllBytesAsync(path, cancellationToken);
        return new JsonObject
        {
            ["type"] = "video_url",
            ["video_url"] = new JsonObject { ["url"] = $"data:{VideoMediaType(bytes)};base64,{Convert.ToBase64String(bytes)}" },
        };
    }

    /// <summary>The file decoded (so a bad image is refused here, naming the file and the problem).</summary>
    public static RgbImage Decode(string path, ChatMediaOptions options) => ImageDecoder.DecodeFile(path, options.DecodeLimits);

    /// <summary>An image file as a data: URL (checked by decoding it first).</summary>
    public static string DataUrl(string path, ChatMediaOptions options)
    {
        Decode(path, options);
        byte[] bytes = File.ReadAllBytes(path);
        return $"data:{MediaType(bytes)};base64,{Convert.ToBase64String(bytes)}";
    }

    /// <summary>A user message's content: the media parts and then the text, or just the text without media.</summary>
    public static JsonNode UserContent(IReadOnlyList<JsonObject> mediaParts, string text)
    {
        if (mediaParts.Count == 0) return text;
        var parts = new JsonArray();
        foreach (var part in mediaParts) parts.Add(part.DeepClone());
        parts.Add(new JsonObject { ["type"] = "text", ["text"] = text });
        return parts;
    }

    // What the engine checks is only the family (image/* or video/*); ffmpeg reads the container from the bytes.
    private static string VideoMediaType(ReadOnlySpan<byte> bytes) =>
        bytes.StartsWith("GIF8"u8) ? "image/gif"
        : bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8) ? "image/webp"
        : bytes.StartsWith((ReadOnlySpan<byte>)[0x1A, 0x45, 0xDF, 0xA3]) ? "video/webm"
        : bytes.Length >= 8 && bytes[4..8].SequenceEqual("ftyp"u8) ? "video/mp4"
        : "video/octet-stream";

    private static string MediaType(ReadOnlySpan<byte> bytes) =>
        bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8]) ? "image/jpeg"
        : bytes.StartsWith("GIF8"u8) ? "image/gif"
        : bytes.StartsWith("BM"u8) ? "image/bmp"
        : "image/png";
}
