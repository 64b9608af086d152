using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Jinja;

/// <summary>
/// A value inside the template interpreter, modelled on the Python objects Jinja2 sees when Hugging Face
/// renders a chat template: <c>None</c>, <c>bool</c>, <c>int</c>, <c>float</c>, <c>str</c>, <c>list</c>,
/// <c>tuple</c>, insertion-ordered <c>dict</c>, Jinja's <c>Undefined</c> and <c>Namespace</c>, and callables.
/// <see cref="ToString"/> is Python's <c>str()</c>, which is what <c>{{ value }}</c> prints.
/// </summary>
public abstract class JinjaValue
{
    private protected JinjaValue()
    {
    }

    /// <summary>The Python type name (<c>type(x).__name__</c>), used in error messages.</summary>
    public abstract string PythonTypeName { get; }

    /// <summary>Python truthiness (<c>bool(x)</c>).</summary>
    public virtual bool IsTruthy => true;

    /// <summary>Python <c>str(x)</c>.</summary>
    public override string ToString() => Repr();

    /// <summary>Python <c>repr(x)</c>.</summary>
    public string Repr()
    {
        var sb = new StringBuilder();
        AppendRepr(sb, new HashSet<JinjaValue>(ReferenceEqualityComparer.Instance));
        return sb.ToString();
    }

    /// <summary>Appends <c>repr(x)</c>; <paramref name="active"/> guards against self-containing containers.</summary>
    internal abstract void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active);

    // ---- construction -------------------------------------------------------------------------

    public static JinjaValue None => JinjaNone.Instance;
    public static JinjaValue True => JinjaBool.True;
    public static JinjaValue False => JinjaBool.False;

    public static JinjaValue From(string? s) => s is null ? JinjaNone.Instance : new JinjaString(s);
    public static JinjaValue From(bool b) => b ? JinjaBool.True : JinjaBool.False;
    public static JinjaValue From(long i) => new JinjaInt(i);
    public static JinjaValue From(double d) => new JinjaFloat(d);

    /// <summary>
    /// Converts JSON to template values the way Python's <c>json.loads</c> would: objects become ordered dicts,
    /// numbers written with a fraction or exponent become floats and the others ints.
    /// </summary>
    public static JinjaValue FromJson(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return JinjaNone.Instance;
            case JsonObject obj:
            {
                var dict = new JinjaDict();
                foreach (var (key, value) in obj)
                    dict[new JinjaString(key)] = FromJson(value);
                return dict;
            }
            case JsonArray arr:
            {
                var list = new List<JinjaValue>(arr.Count);
                foreach (var item in arr)
                    list.Add(FromJson(item));
                return new JinjaList(list);
            }
            case JsonValue v:
                return FromJsonValue(v);
            default:
                throw new ArgumentException($"Unsupported JSON node type {node.GetType().Name}.", nameof(node));
        }
    }

    private static JinjaValue FromJsonValue(JsonValue v)
    {
        if (v.TryGetValue<JsonElement>(out var el))
            return FromJson(el);
        switch (v.GetValueKind())
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined:
                return JinjaNone.Instance;
            case JsonValueKind.True:
                return JinjaBool.True;
            case JsonValueKind.False:
                return JinjaBool.False;
            case JsonValueKind.String:
                if (v.TryGetValue<string>(out var s))
                    return new JinjaString(s);
                if (v.TryGetValue<char>(out char c))
                    return new JinjaString(c.ToString());
                // Other CLR values that serialise as JSON strings (Guid, DateTime...): use their JSON text.
                return new JinjaString(JsonNode.Parse(v.ToJsonString())!.GetValue<string>());
            case JsonValueKind.Number:
                // A CLR-typed value (JsonValue.Create(1.0)): the CLR type decides int versus float, as it
                // would in Python (1.0 is a float even though JSON would write it as "1").
                if (v.TryGetValue<double>(out double d)) return new JinjaFloat(d);
                if (v.TryGetValue<float>(out float f)) return new JinjaFloat(f);
                if (v.TryGetValue<decimal>(out decimal m)) return new JinjaFloat((double)m);
                if (v.TryGetValue<Half>(out Half h)) return new JinjaFloat((double)h);
                if (v.TryGetValue<long>(out long l)) return new JinjaInt(l);
                if (v.TryGetValue<int>(out int i)) return new JinjaInt(i);
                if (v.TryGetValue<short>(out short sh)) return new JinjaInt(sh);
                if (v.TryGetValue<byte>(out byte b)) return new JinjaInt(b);
                if (v.TryGetValue<sbyte>(out sbyte sb)) return new JinjaInt(sb);
                if (v.TryGetValue<uint>(out uint ui)) return new JinjaInt(ui);
                if (v.TryGetValue<ushort>(out ushort us)) return new JinjaInt(us);
                if (v.TryGetValue<ulong>(out ulong ul)) return ul <= long.MaxValue ? new JinjaInt((long)ul) : new JinjaBigInt(ul);
                return ParseJsonNumber(v.ToJsonString());
            default:
                return FromJson(JsonNode.Parse(v.ToJsonString()));
        }
    }

    /// <summary>Converts a parsed JSON element (see <see cref="FromJson(JsonNode?)"/>).</summary>
    public static JinjaValue FromJson(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var dict = new JinjaDict();
                foreach (var p in element.EnumerateObject())
                    dict[new JinjaString(p.Name)] = FromJson(p.Value);
                return dict;
            }
            case JsonValueKind.Array:
            {
                var list = new List<JinjaValue>(element.GetArrayLength());
                foreach (var item in element.EnumerateArray())
                    list.Add(FromJson(item));
                return new JinjaList(list);
            }
            case JsonValueKind.String:
                return new JinjaString(element.GetString()!);
            case JsonValueKind.Number:
                return ParseJsonNumber(element.GetRawText());
            case JsonValueKind.True:
                return JinjaBool.True;
            case JsonValueKind.False:
                return JinjaBool.False;
            default:
                return JinjaNone.Instance;
        }
    }

    private static JinjaValue ParseJsonNumber(string raw)
    {
        // Python's json module: an integer literal stays an int, anything with '.', 'e' or 'E' is a float.
        if (raw.AsSpan().IndexOfAny(".eE") < 0)
        {
            if (long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
                return new JinjaInt(l);
            // Python ints are unbounded: keep the exact value.
            return new JinjaBigInt(BigInteger.Parse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture));
        }
        return new JinjaFloat(double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Converts a CLR value: null, <see cref="JinjaValue"/>, strings, chars, booleans, integral and floating
    /// numbers, <see cref="JsonNode"/>, <see cref="JsonElement"/>, dictionaries (keys become dict keys) and
    /// other enumerables (become lists).
    /// </summary>
    public static JinjaValue FromObject(object? value)
    {
        switch (value)
        {
            case null: return JinjaNone.Instance;
            case JinjaValue jv: return jv;
            case string s: return new JinjaString(s);
            case char c: return new JinjaString(c.ToString());
            case bool b: return b ? JinjaBool.True : JinjaBool.False;
            case int i: return new JinjaInt(i);
            case long l: return new JinjaInt(l);
            case short sh: return new JinjaInt(sh);
            case byte by: return new JinjaInt(by);
            case sbyte sb: return new JinjaInt(sb);
            case uint ui: return new JinjaInt(ui);
            case ushort us: return new JinjaInt(us);
            case ulong ul: return ul <= long.MaxValue ? new JinjaInt((long)ul) : new JinjaFloat(ul);
            case double d: return new JinjaFloat(d);
            case float f: return new JinjaFloat(f);
            case decimal m: return new JinjaFloat((double)m);
            case Half h: return new JinjaFloat((double)h);
            case JsonNode node: return FromJson(node);
            case JsonElement el: return FromJson(el);
            case IDictionary dict:
            {
                var result = new JinjaDict();
                foreach (DictionaryEntry e in dict)
                    result[FromObject(e.Key)] = FromObject(e.Value);
                return result;
            }
            case IEnumerable seq:
            {
                // Generic read-only dictionaries do not implement IDictionary; detect them through their pairs.
                var items = new List<JinjaValue>();
                JinjaDict? asDict = null;
                foreach (object? item in seq)
                {
                    if (item is not null && item.GetType().IsGenericType &&
                        item.GetType().GetGenericTypeDefinition() == typeof(KeyValuePair<,>))
                    {
                        asDict ??= new JinjaDict();
                        var t = item.GetType();
                        asDict[FromObject(t.GetProperty("Key")!.GetValue(item))] = FromObject(t.GetProperty("Value")!.GetValue(item));
                    }
                    else
                    {
                        items.Add(FromObject(item));
                    }
                }
                return asDict is not null && items.Count == 0 ? asDict : new JinjaList(items);
            }
            default:
                throw new ArgumentException($"Cannot convert a value of type {value.GetType().FullName} to a template value.", nameof(value));
        }
    }
}

/// <summary>
/// Jinja2's default <c>Undefined</c>: prints as nothing, is falsy, iterates as empty and has length 0, but any
/// attribute access, item access, call or arithmetic on it raises an error that names what was missing.
/// </summary>
public sealed class JinjaUndefined : JinjaValue
{
    internal JinjaUndefined(string? name, string? hint = null, JinjaValue? owner = null)
    {
        Name = name;
        Hint = hint;
        Owner = owner;
    }

    internal static readonly JinjaUndefined Plain = new(null);

    /// <summary>The variable, attribute or item name that was missing, if known.</summary>
    public string? Name { get; }
    internal string? Hint { get; }
    internal JinjaValue? Owner { get; }
    internal object? ItemKey { get; init; }

    /// <summary>The Python exception type raised on use (SecurityError for sandbox-blocked attributes).</summary>
    internal string ErrorType { get; init; } = "UndefinedError";

    /// <summary>The message Jinja2's <c>UndefinedError</c> would carry.</summary>
    public string Message
    {
        get
        {
            if (Hint is not null)
                return Hint;
            if (Owner is null)
                return Name is null ? "value is undefined" : $"'{Name}' is undefined";
            if (ItemKey is JinjaValue key)
                return $"{ObjectTypeRepr(Owner)} has no element {key.Repr()}";
            return $"'{ObjectTypeRepr(Owner)}' has no attribute '{Name}'";
        }
    }

    internal static string ObjectTypeRepr(JinjaValue v) => v is JinjaNone ? "None" : $"{v.PythonTypeName} object";

    public override string PythonTypeName => "Undefined";
    public override bool IsTruthy => false;
    public override string ToString() => "";
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append("Undefined");
}

public sealed class JinjaNone : JinjaValue
{
    private JinjaNone()
    {
    }

    public static readonly JinjaNone Instance = new();
    public override string PythonTypeName => "NoneType";
    public override bool IsTruthy => false;
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append("None");
}

public sealed class JinjaBool : JinjaValue
{
    private JinjaBool(bool value) => Value = value;

    public static new readonly JinjaBool True = new(true);
    public static new readonly JinjaBool False = new(false);
    public bool Value { get; }
    public override string PythonTypeName => "bool";
    public override bool IsTruthy => Value;
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append(Value ? "True" : "False");
}

/// <summary>A Python <c>int</c> within 64 bits; larger ones are <see cref="JinjaBigInt"/>.</summary>
public sealed class JinjaInt(long value) : JinjaValue
{
    public long Value { get; } = value;
    public override string PythonTypeName => "int";
    public override bool IsTruthy => Value != 0;
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append(Value.ToString(CultureInfo.InvariantCulture));
}

/// <summary>
/// A Python <c>int</c> beyond 64 bits, as JSON input can carry (<c>12345678901234567890</c>): printed, compared,
/// hashed, serialised and computed with exactly, up to <c>PyOps.MaxIntBits</c> bits (beyond, arithmetic raises).
/// </summary>
public sealed class JinjaBigInt : JinjaValue
{
    public JinjaBigInt(BigInteger value)
    {
        if (value >= long.MinValue && value <= long.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(value), "Integers within 64 bits are JinjaInt.");
        Value = value;
    }

    public BigInteger Value { get; }
    public override string PythonTypeName => "int";
    public override bool IsTruthy => true;
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append(Value.ToString(CultureInfo.InvariantCulture));
}

public sealed class JinjaFloat(double value) : JinjaValue
{
    public double Value { get; } = value;
    public override string PythonTypeName => "float";
    public override bool IsTruthy => Value != 0;
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append(PyText.FloatRepr(Value));
}

/// <summary>
/// A Python <c>str</c>. <see cref="IsSafe"/> marks a MarkupSafe <c>Markup</c> string (from <c>|safe</c> or
/// <c>|escape</c>); it prints the same, but <c>+</c> with a plain string escapes the plain operand.
/// </summary>
public sealed class JinjaString(string value, bool isSafe = false) : JinjaValue
{
    public static readonly JinjaString Empty = new("");
    public string Value { get; } = value;
    public bool IsSafe { get; } = isSafe;
    public override string PythonTypeName => IsSafe ? "Markup" : "str";
    public override bool IsTruthy => Value.Length != 0;
    public override string ToString() => Value;

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        if (IsSafe)
            sb.Append("Markup(").Append(PyText.Repr(Value)).Append(')');
        else
            sb.Append(PyText.Repr(Value));
    }
}

/// <summary>A mutable Python <c>list</c>.</summary>
public sealed class JinjaList : JinjaValue
{
    public JinjaList() => Items = [];
    public JinjaList(List<JinjaValue> items) => Items = items;
    public JinjaList(IEnumerable<JinjaValue> items) => Items = [.. items];

    public List<JinjaValue> Items { get; }
    public override string PythonTypeName => "list";
    public override bool IsTruthy => Items.Count != 0;

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        if (!active.Add(this))
        {
            sb.Append("[...]");
            return;
        }
        sb.Append('[');
        for (int i = 0; i < Items.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            Items[i].AppendRepr(sb, active);
        }
        sb.Append(']');
        active.Remove(this);
    }
}

/// <summary>An immutable Python <c>tuple</c> (tuple literals, <c>dict.items()</c> pairs, <c>varargs</c>).</summary>
public sealed class JinjaTuple(IReadOnlyList<JinjaValue> items) : JinjaValue
{
    public static readonly JinjaTuple Empty = new([]);
    public IReadOnlyList<JinjaValue> Items { get; } = items;

    /// <summary>For a named tuple (groupby's <c>_GroupTuple</c>): its type name and field names.</summary>
    internal (string TypeName, string[] Fields)? Named { get; init; }

    public override string PythonTypeName => Named?.TypeName ?? "tuple";
    public override bool IsTruthy => Items.Count != 0;

    // Jinja2's _GroupTuple keeps tuple.__repr__, so named tuples print like plain ones.
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        sb.Append('(');
        for (int i = 0; i < Items.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            Items[i].AppendRepr(sb, active);
        }
        if (Items.Count == 1)
            sb.Append(',');
        sb.Append(')');
    }
}

/// <summary>A Python <c>dict</c>: insertion-ordered, keys compared with Python equality (1 == 1.0 == True).</summary>
public sealed class JinjaDict : JinjaValue
{
    private readonly OrderedDictionary<JinjaValue, JinjaValue> _items = new(PyKeyComparer.Instance);

    public JinjaDict()
    {
    }

    public JinjaDict(IEnumerable<KeyValuePair<string, JinjaValue>> items)
    {
        foreach (var (k, v) in items)
            _items[new JinjaString(k)] = v;
    }

    public override string PythonTypeName => "dict";
    public override bool IsTruthy => _items.Count != 0;
    public int Count => _items.Count;

    /// <summary>Gets or sets an entry; setting an existing key keeps its position, as in Python.</summary>
    public JinjaValue this[JinjaValue key]
    {
        get => _items[key];
        set => _items[key] = value;
    }

    public JinjaValue this[string key]
    {
        get => _items[new JinjaString(key)];
        set => _items[new JinjaString(key)] = value;
    }

    public bool TryGetValue(JinjaValue key, out JinjaValue value) => _items.TryGetValue(key, out value!);
    public bool TryGetValue(string key, out JinjaValue value) => _items.TryGetValue(new JinjaString(key), out value!);
    public bool ContainsKey(JinjaValue key) => _items.ContainsKey(key);
    public bool Remove(JinjaValue key, out JinjaValue value) => _items.Remove(key, out value!);
    public void Clear() => _items.Clear();
    public IEnumerable<JinjaValue> Keys => _items.Keys;
    public IEnumerable<JinjaValue> Values => _items.Values;
    public IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> Pairs => _items;

    internal KeyValuePair<JinjaValue, JinjaValue> GetAt(int index) => _items.GetAt(index);
    internal void RemoveAt(int index) => _items.RemoveAt(index);

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        if (!active.Add(this))
        {
            sb.Append("{...}");
            return;
        }
        sb.Append('{');
        bool first = true;
        foreach (var (k, v) in _items)
        {
            if (!first)
                sb.Append(", ");
            first = false;
            k.AppendRepr(sb, active);
            sb.Append(": ");
            v.AppendRepr(sb, active);
        }
        sb.Append('}');
        active.Remove(this);
    }
}

/// <summary>Jinja's <c>namespace(...)</c> object: the only thing <c>{% set ns.attr = ... %}</c> may assign to.</summary>
public sealed class JinjaNamespace : JinjaValue
{
    public Dictionary<string, JinjaValue> Attributes { get; } = new(StringComparer.Ordinal);
    // Python's dict keeps insertion order; Dictionary<,> does too until a removal, and namespaces never remove.
    public override string PythonTypeName => "Namespace";

    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active)
    {
        sb.Append("<Namespace {");
        bool first = true;
        foreach (var (k, v) in Attributes)
        {
            if (!first)
                sb.Append(", ");
            first = false;
            sb.Append(PyText.Repr(k)).Append(": ");
            v.AppendRepr(sb, active);
        }
        sb.Append("}>");
    }
}

/// <summary>Arguments of a call from a template: positional values and keyword values in call order.</summary>
public sealed class JinjaArguments
{
    internal JinjaArguments(List<JinjaValue> positional, List<KeyValuePair<string, JinjaValue>> keywords)
    {
        Positional = positional;
        Keywords = keywords;
    }

    public IReadOnlyList<JinjaValue> Positional { get; }
    public IReadOnlyList<KeyValuePair<string, JinjaValue>> Keywords { get; }

    internal static readonly JinjaArguments None = new([], []);

    /// <summary>
    /// Binds arguments to parameter names with Python rules: positionals first, then keywords by name;
    /// a missing parameter without a default (null entry in <paramref name="defaults"/>) is an error.
    /// </summary>
    public JinjaValue[] Bind(string function, string[] names, JinjaValue?[] defaults)
    {
        if (Positional.Count > names.Length)
            throw new PyException("TypeError", $"{function}() takes at most {names.Length} argument{(names.Length == 1 ? "" : "s")} ({Positional.Count} given)");
        var bound = new JinjaValue?[names.Length];
        for (int i = 0; i < Positional.Count; i++)
            bound[i] = Positional[i];
        foreach (var (key, value) in Keywords)
        {
            int idx = Array.IndexOf(names, key);
            if (idx < 0)
                throw new PyException("TypeError", $"{function}() got an unexpected keyword argument '{key}'");
            if (bound[idx] is not null)
                throw new PyException("TypeError", $"{function}() got multiple values for argument '{key}'");
            bound[idx] = value;
        }
        var result = new JinjaValue[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            result[i] = bound[i] ?? defaults[i]
                ?? throw new PyException("TypeError", $"{function}() missing 1 required positional argument: '{names[i]}'");
        }
        return result;
    }
}

/// <summary>Something a template can call: macros, global functions, bound methods.</summary>
public abstract class JinjaCallable : JinjaValue
{
    private protected JinjaCallable()
    {
    }

    internal abstract JinjaValue Invoke(JinjaArguments args, Interpreter interpreter);
}

/// <summary>A host-provided function exposed to templates (like Jinja globals such as <c>raise_exception</c>).</summary>
public sealed class JinjaFunction(string name, Func<JinjaArguments, JinjaValue> implementation) : JinjaCallable
{
    public string Name { get; } = name;
    public override string PythonTypeName => "function";
    internal override JinjaValue Invoke(JinjaArguments args, Interpreter interpreter) => implementation(args);
    internal override void AppendRepr(StringBuilder sb, HashSet<JinjaValue> active) => sb.Append("<function ").Append(Name).Append('>');
}
