using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

/// <summary>A token; <see cref="Pos"/> is an offset into the normalised source, <see cref="Literal"/> the parsed value of literals.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Pos, JinjaValue? Literal = null)
{
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;
    public bool IsOp(string op) => Kind == TokenKind.Operator && Value == op;
}

/// <summary>Maps source offsets to 1-based line and column.</summary>
internal sealed class SourceMap
{
    private readonly List<int> _lineStarts = [0];

    public SourceMap(string source)
    {
        for (int i = 0; i < source.Length; i++)
        {
            if (source[i] == '\n')
                _lineStarts.Add(i + 1);
        }
    }

    public (int Line, int Column) Locate(int pos)
    {
        int idx = _lineStarts.BinarySearch(pos);
        if (idx < 0)
            idx = ~idx - 1;
        return (idx + 1, pos - _lineStarts[idx] + 1);
    }
}

/// <summary>
/// Jinja2's lexer, reproduced rule for rule because whitespace handling must be byte-identical:
/// <list type="bullet">
/// <item>newlines are normalised to "\n" and one trailing newline is dropped (keep_trailing_newline=False);</item>
/// <item><c>{%-</c>/<c>{{-</c>/<c>{#-</c> strip all preceding whitespace, <c>-%}</c>/<c>-}}</c>/<c>-#}</c> all following whitespace;</item>
/// <item>trim_blocks drops one newline after <c>%}</c> and <c>#}</c> (not after <c>}}</c>, nor after <c>{% raw %}</c>);</item>
/// <item>lstrip_blocks removes spaces/tabs between a line start and <c>{%</c>/<c>{#</c> (never before <c>{{</c>);
/// a <c>+</c> after the opening or before the closing delimiter disables lstrip / trim for that tag.</item>
/// </list>
/// </summary>
internal sealed class Lexer
{
    private readonly string _src;
    private readonly JinjaOptions _options;
    private readonly SourceMap _map;
    private readonly string? _name;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private bool _lineStarting = true;

    private Lexer(string source, JinjaOptions options, SourceMap map, string? name)
    {
        _src = source;
        _options = options;
        _map = map;
        _name = name;
    }

    /// <summary>Normalises newlines like Jinja2 (<c>\r\n</c>, <c>\r</c> become <c>\n</c>; one trailing newline dropped).</summary>
    public static string Normalize(string source, bool keepTrailingNewline)
    {
        string s = source.Contains('\r') ? source.Replace("\r\n", "\n").Replace('\r', '\n') : source;
        if (!keepTrailingNewline && s.EndsWith('\n'))
            s = s[..^1];
        return s;
    }

    public static List<Token> Tokenize(string normalizedSource, JinjaOptions options, SourceMap map, string? name)
    {
        var lexer = new Lexer(normalizedSource, options, map, name);
        lexer.Run();
        return lexer._tokens;
    }

    private TemplateException Error(string message, int pos)
    {
        var (line, col) = _map.Locate(pos);
        return new TemplateException(TemplateErrorKind.Syntax, message, line, col, _name, "TemplateSyntaxError");
    }

    private void Run()
    {
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0)
            {
                _tokens.Add(new Token(TokenKind.Data, _src[_pos..], _pos));
                _pos = _src.Length;
                break;
            }

            string text = _src[_pos..tag];
            char kind = _src[tag + 1];
            char sign = tag + 2 < _src.Length && _src[tag + 2] is '-' or '+' ? _src[tag + 2] : '\0';
            int rawEnd = kind == '%' ? MatchRawBegin(tag) : -1;

            text = StripBefore(text, sign, isVariable: kind == '{');
            if (text.Length > 0)
                _tokens.Add(new Token(TokenKind.Data, text, _pos));

            if (rawEnd >= 0)
            {
                _pos = rawEnd;
                _lineStarting = _src[rawEnd - 1] == '\n';
                LexRawBody(tag);
                continue;
            }

            int afterOpen = tag + 2 + (sign != '\0' ? 1 : 0);
            switch (kind)
            {
                case '#':
                    LexComment(tag, afterOpen);
                    break;
                case '%':
                    _tokens.Add(new Token(TokenKind.BlockBegin, "{%", tag));
                    _pos = afterOpen;
                    _lineStarting = false;
                    if (!LexInsideTag(isBlock: true))
                        return;
                    break;
                default:
                    _tokens.Add(new Token(TokenKind.VariableBegin, "{{", tag));
                    _pos = afterOpen;
                    _lineStarting = false;
                    if (!LexInsideTag(isBlock: false))
                        return;
                    break;
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", _src.Length));
    }

    private int FindTagStart(int from)
    {
        int i = from;
        while (true)
        {
            i = _src.IndexOf('{', i);
            if (i < 0 || i + 1 >= _src.Length)
                return -1;
            if (_src[i + 1] is '{' or '%' or '#')
                return i;
            i++;
        }
    }

    /// <summary>
    /// Applies the whitespace rules to the text before a tag: "-" strips all trailing whitespace; otherwise,
    /// with lstrip_blocks and a block/comment tag not marked "+", strips spaces/tabs back to the line start.
    /// </summary>
    private string StripBefore(string text, char sign, bool isVariable)
    {
        if (sign == '-')
            return PyText.Strip(text, null, left: false, right: true);
        if (sign != '+' && _options.LStripBlocks && !isVariable)
        {
            int lpos = text.LastIndexOf('\n') + 1;
            if (lpos > 0 || _lineStarting)
            {
                bool onlyBlanks = true;
                for (int i = lpos; i < text.Length; i++)
                {
                    if (text[i] is not (' ' or '\t'))
                    {
                        onlyBlanks = false;
                        break;
                    }
                }
                if (onlyBlanks)
                    return text[..lpos];
            }
        }
        return text;
    }

    /// <summary>Matches <c>{%[-+]?\s*raw\s*(-%}\s*|%})</c> at <paramref name="at"/>; returns the end offset or -1.</summary>
    private int MatchRawBegin(int at)
    {
        int i = at + 2;
        if (i < _src.Length && _src[i] is '-' or '+')
            i++;
        i = SkipSpace(i);
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0)
            return -1;
        i = SkipSpace(i + 3);
        if (string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0)
            return SkipSpace(i + 3);
        // Note: no trim_blocks newline removal after "{% raw %}" in Jinja2's rule.
        if (string.CompareOrdinal(_src, i, "%}", 0, 2) == 0)
            return i + 2;
        return -1;
    }

    private int SkipSpace(int i)
    {
        while (i < _src.Length && PyText.IsSpace(_src[i]))
            i++;
        return i;
    }

    private void LexRawBody(int rawBeginPos)
    {
        int search = _pos;
        while (true)
        {
            int k = _src.IndexOf("{%", search, StringComparison.Ordinal);
            if (k < 0)
                throw Error("Missing end of raw directive", rawBeginPos);
            int i = k + 2;
            char sign = i < _src.Length && _src[i] is '-' or '+' ? _src[i] : '\0';
            if (sign != '\0')
                i++;
            i = SkipSpace(i);
            if (string.CompareOrdinal(_src, i, "endraw", 0, 6) == 0)
            {
                int j = SkipSpace(i + 6);
                int end = MatchTagEnd(j, isBlock: true);
                if (end >= 0)
                {
                    string text = StripBefore(_src[_pos..k], sign, isVariable: false);
                    if (text.Length > 0)
                        _tokens.Add(new Token(TokenKind.Data, text, _pos));
                    _pos = end;
                    _lineStarting = _src[end - 1] == '\n';
                    return;
                }
            }
            search = k + 1;
        }
    }

    /// <summary>
    /// Matches a closing delimiter at <paramref name="i"/>: <c>+%}</c>, <c>-%}</c> plus whitespace, or <c>%}</c>
    /// plus one newline under trim_blocks (blocks); <c>-}}</c> plus whitespace or <c>}}</c> (variables).
    /// </summary>
    private int MatchTagEnd(int i, bool isBlock)
    {
        string end = isBlock ? "%}" : "}}";
        if (isBlock && string.CompareOrdinal(_src, i, "+%}", 0, 3) == 0)
            return i + 3;
        if (i < _src.Length && _src[i] == '-' && string.CompareOrdinal(_src, i + 1, end, 0, 2) == 0)
            return SkipSpace(i + 3);
        if (string.CompareOrdinal(_src, i, end, 0, 2) == 0)
        {
            i += 2;
            if (isBlock && _options.TrimBlocks && i < _src.Length && _src[i] == '\n')
                i++;
            return i;
        }
        return -1;
    }

    private void LexComment(int tagPos, int i)
    {
        for (; i < _src.Length; i++)
        {
            if (_src[i] == '+' && string.CompareOrdinal(_src, i + 1, "#}", 0, 2) == 0)
            {
                Finish(i + 3);
                return;
            }
            if (_src[i] == '-' && string.CompareOrdinal(_src, i + 1, "#}", 0, 2) == 0)
            {
                Finish(SkipSpace(i + 3));
                return;
            }
            if (_src[i] == '#' && i + 1 < _src.Length && _src[i + 1] == '}')
            {
                int end = i + 2;
                if (_options.TrimBlocks && end < _src.Length && _src[end] == '\n')
                    end++;
                Finish(end);
                return;
            }
        }
        throw Error("Missing end of comment tag", tagPos);

        void Finish(int end)
        {
            _pos = end;
            _lineStarting = _src[end - 1] == '\n';
        }
    }

    /// <summary>Tokenizes the inside of <c>{% %}</c> or <c>{{ }}</c>; returns false if the source ended first.</summary>
    private bool LexInsideTag(bool isBlock)
    {
        var balance = new Stack<char>();
        while (true)
        {
            if (balance.Count == 0)
            {
                int end = MatchTagEnd(_pos, isBlock);
                if (end >= 0)
                {
                    _tokens.Add(new Token(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, isBlock ? "%}" : "}}", _pos));
                    _pos = end;
                    _lineStarting = _src[end - 1] == '\n';
                    return true;
                }
            }
            _pos = SkipSpace(_pos);
            if (_pos >= _src.Length)
            {
                _tokens.Add(new Token(TokenKind.Eof, "", _src.Length));
                return false;
            }
            if (balance.Count == 0 && MatchTagEnd(_pos, isBlock) >= 0)
                continue;

            char c = _src[_pos];
            int start = _pos;
            if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c == '_' || char.IsLetter(c) || char.IsSurrogate(c))
            {
                int i = _pos + 1;
                while (i < _src.Length && IsNameChar(_src[i]))
                    i++;
                _tokens.Add(new Token(TokenKind.Name, _src[_pos..i], start));
                _pos = i;
            }
            else if (c is '\'' or '"')
            {
                LexString(c);
            }
            else
            {
                string? op = MatchOperator();
                if (op is null)
                    throw Error($"unexpected char {PyText.Repr(c.ToString())} at {_pos}", _pos);
                switch (op)
                {
                    case "(": case "[": case "{":
                        balance.Push(op[0]);
                        break;
                    case ")": case "]": case "}":
                        char expected = op[0] switch { ')' => '(', ']' => '[', _ => '{' };
                        if (balance.Count == 0)
                            throw Error($"unexpected '{op}'", _pos);
                        char open = balance.Pop();
                        if (open != expected)
                        {
                            char closer = open switch { '(' => ')', '[' => ']', _ => '}' };
                            throw Error($"unexpected '{op}', expected '{closer}'", _pos);
                        }
                        break;
                }
                _tokens.Add(new Token(TokenKind.Operator, op, start));
                _pos += op.Length;
            }
        }
    }

    private static bool IsNameChar(char c) =>
        c == '_' || char.IsLetterOrDigit(c) || char.IsSurrogate(c) ||
        CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.ConnectorPunctuation or UnicodeCategory.LetterNumber;

    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ];

    private string? MatchOperator()
    {
        foreach (string op in Operators)
        {
            if (string.CompareOrdinal(_src, _pos, op, 0, op.Length) == 0)
                return op;
        }
        return null;
    }

    private void LexNumber()
    {
        int start = _pos;
        // Float: (?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?[eE][+\-]?(\d+_)*\d+|\.(\d+_)*\d+)
        if (start == 0 || _src[start - 1] != '.')
        {
            int i = ScanDigits(start);
            int j = i;
            bool isFloat = false;
            if (j < _src.Length && _src[j] == '.' && j + 1 < _src.Length && char.IsAsciiDigit(_src[j + 1]))
            {
                j = ScanDigits(j + 1);
                isFloat = true;
            }
            if (j < _src.Length && _src[j] is 'e' or 'E')
            {
                int k = j + 1;
                if (k < _src.Length && _src[k] is '+' or '-')
                    k++;
                if (k < _src.Length && char.IsAsciiDigit(_src[k]))
                {
                    j = ScanDigits(k);
                    isFloat = true;
                }
            }
            if (isFloat)
            {
                string text = _src[start..j];
                double value = double.Parse(text.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture);
                _tokens.Add(new Token(TokenKind.Float, text, start, new JinjaFloat(value)));
                _pos = j;
                return;
            }
        }

        // Integer: 0b..., 0o..., 0x..., [1-9](_?\d)*, 0(_?0)*
        int end;
        long result;
        if (_src[start] == '0' && start + 1 < _src.Length && char.ToLowerInvariant(_src[start + 1]) is 'b' or 'o' or 'x')
        {
            char radixChar = char.ToLowerInvariant(_src[start + 1]);
            int radix = radixChar switch { 'b' => 2, 'o' => 8, _ => 16 };
            end = start + 2;
            var digits = new StringBuilder();
            while (end < _src.Length)
            {
                char ch = _src[end];
                if (ch == '_' && end + 1 < _src.Length && IsRadixDigit(_src[end + 1], radix))
                {
                    end++;
                    continue;
                }
                if (!IsRadixDigit(ch, radix))
                    break;
                digits.Append(ch);
                end++;
            }
            if (digits.Length == 0)
            {
                // "0b" without digits lexes as the integer 0 followed by a name, as in Jinja2.
                end = start + 1;
                result = 0;
            }
            else
            {
                result = ParseRadix(digits.ToString(), radix, start);
            }
        }
        else if (_src[start] == '0')
        {
            end = start + 1;
            while (end + 1 < _src.Length && ((_src[end] == '_' && _src[end + 1] == '0') || _src[end] == '0'))
                end += _src[end] == '_' ? 2 : 1;
            while (end < _src.Length && _src[end] == '0')
                end++;
            result = 0;
        }
        else
        {
            end = ScanDigits(start);
            string digits = _src[start..end].Replace("_", "");
            if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out result))
            {
                // Python ints are unbounded; ours stop at PyOps.MaxIntBits.
                var big = System.Numerics.BigInteger.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
                if (big.GetBitLength() > PyOps.MaxIntBits)
                    throw Error($"integer literal too large (KimiSharp supports integers up to {PyOps.MaxIntBits} bits)", start);
                _tokens.Add(new Token(TokenKind.Integer, _src[start..end], start, new JinjaBigInt(big)));
                _pos = end;
                return;
            }
        }
        _tokens.Add(new Token(TokenKind.Integer, _src[start..end], start, new JinjaInt(result)));
        _pos = end;
    }

    private long ParseRadix(string digits, int radix, int pos)
    {
        try
        {
            return Convert.ToInt64(digits, radix);
        }
        catch (OverflowException)
        {
            throw Error("integer literal too large (KimiSharp supports 64-bit integers)", pos);
        }
    }

    private static bool IsRadixDigit(char c, int radix) => radix switch
    {
        2 => c is '0' or '1',
        8 => c is >= '0' and <= '7',
        _ => char.IsAsciiHexDigit(c),
    };

    /// <summary>Scans <c>(\d+_)*\d+</c>.</summary>
    private int ScanDigits(int i)
    {
        while (i < _src.Length)
        {
            if (char.IsAsciiDigit(_src[i]))
                i++;
            else if (_src[i] == '_' && i + 1 < _src.Length && char.IsAsciiDigit(_src[i + 1]) && i > 0 && char.IsAsciiDigit(_src[i - 1]))
                i++;
            else
                break;
        }
        return i;
    }

    private void LexString(char quote)
    {
        int start = _pos;
        int i = _pos + 1;
        while (i < _src.Length && _src[i] != quote)
            i += _src[i] == '\\' ? 2 : 1;
        if (i >= _src.Length)
            throw Error($"unexpected char {PyText.Repr(quote.ToString())} at {start}", start);
        string body = _src[(start + 1)..i];
        string value;
        try
        {
            value = DecodePythonEscapes(body);
        }
        catch (FormatException e)
        {
            throw Error(e.Message, start);
        }
        _tokens.Add(new Token(TokenKind.String, _src[start..(i + 1)], start, new JinjaString(value)));
        _pos = i + 1;
    }

    /// <summary>
    /// Jinja2 decodes string literals with <c>body.encode("ascii", "backslashreplace").decode("unicode-escape")</c>;
    /// doing exactly that (rather than a friendlier escape decoder) reproduces its corner cases.
    /// </summary>
    internal static string DecodePythonEscapes(string body)
    {
        if (!body.Contains('\\'))
            return body;

        var ascii = new StringBuilder(body.Length);
        foreach (char c in body)
        {
            if (c < 0x80)
                ascii.Append(c);
            else
                ascii.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
        }
        // Astral characters arrive as surrogate pairs "\udXXX\udXXX", which the decoder below re-pairs.
        string s = ascii.ToString();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (i + 1 >= s.Length)
                throw new FormatException("'unicodeescape' codec can't decode byte 0x5c: \\ at end of string");
            char e = s[++i];
            switch (e)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case >= '0' and <= '7':
                {
                    int v = e - '0';
                    for (int k = 0; k < 2 && i + 1 < s.Length && s[i + 1] is >= '0' and <= '7'; k++)
                        v = v * 8 + (s[++i] - '0');
                    AppendCodePoint(sb, v);
                    break;
                }
                case 'x':
                    AppendCodePoint(sb, ReadHex(s, ref i, 2, "\\xXX"));
                    break;
                case 'u':
                    AppendCodePoint(sb, ReadHex(s, ref i, 4, "\\uXXXX"));
                    break;
                case 'U':
                {
                    int cp = ReadHex(s, ref i, 8, "\\UXXXXXXXX");
                    if (cp > 0x10FFFF)
                        throw new FormatException("'unicodeescape' codec can't decode bytes: illegal Unicode character");
                    AppendCodePoint(sb, cp);
                    break;
                }
                case 'N':
                    throw new FormatException("\\N{...} escapes are not supported in string literals (KimiSharp limitation)");
                default:
                    // Unknown escapes are kept verbatim (Python warns but keeps them).
                    sb.Append('\\').Append(e);
                    break;
            }
        }
        return sb.ToString();
    }

    private static int ReadHex(string s, ref int i, int count, string form)
    {
        if (i + count >= s.Length)
            throw new FormatException($"'unicodeescape' codec can't decode bytes: truncated {form} escape");
        int v = 0;
        for (int k = 0; k < count; k++)
        {
            char h = s[i + 1 + k];
            if (!char.IsAsciiHexDigit(h))
                throw new FormatException($"'unicodeescape' codec can't decode bytes: truncated {form} escape");
            v = v * 16 + Convert.ToInt32(h.ToString(), 16);
        }
        i += count;
        return v;
    }

    private static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000)
            sb.Append((char)cp); // lone surrogates pass through; consecutive ones re-form a pair
        else
            sb.Append(char.ConvertFromUtf32(cp));
    }
}
