using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Safetensors;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Vision;

namespace KimiSharp.Testing;

/// <summary>
/// A chat-capable K2.5-style folder with random weights: <see cref="RandomChatModel"/> plus a tiny MoonViT tower
/// (vision_config, preprocessor_config.json, vision_tower.* / mm_projector.*) and the K2.5 chat template, which writes
/// K2.5's media block, <c>&lt;|media_begin|&gt;image&lt;|media_content|&gt;&lt;|media_pad|&gt;&lt;|media_end|&gt;</c>, per image part.
/// </summary>
public static class RandomVisionChatModel
{
    /// <summary>Moonshot's published Kimi K2.5 chat template (one media block per image part; thinking by default).</summary>
    public static string ChatTemplate => Tokens.Templates.ChatTemplate.BuiltInKimiK25().Source;

    /// <summary>The byte-level tokenizer's id of <c>&lt;|media_pad|&gt;</c> (Kimi's special tokens follow the 256 byte ranks).</summary>
    public const int MediaPadId = KimiSpecialTokens.MediaPadId - KimiSpecialTokens.NumBaseTokens + 256;

    public static void Write(string directory, RandomCheckpointOptions? shape = null, int seed = 5)
    {
        shape ??= new RandomCheckpointOptions { HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 4096, Format = CheckpointFormat.Int4 };
        RandomChatModel.Write(directory, shape);
        var vision = RandomVisionCheckpoint.Tiny(shape.HiddenSize) with { MediaPlaceholderTokenId = MediaPadId };
        RandomVisionCheckpoint.AddToCheckpoint(directory, vision, SafetensorsDType.F32, seed);
        File.WriteAllText(Path.Combine(directory, "chat_template.jinja"), ChatTemplate);
    }

    /// <summary>A valid RGB PNG whose pixels depend on <paramref name="seed"/>.</summary>
    public static byte[] Png(int width, int height, int seed = 0)
    {
        using var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            for (int x = 0; x < width; x++) raw.Write([(byte)(x * 5 + seed * 41), (byte)(y * 3 + seed * 13), (byte)((x ^ y) + seed * 7)]);
        }
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw.ToArray());
        return PngChunks(width, height, compressed.ToArray());
    }

    /// <summary>
    /// A PNG whose header declares <paramref name="width"/>×<paramref name="height"/> with almost no pixel data: a
    /// decompression bomb or an absurd side when the size is large.
    /// </summary>
    public static byte[] PngHeaderOnly(int width, int height)
    {
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) z.Write(new byte[64]);
        return PngChunks(width, height, compressed.ToArray());
    }

    private static byte[] PngChunks(int width, int height, byte[] idat)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 2;
        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        foreach (var (type, data) in new[] { ("IHDR", ihdr), ("IDAT", idat), ("IEND", Array.Empty<byte>()) })
        {
            var head = new byte[8];
            BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
            Encoding.ASCII.GetBytes(type, head.AsSpan(4));
            png.Write(head);
            png.Write(data);
            uint crc = 0xFFFFFFFF;
            foreach (byte b in head.AsSpan(4).ToArray().Concat(data))
            {
                crc ^= b;
                for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
            var tail = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(tail, ~crc);
            png.Write(tail);
        }
        return png.ToArray();
    }

    /// <summary>A data: URL of <paramref name="bytes"/>.</summary>
    public static string DataUrl(byte[] bytes, string mediaType = "image/png") => $"data:{mediaType};base64,{Convert.ToBase64String(bytes)}";
}
