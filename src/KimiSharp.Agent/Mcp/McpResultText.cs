using System.Text;
using ModelContextProtocol.Protocol;

namespace KimiSharp.Agent.Mcp;

/// <summary>Turns a tool result's content blocks into the text the model reads.</summary>
internal static class McpResultText
{
    public static string Format(CallToolResult result)
    {
        var text = new StringBuilder();
        foreach (var block in result.Content)
        {
            if (text.Length > 0)
                text.Append('\n');
            text.Append(Describe(block));
        }
        // Structured content matters only when there is nothing else: servers that send it are asked by the spec to
        // repeat it as text, and saying it twice wastes context.
        if (text.Length == 0 && result.StructuredContent is { } structured)
            text.Append(structured.GetRawText());
        return text.Length == 0 ? "(the tool returned no content)" : text.ToString();
    }

    private static string Describe(ContentBlock block) => block switch
    {
        TextContentBlock t => t.Text,
        ImageContentBlock image => $"[image: {image.MimeType}, {DecodedLength(image.Data)} bytes]",
        AudioContentBlock audio => $"[audio: {audio.MimeType}, {DecodedLength(audio.Data)} bytes]",
        ResourceLinkBlock link => $"[resource link: {link.Uri}{(link.Name is { Length: > 0 } n ? $" ({n})" : "")}]",
        EmbeddedResourceBlock { Resource: TextResourceContents r } => $"[resource {r.Uri}]\n{r.Text}",
        EmbeddedResourceBlock { Resource: BlobResourceContents r } =>
            $"[resource {r.Uri}: {r.MimeType ?? "binary"}, {DecodedLength(r.Blob)} bytes]",
        _ => $"[{block.Type} content]",
    };

    /// <summary>The byte count of base64 text without decoding it.</summary>
    private static int DecodedLength(ReadOnlyMemory<byte> base64Utf8)
    {
        var span = base64Utf8.Span;
        int padding = span.Length >= 2 && span[^1] == '=' ? (span[^2] == '=' ? 2 : 1) : 0;
        return span.Length / 4 * 3 - padding;
    }
}
