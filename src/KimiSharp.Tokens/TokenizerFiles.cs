using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens;

/// <summary>Writes the tokenizer files of a Kimi-style model folder (tiktoken.model + tokenizer_config.json).</summary>
public static class TokenizerFiles
{
    /// <summary>
    /// Writes <paramref name="ranks"/> (token bytes in rank order) and Kimi's special tokens placed after them at the
    /// same offsets as in K2 (so [BOS] is the first id past the ranks). Returns the vocabulary size.
    /// </summary>
    public static int Write(string directory, IReadOnlyList<byte[]> ranks, string? chatTemplate = null)
    {
        Directory.CreateDirectory(directory);
        using (var writer = new StreamWriter(Path.Combine(directory, "tiktoken.model.partial")))
            for (int rank = 0; rank < ranks.Count; rank++)
                writer.Write($"{Convert.ToBase64String(ranks[rank])} {rank}\n");
        File.Move(Path.Combine(directory, "tiktoken.model.partial"), Path.Combine(directory, "tiktoken.model"), overwrite: true);

        int shift = ranks.Count - KimiSpecialTokens.NumBaseTokens;
        var decoder = new JsonObject();
        foreach (var token in KimiSpecialTokens.K2Thinking)
            decoder[(token.Id + shift).ToString()] = new JsonObject
            {
                ["content"] = token.Content, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false,
                ["single_word"] = false, ["special"] = token.Special,
            };
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = KimiSpecialTokens.Bos,
            ["eos_token"] = KimiSpecialTokens.Eos,
            ["pad_token"] = KimiSpecialTokens.Pad,
            ["unk_token"] = KimiSpecialTokens.Unk,
            ["model_max_length"] = 1048576,
            ["tokenizer_class"] = "TikTokenTokenizer",
        };
        if (chatTemplate is not null) config["chat_template"] = chatTemplate;
        string configPath = Path.Combine(directory, "tokenizer_config.json");
        File.WriteAllText(configPath + ".partial", config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(configPath + ".partial", configPath, overwrite: true);
        return ranks.Count + KimiSpecialTokens.NumReservedSpecialTokens;
    }

    /// <summary>The 256 single bytes as ranks: a tokenizer that encodes any text, one token per byte.</summary>
    public static IReadOnlyList<byte[]> ByteRanks() => Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToArray();
}
