using System.Runtime.CompilerServices;

namespace KimiSharp.Engine.Constraints;

internal enum FrameKind : byte
{
    /// <summary>The whole grammar matched; accepts nothing more.</summary>
    Done,
    /// <summary>Part <c>A</c> of a <see cref="SeqNode"/> comes next.</summary>
    Seq,
    /// <summary>Inside a literal: trie node <c>A</c>.</summary>
    Literal,
    /// <summary>Inside a declared key: trie <c>A</c> (start index), node <c>B</c>.</summary>
    Key,
    /// <summary>Inside a string value: phase <c>A</c>, length <c>B</c>.</summary>
    String,
    /// <summary>Inside a free-form object's key: like String, with the key's hash in <c>X</c>.</summary>
    FreeKey,
    /// <summary>Inside a number: phase <c>A</c> (sign in bit 8), digits <c>B</c>, magnitude <c>X</c>.</summary>
    Number,
    /// <summary>Inside an object: phase <c>A</c>, property index <c>B</c>, keys so far in <c>Seen</c> (free-form).</summary>
    Object,
    /// <summary>Inside an array: phase <c>A</c>, items so far <c>B</c>.</summary>
    Array,
}

/// <summary>
/// One level of a matcher thread's stack. Immutable: a step allocates a new top and shares the rest, so a state
/// is cloned by copying a reference. <see cref="Parent"/> is what follows once this level completes (already in its
/// "after the value" phase). Equality is structural, so equal threads can be merged and states used as cache keys.
/// </summary>
internal sealed class Frame : IEquatable<Frame>
{
    public static readonly Frame Done = new(null, null, FrameKind.Done, 0, 0, 0, 0, null);

    public readonly Frame? Parent;
    public readonly GNode? Node;
    public readonly FrameKind Kind;
    /// <summary>JSON container levels still allowed from here (containers: including themselves).</summary>
    public readonly int Budget;
    public readonly int A;
    public readonly int B;
    public readonly long X;
    public readonly KeySet? Seen;
    private readonly int _hash;

    public Frame(Frame? parent, GNode? node, FrameKind kind, int budget, int a, int b, long x, KeySet? seen)
    {
        Parent = parent;
        Node = node;
        Kind = kind;
        Budget = budget;
        A = a;
        B = b;
        X = x;
        Seen = seen;
        _hash = HashCode.Combine(parent?._hash ?? 0, node is null ? 0 : RuntimeHelpers.GetHashCode(node), kind, budget, a, b, x, seen?.Hash ?? 0);
    }

    public bool Equals(Frame? other)
    {
        var a = this;
        var b = other;
        while (true)
        {
            if (ReferenceEquals(a, b)) return true;
            if (a is null || b is null) return false;
            if (a._hash != b._hash || a.Kind != b.Kind || !ReferenceEquals(a.Node, b.Node) || a.Budget != b.Budget
                || a.A != b.A || a.B != b.B || a.X != b.X || !KeySet.Equal(a.Seen, b.Seen)) return false;
            a = a.Parent;
            b = b.Parent;
        }
    }

    public override bool Equals(object? obj) => obj is Frame f && Equals(f);
    public override int GetHashCode() => _hash;
}

/// <summary>Hashes of the keys a free-form object has so far (immutable list), to refuse duplicate keys.</summary>
internal sealed class KeySet
{
    public readonly long Key;
    public readonly KeySet? Next;
    public readonly int Hash;

    private KeySet(long key, KeySet? next)
    {
        Key = key;
        Next = next;
        Hash = HashCode.Combine(key, next?.Hash ?? 0);
    }

    public static KeySet Add(KeySet? set, long key) => new(key, set);

    public static bool Contains(KeySet? set, long key)
    {
        for (var s = set; s != null; s = s.Next) if (s.Key == key) return true;
        return false;
    }

    public static bool Equal(KeySet? a, KeySet? b)
    {
        while (true)
        {
            if (ReferenceEquals(a, b)) return true;
            if (a is null || b is null || a.Hash != b.Hash || a.Key != b.Key) return false;
            a = a.Next;
            b = b.Next;
        }
    }
}
