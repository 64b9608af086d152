using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>Reading and writing the text files the tools edit, keeping a UTF-8 byte-order mark if the file had one.</summary>
internal static class TextFiles
{
    private const int BinaryProbeBytes = 8000;
    private static readonly byte[] Utf8Bom = [0xEF, 0xBB, 0xBF];
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public sealed record Text(string Content, bool HasBom);

    /// <summary>The file as text; refuses directories, missing files, files over the size cap and binary files.</summary>
    public static async Task<Text> ReadAsync(Workspace workspace, string fullPath, long maxBytes, CancellationToken ct)
    {
        string shown = workspace.Relative(fullPath);
        if (Directory.Exists(fullPath)) throw new ToolFailureException($"'{shown}' is a directory");
        if (!File.Exists(fullPath)) throw new ToolFailureException($"file '{shown}' does not exist");
        long length = new FileInfo(fullPath).Length;
        if (length > maxBytes) throw new ToolFailureException($"'{shown}' is {length} bytes, over the {maxBytes}-byte limit");
        byte[] bytes = await File.ReadAllBytesAsync(fullPath, ct).ConfigureAwait(false);
        if (LooksBinary(bytes)) throw new ToolFailureException($"'{shown}' is a binary file");
        bool bom = bytes.AsSpan().StartsWith(Utf8Bom);
        try
        {
            return new Text(StrictUtf8.GetString(bom ? bytes[3..] : bytes), bom);
        }
        catch (DecoderFallbackException)
        {
            throw new ToolFailureException($"'{shown}' is not UTF-8 text");
        }
    }

    public static bool LooksBinary(ReadOnlySpan<byte> bytes) =>
        bytes[..Math.Min(bytes.Length, BinaryProbeBytes)].Contains((byte)0);

    public static async Task WriteAsync(string fullPath, string content, bool bom, CancellationToken ct)
    {
        string? directory = Path.GetDirectoryName(fullPath);
        if (directory is not null) Directory.CreateDirectory(directory);
        byte[] body = StrictUtf8.GetBytes(content);
        await using var stream = new FileStream(fullPath, FileMode.Create, FileAccess.Write, FileShare.None);
        if (bom) await stream.WriteAsync(Utf8Bom, ct).ConfigureAwait(false);
        await stream.WriteAsync(body, ct).ConfigureAwait(false);
    }

    /// <summary>Text cut to <paramref name="max"/> characters with a note saying how much was dropped.</summary>
    public static string Clip(string text, int max)
    {
        if (text.Length <= max) return text;
        return text[..max] + $"\n[output clipped: {max} of {text.Length} characters shown]";
    }
}
