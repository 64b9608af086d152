using System.Text;

namespace KimiSharp.Jinja;

internal enum DictViewKind
{
    Keys,
    Values,
    Items,
}

/// <summary>
/// <c>dict.keys()</c>/<c>values()</c>/<c>items()</c>: iterable and sized but not subscriptable, and printed as
/// <c>dict_items([...])</c>. Python views are live; this one is a snapshot taken at call time.
/// </summary>
internal sealed class DictView : JinjaValue
{
    public DictView(JinjaDict owner, DictViewKind kind)
    {
        Owner = owner;
        Kind = kind;
        Items = kind switch
        {
            DictViewKind.Keys => [.. owner.Keys],
            DictViewKind.Values => [.. owner.Values],
            _ => owner.Pairs.Select(p => (JinjaValue)new JinjaTuple([p.Key, p.Value])).ToList(),
        };
    }

    public JinjaDict Owner { get; }
    public DictViewKind Kind { get; }
    public List<JinjaValue> Items { get; }

    public override string PythonTypeName => Kind switch
    {
        DictViewKind.Keys => "dict_keys",
        DictViewKind.Values => "dict_values",
        _ => "dict_items",
    };

    public override bool IsTruthy => Items.Count != 0;

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        sb.Append(PythonTypeName).Append('(');
        new JinjaList(Items).AppendRepr(sb, active);
        sb.Append(')');
    }
}

/// <summary>Python's <c>range</c> object (what Jinja's sandboxed <c>range()</c> returns).</summary>
internal sealed class JinjaRange : JinjaValue
{
    public JinjaRange(long start, long stop, long step)
    {
        Start = start;
        Stop = stop;
        Step = step;
        long n = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
        Count = Math.Max(0, n);
    }

    public long Start { get; }
    public long Stop { get; }
    public long Step { get; }
    public long Count { get; }

    public long this[long index] => Start + index * Step;

    public List<JinjaValue> ToList()
    {
        var list = new List<JinjaValue>((int)Count);
        for (long i = 0; i < Count; i++)
            list.Add(new JinjaInt(this[i]));
        return list;
    }

    public override string PythonTypeName => "range";
    public override bool IsTruthy => Count != 0;

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        sb.Append("range(").Append(Start).Append(", ").Append(Stop);
        if (Step != 1)
            sb.Append(", ").Append(Step);
        sb.Append(')');
    }
}

/// <summary>A slice key (<c>x[a:b:c]</c>); only meaningful as a subscript.</summary>
internal sealed class SliceValue(JinjaValue start, JinjaValue stop, JinjaValue step) : JinjaValue
{
    public JinjaValue Start { get; } = start;
    public JinjaValue Stop { get; } = stop;
    public JinjaValue StepValue { get; } = step;
    public override string PythonTypeName => "slice";

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        sb.Append("slice(");
        Start.AppendRepr(sb, active);
        sb.Append(", ");
        Stop.AppendRepr(sb, active);
        sb.Append(", ");
        StepValue.AppendRepr(sb, active);
        sb.Append(')');
    }
}

/// <summary>The <c>loop</c> variable inside <c>{% for %}</c>.</summary>
internal sealed class LoopContext(IReadOnlyList<JinjaValue> items) : JinjaValue
{
    private JinjaValue? _lastChanged;

    public IReadOnlyList<JinjaValue> Items { get; } = items;
    public int Index0 { get; set; }
    public int Length => Items.Count;
    public override string PythonTypeName => "LoopContext";

    public bool TryGetAttribute(string name, out JinjaValue value)
    {
        value = name switch
        {
            "index" => new JinjaInt(Index0 + 1),
            "index0" => new JinjaInt(Index0),
            "revindex" => new JinjaInt(Length - Index0),
            "revindex0" => new JinjaInt(Length - Index0 - 1),
            "first" => JinjaValue.From(Index0 == 0),
            "last" => JinjaValue.From(Index0 == Length - 1),
            "length" => new JinjaInt(Length),
            "depth" => new JinjaInt(1),
            "depth0" => new JinjaInt(0),
            "previtem" => Index0 > 0 ? Items[Index0 - 1] : new JinjaUndefined("previtem", "there is no previous item"),
            "nextitem" => Index0 + 1 < Length ? Items[Index0 + 1] : new JinjaUndefined("nextitem", "there is no next item"),
            "cycle" => new BuiltinFunction("cycle", (args, _) =>
            {
                if (args.Positional.Count == 0)
                    throw new PyException("TypeError", "no items for cycling given");
                return args.Positional[Index0 % args.Positional.Count];
            }),
            "changed" => new BuiltinFunction("changed", (args, _) =>
            {
                var current = new JinjaList([.. args.Positional]);
                if (_lastChanged is not null && PyOps.Equal(_lastChanged, current))
                    return JinjaBool.False;
                _lastChanged = current;
                return JinjaBool.True;
            }),
            _ => null!,
        };
        return value is not null;
    }

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) =>
        sb.Append("<LoopContext ").Append(Index0 + 1).Append('/').Append(Length).Append('>');
}

/// <summary>A built-in function or method implemented in C#.</summary>
internal sealed class BuiltinFunction(string name, Func<JinjaArguments, Interpreter, JinjaValue> impl, JinjaValue? self = null) : JinjaCallable
{
    public string Name { get; } = name;
    public JinjaValue? Self { get; } = self;
    public override string PythonTypeName => "builtin_function_or_method";
    internal override JinjaValue Invoke(JinjaArguments args, Interpreter interpreter) => impl(args, interpreter);

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        if (Self is null)
            sb.Append("<built-in function ").Append(Name).Append('>');
        else
            sb.Append("<built-in method ").Append(Name).Append(" of ").Append(Self.PythonTypeName).Append(" object>");
    }
}

/// <summary>A <c>{% macro %}</c>, closed over the scope it was defined in (names resolve at call time).</summary>
internal sealed class JinjaMacro(MacroNode node, Scope closure) : JinjaCallable
{
    public MacroNode Node { get; } = node;
    public Scope Closure { get; } = closure;
    public override string PythonTypeName => "Macro";
    internal override JinjaValue Invoke(JinjaArguments args, Interpreter interpreter) => interpreter.CallMacro(this, args);
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append("<Macro '").Append(Node.Name).Append("'>");
}

/// <summary>A variable scope; lookups walk outwards through enclosing scopes.</summary>
internal sealed class Scope(Scope? parent)
{
    private Dictionary<string, JinjaValue>? _vars;

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out JinjaValue value)
    {
        for (var s = this; s is not null; s = s.Parent)
        {
            if (s._vars is not null && s._vars.TryGetValue(name, out value!))
                return true;
        }
        value = null!;
        return false;
    }

    public void Set(string name, JinjaValue value) => (_vars ??= new(StringComparer.Ordinal))[name] = value;
}
