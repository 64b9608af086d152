using System.Text;
using System.Text.Json;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Tests.Tokenization;

/// <summary>
/// A small Kimi-style vocabulary built in the test: the 256 single bytes (rank = byte value) followed by merges that
/// a tiny byte-level BPE trainer learns over <see cref="TrainingText"/> after Kimi pre-tokenization. Special tokens
/// sit at Kimi's offsets from <c>num_base_tokens</c>, so id − NumBase + 163584 is the real K2 id.
/// </summary>
internal static class TestVocabulary
{
    public const int Merges = 400;

    public const string TrainingText =
        "The quick brown fox jumps over the lazy dog. It's the tokenizer's job; we'll see what they've done. " +
        "Hello, world! Hello again, WORLD. 1234567890 3.14159 2025-11-23\n" +
        "def encode(self, text: str) -> list[int]:\n    return self.model.encode(text)\n" +
        "for (int i = 0; i < n; i++) { sum += values[i]; }\r\n" +
        "今天天气很好，我们去公园散步吧。人工智能正在改变世界。中文分词与英文不同。\n" +
        "日本語のテキストも少し含めます。東京は今日も晴れです。カタカナとひらがな。\n" +
        "Emoji 😀👍🏽🎉 and flags 🇯🇵🇨🇳, math 𝐀𝐁𝐂, rare han 𠀀𠀁.\n" +
        "Café naïve résumé — “quoted” ‘text’ … ✓ ✗ → ←\n" +
        "{\"city\": \"Beijing\", \"unit\": \"celsius\", \"days\": 3}\n";

    private static readonly Lazy<IReadOnlyList<byte[]>> LazyRanks = new(Train);

    /// <summary>Token bytes by rank.</summary>
    public static IReadOnlyList<byte[]> Ranks => LazyRanks.Value;

    public static int NumBase => Ranks.Count;

    /// <summary>The test-vocabulary id of a K2 special id.</summary>
    public static int Id(int kimiId) => kimiId - KimiSpecialTokens.NumBaseTokens + NumBase;

    /// <summary>Ranks in tiktoken file form.</summary>
    public static string RanksFileText()
    {
        var sb = new StringBuilder();
        for (int r = 0; r < Ranks.Count; r++)
        {
            sb.Append(Convert.ToBase64String(Ranks[r])).Append(' ').Append(r).Append('\n');
        }

        return sb.ToString();
    }

    public static MemoryStream RanksStream() => new(Encoding.ASCII.GetBytes(RanksFileText()));

    /// <summary>K2-Thinking's special tokens moved to this vocabulary's id range.</summary>
    public static IReadOnlyList<SpecialToken> SpecialTokens() =>
        KimiSpecialTokens.K2Thinking.Select(t => t with { Id = Id(t.Id) }).ToList();

    /// <summary>A tokenizer_config.json like K2's (added_tokens_decoder + bos/eos/pad/unk).</summary>
    public static string TokenizerConfigJson()
    {
        var decoder = SpecialTokens().ToDictionary(
            t => t.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
            t => new Dictionary<string, object> { ["content"] = t.Content, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = t.Special });
        var config = new Dictionary<string, object?>
        {
            ["added_tokens_decoder"] = decoder,
            ["additional_special_tokens"] = new[] { "<|im_end|>", "<|im_user|>", "<|im_assistant|>", "<|start_header_id|>", "<|end_header_id|>", "[EOT]", "<|im_system|>", "<|im_middle|>" },
            ["bos_token"] = "[BOS]",
            ["eos_token"] = "[EOS]",
            ["pad_token"] = "[PAD]",
            ["unk_token"] = "[UNK]",
            ["model_max_length"] = 1048576,
            ["tokenizer_class"] = "TikTokenTokenizer",
        };
        return JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true });
    }

    private static readonly Lazy<KimiTokenizer> LazyTokenizer = new(() =>
    {
        using var dir = new TempDirectory();
        dir.Write("tiktoken.model", RanksFileText());
        dir.Write("tokenizer_config.json", TokenizerConfigJson());
        return KimiTokenizer.FromModelDirectory(dir.Path);
    });

    /// <summary>The test vocabulary loaded the way a model folder is (shared; the tokenizer is thread-safe).</summary>
    public static KimiTokenizer Tokenizer => LazyTokenizer.Value;

    /// <summary>
    /// Byte-level BPE: split the text with Kimi's pre-tokenizer, count pieces, then repeatedly merge the most
    /// frequent adjacent pair (ties: the smaller pair of ids) into a new token.
    /// </summary>
    private static IReadOnlyList<byte[]> Train()
    {
        var tokens = new List<byte[]>();
        var known = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++)
        {
            tokens.Add([(byte)b]);
            known[Convert.ToBase64String(tokens[b])] = b;
        }

        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var piece in KimiPreTokenization.PreTokenizer.Split(TrainingText))
        {
            words[piece] = words.GetValueOrDefault(piece) + 1;
        }

        var corpus = words.Select(kv => (Ids: Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToList(), Count: kv.Value)).ToList();
        for (int m = 0; m < Merges; m++)
        {
            var pairs = new Dictionary<(int, int), int>();
            foreach (var (ids, count) in corpus)
            {
                for (int i = 0; i + 1 < ids.Count; i++)
                {
                    pairs[(ids[i], ids[i + 1])] = pairs.GetValueOrDefault((ids[i], ids[i + 1])) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1).ThenBy(p => p.Key.Item2).First().Key;
            byte[] merged = [.. tokens[best.Item1], .. tokens[best.Item2]];
            string key = Convert.ToBase64String(merged);
            if (!known.TryGetValue(key, out int newId))
            {
                newId = tokens.Count;
                tokens.Add(merged);
                known[key] = newId;
            }

            foreach (var (ids, _) in corpus)
            {
                for (int i = 0; i + 1 < ids.Count; i++)
                {
                    if (ids[i] == best.Item1 && ids[i + 1] == best.Item2)
                    {
                        ids[i] = newId;
                        ids.RemoveAt(i + 1);
                    }
                }
            }
        }

        return tokens;
    }
}

/// <summary>A temporary folder deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kimisharp-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Write(string name, string content)
    {
        string path = System.IO.Path.Combine(Path, name);
        File.WriteAllText(path, content, new UTF8Encoding(false));
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}
