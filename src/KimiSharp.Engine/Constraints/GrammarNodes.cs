namespace KimiSharp.Engine.Constraints;

// The compiled grammar: a graph of nodes (cycles only through RefNode) over "symbols": bytes 0–255 and token
// symbols 256 + token id (special tokens, which have no bytes). Each node knows MinDepth, the fewest JSON
// container levels any value it matches needs (Unsatisfiable when it matches nothing), so that the matcher only
// ever enters a node it can finish within the depth budget: every prefix it accepts can be completed.

internal abstract class GNode
{
    public const int Unsatisfiable = int.MaxValue / 4;

    /// <summary>Fewest nested JSON containers a match needs; <see cref="Unsatisfiable"/> when there is none.</summary>
    public int MinDepth = Unsatisfiable;
    /// <summary>Matches the empty sequence.</summary>
    public bool Nullable;

    public static int Add(int a, int b) => a >= Unsatisfiable || b >= Unsatisfiable ? Unsatisfiable : Math.Min(Unsatisfiable, a + b);
}

/// <summary>Matches nothing.</summary>
internal sealed class NeverNode : GNode
{
    public static readonly NeverNode Instance = new();
}

/// <summary>Matches the empty sequence.</summary>
internal sealed class EmptyNode : GNode
{
    public static readonly EmptyNode Instance = new() { MinDepth = 0, Nullable = true };
}

internal sealed class UnionNode(GNode[] alternatives) : GNode
{
    public readonly GNode[] Alternatives = alternatives;
}

internal sealed class SeqNode(GNode[] parts) : GNode
{
    public readonly GNode[] Parts = parts;
}

/// <summary>A <c>$ref</c>, resolved once the target is compiled (lets schemas recurse).</summary>
internal sealed class RefNode : GNode
{
    public GNode Target = NeverNode.Instance;
}

/// <summary>A JSON value with its own depth budget (the grammar around it is not JSON).</summary>
internal sealed class JsonRootNode(GNode inner, int maxDepth) : GNode
{
    public readonly GNode Inner = inner;
    public readonly int MaxDepth = maxDepth;
}

/// <summary>One of a fixed set of symbol strings (enum/const values, true/false/null, literals, token runs).</summary>
internal sealed class LiteralNode(SymbolTrie trie) : GNode
{
    public readonly SymbolTrie Trie = trie;
}

internal sealed class StringNode(int minLength, int maxLength) : GNode
{
    public readonly int MinLength = minLength;
    /// <summary><see cref="int.MaxValue"/> when unbounded.</summary>
    public readonly int MaxLength = maxLength;
    public bool CountsLength => MinLength > 0 || MaxLength != int.MaxValue;
    /// <summary><c>pattern</c>/<c>format</c> automaton over the decoded characters (with the length bounds folded in), or null.</summary>
    public StringPattern? Pattern;
}

internal sealed class NumberNode(bool integer, int maxIntegerDigits, int maxFractionDigits, int maxExponentDigits, long? minimum, long? maximum) : GNode
{
    /// <summary>Significant digits of a number with real-valued bounds (exact decimal arithmetic, no exponent).</summary>
    public const int RealDigits = 18;

    public readonly bool Integer = integer;
    public readonly int MaxIntegerDigits = maxIntegerDigits;
    public readonly int MaxFractionDigits = maxFractionDigits;
    public readonly int MaxExponentDigits = maxExponentDigits;
    /// <summary>Integer bounds (only for <see cref="Integer"/> nodes), inclusive.</summary>
    public readonly long? Minimum = minimum;
    public readonly long? Maximum = maximum;
    /// <summary>Bounds of a non-integer number (written without exponent, at most <see cref="RealDigits"/> digits).</summary>
    public decimal? RealMinimum;
    public decimal? RealMaximum;
    public bool RealMinimumExclusive;
    public bool RealMaximumExclusive;

    /// <summary><c>multipleOf</c> of an integer node (positive), or null.</summary>
    public long? MultipleOf;
    /// <summary>No exponent (a decimal <c>multipleOf</c> such as 0.01 is enforced as a fraction digit limit).</summary>
    public bool NoExponent;

    public bool IntegerBounded => Minimum.HasValue || Maximum.HasValue || MultipleOf.HasValue;
    public bool RealBounded => RealMinimum.HasValue || RealMaximum.HasValue;
    public bool Bounded => IntegerBounded || RealBounded;
}

internal sealed class PropertyInfo(string name, GNode value, bool required)
{
    public readonly string Name = name;
    public GNode Value = value;
    public readonly bool Required = required;
}

internal sealed class ObjectNode : GNode
{
    /// <summary>Declared keys, in the (forced) order they must appear; empty for a free-form object.</summary>
    public PropertyInfo[] Properties = [];
    /// <summary>Value schema of the keys of a free-form object; null when it has no keys at all.</summary>
    public GNode? Additional;
    public bool AllowSpace;
    /// <summary>Key count bounds of a free-form object.</summary>
    public int MinProperties;
    public int MaxProperties = int.MaxValue;
    /// <summary>ClosableFrom[i]: no required property at index ≥ i.</summary>
    public bool[] ClosableFrom = [true];
    private SymbolTrie?[]? _keyTries;

    public bool FreeForm => Properties.Length == 0;

    /// <summary>Key counts past which nothing changes collapse (so the state repeats).</summary>
    public int SaturateCount(int count) => MaxProperties == int.MaxValue ? Math.Min(count, MinProperties) : count;

    public void Seal()
    {
        ClosableFrom = new bool[Properties.Length + 1];
        ClosableFrom[Properties.Length] = true;
        for (int i = Properties.Length - 1; i >= 0; i--) ClosableFrom[i] = ClosableFrom[i + 1] && !Properties[i].Required;
        _keyTries = new SymbolTrie?[Properties.Length + 1];
    }

    /// <summary>
    /// The keys allowed next once properties before <paramref name="start"/> are settled: each property from there
    /// up to and including the first required one. Terminal values are property indexes; Need is the value's MinDepth.
    /// </summary>
    public SymbolTrie KeyTrie(int start)
    {
        var tries = _keyTries!;
        var trie = Volatile.Read(ref tries[start]);
        if (trie != null) return trie;
        var builder = new SymbolTrie.Builder();
        for (int j = start; j < Properties.Length; j++)
        {
            builder.Add(JsonText.EncodeString(Properties[j].Name), j, Properties[j].Value.MinDepth);
            if (Properties[j].Required) break;
        }
        trie = builder.Build();
        Volatile.Write(ref tries[start], trie);
        return trie;
    }
}

internal sealed class ArrayNode : GNode
{
    public GNode[] Prefix = [];
    /// <summary>Schema of items after the prefix; null when none may follow.</summary>
    public GNode? Items;
    public int MinItems;
    public int MaxItems = int.MaxValue;
    public bool AllowSpace;

    public GNode? ItemAt(int index) => index < Prefix.Length ? Prefix[index] : Items;

    /// <summary>Counts past which nothing changes collapse, so the state repeats (and the mask cache hits).</summary>
    public int Saturate(int count)
    {
        if (MaxItems != int.MaxValue) return count;
        int floor = Math.Max(MinItems, Prefix.Length);
        return Math.Min(count, floor);
    }
}
