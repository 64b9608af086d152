using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using KimiSharp.Tokens.Tokenization;
using Microsoft.ML.Tokenizers;

namespace KimiSharp.Tokens.Tests.Tokenization;

/// <summary>
/// Loads o200k_base (shipped in Microsoft.ML.Tokenizers.Data.O200kBase) through the same path as Kimi's vocabulary
/// and compares with Microsoft's own <c>CreateForModel("gpt-4o")</c>.
/// </summary>
public class O200kComparisonTests
{
    private static readonly Lazy<TiktokenTokenizer> LazyMicrosoft = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    private static readonly Lazy<string> LazyRanksFile = new(ReadO200kAsTiktokenFile);

    private static readonly Lazy<KimiTokenizer> LazyOurs = new(() => KimiTokenizer.FromRanks(
        new MemoryStream(Encoding.ASCII.GetBytes(LazyRanksFile.Value)),
        new Dictionary<int, string> { [199_999] = "<|endoftext|>", [200_018] = "<|endofprompt|>" },
        new KimiTokenizerOptions
        {
            PreTokenizer = LazyMicrosoft.Value.PreTokenizer,
            NumReservedSpecialTokens = 0,
            SplitLongInputs = false, // tiktoken itself does not split; that is Kimi's wrapper
            BosToken = null, EosToken = null, PadToken = null, UnkToken = null,
            SourceName = "o200k_base.tiktoken",
        }));

    /// <summary>o200k's pattern translated by our rules (explicit contraction classes).</summary>
    private const string O200kPattern =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'(?:[sS\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))?" +
        @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'(?:[sS\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))?" +
        @"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static TheoryData<string> Samples => new()
    {
        "The quick brown fox jumps over the lazy dog.",
        "It's what they've done; we'll see. I'M SURE.",
        "今天天气很好，我们去公园散步吧。人工智能正在改变世界。",
        "日本語のテキストとカタカナ、ひらがな。",
        "def encode(self, text: str) -> list[int]:\n    return self.model.encode(text)\n",
        "for (int i = 0; i < n; i++) { sum += values[i]; }\r\n// comment /* x */ https://example.com/a/b?c=d",
        "Numbers 1234567890 3.14159 -42 1e10 ١٢٣",
        "    indented\n\n\n\t\ttabs   \r\n trailing   ",
        "Arabic مرحبا بالعالم, Hindi नमस्ते, Thai สวัสดี, Korean 안녕하세요, Russian Привет",
        "special <|endoftext|> inside<|endofprompt|>text",
        "Emoji 😀👍🏽🎉 🇯🇵 👨‍👩‍👧 𝐀𝐁𝐂 𠀀",
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void Encodes_like_microsofts_gpt4o_tokenizer(string text)
    {
        var ours = LazyOurs.Value.Encode(text, allowSpecial: true);
        var theirs = LazyMicrosoft.Value.EncodeToIds(text);
        Assert.Equal(theirs, ours);
        Assert.Equal(text, LazyOurs.Value.Decode(ours));
        Assert.Equal(LazyMicrosoft.Value.Decode(theirs), LazyOurs.Value.Decode(ours));
    }

    [Fact]
    public void Vocabulary_layout_matches_o200k()
    {
        var ours = LazyOurs.Value;
        Assert.Equal(199_998, ours.NumBaseTokens);
        Assert.Equal(200_019, ours.VocabSize);
        Assert.Equal(199_999, ours.TokenToId("<|endoftext|>"));
        Assert.Null(ours.IdToToken(199_998)); // a hole: o200k names only two specials
        Assert.Throws<ArgumentOutOfRangeException>(() => ours.Decode([199_998]));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Translated_pattern_with_code_point_semantics_agrees_on_bmp_text(string text)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
        {
            return; // covered below: there Microsoft's UTF-16 regex and tiktoken disagree
        }

        var ours = new CodePointRegexPreTokenizer(new Regex(O200kPattern));
        var theirs = LazyMicrosoft.Value.PreTokenizer!;
        var specialsFree = text.Replace("<|endoftext|>", "").Replace("<|endofprompt|>", "");
        Assert.Equal(theirs.PreTokenize(specialsFree).ToArray(), ours.PreTokenize(specialsFree).ToArray());
    }

    [Fact]
    public void Code_point_semantics_fix_microsofts_surrogate_splits()
    {
        // tiktoken (Rust regex over code points) keeps an emoji as the one-character prefix of the following word:
        // ["👍abc", " a", "👍b", " 𝐀b"] (checked against tiktoken's WASM build). Microsoft's UTF-16 regex does not.
        const string text = "👍abc a👍b 𝐀b";
        var ours = new CodePointRegexPreTokenizer(new Regex(O200kPattern)).Split(text);
        Assert.Equal(["👍abc", " a", "👍b", " 𝐀b"], ours);
        var ms = LazyMicrosoft.Value.PreTokenizer!.PreTokenize(text).Select(p => text.Substring(p.Offset, p.Length));
        Assert.Equal(["👍", "abc", " a", "👍", "b", " 𝐀", "b"], ms);
    }

    /// <summary>The package stores "Capacity: N" then one base64 token per line (rank = line index); rewrite it as a standard tiktoken file.</summary>
    private static string ReadO200kAsTiktokenFile()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.O200kBase");
        using var deflate = new DeflateStream(assembly.GetManifestResourceStream("o200k_base.tiktoken.deflate")!, CompressionMode.Decompress);
        using var reader = new StreamReader(deflate);
        var sb = new StringBuilder();
        string? header = reader.ReadLine();
        Assert.StartsWith("Capacity:", header);
        int rank = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0)
            {
                sb.Append(line).Append(' ').Append(rank++).Append('\n');
            }
        }

        return sb.ToString();
    }
}
