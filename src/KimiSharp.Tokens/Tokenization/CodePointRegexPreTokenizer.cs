using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// A <see cref="RegexPreTokenizer"/> that gives a .NET regex tiktoken's code-point semantics.
/// </summary>
/// <remarks>
/// tiktoken runs its pattern (Rust <c>regex</c>/<c>fancy-regex</c>) over code points. .NET regexes run over UTF-16
/// code units, so a supplementary-plane character is two surrogates of category Cs: <c>\p{L}</c> misses U+1D400,
/// and the one-character optional prefix <c>[^\r\n\p{L}\p{N}]?</c> cannot take a whole emoji. Microsoft's own
/// o200k pre-tokenizer has this flaw: it splits "👍abc" as [👍][abc] where tiktoken yields [👍abc].
/// <para>
/// This class fixes it without touching the pattern: when the text holds surrogate pairs it runs the regex over a
/// stand-in string in which every supplementary code point is replaced by one BMP character of the same general
/// category (and, through <c>astralOverride</c>, the same membership in any pattern-specific set such as Han), then
/// maps the piece offsets back. Text without surrogates (the common case) goes straight to the regex.
/// The pattern may only test per-code-point properties that the stand-in preserves: general categories, <c>\s</c>,
/// and sets covered by the override. Lone surrogates pass through unchanged.
/// </para>
/// </remarks>
public sealed class CodePointRegexPreTokenizer : PreTokenizer
{
    private readonly RegexPreTokenizer _inner;
    private readonly Func<int, char?>? _astralOverride;

    /// <param name="regex">The translated pattern (no special-token splitting: the tokenizer handles specials).</param>
    /// <param name="astralOverride">
    /// Returns the stand-in for a supplementary code point the pattern treats specially (null: use the category
    /// stand-in). Kimi uses it to map supplementary Han ideographs to a BMP Han ideograph.
    /// </param>
    public CodePointRegexPreTokenizer(Regex regex, Func<int, char?>? astralOverride = null)
    {
        ArgumentNullException.ThrowIfNull(regex);
        Regex = regex;
        _inner = new RegexPreTokenizer(regex, specialTokens: null);
        _astralOverride = astralOverride;
    }

    /// <summary>The .NET regex applied (to the stand-in text when the input has supplementary characters).</summary>
    public Regex Regex { get; }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        return text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0 ? _inner.PreTokenize(text) : Mapped(text.AsSpan());
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
        {
            return [];
        }

        return text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0 ? _inner.PreTokenize(text) : Mapped(text);
    }

    /// <summary>Splits <paramref name="text"/> into the pieces the pattern matches (for tests and diagnostics).</summary>
    public IReadOnlyList<string> Split(string text)
    {
        var pieces = new List<string>();
        foreach (var (offset, length) in PreTokenize(text))
        {
            pieces.Add(text.Substring(offset, length));
        }

        return pieces;
    }

    private List<(int Offset, int Length)> Mapped(ReadOnlySpan<char> text)
    {
        // Stand-in text plus, for each stand-in index, the original index (one extra slot for the end).
        var proxy = new char[text.Length];
        var origin = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; i++)
        {
            origin[n] = i;
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(c, text[i + 1]);
                proxy[n++] = _astralOverride?.Invoke(cp) ?? StandIn(CharUnicodeInfo.GetUnicodeCategory(cp));
                i++;
            }
            else
            {
                proxy[n++] = c;
            }
        }

        origin[n] = text.Length;
        var result = new List<(int, int)>();
        foreach (var (offset, length) in _inner.PreTokenize(new string(proxy, 0, n)))
        {
            int start = origin[offset];
            result.Add((start, origin[offset + length] - start));
        }

        return result;
    }

    /// <summary>
    /// A BMP character of the given category that is not Han, not <c>\s</c> (unless a separator), not an ASCII
    /// apostrophe, space, CR or LF, and not a letter of the contractions ('s 't 're 've 'm 'll 'd), so it matches
    /// exactly the classes a supplementary character of that category matches.
    /// </summary>
    internal static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => 'A',
        UnicodeCategory.LowercaseLetter => 'a',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u01BB',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '0',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.SpaceSeparator => '\u2000',
        UnicodeCategory.LineSeparator => '\u2028',
        UnicodeCategory.ParagraphSeparator => '\u2029',
        UnicodeCategory.Control => '\u0001',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A7',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A9',
        _ => '\u0378', // OtherNotAssigned (Surrogate cannot occur for a combined code point)
    };
}
