namespace KimiSharp.Engine.Constraints;

/// <summary>
/// Guided decoding for one request: masks every token that cannot continue the output towards a full match of a
/// <see cref="Constraint"/>, and advances as tokens are accepted. Not thread-safe (one per request).
/// </summary>
public sealed class GrammarConstraint : ITokenConstraint
{
    private const int CacheLimit = 64;

    private readonly TokenVocabulary _vocabulary;
    /// <summary>Token ids the grammar names as special-token symbols, ascending.</summary>
    private readonly int[] _tokenSymbols;
    private readonly List<Frame> _scratch = [];
    private readonly Dictionary<MatcherState, ulong[]> _maskCache = [];
    private Frame[] _threads;

    public GrammarConstraint(Constraint grammar, TokenVocabulary vocabulary)
    {
        _vocabulary = vocabulary;
        var root = grammar.Node;
        if (root.MinDepth >= GNode.Unsatisfiable) throw new ArgumentException("the constraint matches nothing");
        _tokenSymbols = GrammarAnalysis.Reachable(root).OfType<LiteralNode>()
            .SelectMany(l => l.Trie.Symbols).Where(s => s >= MatcherCore.TokenSymbolBase)
            .Select(s => s - MatcherCore.TokenSymbolBase).Where(id => id < vocabulary.Count)
            .Distinct().Order().ToArray();
        _threads = MatcherCore.Start(root, int.MaxValue / 2);
        Update();
    }

    /// <summary>The output so far is a complete match and nothing can follow it.</summary>
    public bool IsComplete { get; private set; }

    /// <summary>The output so far is a complete match (something may still follow, e.g. more digits).</summary>
    public bool IsAccepting { get; private set; }

    /// <summary>Tokens accepted so far.</summary>
    public int TokenCount { get; private set; }

    /// <summary>The state for reuse as a cache key or for inspection.</summary>
    public MatcherState State => new(_threads);

    public void Mask(Span<float> logits)
    {
        var allowed = Allowed();
        int n = Math.Min(logits.Length, _vocabulary.Count);
        for (int t = 0; t < n; t++)
            if ((allowed[t >> 6] & (1UL << t)) == 0) logits[t] = float.NegativeInfinity;
        logits[n..].Fill(float.NegativeInfinity);
    }

    /// <summary>Whether <paramref name="token"/> may come next.</summary>
    public bool IsAllowed(int token) => token >= 0 && token < _vocabulary.Count && (Allowed()[token >> 6] & (1UL << token)) != 0;

    /// <summary>Number of tokens allowed next.</summary>
    public int AllowedCount() => Allowed().Sum(w => System.Numerics.BitOperations.PopCount(w));

    /// <exception cref="InvalidOperationException">The token cannot continue the output.</exception>
    public void Accept(int token)
    {
        var next = Advance(_threads, token);
        if (next.Length == 0) throw new InvalidOperationException($"token {token} does not continue the constrained output");
        _threads = next;
        TokenCount++;
        Update();
    }

    private void Update()
    {
        IsAccepting = MatcherCore.IsAccepting(_threads);
        IsComplete = IsAccepting && !CanContinue();
    }

    private bool CanContinue()
    {
        for (int b = 0; b < 256; b++) if (MatcherCore.Advance(_threads, b, _scratch).Length > 0) return true;
        foreach (int id in _tokenSymbols)
            if (MatcherCore.Advance(_threads, MatcherCore.TokenSymbolBase + id, _scratch).Length > 0) return true;
        return false;
    }

    private Frame[] Advance(Frame[] threads, int token)
    {
        if ((uint)token >= (uint)_vocabulary.Count) return [];
        Frame[] bySymbol = Array.BinarySearch(_tokenSymbols, token) >= 0
            ? MatcherCore.Advance(threads, MatcherCore.TokenSymbolBase + token, _scratch)
            : [];
        var bytes = _vocabulary.GetBytes(token);
        if (bytes.IsEmpty) return bySymbol;
        var byBytes = threads;
        foreach (byte b in bytes)
        {
            byBytes = MatcherCore.Advance(byBytes, b, _scratch);
            if (byBytes.Length == 0) break;
        }
        if (bySymbol.Length == 0) return byBytes;
        if (byBytes.Length == 0) return bySymbol;
        return [.. bySymbol.Union(byBytes)];
    }

    private ulong[] Allowed()
    {
        var key = new MatcherState(_threads);
        if (_maskCache.TryGetValue(key, out var cached)) return cached;
        var v = _vocabulary;
        var allowed = new ulong[(v.Count + 63) >> 6];
        if (MatcherCore.InPlainString(_threads, out int remaining))
        {
            // Between characters of a string (in every thread): plain-content tokens need no walking, only the rest.
            if (remaining == int.MaxValue) v.StringContent.CopyTo(allowed, 0);
            else
                for (int w = 0; w < allowed.Length; w++)
                    for (ulong bits = v.StringContent[w]; bits != 0; bits &= bits - 1)
                    {
                        int t = (w << 6) + System.Numerics.BitOperations.TrailingZeroCount(bits);
                        if (v.CharCount[t] <= remaining) allowed[w] |= 1UL << t;
                    }
            if (_threads.Length == 1) WalkString(v.NonStringTrie, 0, _threads[0], _threads[0].A, _threads[0].B, _threads[0].X, allowed);
            else Walk(v.NonStringTrie, 0, _threads, allowed);
        }
        else if (MatcherCore.StringFrame(_threads) is { } f)
            WalkString(v.Trie, 0, f, f.A, f.B, f.X, allowed);
        else Walk(v.Trie, 0, _threads, allowed);
        foreach (int id in _tokenSymbols)
            if (MatcherCore.Advance(_threads, MatcherCore.TokenSymbolBase + id, _scratch).Length > 0) allowed[id >> 6] |= 1UL << id;
        if (_maskCache.Count >= CacheLimit) _maskCache.Clear();
        _maskCache[key] = allowed;
        return allowed;
    }

    /// <summary>Like <see cref="Walk"/> while inside string <paramref name="f"/>: (phase, length, hash) by value, no frames.</summary>
    private void WalkString(ByteTrie trie, int node, Frame f, int phase, int count, long hash, ulong[] allowed)
    {
        var stringNode = (StringNode)f.Node!;
        bool key = f.Kind == FrameKind.FreeKey;
        int end = trie.SubtreeEnd[node];
        for (int child = node + 1; child < end; child = trie.SubtreeEnd[child])
        {
            int p = phase, c = count;
            long h = hash;
            switch (MatcherCore.StringByte(stringNode, key, ref p, ref c, ref h, trie.NodeByte[child]))
            {
                case MatcherCore.StringContinue:
                    foreach (int id in trie.TokensAt(child)) allowed[id >> 6] |= 1UL << id;
                    if (trie.SubtreeEnd[child] > child + 1) WalkString(trie, child, f, p, c, h, allowed);
                    break;
                case MatcherCore.StringClosed:
                    var next = MatcherCore.AfterClose(f, h, _scratch);
                    if (next.Length == 0) break;
                    foreach (int id in trie.TokensAt(child)) allowed[id >> 6] |= 1UL << id;
                    if (trie.SubtreeEnd[child] > child + 1) Walk(trie, child, next, allowed);
                    break;
            }
        }
    }

    /// <summary>Depth-first over the vocabulary trie below <paramref name="node"/>, pruning prefixes no thread survives.</summary>
    private void Walk(ByteTrie trie, int node, Frame[] threads, ulong[] allowed)
    {
        int end = trie.SubtreeEnd[node];
        for (int child = node + 1; child < end; child = trie.SubtreeEnd[child])
        {
            var next = MatcherCore.Advance(threads, trie.NodeByte[child], _scratch);
            if (next.Length == 0) continue;
            foreach (int id in trie.TokensAt(child)) allowed[id >> 6] |= 1UL << id;
            if (trie.SubtreeEnd[child] <= child + 1) continue;
            if (MatcherCore.StringFrame(next) is { } f) WalkString(trie, child, f, f.A, f.B, f.X, allowed);
            else Walk(trie, child, next, allowed);
        }
    }
}

/// <summary>
/// <c>response_format</c> guided decoding: the output is one JSON value the matcher accepts, then one of the end
/// tokens. Once the value is complete only the end tokens are allowed (plus whatever could still extend the value,
/// e.g. more digits of a top-level number); <see cref="IsComplete"/> turns true when an end token is accepted — or,
/// with no end tokens, as soon as the value is complete and cannot be extended.
/// </summary>
public sealed class JsonConstraint : ITokenConstraint
{
    private readonly GrammarConstraint _inner;

    public JsonConstraint(JsonSchemaMatcher matcher, TokenVocabulary vocabulary, params int[] endTokens)
    {
        Matcher = matcher;
        var json = Constraint.Json(matcher);
        _inner = (endTokens.Length == 0 ? json : Constraint.Sequence(json, Constraint.AnyOfTokens(endTokens))).Build(vocabulary);
    }

    public JsonSchemaMatcher Matcher { get; }
    public bool IsComplete => _inner.IsComplete;
    public void Mask(Span<float> logits) => _inner.Mask(logits);
    public void Accept(int token) => _inner.Accept(token);
    public bool IsAllowed(int token) => _inner.IsAllowed(token);
    public int AllowedCount() => _inner.AllowedCount();
}
