using System.Text.RegularExpressions;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// Kimi's pre-tokenization pattern (<c>pat_str</c> of <c>tokenization_kimi.py</c>), translated to .NET.
/// </summary>
/// <remarks>
/// Translation rules, each checked against tiktoken's own Rust regex (see the tests and the report):
/// <list type="bullet">
/// <item><c>\p{Han}</c> is the Unicode <em>script</em> Han in Rust's regex (not Script_Extensions). .NET has no
/// script properties (<c>\p{IsXxx}</c> are blocks), so it becomes the explicit code-point set
/// <see cref="HanRanges"/>.</item>
/// <item><c>[A&amp;&amp;[^\p{Han}]]</c> (intersection with the complement) becomes class subtraction
/// <c>[A-[HAN]]</c>.</item>
/// <item><c>(?i:'s|'t|'re|'ve|'m|'ll|'d)</c> becomes explicit classes, because Rust's case folding maps <c>'s</c>
/// to U+017F (ſ) as well and .NET's <c>(?i)</c> does not.</item>
/// <item>Supplementary-plane characters are handled by <see cref="CodePointRegexPreTokenizer"/>; the
/// supplementary Han ranges map to a BMP Han stand-in.</item>
/// </list>
/// Everything else (<c>\p{L}</c>, <c>\p{N}</c>, <c>\p{M}</c>, <c>\s</c>, <c>(?!\S)</c>) means the same in both engines.
/// </remarks>
public static partial class KimiPreTokenization
{
    /// <summary>The pattern as Kimi's Python code passes it to tiktoken (Rust regex syntax), for reference.</summary>
    public const string OriginalPattern =
        @"[\p{Han}]+" +
        @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|\p{N}{1,3}" +
        @"| ?[^\s\p{L}\p{N}]+[\r\n]*" +
        @"|\s*[\r\n]+" +
        @"|\s+(?!\S)" +
        @"|\s+";

    /// <summary>
    /// BMP part of Script=Han (Unicode 15.1/16.0, identical to what tiktoken's Rust regex matches):
    /// CJK radicals supplement 2E80–2E99, 2E9B–2EF3; Kangxi radicals 2F00–2FD5; 々 3005; 〇 3007;
    /// Hangzhou numerals 3021–3029, 3038–303A; 〻 303B; CJK Ext A 3400–4DBF; CJK Unified 4E00–9FFF;
    /// CJK Compatibility F900–FA6D, FA70–FAD9. (Not 〆 3006, nor the CJK symbols 3000–3004, which are Common.)
    /// </summary>
    public const string HanBmpClass =
        @"\u2E80-\u2E99\u2E9B-\u2EF3\u2F00-\u2FD5\u3005\u3007\u3021-\u3029\u3038-\u303B" +
        @"\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFA6D\uFA70-\uFAD9";

    private const string Contraction = @"(?:'(?:[sS\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))?";
    private const string UpperNotHan = @"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}-[" + HanBmpClass + "]]";
    private const string LowerNotHan = @"[\p{Ll}\p{Lm}\p{Lo}\p{M}-[" + HanBmpClass + "]]";

    /// <summary>The .NET translation of <see cref="OriginalPattern"/>, alternative for alternative.</summary>
    public const string Pattern =
        "[" + HanBmpClass + "]+" +
        @"|[^\r\n\p{L}\p{N}]?" + UpperNotHan + "*" + LowerNotHan + "+" + Contraction +
        @"|[^\r\n\p{L}\p{N}]?" + UpperNotHan + "+" + LowerNotHan + "*" + Contraction +
        @"|\p{N}{1,3}" +
        @"| ?[^\s\p{L}\p{N}]+[\r\n]*" +
        @"|\s*[\r\n]+" +
        @"|\s+(?!\S)" +
        @"|\s+";

    /// <summary>All of Script=Han as inclusive code-point ranges, BMP and supplementary (Ext B–I, compatibility supplement).</summary>
    public static IReadOnlyList<(int First, int Last)> HanRanges { get; } =
    [
        (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5), (0x3005, 0x3005), (0x3007, 0x3007),
        (0x3021, 0x3029), (0x3038, 0x303B), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFA6D),
        (0xFA70, 0xFAD9),
        (0x16FE2, 0x16FE3), // OLD CHINESE HOOK MARK (Po), OLD CHINESE ITERATION MARK (Lm)
        (0x16FF0, 0x16FF1), // VIETNAMESE ALTERNATE READING MARKs (Mc)
        (0x20000, 0x2A6DF), // Ext B
        (0x2A700, 0x2B739), (0x2B740, 0x2B81D), (0x2B820, 0x2CEA1), (0x2CEB0, 0x2EBE0), // Ext C, D, E, F
        (0x2EBF0, 0x2EE5D), // Ext I
        (0x2F800, 0x2FA1D), // Compatibility Ideographs Supplement
        (0x30000, 0x3134A), (0x31350, 0x323AF), // Ext G, H
    ];

    /// <summary>True when <paramref name="codePoint"/> has Script=Han.</summary>
    public static bool IsHan(int codePoint)
    {
        var ranges = HanRanges;
        int lo = 0, hi = ranges.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var (first, last) = ranges[mid];
            if (codePoint < first)
            {
                hi = mid - 1;
            }
            else if (codePoint > last)
            {
                lo = mid + 1;
            }
            else
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The compiled .NET pattern (source-generated).</summary>
    [GeneratedRegex(Pattern, RegexOptions.CultureInvariant)]
    public static partial Regex Regex();

    /// <summary>Kimi's pre-tokenizer with code-point semantics (shared, thread-safe).</summary>
    public static CodePointRegexPreTokenizer PreTokenizer { get; } = new(Regex(), HanStandIn);

    /// <summary>
    /// Supplementary Han code points become a BMP Han character that matches the same Kimi classes: Lo → 一,
    /// Lm → 々, and the non-letters (Po, Mc), which the Han-subtracted letter classes exclude anyway, → ⺀ (So).
    /// </summary>
    private static char? HanStandIn(int codePoint)
    {
        if (!IsHan(codePoint))
        {
            return null;
        }

        return System.Globalization.CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            System.Globalization.UnicodeCategory.OtherLetter => '\u4E00',
            System.Globalization.UnicodeCategory.ModifierLetter => '\u3005',
            _ => '\u2E80',
        };
    }
}
