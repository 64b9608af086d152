using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Constraints;

/// <summary>
/// An immutable trie over symbol strings (bytes, or 256 + token id). Each terminal carries a value (an enum member
/// or a property index) and each node the smallest "need" (MinDepth) of the terminals below it.
/// </summary>
internal sealed class SymbolTrie
{
    public const int Root = 0;
    private readonly int[] _childStart;
    private readonly int[] _childCount;
    private readonly int[] _childSymbols;
    private readonly int[] _childNodes;
    private readonly int[] _terminal;
    private readonly int[] _need;

    private SymbolTrie(int[] childStart, int[] childCount, int[] childSymbols, int[] childNodes, int[] terminal, int[] need)
    {
        _childStart = childStart;
        _childCount = childCount;
        _childSymbols = childSymbols;
        _childNodes = childNodes;
        _terminal = terminal;
        _need = need;
    }

    public int NodeCount => _terminal.Length;
    public bool IsEmpty => _need[Root] >= GNode.Unsatisfiable;
    public bool IsTerminal(int node) => _terminal[node] >= 0;
    public int TerminalValue(int node) => _terminal[node];
    public bool HasChildren(int node) => _childCount[node] > 0;
    /// <summary>Smallest need of a terminal at or below <paramref name="node"/>.</summary>
    public int Need(int node) => _need[node];

    public int Child(int node, int symbol)
    {
        int start = _childStart[node], end = start + _childCount[node];
        while (start < end)
        {
            int mid = (start + end) >>> 1;
            int s = _childSymbols[mid];
            if (s == symbol) return _childNodes[mid];
            if (s < symbol) start = mid + 1; else end = mid;
        }
        return -1;
    }

    /// <summary>Every symbol on some edge (used to find the special tokens a grammar refers to).</summary>
    public IEnumerable<int> Symbols => _childSymbols.Distinct();

    public sealed class Builder
    {
        private readonly List<SortedDictionary<int, int>> _children = [new()];
        private readonly List<int> _terminal = [-1];
        private readonly List<int> _need = [GNode.Unsatisfiable];

        public void Add(ReadOnlySpan<int> symbols, int value, int need)
        {
            if (symbols.IsEmpty) throw new ArgumentException("a literal must not be empty");
            int node = Root;
            _need[node] = Math.Min(_need[node], need);
            foreach (int s in symbols)
            {
                if (!_children[node].TryGetValue(s, out int child))
                {
                    child = _terminal.Count;
                    _children.Add(new());
                    _terminal.Add(-1);
                    _need.Add(GNode.Unsatisfiable);
                    _children[node][s] = child;
                }
                node = child;
                _need[node] = Math.Min(_need[node], need);
            }
            if (_terminal[node] < 0) _terminal[node] = value;
        }

        public SymbolTrie Build()
        {
            int n = _terminal.Count, edges = n - 1;
            var childStart = new int[n];
            var childCount = new int[n];
            var symbols = new int[edges];
            var nodes = new int[edges];
            int e = 0;
            for (int i = 0; i < n; i++)
            {
                childStart[i] = e;
                childCount[i] = _children[i].Count;
                foreach (var (s, child) in _children[i]) { symbols[e] = s; nodes[e] = child; e++; }
            }
            return new SymbolTrie(childStart, childCount, symbols, nodes, [.. _terminal], [.. _need]);
        }
    }
}

/// <summary>Compact JSON text as the matcher generates it: no whitespace, UTF-8 kept as is.</summary>
internal static class JsonText
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        SkipValidation = true,
    };

    public static int[] EncodeString(string value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions)) writer.WriteStringValue(value);
        return ToSymbols(buffer.WrittenSpan);
    }

    public static int[] EncodeValue(JsonNode? value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            if (value is null) writer.WriteNullValue();
            else value.WriteTo(writer);
        }
        return ToSymbols(buffer.WrittenSpan);
    }

    public static int[] ToSymbols(ReadOnlySpan<byte> bytes)
    {
        var symbols = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) symbols[i] = bytes[i];
        return symbols;
    }
}
