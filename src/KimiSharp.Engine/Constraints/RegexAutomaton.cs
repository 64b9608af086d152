namespace KimiSharp.Engine.Constraints;

/// <summary>Thompson NFA of a <see cref="RegexNode"/>: character edges and ε-edges, one start and one accepting state.</summary>
internal sealed class RegexNfa
{
    /// <summary>Bounds the unrolling of nested counted repeats such as <c>(a{1000}){1000}</c>.</summary>
    public const int MaxStates = 200_000;

    public readonly List<List<int>> Epsilon = [];
    /// <summary>Per state: the characters of its one character edge (null: none) and where it leads.</summary>
    public readonly List<CharSet?> EdgeSet = [];
    public readonly List<int> EdgeTarget = [];
    public readonly int Start;
    public readonly int Accept;

    public RegexNfa(RegexNode regex) => (Start, Accept) = Build(regex);

    public int Count => EdgeSet.Count;

    private int NewState()
    {
        if (EdgeSet.Count >= MaxStates) throw new PatternException($"the pattern needs more than {MaxStates} automaton states");
        Epsilon.Add([]);
        EdgeSet.Add(null);
        EdgeTarget.Add(-1);
        return EdgeSet.Count - 1;
    }

    private (int Start, int End) Build(RegexNode node)
    {
        switch (node)
        {
            case RegexChars chars:
            {
                int s = NewState(), e = NewState();
                EdgeSet[s] = chars.Set;
                EdgeTarget[s] = e;
                return (s, e);
            }
            case RegexConcat concat:
            {
                int s = NewState(), current = s;
                foreach (var part in concat.Parts)
                {
                    var (ps, pe) = Build(part);
                    Epsilon[current].Add(ps);
                    current = pe;
                }
                return (s, current);
            }
            case RegexAlternation alternation:
            {
                int s = NewState(), e = NewState();
                foreach (var branch in alternation.Branches)
                {
                    var (bs, be) = Build(branch);
                    Epsilon[s].Add(bs);
                    Epsilon[be].Add(e);
                }
                return (s, e);
            }
            case RegexRepeat repeat:
            {
                int s = NewState(), current = s;
                for (int i = 0; i < repeat.Min; i++)
                {
                    var (bs, be) = Build(repeat.Body);
                    Epsilon[current].Add(bs);
                    current = be;
                }
                if (repeat.Max < 0)
                {
                    int loop = NewState();
                    var (bs, be) = Build(repeat.Body);
                    Epsilon[current].Add(loop);
                    Epsilon[loop].Add(bs);
                    Epsilon[be].Add(loop);
                    return (s, loop);
                }
                int end = NewState();
                Epsilon[current].Add(end);
                for (int i = repeat.Min; i < repeat.Max; i++)
                {
                    var (bs, be) = Build(repeat.Body);
                    Epsilon[current].Add(bs);
                    Epsilon[be].Add(end);
                    current = be;
                }
                return (s, end);
            }
            default:
                throw new InvalidOperationException($"unknown regex node {node.GetType().Name}");
        }
    }
}

/// <summary>
/// A DFA over Unicode scalar values, built by subset construction from one or more NFAs whose languages it
/// intersects (a <c>pattern</c> and a <c>format</c>). The alphabet is cut into classes of characters that every
/// edge treats alike; states that cannot reach acceptance are removed (their transitions are -1). Matching is one
/// table lookup per character: linear time, whatever the pattern (no backtracking).
/// </summary>
internal sealed class CharDfa
{
    /// <summary>Most DFA states (subset construction can blow up exponentially on adversarial patterns).</summary>
    public const int MaxStates = 4096;

    /// <summary>Class k holds the characters [_cuts[k], _cuts[k + 1]).</summary>
    private readonly int[] _cuts;
    private readonly int[] _table;
    private readonly bool[] _accepting;

    public int StateCount => _accepting.Length;
    public int ClassCount => _cuts.Length - 1;
    /// <summary>-1 when no string at all is accepted.</summary>
    public int Start { get; }

    private CharDfa(int[] cuts, int[] table, bool[] accepting, int start)
    {
        _cuts = cuts;
        _table = table;
        _accepting = accepting;
        Start = start;
    }

    public bool IsAccepting(int state) => _accepting[state];

    /// <summary>The class of <paramref name="codePoint"/> (0 ≤ code point ≤ U+10FFFF).</summary>
    public int ClassOf(int codePoint)
    {
        int index = Array.BinarySearch(_cuts, codePoint);
        return index >= 0 ? index : ~index - 1;
    }

    public int NextByClass(int state, int characterClass) => _table[state * ClassCount + characterClass];

    public int Next(int state, int codePoint) => _table[state * ClassCount + ClassOf(codePoint)];

    public static CharDfa Build(IReadOnlyList<RegexNfa> conjuncts)
    {
        var cutSet = new SortedSet<int> { 0, 0xD800, 0xE000, CharSet.MaxCodePoint + 1 };
        foreach (var nfa in conjuncts)
            foreach (var set in nfa.EdgeSet)
                if (set != null)
                    foreach (var (lo, hi) in set.Ranges) { cutSet.Add(lo); cutSet.Add(hi + 1); }
        int[] cuts = [.. cutSet];
        int classes = cuts.Length - 1;

        // Per NFA state with an edge: the class indexes the edge covers.
        var edgeClasses = conjuncts.Select(nfa => nfa.EdgeSet.Select(set => set is null ? null : set.Ranges
            .SelectMany(r => Enumerable.Range(Array.BinarySearch(cuts, r.Lo), Array.BinarySearch(cuts, r.Hi + 1) - Array.BinarySearch(cuts, r.Lo)))
            .ToArray()).ToArray()).ToArray();

        var states = new List<int[][]>();
        var index = new Dictionary<string, int>();
        var transitions = new List<int[]>();
        var marks = conjuncts.Select(n => new int[n.Count]).ToArray();
        int generation = 0;

        int[] Closure(int which, IEnumerable<int> seeds)
        {
            var nfa = conjuncts[which];
            var mark = marks[which];
            generation++;
            var stack = new Stack<int>();
            var result = new List<int>();
            foreach (int s in seeds) if (mark[s] != generation) { mark[s] = generation; stack.Push(s); }
            while (stack.Count > 0)
            {
                int s = stack.Pop();
                result.Add(s);
                foreach (int t in nfa.Epsilon[s]) if (mark[t] != generation) { mark[t] = generation; stack.Push(t); }
            }
            result.Sort();
            return [.. result];
        }

        int Intern(int[][] sets)
        {
            string key = string.Join("|", sets.Select(s => string.Join(",", s)));
            if (index.TryGetValue(key, out int id)) return id;
            if (states.Count >= MaxStates) throw new PatternException($"the pattern needs more than {MaxStates} DFA states");
            id = states.Count;
            states.Add(sets);
            index[key] = id;
            return id;
        }

        int start = Intern(conjuncts.Select((n, i) => Closure(i, [n.Start])).ToArray());
        for (int d = 0; d < states.Count; d++)
        {
            var sets = states[d];
            var row = new int[classes];
            Array.Fill(row, -1);
            // Targets per class, per conjunct.
            var moves = new List<int>[sets.Length][];
            for (int i = 0; i < sets.Length; i++)
            {
                moves[i] = new List<int>[classes];
                foreach (int s in sets[i])
                {
                    if (edgeClasses[i][s] is not { } covered) continue;
                    int target = conjuncts[i].EdgeTarget[s];
                    foreach (int k in covered) (moves[i][k] ??= []).Add(target);
                }
            }
            for (int k = 0; k < classes; k++)
            {
                bool all = true;
                for (int i = 0; i < sets.Length && all; i++) all = moves[i][k] != null;
                if (!all) continue;
                row[k] = Intern(moves.Select((m, i) => Closure(i, m[k]!)).ToArray());
            }
            transitions.Add(row);
        }

        int count = states.Count;
        var accepting = new bool[count];
        for (int d = 0; d < count; d++)
        {
            bool all = true;
            for (int i = 0; i < conjuncts.Count && all; i++) all = Array.BinarySearch(states[d][i], conjuncts[i].Accept) >= 0;
            accepting[d] = all;
        }

        // Keep only states from which acceptance is reachable.
        var live = (bool[])accepting.Clone();
        for (bool changed = true; changed;)
        {
            changed = false;
            for (int d = 0; d < count; d++)
            {
                if (live[d]) continue;
                foreach (int t in transitions[d])
                    if (t >= 0 && live[t]) { live[d] = changed = true; break; }
            }
        }
        var table = new int[count * classes];
        for (int d = 0; d < count; d++)
            for (int k = 0; k < classes; k++)
            {
                int t = transitions[d][k];
                table[d * classes + k] = t >= 0 && live[t] ? t : -1;
            }
        return new CharDfa(cuts, table, accepting, live[start] ? start : -1);
    }
}

/// <summary>
/// A string value's <c>pattern</c>/<c>format</c> automaton together with its length bounds: which (DFA state,
/// length so far) pairs can still be completed to an accepted string within <c>minLength</c>..<c>maxLength</c>.
/// The matcher only ever lets a string reach such pairs, so it never paints itself into a corner.
/// </summary>
internal sealed class StringPattern
{
    /// <summary>Caps the compile-time table: DFA states × (length bound + 1) × classes.</summary>
    public const long MaxWork = 50_000_000;

    public readonly CharDfa Dfa;
    /// <summary>Lengths are counted up to this (maxLength, or minLength when unbounded above, as the matcher saturates).</summary>
    private readonly int _bound;
    private readonly bool[] _viable;
    private readonly bool[] _universal;

    public StringPattern(CharDfa dfa, int minLength, int maxLength)
    {
        Dfa = dfa;
        bool countsLength = minLength > 0 || maxLength != int.MaxValue;
        _bound = !countsLength ? 0 : maxLength != int.MaxValue ? maxLength : minLength;
        int states = dfa.StateCount, classes = dfa.ClassCount, width = _bound + 1;
        if ((long)width * states * Math.Max(1, classes) > MaxWork || (long)width * states > int.MaxValue / 2)
            throw new PatternException($"the pattern with length bounds up to {_bound} needs too large a table");
        _viable = new bool[states * width];
        _universal = new bool[states];
        for (int s = 0; s < states; s++)
        {
            // Accepting, and every character (the surrogate class aside, which no text holds) keeps the state.
            bool universal = dfa.IsAccepting(s);
            for (int k = 0; k < classes && universal; k++)
                universal = dfa.NextByClass(s, k) == s || (k == dfa.ClassOf(0xD800) && dfa.NextByClass(s, k) < 0);
            _universal[s] = universal;
        }
        if (dfa.Start < 0) return;
        bool bounded = maxLength != int.MaxValue;
        for (int s = 0; s < states; s++)
        {
            // Top row: with an upper bound, nothing more may be added; without one, any live state can finish.
            bool top = bounded ? dfa.IsAccepting(s) && _bound >= minLength : IsLive(s);
            _viable[s * width + _bound] = top;
        }
        for (int c = _bound - 1; c >= 0; c--)
            for (int s = 0; s < states; s++)
            {
                bool ok = dfa.IsAccepting(s) && c >= minLength;
                for (int k = 0; k < classes && !ok; k++)
                {
                    int t = dfa.NextByClass(s, k);
                    ok = t >= 0 && _viable[t * width + c + 1];
                }
                _viable[s * width + c] = ok;
            }
    }

    /// <summary>Live = not pruned: every state but the dead ones can reach acceptance (Build removed the rest).</summary>
    private bool IsLive(int state)
    {
        if (Dfa.IsAccepting(state)) return true;
        for (int k = 0; k < Dfa.ClassCount; k++) if (Dfa.NextByClass(state, k) >= 0) return true;
        return false;
    }

    /// <summary>
    /// In state <paramref name="state"/> the pattern no longer constrains anything (an unanchored pattern once it has
    /// matched): plain string content leaves the state as it is, so the mask can take the plain-string fast path.
    /// </summary>
    public bool IsUniversal(int state) => _universal[state];

    /// <summary>Some string is accepted at all (with the length bounds).</summary>
    public bool Satisfiable => Dfa.Start >= 0 && Viable(Dfa.Start, 0);

    /// <summary>The string can be completed from DFA state <paramref name="state"/> with <paramref name="count"/> characters so far.</summary>
    public bool Viable(int state, int count) => _viable[state * (_bound + 1) + count];

    /// <summary>Some character in [<paramref name="lo"/>, <paramref name="hi"/>] leads to a viable state.</summary>
    public bool AnyViable(int state, int count, int lo, int hi)
    {
        hi = Math.Min(hi, CharSet.MaxCodePoint);
        if (lo > hi) return false;
        int last = Dfa.ClassOf(hi);
        for (int k = Dfa.ClassOf(lo); k <= last; k++)
        {
            int t = Dfa.NextByClass(state, k);
            if (t >= 0 && Viable(t, count)) return true;
        }
        return false;
    }
}
