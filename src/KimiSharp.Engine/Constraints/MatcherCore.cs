namespace KimiSharp.Engine.Constraints;

/// <summary>
/// The recognizer: advances a set of threads (an NFA over stacks of <see cref="Frame"/>s) by one symbol.
/// Invariant: every thread it produces can still be completed (nodes are only entered when their MinDepth fits
/// the depth budget, optional keys and items likewise, and partial escapes/UTF-8/numbers are only accepted while
/// some completion exists), so a non-dead state always has a continuation.
/// </summary>
internal static class MatcherCore
{
    public const int TokenSymbolBase = 256;

    // String phases.
    private const int SNormal = 0, SEsc = 1, SU1 = 2, SU2 = 3, SU2D = 4, SU3 = 5, SU3H = 6, SU4 = 7, SU4H = 8,
        SNeedBackslash = 9, SNeedU = 10, SL1 = 11, SL2 = 12, SL3 = 13, SL4 = 14,
        SC1 = 15, SC2 = 16, SC3 = 17, SC2E0 = 18, SC2ED = 19, SC3F0 = 20, SC3F4 = 21;

    // Number phases (bit 8 of A: negative).
    private const int NMinus = 0, NZero = 1, NInt = 2, NDot = 3, NFrac = 4, NE = 5, NESign = 6, NExp = 7;
    private const int NegativeFlag = 0x100;

    // Object and array phases.
    private const int OOpen = 0, OAfterKey = 1, OColon = 2, OColonSpace = 3, OAfterValue = 4, OComma = 5, OCommaSpace = 6;
    private const int AOpen = 0, AAfterValue = 1, AComma = 2, ACommaSpace = 3;

    private const long FnvOffset = unchecked((long)0xcbf29ce484222325UL);
    private const long FnvPrime = 0x100000001b3L;

    /// <summary>A free-form object's key.</summary>
    private static readonly StringNode KeyString = new(0, int.MaxValue) { MinDepth = 0 };

    public static Frame[] Start(GNode root, int budget) =>
        [new Frame(Frame.Done, GrammarAnalysis.Seal(new SeqNode([root])), FrameKind.Seq, budget, 0, 0, 0, null)];

    /// <summary>The threads after <paramref name="symbol"/>; empty when none survives.</summary>
    public static Frame[] Advance(Frame[] threads, int symbol, List<Frame> scratch)
    {
        scratch.Clear();
        foreach (var t in threads) Step(t, symbol, scratch);
        if (scratch.Count == 0) return [];
        if (scratch.Count == 1) return threads.Length == 1 && ReferenceEquals(threads[0], scratch[0]) ? threads : [scratch[0]];
        // Merge equal threads (ambiguous anyOf branches that converged), keeping the set small.
        var result = new List<Frame>(scratch.Count);
        if (scratch.Count <= 8)
        {
            foreach (var f in scratch)
            {
                bool seen = false;
                foreach (var g in result) if (g.Equals(f)) { seen = true; break; }
                if (!seen) result.Add(f);
            }
        }
        else
        {
            var set = new HashSet<Frame>();
            foreach (var f in scratch) if (set.Add(f)) result.Add(f);
        }
        return [.. result];
    }

    /// <summary>
    /// Every thread is between characters of a string: any plain-content token of at most <paramref name="remaining"/>
    /// code points is valid here (for some thread) and leaves each thread it suits in the same phase.
    /// </summary>
    public static bool InPlainString(Frame[] threads, out int remaining)
    {
        remaining = 0;
        if (threads.Length == 0) return false;
        foreach (var f in threads)
        {
            if (f.Kind is not (FrameKind.String or FrameKind.FreeKey) || f.A != SNormal) return false;
            var node = (StringNode)f.Node!;
            // A pattern's automaton moves with every character, unless it has reached a state that accepts anything.
            if (node.Pattern is { } pattern && !pattern.IsUniversal((int)(f.X >> 32))) return false;
            remaining = Math.Max(remaining, node.MaxLength == int.MaxValue ? int.MaxValue : node.MaxLength - f.B);
        }
        return true;
    }

    /// <summary>Some thread may end here.</summary>
    public static bool IsAccepting(Frame[] threads)
    {
        foreach (var t in threads) if (CanEnd(t)) return true;
        return false;
    }

    private static bool CanEnd(Frame f)
    {
        while (true)
        {
            switch (f.Kind)
            {
                case FrameKind.Done:
                    return true;
                case FrameKind.Seq:
                    var parts = ((SeqNode)f.Node!).Parts;
                    for (int i = f.A; i < parts.Length; i++) if (!parts[i].Nullable) return false;
                    break;
                case FrameKind.Literal:
                    if (!((LiteralNode)f.Node!).Trie.IsTerminal(f.A)) return false;
                    break;
                case FrameKind.Number:
                    if (!NumberComplete(f)) return false;
                    break;
                default:
                    return false;
            }
            f = f.Parent!;
        }
    }

    /// <summary>Starts matching <paramref name="node"/> with its first symbol; <paramref name="next"/> follows it.</summary>
    private static void Enter(GNode node, Frame next, int budget, int symbol, List<Frame> output)
    {
        if (node.MinDepth > budget) return;
        switch (node)
        {
            case UnionNode u:
                foreach (var alternative in u.Alternatives) Enter(alternative, next, budget, symbol, output);
                break;
            case SeqNode s:
                if (s.Parts.Length == 0) Step(next, symbol, output);
                else Enter(s.Parts[0], s.Parts.Length > 1 ? new Frame(next, s, FrameKind.Seq, budget, 1, 0, 0, null) : next, budget, symbol, output);
                break;
            case EmptyNode:
                Step(next, symbol, output);
                break;
            case RefNode r:
                Enter(r.Target, next, budget, symbol, output);
                break;
            case JsonRootNode j:
                Enter(j.Inner, next, j.MaxDepth, symbol, output);
                break;
            case LiteralNode l:
                LiteralAdvance(l, SymbolTrie.Root, next, symbol, output);
                break;
            case StringNode s:
                if (symbol == '"') output.Add(new Frame(next, s, FrameKind.String, 0, SNormal, 0, s.Pattern is { } p ? (long)p.Dfa.Start << 32 : 0, null));
                break;
            case NumberNode n:
                NumberStart(n, next, symbol, output);
                break;
            case ObjectNode o:
                if (symbol == '{') output.Add(new Frame(next, o, FrameKind.Object, budget, OOpen, 0, 0, null));
                break;
            case ArrayNode a:
                if (symbol == '[') output.Add(new Frame(next, a, FrameKind.Array, budget, AOpen, 0, 0, null));
                break;
        }
    }

    private static void Step(Frame f, int symbol, List<Frame> output)
    {
        switch (f.Kind)
        {
            case FrameKind.Done:
                return;
            case FrameKind.Seq:
                {
                    var s = (SeqNode)f.Node!;
                    int i = f.A;
                    var next = i + 1 < s.Parts.Length ? new Frame(f.Parent, s, FrameKind.Seq, f.Budget, i + 1, 0, 0, null) : f.Parent!;
                    Enter(s.Parts[i], next, f.Budget, symbol, output);
                    return;
                }
            case FrameKind.Literal:
                {
                    var l = (LiteralNode)f.Node!;
                    LiteralAdvance(l, f.A, f.Parent!, symbol, output);
                    if (l.Trie.IsTerminal(f.A)) Step(f.Parent!, symbol, output);
                    return;
                }
            case FrameKind.Key:
                KeyAdvance((ObjectNode)f.Node!, f.A, f.B, f.Budget, f.Parent!, symbol, output);
                return;
            case FrameKind.String:
            case FrameKind.FreeKey:
                StringStep(f, symbol, output);
                return;
            case FrameKind.Number:
                NumberStep(f, symbol, output);
                return;
            case FrameKind.Object:
                ObjectStep(f, symbol, output);
                return;
            case FrameKind.Array:
                ArrayStep(f, symbol, output);
                return;
        }
    }

    private static void LiteralAdvance(LiteralNode l, int node, Frame parent, int symbol, List<Frame> output)
    {
        var trie = l.Trie;
        int child = trie.Child(node, symbol);
        if (child < 0) return;
        // A literal that cannot go on is finished at once: its parent takes over.
        if (trie.IsTerminal(child) && !trie.HasChildren(child)) output.Add(parent);
        else output.Add(new Frame(parent, l, FrameKind.Literal, 0, child, 0, 0, null));
    }

    // ---------------------------------------------------------------- strings

    /// <summary>String byte outcomes.</summary>
    public const int StringReject = 0, StringContinue = 1, StringClosed = 2;

    /// <summary>
    /// One byte inside a string, as a pure transition on (phase, length, key hash): lets the mask walk the vocabulary
    /// through string content without allocating frames.
    /// </summary>
    public static int StringByte(StringNode node, bool key, ref int phase, ref int count, ref long hash, int symbol)
    {
        if (symbol > 255) return StringReject;
        if (key) hash = unchecked((hash ^ symbol) * FnvPrime);
        int next;
        switch (phase)
        {
            case SNormal:
                if (symbol == '"')
                    return count < node.MinLength || (node.Pattern is { } pattern && !pattern.Dfa.IsAccepting((int)(hash >> 32)))
                        ? StringReject : StringClosed;
                if (symbol < 0x20) return StringReject;
                if (node.CountsLength)
                {
                    if (count >= node.MaxLength) return StringReject;
                    count = node.MaxLength == int.MaxValue ? Math.Min(count + 1, node.MinLength) : count + 1;
                }
                next = symbol switch
                {
                    '\\' => SEsc,
                    < 0x80 => SNormal,
                    >= 0xC2 and <= 0xDF => SC1,
                    0xE0 => SC2E0,
                    0xED => SC2ED,
                    >= 0xE1 and <= 0xEF => SC2,
                    0xF0 => SC3F0,
                    >= 0xF1 and <= 0xF3 => SC3,
                    0xF4 => SC3F4,
                    _ => -1,
                };
                break;
            case SEsc:
                next = symbol switch
                {
                    '"' or '\\' or '/' or 'b' or 'f' or 'n' or 'r' or 't' => SNormal,
                    'u' => SU1,
                    _ => -1,
                };
                break;
            case SU1: next = !IsHex(symbol) ? -1 : symbol is 'D' or 'd' ? SU2D : SU2; break;
            case SU2: next = IsHex(symbol) ? SU3 : -1; break;
            case SU2D:
                // \uD8xx–\uDBxx start a surrogate pair; \uDCxx–\uDFxx alone would be invalid.
                next = symbol switch
                {
                    >= '0' and <= '7' => SU3,
                    '8' or '9' or 'a' or 'b' or 'A' or 'B' => SU3H,
                    _ => -1,
                };
                break;
            case SU3: next = IsHex(symbol) ? SU4 : -1; break;
            case SU3H: next = IsHex(symbol) ? SU4H : -1; break;
            case SU4: next = IsHex(symbol) ? SNormal : -1; break;
            case SU4H: next = IsHex(symbol) ? SNeedBackslash : -1; break;
            case SNeedBackslash: next = symbol == '\\' ? SNeedU : -1; break;
            case SNeedU: next = symbol == 'u' ? SL1 : -1; break;
            case SL1: next = symbol is 'D' or 'd' ? SL2 : -1; break;
            case SL2: next = symbol is >= 'c' and <= 'f' or >= 'C' and <= 'F' ? SL3 : -1; break;
            case SL3: next = IsHex(symbol) ? SL4 : -1; break;
            case SL4: next = IsHex(symbol) ? SNormal : -1; break;
            case SC1: next = symbol is >= 0x80 and <= 0xBF ? SNormal : -1; break;
            case SC2: next = symbol is >= 0x80 and <= 0xBF ? SC1 : -1; break;
            case SC3: next = symbol is >= 0x80 and <= 0xBF ? SC2 : -1; break;
            case SC2E0: next = symbol is >= 0xA0 and <= 0xBF ? SC1 : -1; break;
            case SC2ED: next = symbol is >= 0x80 and <= 0x9F ? SC1 : -1; break;
            case SC3F0: next = symbol is >= 0x90 and <= 0xBF ? SC2 : -1; break;
            case SC3F4: next = symbol is >= 0x80 and <= 0x8F ? SC2 : -1; break;
            default: next = -1; break;
        }
        if (next < 0) return StringReject;
        if (node.Pattern is { } p && !PatternByte(p, phase, next, symbol, count, ref hash)) return StringReject;
        phase = next;
        return StringContinue;
    }

    /// <summary>
    /// Runs a string's pattern automaton over the decoded characters: X holds the DFA state (high half) and the
    /// character being decoded (low half: UTF-8 bits, or \u hex digits, a pending high surrogate in the top 16 bits).
    /// A byte is refused unless some character it can still become leads to a state that can finish the string.
    /// </summary>
    private static bool PatternByte(StringPattern p, int before, int after, int symbol, int count, ref long x)
    {
        int state = (int)(x >> 32);
        uint acc = (uint)x;
        switch (after)
        {
            case SNormal:
            {
                int codePoint = before switch
                {
                    SNormal => symbol,
                    SEsc => symbol switch { 'b' => '\b', 'f' => '\f', 'n' => '\n', 'r' => '\r', 't' => '\t', _ => symbol },
                    SU4 => (int)(acc << 4 | (uint)HexValue(symbol)),
                    SL4 => SupplementaryBase((int)(acc >> 16)) + (int)(((acc & 0xFFFF) << 4 | (uint)HexValue(symbol)) - 0xDC00),
                    _ => (int)(acc << 6 | (uint)(symbol & 0x3F)), // SC1: last UTF-8 continuation byte
                };
                int target = p.Dfa.Next(state, codePoint);
                if (target < 0 || !p.Viable(target, count)) return false;
                x = (long)target << 32;
                return true;
            }
            case SEsc:
            case SU1:
                // \u can still spell any character.
                return p.AnyViable(state, count, 0, CharSet.MaxCodePoint);
            case SU2 or SU2D or SU3 or SU3H or SU4 or SU4H:
            {
                acc = acc << 4 | (uint)HexValue(symbol);
                int digits = after is SU2 or SU2D ? 1 : after is SU3 or SU3H ? 2 : 3;
                int lo = (int)acc << 4 * (4 - digits), hi = lo + (1 << 4 * (4 - digits)) - 1;
                bool viable = p.AnyViable(state, count, lo, hi);
                int highLo = Math.Max(lo, 0xD800), highHi = Math.Min(hi, 0xDBFF);
                if (!viable && highLo <= highHi)
                    viable = p.AnyViable(state, count, SupplementaryBase(highLo), SupplementaryBase(highHi) + 0x3FF);
                if (!viable) return false;
                break;
            }
            case SNeedBackslash:
            {
                int high = (int)(acc << 4 | (uint)HexValue(symbol));
                if (!p.AnyViable(state, count, SupplementaryBase(high), SupplementaryBase(high) + 0x3FF)) return false;
                acc = (uint)high << 16;
                break;
            }
            case SNeedU or SL1 or SL2:
                // Nothing narrows yet: the low surrogate's first digit is always D.
                if (after == SL2) acc = (acc & 0xFFFF0000) | 0xD;
                break;
            case SL3 or SL4:
            {
                uint low = (acc & 0xFFFF) << 4 | (uint)HexValue(symbol);
                int digits = after == SL3 ? 2 : 3, shift = 4 * (4 - digits);
                int lowLo = Math.Max((int)low << shift, 0xDC00), lowHi = ((int)low << shift) + (1 << shift) - 1;
                int @base = SupplementaryBase((int)(acc >> 16)) - 0xDC00;
                if (!p.AnyViable(state, count, @base + lowLo, @base + lowHi)) return false;
                acc = (acc & 0xFFFF0000) | low;
                break;
            }
            default:
            {
                // Inside a UTF-8 sequence: the characters it can still become form a range.
                int remaining = after == SC1 ? 1 : after is SC2 or SC2E0 or SC2ED ? 2 : 3;
                bool lead = before == SNormal;
                acc = lead ? (uint)(symbol & (symbol >= 0xF0 ? 0x07 : symbol >= 0xE0 ? 0x0F : 0x1F)) : acc << 6 | (uint)(symbol & 0x3F);
                int lo = (int)acc << 6 * remaining, hi = lo + (1 << 6 * remaining) - 1;
                if (lead) lo = Math.Max(lo, remaining == 1 ? 0x80 : remaining == 2 ? 0x800 : 0x10000); // no overlong forms
                if (!p.AnyViable(state, count, lo, hi)) return false;
                break;
            }
        }
        x = (long)state << 32 | acc;
        return true;
    }

    private static int SupplementaryBase(int highSurrogate) => 0x10000 + ((highSurrogate - 0xD800) << 10);

    private static int HexValue(int c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static void StringStep(Frame f, int symbol, List<Frame> output)
    {
        var node = (StringNode)f.Node!;
        int phase = f.A, count = f.B;
        long hash = f.X;
        switch (StringByte(node, f.Kind == FrameKind.FreeKey, ref phase, ref count, ref hash, symbol))
        {
            case StringClosed:
                CloseString(f, hash, output);
                break;
            case StringContinue:
                // Plain content of an unbounded string leaves the frame as it was: share it.
                if (phase == f.A && count == f.B && hash == f.X) output.Add(f);
                else output.Add(new Frame(f.Parent, node, f.Kind, 0, phase, count, hash, null));
                break;
        }
    }

    /// <summary>The single thread is inside a string: its frame.</summary>
    public static Frame? StringFrame(Frame[] threads) =>
        threads.Length == 1 && threads[0].Kind is FrameKind.String or FrameKind.FreeKey ? threads[0] : null;

    /// <summary>The threads after string frame <paramref name="f"/> closes with key hash <paramref name="hash"/>.</summary>
    public static Frame[] AfterClose(Frame f, long hash, List<Frame> scratch)
    {
        scratch.Clear();
        CloseString(f, hash, scratch);
        return [.. scratch];
    }

    private static bool IsHex(int c) => c is >= '0' and <= '9' or >= 'a' and <= 'f' or >= 'A' and <= 'F';

    private static void CloseString(Frame f, long hash, List<Frame> output)
    {
        var parent = f.Parent!;
        if (f.Kind == FrameKind.String)
        {
            output.Add(parent);
            return;
        }
        // A free-form key: refuse one the object already has (by hash of its bytes).
        if (KeySet.Contains(parent.Seen, hash)) return;
        output.Add(new Frame(parent.Parent, parent.Node, parent.Kind, parent.Budget, parent.A, parent.B, 0, KeySet.Add(parent.Seen, hash)));
    }

    // ---------------------------------------------------------------- numbers

    private static int Digit(int symbol) => symbol is >= '0' and <= '9' ? symbol - '0' : -1;

    // A = phase | negative flag | integer digits << 9; B = digits in the current part; X (bounded numbers only) = all
    // digits so far as one integer (integer part then fraction).
    private const int IntDigitsShift = 9;

    private static void NumberStart(NumberNode n, Frame next, int symbol, List<Frame> output)
    {
        if (symbol == '-')
        {
            if (!NegativeViable(n)) return;
            output.Add(new Frame(next, n, FrameKind.Number, 0, NMinus | NegativeFlag, 0, 0, null));
            return;
        }
        int d = Digit(symbol);
        if (d < 0 || !Viable(n, false, d, 1, -1)) return;
        output.Add(new Frame(next, n, FrameKind.Number, 0, (d == 0 ? NZero : NInt) | 1 << IntDigitsShift, 1, n.Bounded ? d : 0, null));
    }

    private static bool NegativeViable(NumberNode n)
    {
        if (!n.Bounded) return true;
        for (int d = 0; d <= 9; d++) if (Viable(n, true, d, 1, -1)) return true;
        return false;
    }

    /// <summary>Some number of <paramref name="n"/> starts like this (tests an unbounded node trivially).</summary>
    internal static bool Satisfiable(NumberNode n) => NegativeViable(n) || Enumerable.Range(0, 10).Any(d => Viable(n, false, d, 1, -1));

    private static void NumberStep(Frame f, int symbol, List<Frame> output)
    {
        var n = (NumberNode)f.Node!;
        int phase = f.A & 0xFF, sign = f.A & NegativeFlag, intDigits = f.A >> IntDigitsShift, count = f.B;
        bool negative = sign != 0, real = n.RealBounded;
        long scaled = f.X;
        int d = Digit(symbol);
        int next = -1, nextCount = 0, nextInt = intDigits;
        long nextScaled = scaled;
        switch (phase)
        {
            case NMinus:
                if (d >= 0 && Viable(n, true, d, 1, -1)) { next = d == 0 ? NZero : NInt; nextCount = 1; nextInt = 1; nextScaled = d; }
                break;
            case NZero:
            case NInt:
                if (d >= 0)
                {
                    if (phase == NInt && count < n.MaxIntegerDigits && (!real || count < NumberNode.RealDigits)
                        && Viable(n, negative, scaled * 10 + d, count + 1, -1))
                    { next = NInt; nextCount = count + 1; nextInt = count + 1; nextScaled = scaled * 10 + d; }
                }
                else if (!n.Integer && symbol == '.' && (!real || Viable(n, negative, scaled, intDigits, 0))) next = NDot;
                else if (!n.Integer && !real && !n.NoExponent && symbol is 'e' or 'E') next = NE;
                break;
            case NDot:
                if (d >= 0 && (!real || Viable(n, negative, scaled * 10 + d, intDigits, 1))) { next = NFrac; nextCount = 1; nextScaled = scaled * 10 + d; }
                break;
            case NFrac:
                if (d >= 0)
                {
                    if (count < n.MaxFractionDigits && (!real || Viable(n, negative, scaled * 10 + d, intDigits, count + 1)))
                    { next = NFrac; nextCount = count + 1; nextScaled = scaled * 10 + d; }
                }
                else if (!real && !n.NoExponent && symbol is 'e' or 'E') next = NE;
                break;
            case NE:
                if (symbol is '+' or '-') next = NESign;
                else if (d >= 0) { next = NExp; nextCount = 1; }
                break;
            case NESign:
                if (d >= 0) { next = NExp; nextCount = 1; }
                break;
            case NExp:
                if (d >= 0 && count < n.MaxExponentDigits) { next = NExp; nextCount = count + 1; }
                break;
        }
        if (next >= 0)
            output.Add(new Frame(f.Parent, n, FrameKind.Number, 0, next | sign | nextInt << IntDigitsShift, nextCount, n.Bounded ? nextScaled : 0, null));
        // A number ends where something else begins: hand the symbol to what follows.
        if (NumberComplete(f)) Step(f.Parent!, symbol, output);
    }

    private static bool NumberComplete(Frame f)
    {
        int phase = f.A & 0xFF;
        if (phase is not (NZero or NInt or NFrac or NExp)) return false;
        var n = (NumberNode)f.Node!;
        bool negative = (f.A & NegativeFlag) != 0;
        if (n.IntegerBounded)
        {
            long value = negative ? -f.X : f.X;
            return (n.Minimum is not long min || value >= min) && (n.Maximum is not long max || value <= max)
                && (n.MultipleOf is not long step || value % step == 0);
        }
        if (n.RealBounded)
        {
            decimal value = f.X / Pow10(phase == NFrac ? f.B : 0);
            if (negative) value = -value;
            return InRealBounds(n, value);
        }
        return true;
    }

    private static readonly long[] PowersOfTen = Enumerable.Range(0, 19).Select(e => (long)Math.Pow(10, e)).ToArray();
    private static readonly decimal[] DecimalPowers = Enumerable.Range(0, 29).Select(e => e == 0 ? 1m : Enumerable.Repeat(10m, e).Aggregate((a, b) => a * b)).ToArray();

    private static decimal Pow10(int e) => e >= 0 ? DecimalPowers[e] : 1m / DecimalPowers[-e];

    /// <summary>
    /// Some number within the bounds and digit limits starts with this sign and these digits: <paramref name="scaled"/>
    /// holds all of them, <paramref name="intDigits"/> before the point, <paramref name="fracDigits"/> after it
    /// (−1: no point yet).
    /// </summary>
    private static bool Viable(NumberNode n, bool negative, long scaled, int intDigits, int fracDigits)
    {
        if (n.IntegerBounded) return IntegerViable(n, negative, scaled, intDigits);
        if (n.RealBounded) return RealViable(n, negative, scaled, intDigits, fracDigits);
        return true;
    }

    /// <summary>Some integer within the bounds and the digit limit starts with this sign, magnitude and digit count.</summary>
    private static bool IntegerViable(NumberNode n, bool negative, long magnitude, int digits)
    {
        long min = n.Minimum ?? long.MinValue, max = n.Maximum ?? long.MaxValue;
        if (magnitude == 0) return min <= 0 && max >= 0; // 0 is a multiple of anything
        for (int extra = 0; digits + extra <= n.MaxIntegerDigits; extra++)
        {
            long lo = magnitude * PowersOfTen[extra], hi = lo + PowersOfTen[extra] - 1;
            long a = negative ? -hi : lo, b = negative ? -lo : hi;
            if (ContainsMultiple(Math.Max(a, min), Math.Min(b, max), n.MultipleOf ?? 1)) return true;
        }
        return false;
    }

    /// <summary>[lo, hi] holds a multiple of <paramref name="step"/> (|lo|, |hi| ≤ 10^18, so nothing overflows).</summary>
    private static bool ContainsMultiple(long lo, long hi, long step)
    {
        if (lo > hi) return false;
        long q = lo / step; // truncates towards zero: for negative lo that is already the ceiling
        if (q * step < lo) q++;
        return q * step <= hi;
    }

    /// <summary>
    /// The reachable magnitudes from a prefix are the multiples of the finest step (10^−remaining fraction digits) in
    /// an interval: for each possible count of further integer digits, or within the current fraction. Exact (decimal).
    /// </summary>
    private static bool RealViable(NumberNode n, bool negative, long scaled, int intDigits, int fracDigits)
    {
        if (fracDigits < 0)
        {
            int maxExtra = scaled == 0 ? 0 : Math.Min(n.MaxIntegerDigits, NumberNode.RealDigits) - intDigits;
            for (int extra = 0; extra <= maxExtra; extra++)
            {
                int r = Math.Min(NumberNode.RealDigits - intDigits - extra, n.MaxFractionDigits);
                decimal step = Pow10(-r), lo = scaled * Pow10(extra), hi = lo + Pow10(extra) - step;
                if (GridIntersects(n, negative, lo, hi, step)) return true;
            }
            return false;
        }
        decimal x = scaled / Pow10(fracDigits);
        int more = Math.Min(NumberNode.RealDigits - intDigits, n.MaxFractionDigits) - fracDigits;
        if (fracDigits == 0 && more <= 0) return false; // a point needs a digit
        if (more <= 0) return GridIntersects(n, negative, x, x, Pow10(-fracDigits));
        decimal fine = Pow10(-fracDigits - more);
        return GridIntersects(n, negative, x, x + Pow10(-fracDigits) - fine, fine);
    }

    /// <summary>A multiple of <paramref name="step"/> in magnitudes [lo, hi] (signed by <paramref name="negative"/>) is within the bounds.</summary>
    private static bool GridIntersects(NumberNode n, bool negative, decimal lo, decimal hi, decimal step)
    {
        decimal a = negative ? -hi : lo, b = negative ? -lo : hi;
        if (n.RealMinimum is decimal min && min > a) a = min;
        if (n.RealMaximum is decimal max && max < b) b = max;
        if (a > b) return false;
        decimal first = Math.Ceiling(a / step) * step;
        if (n.RealMinimumExclusive && first == n.RealMinimum) first += step;
        return first <= b && !(n.RealMaximumExclusive && first == n.RealMaximum);
    }

    private static bool InRealBounds(NumberNode n, decimal value) =>
        (n.RealMinimum is not decimal min || (n.RealMinimumExclusive ? value > min : value >= min))
        && (n.RealMaximum is not decimal max || (n.RealMaximumExclusive ? value < max : value <= max));

    // ---------------------------------------------------------------- objects

    private static void ObjectStep(Frame f, int symbol, List<Frame> output)
    {
        var o = (ObjectNode)f.Node!;
        int budget = f.Budget;
        switch (f.A)
        {
            case OOpen:
                if (symbol == '}') { if (o.FreeForm ? o.MinProperties == 0 : o.ClosableFrom[0]) output.Add(f.Parent!); }
                else if (symbol == '"') KeyStart(f, o, 0, output);
                return;
            case OAfterKey:
                if (symbol == ':') output.Add(new Frame(f.Parent, o, FrameKind.Object, budget, OColon, f.B, 0, f.Seen));
                return;
            case OColon:
            case OColonSpace:
                if (symbol == ' ' && f.A == OColon && o.AllowSpace)
                {
                    output.Add(new Frame(f.Parent, o, FrameKind.Object, budget, OColonSpace, f.B, 0, f.Seen));
                    return;
                }
                {
                    var value = o.FreeForm ? o.Additional! : o.Properties[f.B].Value;
                    // Free-form objects count their keys in B; declared ones track the next property index.
                    var after = new Frame(f.Parent, o, FrameKind.Object, budget, OAfterValue, o.FreeForm ? o.SaturateCount(f.B + 1) : f.B + 1, 0, f.Seen);
                    Enter(value, after, budget - 1, symbol, output);
                }
                return;
            case OAfterValue:
                if (symbol == ',')
                {
                    if (o.FreeForm ? f.B < o.MaxProperties : o.KeyTrie(f.B).Need(SymbolTrie.Root) <= budget - 1)
                        output.Add(new Frame(f.Parent, o, FrameKind.Object, budget, OComma, f.B, 0, f.Seen));
                }
                else if (symbol == '}' && (o.FreeForm ? f.B >= o.MinProperties : o.ClosableFrom[f.B])) output.Add(f.Parent!);
                return;
            case OComma:
            case OCommaSpace:
                if (symbol == ' ' && f.A == OComma && o.AllowSpace)
                    output.Add(new Frame(f.Parent, o, FrameKind.Object, budget, OCommaSpace, f.B, 0, f.Seen));
                else if (symbol == '"') KeyStart(f, o, f.B, output);
                return;
        }
    }

    private static void KeyStart(Frame f, ObjectNode o, int start, List<Frame> output)
    {
        if (o.FreeForm)
        {
            if (o.Additional is null || o.Additional.MinDepth > f.Budget - 1 || f.B >= o.MaxProperties) return;
            var afterKey = new Frame(f.Parent, o, FrameKind.Object, f.Budget, OAfterKey, f.B, 0, f.Seen);
            output.Add(new Frame(afterKey, KeyString, FrameKind.FreeKey, 0, SNormal, 0, unchecked(('"' ^ FnvOffset) * FnvPrime), null));
            return;
        }
        KeyAdvance(o, start, SymbolTrie.Root, f.Budget, f.Parent!, '"', output);
    }

    private static void KeyAdvance(ObjectNode o, int start, int node, int budget, Frame objectParent, int symbol, List<Frame> output)
    {
        var trie = o.KeyTrie(start);
        int child = trie.Child(node, symbol);
        if (child < 0 || trie.Need(child) > budget - 1) return;
        if (trie.IsTerminal(child)) output.Add(new Frame(objectParent, o, FrameKind.Object, budget, OAfterKey, trie.TerminalValue(child), 0, null));
        else output.Add(new Frame(objectParent, o, FrameKind.Key, budget, start, child, 0, null));
    }

    // ---------------------------------------------------------------- arrays

    private static void ArrayStep(Frame f, int symbol, List<Frame> output)
    {
        var a = (ArrayNode)f.Node!;
        int budget = f.Budget, count = f.B;
        switch (f.A)
        {
            case AOpen:
                if (symbol == ']') { if (a.MinItems == 0) output.Add(f.Parent!); return; }
                if (a.MaxItems >= 1 && a.ItemAt(0) is { } first)
                    Enter(first, new Frame(f.Parent, a, FrameKind.Array, budget, AAfterValue, a.Saturate(1), 0, null), budget - 1, symbol, output);
                return;
            case AAfterValue:
                if (symbol == ',')
                {
                    if (count < a.MaxItems && a.ItemAt(count) is { } item && item.MinDepth <= budget - 1)
                        output.Add(new Frame(f.Parent, a, FrameKind.Array, budget, AComma, count, 0, null));
                }
                else if (symbol == ']' && count >= a.MinItems) output.Add(f.Parent!);
                return;
            case AComma:
            case ACommaSpace:
                if (symbol == ' ' && f.A == AComma && a.AllowSpace)
                {
                    output.Add(new Frame(f.Parent, a, FrameKind.Array, budget, ACommaSpace, count, 0, null));
                    return;
                }
                Enter(a.ItemAt(count)!, new Frame(f.Parent, a, FrameKind.Array, budget, AAfterValue, a.Saturate(count + 1), 0, null), budget - 1, symbol, output);
                return;
        }
    }
}
