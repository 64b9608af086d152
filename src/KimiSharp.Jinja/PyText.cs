using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Python 3 string semantics on top of .NET UTF-16 strings. Python strings are sequences of code points,
/// so lengths, indices and slices here count code points (an emoji is one element, not two), whitespace
/// is <c>str.isspace()</c>'s set, and ordering is by code point (which differs from ordinal UTF-16 order
/// for astral characters versus U+E000..U+FFFF).
/// </summary>
internal static class PyText
{
    /// <summary>Python's <c>str.isspace()</c> (also what <c>\s</c> matches in a <c>str</c> regex).</summary>
    public static bool IsSpace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D => true,
        >= 0x1C and <= 0x20 => true,
        0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    public static bool IsSpace(char c) => IsSpace((int)c);

    public static bool HasSurrogates(string s)
    {
        foreach (char c in s)
        {
            if (char.IsSurrogate(c))
                return true;
        }
        return false;
    }

    /// <summary>Number of code points (Python <c>len(str)</c>).</summary>
    public static int Length(string s)
    {
        if (!HasSurrogates(s))
            return s.Length;
        int n = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                i++;
            n++;
        }
        return n;
    }

    /// <summary>Splits a string into its code points, each as a (1 or 2 char) string.</summary>
    public static List<string> Elements(string s)
    {
        var list = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                list.Add(s[i].ToString());
            }
        }
        return list;
    }

    /// <summary>Enumerates code points; lone surrogates come out as themselves (as Python keeps them).</summary>
    public static IEnumerable<int> CodePoints(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                yield return char.ConvertToUtf32(s[i], s[i + 1]);
                i++;
            }
            else
            {
                yield return s[i];
            }
        }
    }

    /// <summary>Converts a code-point index to a UTF-16 index (index may equal the length).</summary>
    public static int Utf16Index(string s, int cpIndex)
    {
        if (!HasSurrogates(s))
            return cpIndex;
        int cp = 0, i = 0;
        while (i < s.Length && cp < cpIndex)
        {
            i += char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            cp++;
        }
        return i;
    }

    /// <summary>Converts a UTF-16 index to a code-point index.</summary>
    public static int CodePointIndex(string s, int utf16Index)
    {
        if (utf16Index < 0 || !HasSurrogates(s))
            return utf16Index;
        int cp = 0;
        for (int i = 0; i < utf16Index && i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                i++;
            cp++;
        }
        return cp;
    }

    /// <summary>Compares by code point, as Python does (ordinal UTF-16 order differs for astral characters).</summary>
    public static int Compare(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            char x = a[i], y = b[i];
            if (x == y)
                continue;
            // Surrogates (U+D800..U+DFFF) encode code points above U+FFFF, so they sort after U+E000..U+FFFF.
            int wx = char.IsSurrogate(x) ? x + 0x2000 : x >= 0xE000 ? x - 0x800 : x;
            int wy = char.IsSurrogate(y) ? y + 0x2000 : y >= 0xE000 ? y - 0x800 : y;
            return wx < wy ? -1 : 1;
        }
        return a.Length.CompareTo(b.Length);
    }

    public static readonly IComparer<string> CodePointComparer = Comparer<string>.Create(Compare);

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int start = 0, end = s.Length;
        if (chars is null)
        {
            if (left)
                while (start < end && IsSpace(s[start])) start++;
            if (right)
                while (end > start && IsSpace(s[end - 1])) end--;
        }
        else
        {
            var set = new HashSet<int>(CodePoints(chars));
            if (!HasSurrogates(s) && !HasSurrogates(chars))
            {
                if (left)
                    while (start < end && set.Contains(s[start])) start++;
                if (right)
                    while (end > start && set.Contains(s[end - 1])) end--;
            }
            else
            {
                var el = Elements(s);
                int a = 0, b = el.Count;
                if (left)
                    while (a < b && set.Contains(char.ConvertToUtf32(el[a], 0))) a++;
                if (right)
                    while (b > a && set.Contains(char.ConvertToUtf32(el[b - 1], 0))) b--;
                return string.Concat(el.Skip(a).Take(b - a));
            }
        }
        return s.Substring(start, end - start);
    }

    /// <summary>Python <c>str.split(sep=None, maxsplit)</c>.</summary>
    public static List<string> Split(string s, string? sep, int maxSplit)
    {
        var result = new List<string>();
        if (sep is null)
        {
            int i = 0, n = s.Length;
            while (true)
            {
                while (i < n && IsSpace(s[i])) i++;
                if (i >= n)
                    break;
                if (maxSplit >= 0 && result.Count == maxSplit)
                {
                    // The remainder keeps its trailing whitespace, as CPython does.
                    result.Add(s[i..]);
                    break;
                }
                int j = i;
                while (j < n && !IsSpace(s[j])) j++;
                result.Add(s[i..j]);
                i = j;
            }
            return result;
        }
        if (sep.Length == 0)
            throw new PyException("ValueError", "empty separator");
        int pos = 0;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            int k = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (k < 0)
                break;
            result.Add(s[pos..k]);
            pos = k + sep.Length;
        }
        result.Add(s[pos..]);
        return result;
    }

    /// <summary>Python <c>str.rsplit(sep=None, maxsplit)</c>.</summary>
    public static List<string> RSplit(string s, string? sep, int maxSplit)
    {
        var result = new List<string>();
        if (sep is null)
        {
            int i = s.Length;
            while (true)
            {
                while (i > 0 && IsSpace(s[i - 1])) i--;
                if (i <= 0)
                    break;
                if (maxSplit >= 0 && result.Count == maxSplit)
                {
                    result.Add(s[..i]);
                    break;
                }
                int j = i;
                while (j > 0 && !IsSpace(s[j - 1])) j--;
                result.Add(s[j..i]);
                i = j;
            }
            result.Reverse();
            return result;
        }
        if (sep.Length == 0)
            throw new PyException("ValueError", "empty separator");
        int end = s.Length;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            int k = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (k < 0)
                break;
            result.Add(s[(k + sep.Length)..end]);
            end = k;
        }
        result.Add(s[..end]);
        result.Reverse();
        return result;
    }

    private static bool IsLineBreak(char c) =>
        c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    /// <summary>Python <c>str.splitlines(keepends)</c>.</summary>
    public static List<string> SplitLines(string s, bool keepEnds = false)
    {
        var lines = new List<string>();
        int i = 0, start = 0;
        while (i < s.Length)
        {
            if (!IsLineBreak(s[i]))
            {
                i++;
                continue;
            }
            int eol = i;
            i += s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
            lines.Add(keepEnds ? s[start..i] : s[start..eol]);
            start = i;
        }
        if (start < s.Length)
            lines.Add(s[start..]);
        return lines;
    }

    // .NET has only the simple (1:1) case mappings; Python applies the full ones (ß -> SS, ﬁ -> FI, final
    // sigma...). PyCaseTables holds the differences, generated from CPython's unicodedata.
    public static string Upper(string s)
    {
        if (IsAscii(s))
            return s.ToUpperInvariant();
        var sb = new StringBuilder(s.Length);
        foreach (int cp in CodePoints(s))
            sb.Append(UpperFull(cp));
        return sb.ToString();
    }

    public static string Lower(string s)
    {
        if (IsAscii(s))
            return s.ToLowerInvariant();
        var cps = CodePoints(s).ToArray();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < cps.Length; i++)
            sb.Append(LowerAt(cps, i));
        return sb.ToString();
    }

    private static string UpperFull(int cp) => PyCaseTables.Upper.TryGetValue(cp, out var u) ? u : SimpleCase(cp, upper: true);

    private static string TitleFull(int cp) => PyCaseTables.Title.TryGetValue(cp, out var t) ? t : UpperFull(cp);

    /// <summary>CPython's lower_ucs4: full lowercase mapping, with Σ becoming ς at the end of a word.</summary>
    private static string LowerAt(int[] cps, int i)
    {
        int cp = cps[i];
        if (cp == 0x130)
            return "i\u0307";
        if (cp == 0x3A3)
            return IsFinalSigma(cps, i) ? "\u03C2" : "\u03C3";
        return SimpleCase(cp, upper: false);
    }

    /// <summary>Σ is final when preceded by a cased letter and not followed by one (case-ignorables skipped).</summary>
    private static bool IsFinalSigma(int[] cps, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(cps[j]))
            j--;
        if (j < 0 || !IsCased(cps[j]))
            return false;
        j = i + 1;
        while (j < cps.Length && IsCaseIgnorable(cps[j]))
            j++;
        return j == cps.Length || !IsCased(cps[j]);
    }

    private static string SimpleCase(int cp, bool upper)
    {
        if (cp is >= 0xD800 and <= 0xDFFF)
            return ((char)cp).ToString();
        if (cp < 0x10000)
        {
            char c = (char)cp;
            return (upper ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c)).ToString();
        }
        string s = char.ConvertFromUtf32(cp);
        return upper ? s.ToUpperInvariant() : s.ToLowerInvariant();
    }

    /// <summary>Unicode's Cased property: Lu, Ll, Lt, Other_Lowercase, Other_Uppercase.</summary>
    internal static bool IsCased(int cp)
    {
        if (cp is >= 0xD800 and <= 0xDFFF)
            return false;
        var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
        if (cat is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter)
            return true;
        foreach (var (first, last) in PyCaseTables.OtherCased)
        {
            if (cp < first)
                return false;
            if (cp <= last)
                return true;
        }
        return false;
    }

    /// <summary>Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk, and the MidLetter/MidNumLet/Single_Quote marks.</summary>
    private static bool IsCaseIgnorable(int cp)
    {
        if (cp is 0x27 or 0x2E or 0x3A or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A)
            return true;
        if (cp is >= 0xD800 and <= 0xDFFF)
            return false;
        return CharUnicodeInfo.GetUnicodeCategory(cp) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;
    }

    /// <summary>Python <c>str.title()</c>: a character after a cased one is lowered, otherwise title-cased.</summary>
    public static string Title(string s)
    {
        var cps = CodePoints(s).ToArray();
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        for (int i = 0; i < cps.Length; i++)
        {
            sb.Append(previousCased ? LowerAt(cps, i) : TitleFull(cps[i]));
            previousCased = IsCased(cps[i]);
        }
        return sb.ToString();
    }

    /// <summary>Python 3.8+ <c>str.capitalize()</c>: first character title-cased, the rest lowered.</summary>
    public static string Capitalize(string s)
    {
        var cps = CodePoints(s).ToArray();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < cps.Length; i++)
            sb.Append(i == 0 ? TitleFull(cps[i]) : LowerAt(cps, i));
        return sb.ToString();
    }

    /// <summary>Upper-cases a single code point string (used by the <c>title</c> filter's <c>item[0].upper()</c>).</summary>
    public static string UpperElement(string element) =>
        element.Length == 1 && char.IsSurrogate(element[0]) ? element : UpperFull(char.ConvertToUtf32(element, 0));

    public static bool IsAscii(string s)
    {
        foreach (char c in s)
        {
            if (c > 0x7F)
                return false;
        }
        return true;
    }

    /// <summary>Python's notion of a printable code point (used by <c>repr</c>).</summary>
    public static bool IsPrintable(int cp)
    {
        if (cp == ' ')
            return true;
        if (cp is >= 0xD800 and <= 0xDFFF)
            return false;
        var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    /// <summary>Python <c>repr(str)</c>.</summary>
    public static string Repr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2);
        sb.Append(quote);
        foreach (int cp in CodePoints(s))
        {
            switch (cp)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (cp == quote)
                        sb.Append('\\').Append(quote);
                    else if (cp < 0x20 || cp == 0x7F)
                        sb.Append("\\x").Append(cp.ToString("x2", CultureInfo.InvariantCulture));
                    else if (cp < 0x7F)
                        sb.Append((char)cp);
                    else if (IsPrintable(cp))
                        sb.Append(char.ConvertFromUtf32(cp));
                    else if (cp <= 0xFF)
                        sb.Append("\\x").Append(cp.ToString("x2", CultureInfo.InvariantCulture));
                    else if (cp <= 0xFFFF)
                        sb.Append("\\u").Append(cp.ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append("\\U").Append(cp.ToString("x8", CultureInfo.InvariantCulture));
                    break;
            }
        }
        sb.Append(quote);
        return sb.ToString();
    }

    /// <summary>
    /// Python <c>repr(float)</c>: shortest round-trip digits, fixed notation for decimal exponents in
    /// [-4, 16), otherwise scientific with a signed exponent of at least two digits; integral values keep ".0".
    /// </summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
            return "nan";
        if (double.IsPositiveInfinity(d))
            return "inf";
        if (double.IsNegativeInfinity(d))
            return "-inf";
        if (d == 0)
            return double.IsNegative(d) ? "-0.0" : "0.0";

        // "R" gives the shortest round-trip digits; re-layout them the way CPython's float_repr does.
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = shortest[0] == '-';
        if (negative)
            shortest = shortest[1..];
        string mantissa = shortest;
        int exp10 = 0;
        int e = shortest.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            mantissa = shortest[..e];
            exp10 = int.Parse(shortest[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        }
        int dot = mantissa.IndexOf('.');
        string digits = dot >= 0 ? mantissa.Remove(dot, 1) : mantissa;
        int pointPos = (dot >= 0 ? dot : mantissa.Length) + exp10; // value = 0.digits * 10^pointPos after trimming
        // Normalise: strip leading zeros (adjusting the point) and trailing zeros.
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0')
        {
            lead++;
            pointPos--;
        }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0)
            digits = "0";

        var sb = new StringBuilder();
        if (negative)
            sb.Append('-');
        if (pointPos <= -4 || pointPos > 16)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            int exp = pointPos - 1;
            sb.Append('e').Append(exp < 0 ? '-' : '+').Append(Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (pointPos <= 0)
        {
            sb.Append("0.").Append('0', -pointPos).Append(digits);
        }
        else if (pointPos >= digits.Length)
        {
            sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
        }
        else
        {
            sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
        }
        return sb.ToString();
    }

    /// <summary>Python <c>str.find</c> / <c>rfind</c> with optional code-point start/end; returns a code-point index.</summary>
    public static int Find(string s, string sub, int? start, int? end, bool reverse)
    {
        int len = Length(s);
        var (a, b) = ClampRange(len, start, end);
        if (b - a < Length(sub))
            return -1;
        int ua = Utf16Index(s, a), ub = Utf16Index(s, b);
        int k = reverse
            ? s.LastIndexOf(sub, ub == 0 ? 0 : ub - 1, ub - ua, StringComparison.Ordinal)
            : s.IndexOf(sub, ua, ub - ua, StringComparison.Ordinal);
        if (reverse && sub.Length == 0)
            k = ub;
        if (k >= 0 && k + sub.Length > ub)
            k = -1;
        return k < 0 ? -1 : CodePointIndex(s, k);
    }

    /// <summary>Python <c>str.count(sub)</c> (non-overlapping).</summary>
    public static int Count(string s, string sub)
    {
        if (sub.Length == 0)
            return Length(s) + 1;
        int n = 0, i = 0;
        while ((i = s.IndexOf(sub, i, StringComparison.Ordinal)) >= 0)
        {
            n++;
            i += sub.Length;
        }
        return n;
    }

    /// <summary>Python <c>str.replace(old, new, count)</c>.</summary>
    public static string Replace(string s, string oldValue, string newValue, long count)
    {
        if (newValue.Length > oldValue.Length)
        {
            // Refuse an over-long result before building it.
            long matches = oldValue.Length == 0 ? s.Length + 1L : Count(s, oldValue);
            if (count >= 0) matches = Math.Min(matches, count);
            RenderBudget.CheckString(s.Length + matches * (newValue.Length - oldValue.Length));
        }
        if (count < 0)
        {
            if (oldValue.Length == 0)
                return InsertBetweenElements(s, newValue, long.MaxValue);
            return s.Replace(oldValue, newValue, StringComparison.Ordinal);
        }
        if (oldValue.Length == 0)
            return InsertBetweenElements(s, newValue, count);
        var sb = new StringBuilder();
        int pos = 0;
        for (long n = 0; n < count; n++)
        {
            int k = s.IndexOf(oldValue, pos, StringComparison.Ordinal);
            if (k < 0)
                break;
            sb.Append(s, pos, k - pos).Append(newValue);
            pos = k + oldValue.Length;
        }
        sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    private static string InsertBetweenElements(string s, string insert, long count)
    {
        // "ab".replace("", "-") == "-a-b-": the empty string matches before every code point and at the end.
        var sb = new StringBuilder();
        long n = 0;
        foreach (string el in Elements(s))
        {
            if (n < count)
            {
                sb.Append(insert);
                n++;
            }
            sb.Append(el);
        }
        if (n < count)
            sb.Append(insert);
        return sb.ToString();
    }

    /// <summary>Normalises Python slice bounds for a sequence of length <paramref name="len"/> (step 1).</summary>
    public static (int Start, int End) ClampRange(int len, int? start, int? end)
    {
        int a = start ?? 0, b = end ?? len;
        if (a < 0) a = Math.Max(0, a + len);
        if (b < 0) b = Math.Max(0, b + len);
        a = Math.Min(a, len);
        b = Math.Min(b, len);
        return (a, Math.Max(a, b));
    }

    /// <summary>Python slice index computation: the indices selected by <c>[start:stop:step]</c>.</summary>
    public static List<int> SliceIndices(int len, long? start, long? stop, long? step)
    {
        var (lo, hi, st) = SliceBounds(len, start, stop, step);
        var idx = new List<int>();
        if (st > 0)
            for (long i = lo; i < hi; i += st) idx.Add((int)i);
        else
            for (long i = lo; i > hi; i += st) idx.Add((int)i);
        return idx;
    }

    /// <summary>Python's <c>slice.indices(len)</c>: normalised (start, stop, step).</summary>
    public static (long Start, long Stop, long Step) SliceBounds(long len, long? start, long? stop, long? step)
    {
        long st = step ?? 1;
        if (st == 0)
            throw new PyException("ValueError", "slice step cannot be zero");
        long lo, hi;
        if (st > 0)
        {
            lo = start is null ? 0 : Adjust(start.Value, len, 0, len);
            hi = stop is null ? len : Adjust(stop.Value, len, 0, len);
        }
        else
        {
            lo = start is null ? len - 1 : Adjust(start.Value, len, -1, len - 1);
            hi = stop is null ? -1 : Adjust(stop.Value, len, -1, len - 1);
        }
        return (lo, hi, st);

        static long Adjust(long v, long len, long min, long max)
        {
            if (v < 0)
                v += len;
            return Math.Clamp(v, min, max);
        }
    }
}

/// <summary>A Python-level exception raised inside builtins; the interpreter adds the template location.</summary>
internal sealed class PyException(string pythonType, string message) : Exception(message)
{
    public string PythonType { get; } = pythonType;
}
