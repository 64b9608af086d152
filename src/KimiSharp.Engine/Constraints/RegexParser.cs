namespace KimiSharp.Engine.Constraints;

/// <summary>A pattern the regular-expression subset cannot compile (bad syntax, or a feature it lacks).</summary>
internal sealed class PatternException(string message) : Exception(message);

/// <summary>
/// A set of Unicode scalar values (code points without the surrogates, which a decoded JSON string never holds),
/// as sorted disjoint inclusive ranges.
/// </summary>
internal sealed class CharSet
{
    public const int MaxCodePoint = 0x10FFFF;
    public readonly (int Lo, int Hi)[] Ranges;

    private CharSet((int Lo, int Hi)[] ranges) => Ranges = ranges;

    public static readonly CharSet All = Of((0, MaxCodePoint));
    public static readonly CharSet Digit = Of(('0', '9'));
    public static readonly CharSet Word = Of(('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z'));
    /// <summary>ECMA-262 WhiteSpace and LineTerminator (what <c>\s</c> matches in a JSON Schema pattern).</summary>
    public static readonly CharSet Space = Of((0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
        (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF));
    /// <summary>What <c>.</c> matches: everything but the ECMA-262 line terminators.</summary>
    public static readonly CharSet Dot = Of((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)).Negate();

    public static CharSet Single(int c) => Of((c, c));

    public static CharSet Of(params (int Lo, int Hi)[] ranges)
    {
        var list = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in ranges)
        {
            // Surrogates never occur in decoded text: cut them out.
            if (lo < 0xD800) list.Add((lo, Math.Min(hi, 0xD7FF)));
            if (hi > 0xDFFF) list.Add((Math.Max(lo, 0xE000), hi));
        }
        list.RemoveAll(r => r.Lo > r.Hi);
        list.Sort((a, b) => a.Lo.CompareTo(b.Lo));
        var merged = new List<(int Lo, int Hi)>();
        foreach (var r in list)
        {
            if (merged.Count > 0 && r.Lo <= merged[^1].Hi + 1) merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, r.Hi));
            else merged.Add(r);
        }
        return new CharSet([.. merged]);
    }

    public CharSet Union(CharSet other) => Of([.. Ranges, .. other.Ranges]);

    public CharSet Negate()
    {
        var result = new List<(int Lo, int Hi)>();
        int next = 0;
        foreach (var (lo, hi) in Ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxCodePoint) result.Add((next, MaxCodePoint));
        return Of([.. result]);
    }
}

/// <summary>Regular-expression syntax tree.</summary>
internal abstract class RegexNode;
internal sealed class RegexChars(CharSet set) : RegexNode { public readonly CharSet Set = set; }
internal sealed class RegexConcat(List<RegexNode> parts) : RegexNode { public readonly List<RegexNode> Parts = parts; }
internal sealed class RegexAlternation(List<RegexNode> branches) : RegexNode { public readonly List<RegexNode> Branches = branches; }
/// <summary><c>Max</c> = -1: unbounded.</summary>
internal sealed class RegexRepeat(RegexNode body, int min, int max) : RegexNode
{
    public readonly RegexNode Body = body;
    public readonly int Min = min;
    public readonly int Max = max;
}

/// <summary>
/// Parses the JSON Schema (ECMA-262) regular-expression subset: literals, escapes (<c>\d \w \s \D \W \S</c>,
/// <c>\t \n \r \f \v \0 \xHH \uHHHH</c>, escaped punctuation), classes with ranges and negation, <c>.</c>, groups
/// (<c>( )</c>, <c>(?: )</c>, <c>(?&lt;name&gt; )</c>), alternation, the quantifiers <c>? * + {m} {m,} {m,n}</c> (lazy
/// forms match the same strings), and the anchors <c>^</c>/<c>$</c> at the start/end of the pattern or of one of its
/// top-level alternatives. As JSON Schema specifies, a pattern matches anywhere in the string unless anchored: an
/// unanchored side gets an implicit "any characters". Refused (a <see cref="PatternException"/> naming it):
/// lookaround, backreferences, word boundaries, <c>\p{…}</c>, inline flags, anchors elsewhere.
/// </summary>
internal sealed class RegexParser
{
    /// <summary>Largest repeat count in <c>{m,n}</c> (the automaton unrolls it).</summary>
    public const int MaxRepeat = 1000;

    private readonly int[] _text;
    private int _pos;

    private RegexParser(string pattern)
    {
        var codePoints = new List<int>(pattern.Length);
        foreach (var rune in pattern.EnumerateRunes()) codePoints.Add(rune.Value);
        _text = [.. codePoints];
    }

    /// <summary>The language of <paramref name="pattern"/> as a search (unanchored sides accept any text).</summary>
    public static RegexNode Parse(string pattern)
    {
        var parser = new RegexParser(pattern);
        var branches = new List<RegexNode>();
        var anyText = new RegexRepeat(new RegexChars(CharSet.All), 0, -1);
        while (true)
        {
            bool anchoredStart = parser.Eat('^');
            var body = parser.ParseSequence(topLevel: true, out bool anchoredEnd);
            var parts = new List<RegexNode>();
            if (!anchoredStart) parts.Add(anyText);
            parts.Add(body);
            if (!anchoredEnd) parts.Add(anyText);
            branches.Add(new RegexConcat(parts));
            if (parser.AtEnd) break;
            if (!parser.Eat('|')) throw parser.Error("unbalanced ')'");
        }
        return branches.Count == 1 ? branches[0] : new RegexAlternation(branches);
    }

    private bool AtEnd => _pos >= _text.Length;
    private int Peek(int ahead = 0) => _pos + ahead < _text.Length ? _text[_pos + ahead] : -1;

    private bool Eat(int c)
    {
        if (Peek() != c) return false;
        _pos++;
        return true;
    }

    private PatternException Error(string what) => new($"{what} at offset {_pos}");

    private RegexNode ParseAlternation()
    {
        var branches = new List<RegexNode> { ParseSequence(topLevel: false, out _) };
        while (Eat('|')) branches.Add(ParseSequence(topLevel: false, out _));
        return branches.Count == 1 ? branches[0] : new RegexAlternation(branches);
    }

    private RegexNode ParseSequence(bool topLevel, out bool anchoredEnd)
    {
        anchoredEnd = false;
        var parts = new List<RegexNode>();
        while (!AtEnd && Peek() != '|' && Peek() != ')')
        {
            int c = Peek();
            if (c == '$')
            {
                _pos++;
                if (topLevel && (AtEnd || Peek() == '|')) { anchoredEnd = true; break; }
                throw Error("the anchor '$' is only supported at the end of the pattern or of a top-level alternative");
            }
            if (c == '^') throw Error("the anchor '^' is only supported at the start of the pattern or of a top-level alternative");
            var atom = ParseAtom();
            parts.Add(ParseQuantifiers(atom));
        }
        return parts.Count == 1 ? parts[0] : new RegexConcat(parts);
    }

    private RegexNode ParseQuantifiers(RegexNode atom)
    {
        while (true)
        {
            int min, max;
            int start = _pos;
            switch (Peek())
            {
                case '*': _pos++; (min, max) = (0, -1); break;
                case '+': _pos++; (min, max) = (1, -1); break;
                case '?': _pos++; (min, max) = (0, 1); break;
                case '{':
                    if (!TryParseBraces(out min, out max)) { _pos = start; return atom; }
                    break;
                default: return atom;
            }
            if (max >= 0 && max < min) throw Error($"quantifier {{{min},{max}}} has its bounds out of order");
            if (min > MaxRepeat || max > MaxRepeat) throw Error($"repeat counts above {MaxRepeat} are not supported");
            Eat('?'); // lazy: the same set of strings
            if (Peek() is '*' or '+' or '?' || (Peek() == '{' && LooksLikeBraces())) throw Error("nothing to repeat");
            atom = new RegexRepeat(atom, min, max);
        }
    }

    private bool LooksLikeBraces()
    {
        int save = _pos;
        bool ok = TryParseBraces(out _, out _);
        _pos = save;
        return ok;
    }

    /// <summary><c>{m}</c>, <c>{m,}</c>, <c>{m,n}</c>; anything else is a literal brace (as ECMA-262 Annex B allows).</summary>
    private bool TryParseBraces(out int min, out int max)
    {
        min = max = 0;
        if (!Eat('{')) return false;
        if (!TryNumber(out min)) return false;
        if (Eat('}')) { max = min; return true; }
        if (!Eat(',')) return false;
        if (Eat('}')) { max = -1; return true; }
        if (!TryNumber(out max) || !Eat('}')) return false;
        return true;
    }

    private bool TryNumber(out int value)
    {
        value = 0;
        int start = _pos;
        while (Peek() is >= '0' and <= '9')
        {
            value = (int)Math.Min((long)value * 10 + (Peek() - '0'), int.MaxValue);
            _pos++;
        }
        return _pos > start;
    }

    private RegexNode ParseAtom()
    {
        int c = Peek();
        _pos++;
        switch (c)
        {
            case '(':
            {
                if (Eat('?'))
                {
                    if (Eat(':')) { }
                    else if (Peek() == '<' && Peek(1) is not ('=' or '!'))
                    {
                        _pos++;
                        while (!AtEnd && Peek() != '>') _pos++;
                        if (!Eat('>')) throw Error("unterminated group name");
                    }
                    else if (Peek() is '=' or '!' || (Peek() == '<' && Peek(1) is '=' or '!'))
                        throw Error("lookaround assertions are not supported");
                    else throw Error("inline flags and other (?…) groups are not supported");
                }
                var inner = ParseAlternation();
                if (!Eat(')')) throw Error("missing ')'");
                return inner;
            }
            case ')': throw Error("unbalanced ')'");
            case '*' or '+' or '?': throw Error("nothing to repeat");
            case '[': return new RegexChars(ParseClass());
            case '.': return new RegexChars(CharSet.Dot);
            case '\\': return new RegexChars(ParseEscape(inClass: false));
            default: return new RegexChars(CharSet.Single(c));
        }
    }

    private CharSet ParseClass()
    {
        bool negate = Eat('^');
        var set = CharSet.Of();
        while (true)
        {
            if (AtEnd) throw Error("missing ']'");
            if (Eat(']')) break; // so [] matches nothing and [^] anything, as in ECMA-262
            var low = ClassAtom(out int lowChar);
            if (Peek() == '-' && Peek(1) != ']' && Peek(1) != -1)
            {
                _pos++;
                var high = ClassAtom(out int highChar);
                if (lowChar < 0 || highChar < 0)
                {
                    // [\w-.] : beside a shorthand class the dash is a literal (ECMA-262 Annex B, as browsers read it).
                    set = set.Union(low).Union(CharSet.Single('-')).Union(high);
                    continue;
                }
                if (highChar < lowChar) throw Error("class range out of order");
                set = set.Union(CharSet.Of((lowChar, highChar)));
            }
            else set = set.Union(low);
        }
        return negate ? set.Negate() : set;
    }

    /// <summary>One class member; <paramref name="single"/> is its character, or -1 for a shorthand class.</summary>
    private CharSet ClassAtom(out int single)
    {
        int c = Peek();
        _pos++;
        if (c != '\\')
        {
            single = c;
            return CharSet.Single(c);
        }
        var set = ParseEscape(inClass: true);
        single = set.Ranges.Length == 1 && set.Ranges[0].Lo == set.Ranges[0].Hi ? set.Ranges[0].Lo : -1;
        return set;
    }

    private CharSet ParseEscape(bool inClass)
    {
        if (AtEnd) throw Error("pattern ends with '\\'");
        int c = Peek();
        _pos++;
        switch (c)
        {
            case 'd': return CharSet.Digit;
            case 'D': return CharSet.Digit.Negate();
            case 'w': return CharSet.Word;
            case 'W': return CharSet.Word.Negate();
            case 's': return CharSet.Space;
            case 'S': return CharSet.Space.Negate();
            case 't': return CharSet.Single('\t');
            case 'n': return CharSet.Single('\n');
            case 'r': return CharSet.Single('\r');
            case 'f': return CharSet.Single('\f');
            case 'v': return CharSet.Single('\v');
            case 'b' when inClass: return CharSet.Single('\b');
            case 'b' or 'B': throw Error("word boundaries (\\b, \\B) are not supported");
            case '0' when Peek() is < '0' or > '9': return CharSet.Single(0);
            case >= '1' and <= '9': throw Error("backreferences are not supported");
            case 'k': throw Error("named backreferences are not supported");
            case 'p' or 'P': throw Error("Unicode property escapes (\\p{…}) are not supported");
            case 'c': throw Error("control escapes (\\cX) are not supported");
            case 'x': return CharSet.Single(Hex(2));
            case 'u':
            {
                int unit = Hex(4);
                // A surrogate pair written as two escapes is one character.
                if (unit is >= 0xD800 and <= 0xDBFF && Peek() == '\\' && Peek(1) == 'u')
                {
                    int save = _pos;
                    _pos += 2;
                    int low = Hex(4);
                    if (low is >= 0xDC00 and <= 0xDFFF) return CharSet.Single(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                    _pos = save;
                }
                if (unit is >= 0xD800 and <= 0xDFFF) throw Error("a lone surrogate escape matches no character of a JSON string");
                return CharSet.Single(unit);
            }
            default:
                if (c < 0x80 && char.IsAsciiLetterOrDigit((char)c)) throw Error($"unknown escape '\\{(char)c}'");
                return CharSet.Single(c); // escaped punctuation or other character: itself
        }
    }

    private int Hex(int digits)
    {
        int value = 0;
        for (int i = 0; i < digits; i++)
        {
            int c = Peek();
            int d = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) throw Error($"expected {digits} hex digits");
            value = value * 16 + d;
            _pos++;
        }
        return value;
    }
}
