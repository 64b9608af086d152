using System.CommandLine;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Vision;

namespace KimiSharp.Cli;

/// <summary>The repeatable <c>--image FILE</c> of chat and generate: image files checked up front and sent as data: URLs.</summary>
internal static class ImageInputs
{
    public static Option<string[]> Option(string description) => new("--image")
    {
        Description = description, HelpName = "FILE", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Refuses images before any work when the model cannot read them.</summary>
    public static void RequireVision(KimiChatService service, IReadOnlyList<string> files)
    {
        if (files.Count > 0 && service.Vision is null)
            throw new UsageException($"--image: the model '{service.ModelId}' has no vision tower (its config.json has no vision_config), so it cannot read images");
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

    /// <summary>A user message's content: the images (image_url parts) and then the text, or just the text without images.</summary>
    public static JsonNode UserContent(IReadOnlyList<string> dataUrls, string text)
    {
        if (dataUrls.Count == 0) return text;
        var parts = new JsonArray();
        foreach (string url in dataUrls) parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } });
        parts.Add(new JsonObject { ["type"] = "text", ["text"] = text });
        return parts;
    }

    private static string MediaType(ReadOnlySpan<byte> bytes) =>
        bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8]) ? "image/jpeg"
        : bytes.StartsWith("GIF8"u8) ? "image/gif"
        : bytes.StartsWith("BM"u8) ? "image/bmp"
        : "image/png";
}
