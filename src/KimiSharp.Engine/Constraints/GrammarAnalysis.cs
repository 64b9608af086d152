namespace KimiSharp.Engine.Constraints;

/// <summary>Computes <see cref="GNode.MinDepth"/> and <see cref="GNode.Nullable"/> (least fixpoint over cycles).</summary>
internal static class GrammarAnalysis
{
    public static IEnumerable<GNode> Children(GNode node)
    {
        switch (node)
        {
            case UnionNode u: return u.Alternatives;
            case SeqNode s: return s.Parts;
            case RefNode r: return [r.Target];
            case JsonRootNode j: return [j.Inner];
            case ObjectNode o:
                var values = o.Properties.Select(p => p.Value);
                return o.Additional is null ? values : values.Append(o.Additional);
            case ArrayNode a: return a.Items is null ? a.Prefix : a.Prefix.Append(a.Items);
            default: return [];
        }
    }

    public static List<GNode> Reachable(GNode root)
    {
        var seen = new HashSet<GNode>(ReferenceEqualityComparer.Instance);
        var order = new List<GNode>();
        var stack = new Stack<GNode>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (!seen.Add(n)) continue;
            order.Add(n);
            foreach (var c in Children(n)) stack.Push(c);
        }
        return order;
    }

    /// <summary>Fixpoint over everything reachable from <paramref name="root"/> (values only ever decrease / turn true).</summary>
    public static void Run(GNode root)
    {
        var nodes = Reachable(root);
        bool changed = true;
        while (changed)
        {
            changed = false;
            foreach (var n in nodes)
            {
                var (depth, nullable) = Compute(n);
                if (depth < n.MinDepth) { n.MinDepth = depth; changed = true; }
                if (nullable && !n.Nullable) { n.Nullable = true; changed = true; }
            }
        }
    }

    /// <summary>Sets the properties of a node whose children are already analysed.</summary>
    public static T Seal<T>(T node) where T : GNode
    {
        (node.MinDepth, node.Nullable) = Compute(node);
        return node;
    }

    public static (int MinDepth, bool Nullable) Compute(GNode node)
    {
        const int Never = GNode.Unsatisfiable;
        switch (node)
        {
            case EmptyNode: return (0, true);
            case NeverNode: return (Never, false);
            case UnionNode u:
                return (u.Alternatives.Length == 0 ? Never : u.Alternatives.Min(a => a.MinDepth), u.Alternatives.Any(a => a.Nullable));
            case SeqNode s:
                return (s.Parts.Length == 0 ? 0 : s.Parts.Max(p => p.MinDepth), s.Parts.All(p => p.Nullable));
            case RefNode r: return (r.Target.MinDepth, r.Target.Nullable);
            case JsonRootNode j: return (j.Inner.MinDepth <= j.MaxDepth ? 0 : Never, false);
            case LiteralNode l: return (l.Trie.IsEmpty ? Never : l.Trie.Need(SymbolTrie.Root), false);
            case StringNode s: return (s.MinLength <= s.MaxLength && (s.Pattern?.Satisfiable ?? true) ? 0 : Never, false);
            case NumberNode n: return (MatcherCore.Satisfiable(n) ? 0 : Never, false);
            case ObjectNode o:
                {
                    int need = 0;
                    foreach (var p in o.Properties) if (p.Required) need = Math.Max(need, p.Value.MinDepth);
                    if (o.FreeForm && o.MinProperties > 0)
                        need = o.MinProperties > o.MaxProperties ? Never : o.Additional?.MinDepth ?? Never;
                    return (GNode.Add(1, need), false);
                }
            case ArrayNode a:
                {
                    if (a.MinItems > a.MaxItems) return (Never, false);
                    int need = 0;
                    for (int k = 0; k < a.MinItems; k++)
                    {
                        var item = a.ItemAt(k);
                        need = Math.Max(need, item?.MinDepth ?? Never);
                        if (k >= a.Prefix.Length) break; // the rest repeat Items
                    }
                    return (GNode.Add(1, need), false);
                }
            default: return (Never, false);
        }
    }
}
