namespace KimiSharp.Engine.Constraints;

/// <summary>
/// The bytes of every token id, with a byte trie over them so a mask is computed in one walk from the current
/// matcher state (tokens sharing a prefix share the work; a dead prefix prunes its whole subtree).
/// Build it once per tokenizer and share it: it is immutable.
/// </summary>
public sealed class TokenVocabulary
{
    private readonly byte[][] _tokens;

    /// <summary>Every token with bytes.</summary>
    internal readonly ByteTrie Trie;
    /// <summary>Tokens that are not plain string content (see <see cref="StringContent"/>).</summary>
    internal readonly ByteTrie NonStringTrie;
    /// <summary>
    /// Bit per token: its bytes are whole UTF-8 characters with no quote, backslash or control byte, so inside a JSON
    /// string (between characters) it is always valid and leaves the string in the same phase, <see cref="CharCount"/>
    /// code points longer. The mask for such states needs only <see cref="NonStringTrie"/> walked.
    /// </summary>
    internal readonly ulong[] StringContent;
    internal readonly int[] CharCount;

    /// <param name="tokens">
    /// Bytes of token id i at index i. Null or empty for special tokens (BOS, EOS, tool-call markers…): they never
    /// match text and appear only where a grammar names them with <see cref="Constraint.Tokens"/>.
    /// </param>
    public TokenVocabulary(IReadOnlyList<byte[]?> tokens)
    {
        _tokens = new byte[tokens.Count][];
        StringContent = new ulong[(tokens.Count + 63) >> 6];
        CharCount = new int[tokens.Count];
        var ids = new List<int>();
        var nonString = new List<int>();
        for (int i = 0; i < tokens.Count; i++)
        {
            _tokens[i] = tokens[i] is { } bytes ? (byte[])bytes.Clone() : [];
            if (_tokens[i].Length == 0) continue;
            ids.Add(i);
            int chars = PlainStringCharacters(_tokens[i]);
            if (chars < 0) nonString.Add(i);
            else
            {
                StringContent[i >> 6] |= 1UL << i;
                CharCount[i] = chars;
            }
        }
        Trie = new ByteTrie(_tokens, ids);
        NonStringTrie = new ByteTrie(_tokens, nonString);
    }

    /// <summary>Number of token ids.</summary>
    public int Count => _tokens.Length;

    /// <summary>Trie nodes (distinct non-empty token prefixes, plus the root).</summary>
    public int TrieNodeCount => Trie.NodeByte.Length;

    /// <summary>The bytes of <paramref name="token"/>; empty for a special token.</summary>
    public ReadOnlySpan<byte> GetBytes(int token) => _tokens[token];

    /// <summary>Code points if the bytes are whole valid UTF-8 characters other than '"', '\\' and controls; else −1.</summary>
    private static int PlainStringCharacters(ReadOnlySpan<byte> bytes)
    {
        int chars = 0;
        for (int i = 0; i < bytes.Length;)
        {
            byte b = bytes[i];
            int extra;
            (int lo, int hi) second = (0x80, 0xBF);
            if (b < 0x20 || b == '"' || b == '\\') return -1;
            if (b < 0x80) extra = 0;
            else if (b is >= 0xC2 and <= 0xDF) extra = 1;
            else if (b == 0xE0) { extra = 2; second = (0xA0, 0xBF); }
            else if (b == 0xED) { extra = 2; second = (0x80, 0x9F); }
            else if (b is >= 0xE1 and <= 0xEF) extra = 2;
            else if (b == 0xF0) { extra = 3; second = (0x90, 0xBF); }
            else if (b is >= 0xF1 and <= 0xF3) extra = 3;
            else if (b == 0xF4) { extra = 3; second = (0x80, 0x8F); }
            else return -1;
            if (i + extra >= bytes.Length && extra > 0) return -1;
            for (int k = 1; k <= extra; k++)
            {
                byte c = bytes[i + k];
                var (lo, hi) = k == 1 ? second : (0x80, 0xBF);
                if (c < lo || c > hi) return -1;
            }
            i += extra + 1;
            chars++;
        }
        return chars;
    }
}

/// <summary>A byte trie over some tokens, in preorder: node i's children are i + 1, then SubtreeEnd of each, up to SubtreeEnd[i].</summary>
internal sealed class ByteTrie
{
    public readonly byte[] NodeByte;
    public readonly int[] SubtreeEnd;
    public readonly int[] TokenStart;
    public readonly int[] TokenIds;

    public ByteTrie(byte[][] all, List<int> ids)
    {
        var sorted = ids.ToArray();
        Array.Sort(sorted, (a, b) => all[a].AsSpan().SequenceCompareTo(all[b]) is var c && c != 0 ? c : a.CompareTo(b));
        var nodeByte = new List<byte> { 0 };
        var subtreeEnd = new List<int> { 0 };
        var tokenStart = new List<int> { 0 };
        var tokenIds = new List<int>(sorted.Length);
        var path = new List<int> { 0 }; // path[d] = node at depth d
        byte[] previous = [];
        foreach (int id in sorted)
        {
            var bytes = all[id];
            int common = bytes.AsSpan().CommonPrefixLength(previous);
            while (path.Count > common + 1)
            {
                subtreeEnd[path[^1]] = nodeByte.Count;
                path.RemoveAt(path.Count - 1);
            }
            for (int d = common; d < bytes.Length; d++)
            {
                int node = nodeByte.Count;
                nodeByte.Add(bytes[d]);
                subtreeEnd.Add(0);
                tokenStart.Add(tokenIds.Count);
                path.Add(node);
            }
            tokenIds.Add(id); // tokens equal to a node's path come before any extension, so they stay contiguous
            previous = bytes;
        }
        while (path.Count > 0)
        {
            subtreeEnd[path[^1]] = nodeByte.Count;
            path.RemoveAt(path.Count - 1);
        }
        tokenStart.Add(tokenIds.Count);
        NodeByte = [.. nodeByte];
        SubtreeEnd = [.. subtreeEnd];
        TokenStart = [.. tokenStart];
        TokenIds = [.. tokenIds];
    }

    /// <summary>Token ids whose bytes are exactly the path to node <paramref name="node"/>.</summary>
    public ReadOnlySpan<int> TokensAt(int node) => TokenIds.AsSpan(TokenStart[node], TokenStart[node + 1] - TokenStart[node]);
}
