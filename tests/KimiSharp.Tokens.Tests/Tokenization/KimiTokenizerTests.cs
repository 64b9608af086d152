using System.Text;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Tests.Tokenization;

public class KimiTokenizerTests
{
    private static KimiTokenizer Tok => TestVocabulary.Tokenizer;

    public static TheoryData<string> Samples => new()
    {
        "The quick brown fox jumps over the lazy dog.",
        "It's what they've done; we'll see. I'M SURE.",
        "今天天气很好，我们去公园散步吧。",
        "日本語のテキストとカタカナ、ひらがな。",
        "def encode(self, text: str) -> list[int]:\n    return self.model.encode(text)\n",
        "for (int i = 0; i < n; i++) { sum += values[i]; }\r\n",
        "Emoji 😀👍🏽🎉 flags 🇯🇵 family 👨‍👩‍👧 math 𝐀𝐁𝐂 rare 𠀀𠀁 keycap 1️⃣",
        "Mixed: Hello世界, 123abc, カフェ café, e\u0301, ǅ, ſ, Ω, \u00A0nbsp, \u3000ideographic",
        "    indented\n\n\n\t\ttabs   \r\n trailing   ",
        "{\"city\":\"Beijing\",\"unit\":\"celsius\",\"days\":3}",
        "Arabic مرحبا بالعالم, Hindi नमस्ते, Thai สวัสดี, Korean 안녕하세요",
        "",
        " ",
        "a",
        "\u200B\u200D\uFEFF zero-width",
        "\U0001F9D1\U0001F3FD\u200D\U0001F4BB and \U000E0067 tags",
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void Decode_of_encode_is_byte_exact(string text)
    {
        foreach (bool allowSpecial in new[] { true, false })
        {
            var ids = Tok.Encode(text, allowSpecial);
            Assert.Equal(text, Tok.Decode(ids));
            Assert.Equal(Encoding.UTF8.GetBytes(text), Tok.DecodeBytes(ids));
            Assert.All(ids, id => Assert.InRange(id, 0, Tok.NumBaseTokens - 1));
        }
    }

    [Fact]
    public void Encodes_exactly_like_tiktoken()
    {
        string ranks = string.Join("\n", Enumerable.Range(0, Tok.NumBaseTokens).Select(r => Convert.ToBase64String(Tok.GetTokenBytes(r))));
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(ranks)));
        Assert.True(hash == TiktokenEncodeGolden.RanksSha256, "The test vocabulary changed; regenerate TiktokenEncodeGolden.");

        using var doc = System.Text.Json.JsonDocument.Parse(TiktokenEncodeGolden.Json);
        foreach (var testCase in doc.RootElement.EnumerateArray())
        {
            string text = testCase.GetProperty("text").GetString()!;
            var all = testCase.GetProperty("all").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var ordinary = testCase.GetProperty("ordinary").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(all, Tok.Encode(text, allowSpecial: true));
            Assert.Equal(ordinary, Tok.Encode(text, allowSpecial: false));
        }
    }

    [Fact]
    public void Merges_are_used()
    {
        // The training text's own words encode to fewer tokens than bytes.
        var ids = Tok.Encode("the tokenizer's job", allowSpecial: false);
        Assert.True(ids.Count < Encoding.UTF8.GetByteCount("the tokenizer's job"));
    }

    [Fact]
    public void Model_folder_gives_kimi_layout()
    {
        Assert.Equal(256 + TestVocabulary.Merges, Tok.NumBaseTokens); // every merge in the test corpus is new
        Assert.Equal(Tok.NumBaseTokens + 256, Tok.VocabSize);
        Assert.Equal(256, Tok.SpecialTokens.Count);
        Assert.Equal(TestVocabulary.Id(KimiSpecialTokens.BosId), Tok.BosId);
        Assert.Equal(TestVocabulary.Id(KimiSpecialTokens.EosId), Tok.EosId);
        Assert.Equal(TestVocabulary.Id(KimiSpecialTokens.PadId), Tok.PadId);
        Assert.Equal(TestVocabulary.Id(KimiSpecialTokens.UnkId), Tok.UnkId);
        Assert.Equal(TestVocabulary.Id(KimiSpecialTokens.ImEndId), Tok.ImEndId);
        Assert.Equal(Tok.NumBaseTokens, Tok.BosId); // [BOS] is the first special id
        Assert.Equal(Tok.VocabSize - 1, Tok.PadId); // [PAD] the last
    }

    [Theory]
    [InlineData(KimiSpecialTokens.BosId, "[BOS]")]
    [InlineData(KimiSpecialTokens.EosId, "[EOS]")]
    [InlineData(KimiSpecialTokens.ImEndId, "<|im_end|>")]
    [InlineData(KimiSpecialTokens.ImUserId, "<|im_user|>")]
    [InlineData(KimiSpecialTokens.ImAssistantId, "<|im_assistant|>")]
    [InlineData(KimiSpecialTokens.ImSystemId, "<|im_system|>")]
    [InlineData(KimiSpecialTokens.ImMiddleId, "<|im_middle|>")]
    [InlineData(KimiSpecialTokens.ToolCallsSectionBeginId, "<|tool_calls_section_begin|>")]
    [InlineData(KimiSpecialTokens.ToolCallsSectionEndId, "<|tool_calls_section_end|>")]
    [InlineData(KimiSpecialTokens.ToolCallBeginId, "<|tool_call_begin|>")]
    [InlineData(KimiSpecialTokens.ToolCallArgumentBeginId, "<|tool_call_argument_begin|>")]
    [InlineData(KimiSpecialTokens.ToolCallEndId, "<|tool_call_end|>")]
    [InlineData(KimiSpecialTokens.ThinkBeginId, "<think>")]
    [InlineData(KimiSpecialTokens.ThinkEndId, "</think>")]
    [InlineData(KimiSpecialTokens.MediaPadId, "<|media_pad|>")]
    [InlineData(KimiSpecialTokens.UnkId, "[UNK]")]
    [InlineData(KimiSpecialTokens.PadId, "[PAD]")]
    [InlineData(163_589, "<|reserved_token_163589|>")]
    [InlineData(163_600, "<|reserved_token_163600|>")]
    [InlineData(163_837, "<|reserved_token_163837|>")]
    public void Special_ids_are_named_from_the_config_or_reserved(int kimiId, string name)
    {
        int id = TestVocabulary.Id(kimiId);
        // Reserved names carry the id in this vocabulary, as Kimi's do in K2's.
        string expected = name.StartsWith("<|reserved_token_", StringComparison.Ordinal) ? KimiSpecialTokens.ReservedName(id) : name;
        Assert.Equal(expected, Tok.IdToToken(id));
        Assert.Equal(id, Tok.TokenToId(expected));
        Assert.True(Tok.IsSpecial(id));
        Assert.Equal(expected, Tok.Decode([id]));
        Assert.Equal([id], Tok.Encode(expected, allowSpecial: true));
    }

    [Fact]
    public void Ordinary_ids_have_no_special_name()
    {
        Assert.Null(Tok.IdToToken(65));
        Assert.False(Tok.IsSpecial(65));
        Assert.Null(Tok.TokenToId("hello"));
    }

    [Fact]
    public void Special_tokens_are_recognized_only_when_allowed()
    {
        const string text = "<|im_user|>user<|im_middle|>Say <think> hi</think>[EOS]<|im_end|>";
        var allowed = Tok.Encode(text, allowSpecial: true);
        int[] expectedSpecials =
        [
            TestVocabulary.Id(KimiSpecialTokens.ImUserId), TestVocabulary.Id(KimiSpecialTokens.ImMiddleId),
            TestVocabulary.Id(KimiSpecialTokens.ThinkBeginId), TestVocabulary.Id(KimiSpecialTokens.ThinkEndId),
            TestVocabulary.Id(KimiSpecialTokens.EosId), TestVocabulary.Id(KimiSpecialTokens.ImEndId),
        ];
        Assert.Equal(expectedSpecials, allowed.Where(Tok.IsSpecial));
        Assert.Equal(text, Tok.Decode(allowed));

        var plain = Tok.Encode(text, allowSpecial: false);
        Assert.DoesNotContain(plain, Tok.IsSpecial);
        Assert.Equal(text, Tok.Decode(plain));
    }

    [Fact]
    public void Text_between_special_tokens_is_encoded_separately()
    {
        // tiktoken runs the pattern on each stretch between specials, so "a" before <|im_end|> and "b" after
        // cannot merge with anything across it.
        const string left = "Hello world", right = " again!";
        var ids = Tok.Encode(left + "<|im_end|>" + right, allowSpecial: true);
        int[] expected = [.. Tok.Encode(left, true), TestVocabulary.Id(KimiSpecialTokens.ImEndId), .. Tok.Encode(right, true)];
        Assert.Equal(expected, ids);
    }

    [Fact]
    public void Near_miss_special_strings_are_plain_text()
    {
        foreach (string text in new[] { "<|im_end|", "<|im_end", "[EOS", "<think", "<|tool_call_end", "<|reserved_token_1|>" })
        {
            var ids = Tok.Encode(text, allowSpecial: true);
            Assert.DoesNotContain(ids, Tok.IsSpecial);
            Assert.Equal(text, Tok.Decode(ids));
        }
    }

    [Fact]
    public void Skip_special_tokens_drops_flagged_ones_and_keeps_tool_markers()
    {
        const string text = "[BOS]<|im_assistant|>assistant<|im_middle|>ok<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|><|im_end|>";
        var ids = Tok.Encode(text, allowSpecial: true);
        Assert.Equal(
            "assistantok<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>",
            Tok.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Decode_replaces_invalid_utf8_and_DecodeBytes_keeps_it()
    {
        int[] ids = [0xE4, 0xB8, 'a', 0xFF]; // 中 cut after two bytes, then 'a', then an invalid byte
        Assert.Equal("\uFFFDa\uFFFD", Tok.Decode(ids));
        Assert.Equal(new byte[] { 0xE4, 0xB8, (byte)'a', 0xFF }, Tok.DecodeBytes(ids));
    }

    [Fact]
    public void Unknown_ids_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([Tok.VocabSize]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([-1]));
    }

    // Long-input tests use runs made of short pattern pieces ("Hello", "abc", ...): one 25,000-character piece
    // would make byte-pair merging quadratic, which is exactly why Kimi splits, but too slow for a unit test.
    private static readonly KimiTokenizer Unsplit = KimiTokenizer.FromRanks(
        TestVocabulary.RanksStream(), TestVocabulary.SpecialTokens(), new KimiTokenizerOptions { SplitLongInputs = false });

    [Fact]
    public void Long_runs_are_split_as_kimi_does()
    {
        // tokenization_kimi.py cuts runs of more than 25,000 non-whitespace code points and encodes the parts
        // separately. Here the cut at 25,000 falls inside a "Hello" piece ("Hell" | "o"), which changes the ids.
        string run = "x" + string.Concat(Enumerable.Repeat("Hello", 6_000)); // 30,001 chars, no whitespace
        var ids = Tok.Encode(run, allowSpecial: false);
        int[] expected = [.. Tok.Encode(run[..25_000], false), .. Tok.Encode(run[25_000..], false)];
        Assert.Equal(expected, ids);
        Assert.NotEqual(Unsplit.Encode(run, false), ids);
        Assert.Equal(run, Tok.Decode(ids));

        // Whitespace runs are cut the same way, and alternating runs reset the count.
        string spaced = string.Concat(Enumerable.Repeat("abc ", 10_000));
        Assert.Equal(Unsplit.Encode(spaced, false), Tok.Encode(spaced, false));
    }

    [Fact]
    public void Long_run_limit_counts_code_points_not_utf16_units()
    {
        // 12,000 × "😀a" is 24,000 code points (36,000 UTF-16 units): under the limit, so not cut.
        string text = string.Concat(Enumerable.Repeat("😀a", 12_000));
        Assert.Equal(Unsplit.Encode(text, false), Tok.Encode(text, false));
        Assert.Equal(text, Tok.Decode(Tok.Encode(text, false)));

        // One more pair crosses it: cut after 25,000 code points, i.e. between "😀" and "a" of pair 12,501.
        string longer = string.Concat(Enumerable.Repeat("😀a", 12_600));
        int cut = 12_500 * 3; // UTF-16 index of the 25,001st code point
        int[] expected = [.. Tok.Encode(longer[..cut], false), .. Tok.Encode(longer[cut..], false)];
        Assert.Equal(expected, Tok.Encode(longer, false));
    }

    [Fact]
    public void Long_run_split_can_be_turned_off()
    {
        string run = string.Concat(Enumerable.Repeat("abc.", 7_500));
        Assert.Equal(run, Unsplit.Decode(Unsplit.Encode(run, false)));
        Assert.Equal(Tok.Encode("plain text", true), Unsplit.Encode("plain text", true));
    }

    [Fact]
    public void FromRanks_with_id_keyed_specials_matches_the_model_folder()
    {
        var specials = TestVocabulary.SpecialTokens().ToDictionary(t => t.Id, t => t.Content);
        var tok = KimiTokenizer.FromRanks(TestVocabulary.RanksStream(), specials);
        const string text = "<|im_system|>system<|im_middle|>You are Kimi.<|im_end|>中文 text 😀";
        Assert.Equal(Tok.Encode(text, true), tok.Encode(text, true));
        Assert.Equal(Tok.BosId, tok.BosId);
        Assert.Equal(Tok.VocabSize, tok.VocabSize);
    }

    [Fact]
    public void Special_ids_must_not_collide_with_ranks()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            KimiTokenizer.FromRanks(TestVocabulary.RanksStream(), new Dictionary<int, string> { [5] = "<|x|>" }));
        Assert.Contains("<|x|>", ex.Message);
    }

    [Fact]
    public void Encode_is_thread_safe()
    {
        var texts = ((IEnumerable<object[]>)Samples).Select(row => (string)row[0]).ToArray();
        var expected = texts.Select(t => Tok.Encode(t, true)).ToArray();
        Parallel.For(0, 200, i =>
        {
            int k = i % texts.Length;
            Assert.Equal(expected[k], Tok.Encode(texts[k], true));
        });
    }
}
