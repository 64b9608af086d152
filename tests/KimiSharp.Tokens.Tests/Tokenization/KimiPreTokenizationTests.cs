using System.Globalization;
using System.Text.RegularExpressions;
using KimiSharp.Tokens.Tokenization;
using Microsoft.ML.Tokenizers;

namespace KimiSharp.Tokens.Tests.Tokenization;

public class KimiPreTokenizationTests
{
    private static IReadOnlyList<string> Split(string text) => KimiPreTokenization.PreTokenizer.Split(text);

    // Expected pieces follow from the pattern's alternation order (1 Han run, 2/3 letter words with an optional
    // leading non-letter and contraction, 4 up to three digits, 5 punctuation run, 6-8 whitespace). Every row was
    // also checked against tiktoken's own Rust regex (tiktoken 1.0.22 WASM) with Kimi's original pat_str.
    public static TheoryData<string, string[]> Cases => new()
    {
        // Han runs never join Latin letters or digits (alternative 1, and the Han-subtracted letter classes).
        { "Hello世界123abc", ["Hello", "世界", "123", "abc"] },
        { "中文English混合Text", ["中文", "English", "混合", "Text"] },
        // A space cannot lead a Han run, and a letter word cannot start with Han: the space stands alone.
        { " 你好world", [" ", "你好", "world"] },
        // Kana are letters but not Han: 'のテキスト' is one word (Lo then Lm ー then Lo).
        { "日本語のテキスト", ["日本語", "のテキスト"] },
        // 々 (U+3005) is Han; 〆 (U+3006) is Common, so it joins the kana word.
        { "人々と〆切", ["人々", "と〆", "切"] },
        // 〇 (U+3007, Nl) is Han, so it joins the Han run rather than the digit rule.
        { "〇一二三", ["〇一二三"] },
        // CJK radicals (So) are Han too.
        { "⺀⼀x", ["⺀⼀", "x"] },
        // Contractions are case-insensitive, and Rust's case folding lets 's match U+017F (ſ).
        { "I'LL don't it'\u017F", ["I'LL", " don't", " it'\u017F"] },
        { "München's", ["München's"] },
        // Digits in groups of at most three; a space before digits stands alone.
        { "12345", ["123", "45"] },
        { " 12 ab", [" ", "12", " ab"] },
        // Upper-then-lower words.
        { "HTTPServer", ["HTTPServer"] },
        { "getHTTPResponse", ["get", "HTTPResponse"] },
        // Whitespace: a run before a word gives up its last space to the word; newlines end runs.
        { "a  \n\n b", ["a", "  \n\n", " b"] },
        { "foo   bar", ["foo", "  ", " bar"] },
        { "x\r\n\r\n  y", ["x", "\r\n\r\n", " ", " y"] },
        { "  leading", [" ", " leading"] },
        { "trailing  ", ["trailing", "  "] },
        { "tab\there", ["tab", "\there"] },
        // U+3000 and U+00A0 are whitespace but may still lead a word (alternative 2's prefix is any non-letter).
        { "a\u3000b", ["a", "\u3000b"] },
        { "\u00A0x", ["\u00A0x"] },
        // Punctuation runs take one leading space and trailing newlines.
        { "(x+y)/2", ["(x", "+y", ")/", "2"] },
        { "...!!!\n\n", ["...!!!\n\n"] },
        { "def f():\n    return 1\n", ["def", " f", "():\n", "   ", " return", " ", "1", "\n"] },
        // Other scripts and combining marks.
        { "Café naïve", ["Café", " naïve"] },
        { "e\u0301t\u00E9", ["e\u0301t\u00E9"] },
        { "ΑΒΓ αβγ", ["ΑΒΓ", " αβγ"] },
        { "Привет, мир!", ["Привет", ",", " мир", "!"] },
        { "한국어 텍스트", ["한국어", " 텍스트"] },
        { "ǅemal", ["ǅemal"] },
        // Supplementary characters are single code points: an emoji can lead a word, math letters are letters,
        // and Ext-B Han joins BMP Han.
        { "👍abc", ["👍abc"] },
        { "a👍b", ["a", "👍b"] },
        { "a𝐀b", ["a", "𝐀b"] },
        { "𝐀𝐁c", ["𝐀𝐁c"] },
        { "𠀀中abc", ["𠀀中", "abc"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Splits_match_the_pattern_semantics(string text, string[] expected)
    {
        Assert.Equal(expected, Split(text));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pieces_cover_the_text_exactly(string text, string[] _)
    {
        Assert.Equal(text, string.Concat(Split(text)));
    }

    [Fact]
    public void Random_strings_split_exactly_as_tiktokens_rust_regex_does()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(RustPieceGolden.Json);
        int count = 0;
        foreach (var testCase in doc.RootElement.EnumerateArray())
        {
            string text = testCase.GetProperty("text").GetString()!;
            var expected = testCase.GetProperty("pieces").EnumerateArray().Select(p => p.GetString()!).ToArray();
            Assert.True(expected.SequenceEqual(Split(text)), $"{System.Text.Json.JsonSerializer.Serialize(text)}: expected {System.Text.Json.JsonSerializer.Serialize(expected)}, got {System.Text.Json.JsonSerializer.Serialize(Split(text))}");
            count++;
        }

        Assert.Equal(300, count);
    }

    [Fact]
    public void Plain_utf16_regex_would_split_supplementary_characters_differently()
    {
        // Why CodePointRegexPreTokenizer exists: the same .NET pattern run over UTF-16 sees an emoji as two
        // surrogates that cannot be a word's one-character prefix.
        var plain = new RegexPreTokenizer(KimiPreTokenization.Regex(), null);
        string text = "👍abc";
        var pieces = plain.PreTokenize(text).Select(p => text.Substring(p.Offset, p.Length)).ToArray();
        Assert.Equal(["👍", "abc"], pieces);
        Assert.Equal(["👍abc"], Split(text));
    }

    [Fact]
    public void Han_ranges_and_the_bmp_class_agree()
    {
        var bmpClass = new Regex("^[" + KimiPreTokenization.HanBmpClass + "]$");
        for (int cp = 0; cp < 0x10000; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF)
            {
                continue;
            }

            Assert.True(KimiPreTokenization.IsHan(cp) == bmpClass.IsMatch(((char)cp).ToString()), $"U+{cp:X4}");
        }
    }

    [Theory]
    [InlineData(0x4E00, true)]
    [InlineData(0x9FFF, true)]
    [InlineData(0x3005, true)]
    [InlineData(0x3006, false)]
    [InlineData(0x3007, true)]
    [InlineData(0x303B, true)]
    [InlineData(0x303C, false)]
    [InlineData(0x2E9A, false)]
    [InlineData(0x3042, false)] // あ
    [InlineData(0x20000, true)]
    [InlineData(0x2A6DF, true)]
    [InlineData(0x2A6E0, false)]
    [InlineData(0x2EBF0, true)]
    [InlineData(0x323AF, true)]
    [InlineData(0x323B0, false)]
    [InlineData(0x16FE2, true)]
    [InlineData(0x1F600, false)]
    public void IsHan_matches_script_han(int codePoint, bool expected)
    {
        Assert.Equal(expected, KimiPreTokenization.IsHan(codePoint));
    }

    [Fact]
    public void Category_stand_ins_have_their_category_and_no_special_role()
    {
        foreach (UnicodeCategory category in Enum.GetValues<UnicodeCategory>())
        {
            if (category == UnicodeCategory.Surrogate)
            {
                continue;
            }

            char c = CodePointRegexPreTokenizer.StandIn(category);
            Assert.Equal(category, CharUnicodeInfo.GetUnicodeCategory(c));
            Assert.False(KimiPreTokenization.IsHan(c));
            Assert.DoesNotContain(c, " '\r\nsStTrReEvVmMlLdD");
            bool separator = category is UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;
            Assert.Equal(separator, char.IsWhiteSpace(c));
        }
    }

    [Fact]
    public void Offsets_map_back_to_the_original_text_with_surrogates()
    {
        string text = "x 😀😀 𠀀𠀁中 ab𝐀\U0001F1EF\U0001F1F5!";
        var pieces = KimiPreTokenization.PreTokenizer.PreTokenize(text).ToList();
        int at = 0;
        foreach (var (offset, length) in pieces)
        {
            Assert.Equal(at, offset);
            Assert.False(char.IsLowSurrogate(text[offset]), "a piece must not start inside a surrogate pair");
            at += length;
        }

        Assert.Equal(text.Length, at);
        Assert.Equal(pieces.Count, KimiPreTokenization.PreTokenizer.PreTokenize(text.AsSpan()).Count());
    }

    [Fact]
    public void Empty_text_has_no_pieces()
    {
        Assert.Empty(KimiPreTokenization.PreTokenizer.PreTokenize(""));
        Assert.Empty(KimiPreTokenization.PreTokenizer.PreTokenize(ReadOnlySpan<char>.Empty));
    }
}
