using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Attribute and item lookup with Jinja2's sandbox rules. <c>x.name</c> tries the Python attribute first
/// (so <c>d.items</c> is the dict method even when the dict has an "items" key) and then the item;
/// <c>x[key]</c> tries the item first and, for string keys, the attribute second. Anything not found is
/// an <see cref="JinjaUndefined"/>; any lookup on an undefined value raises.
/// </summary>
internal static class Access
{
    public static JinjaValue GetAttr(JinjaValue obj, string name, Interpreter interp)
    {
        if (obj is JinjaUndefined u)
            throw PyOps.UndefinedError(u);
        if (TryPyGetAttr(obj, name, interp, out var value))
            return value;
        if (TryPyGetItem(obj, new JinjaString(name), out value))
            return value;
        return new JinjaUndefined(name, owner: obj);
    }

    public static JinjaValue GetItem(JinjaValue obj, JinjaValue key, Interpreter interp)
    {
        if (obj is JinjaUndefined u)
            throw PyOps.UndefinedError(u);
        if (TryPyGetItem(obj, key, out var value))
            return value;
        if (key is JinjaString s)
        {
            if (TryPyGetAttr(obj, s.Value, interp, out value))
                return value;
            return new JinjaUndefined(s.Value, owner: obj);
        }
        return new JinjaUndefined(null, owner: obj) { ItemKey = key };
    }

    /// <summary>Python <c>obj[key]</c>; false where Python raises TypeError/LookupError.</summary>
    public static bool TryPyGetItem(JinjaValue obj, JinjaValue key, out JinjaValue value)
    {
        value = null!;
        switch (obj)
        {
            case JinjaDict d:
                if (key is JinjaList or JinjaDict or DictView or SliceValue)
                    return false; // unhashable
                return d.TryGetValue(key, out value);
            case JinjaList l:
                return TryIndex(l.Items, key, items => new JinjaList(items), out value);
            case JinjaTuple t:
                return TryIndex(t.Items, key, items => new JinjaTuple(items), out value);
            case JinjaRange r:
                if (key is SliceValue rs)
                {
                    // Slicing a range gives a range: range(10)[2:5] is range(2, 5).
                    if (!TrySliceBound(rs.Start, out var a) || !TrySliceBound(rs.Stop, out var b) || !TrySliceBound(rs.StepValue, out var c))
                        return false;
                    if (c == 0)
                        throw new PyException("ValueError", "slice step cannot be zero");
                    var (lo, hi, st) = PyText.SliceBounds(r.Count, a, b, c);
                    value = new JinjaRange(r.Start + lo * r.Step, r.Start + hi * r.Step, r.Step * st);
                    return true;
                }
                return TryIndex(r.ToList(), key, items => new JinjaList(items), out value);
            case JinjaString s:
            {
                if (!PyText.HasSurrogates(s.Value) && PyOps.TryInt(key, out long i))
                {
                    if (i < 0)
                        i += s.Value.Length;
                    if (i < 0 || i >= s.Value.Length)
                        return false;
                    value = new JinjaString(s.Value[(int)i].ToString());
                    return true;
                }
                var elements = PyText.Elements(s.Value);
                var asValues = elements.Select(e => (JinjaValue)new JinjaString(e)).ToList();
                return TryIndex(asValues, key, items => new JinjaString(string.Concat(items.Select(x => ((JinjaString)x).Value))), out value);
            }
            default:
                return false;
        }
    }

    private static bool TryIndex(IReadOnlyList<JinjaValue> items, JinjaValue key, Func<List<JinjaValue>, JinjaValue> make, out JinjaValue value)
    {
        value = null!;
        if (PyOps.TryInt(key, out long i))
        {
            if (i < 0)
                i += items.Count;
            if (i < 0 || i >= items.Count)
                return false;
            value = items[(int)i];
            return true;
        }
        if (key is SliceValue slice)
        {
            if (!TrySliceBound(slice.Start, out var a) || !TrySliceBound(slice.Stop, out var b) || !TrySliceBound(slice.StepValue, out var c))
                return false;
            if (c == 0)
                throw new PyException("ValueError", "slice step cannot be zero");
            var result = new List<JinjaValue>();
            foreach (int idx in PyText.SliceIndices(items.Count, a, b, c))
                result.Add(items[idx]);
            value = make(result);
            return true;
        }
        return false;
    }

    private static bool TrySliceBound(JinjaValue v, out long? bound)
    {
        bound = null;
        if (v is JinjaNone)
            return true;
        if (PyOps.TryInt(v, out long i))
        {
            bound = i;
            return true;
        }
        return false;
    }

    /// <summary>Python <c>getattr(obj, name)</c> for the attributes templates can reach.</summary>
    public static bool TryPyGetAttr(JinjaValue obj, string name, Interpreter interp, out JinjaValue value)
    {
        value = null!;
        // Sandbox: names starting with "_" are never exposed as attributes (dict items still are).
        if (name.StartsWith('_'))
            return false;
        switch (obj)
        {
            case JinjaNamespace ns:
                return ns.Attributes.TryGetValue(name, out value!);
            case LoopContext loop:
                return loop.TryGetAttribute(name, out value);
            case JinjaString s when Methods.StrMethods.Contains(name):
                value = Methods.Bind(obj, name, interp, (args, it) => Methods.CallStr(s, name, args, it));
                return true;
            case JinjaList l when Methods.ListMethods.Contains(name):
                value = Methods.Bind(obj, name, interp, (args, it) => Methods.CallList(l, name, args, it));
                return true;
            case JinjaDict d when Methods.DictMethods.Contains(name):
                value = Methods.Bind(obj, name, interp, (args, it) => Methods.CallDict(d, name, args, it));
                return true;
            case JinjaTuple { Named: var (_, fields) } nt when Array.IndexOf(fields, name) >= 0:
                value = nt.Items[Array.IndexOf(fields, name)];
                return true;
            case JinjaTuple t when name is "count" or "index":
                value = Methods.Bind(obj, name, interp, (args, it) => Methods.CallSeq(t.Items, "tuple", name, args));
                return true;
            case JinjaRange r when name is "start" or "stop" or "step":
                value = new JinjaInt(name switch { "start" => r.Start, "stop" => r.Stop, _ => r.Step });
                return true;
            case JinjaInt or JinjaBool when name is "real" or "numerator":
                PyOps.TryInt(obj, out long iv);
                value = new JinjaInt(iv);
                return true;
            case JinjaInt or JinjaBool when name is "imag":
                value = new JinjaInt(0);
                return true;
            case JinjaInt or JinjaBool when name is "denominator":
                value = new JinjaInt(1);
                return true;
            case JinjaFloat f when name is "real":
                value = f;
                return true;
            case JinjaFloat when name is "imag":
                value = new JinjaFloat(0);
                return true;
            case JinjaFloat f when name is "is_integer":
                value = new BuiltinFunction(name, (_, _) => JinjaValue.From(double.IsFinite(f.Value) && f.Value == Math.Floor(f.Value)), obj);
                return true;
            default:
                return false;
        }
    }
}

/// <summary>Python's built-in methods of <c>str</c>, <c>list</c>, <c>dict</c> and <c>tuple</c>.</summary>
internal static class Methods
{
    public static readonly HashSet<string> StrMethods =
    [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ];

    public static readonly HashSet<string> ListMethods =
        ["append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"];

    public static readonly HashSet<string> DictMethods =
        ["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"];

    // Jinja2's sandbox.modifies_known_mutable lists these as mutating.
    private static readonly HashSet<string> ListMutators = ["append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"];
    private static readonly HashSet<string> DictMutators = ["clear", "pop", "popitem", "setdefault", "update"];

    public static JinjaValue Bind(JinjaValue self, string name, Interpreter interp, Func<JinjaArguments, Interpreter, JinjaValue> impl)
    {
        if (interp.Options.ImmutableSandbox &&
            ((self is JinjaList && ListMutators.Contains(name)) || (self is JinjaDict && DictMutators.Contains(name))))
        {
            return new JinjaUndefined(name, $"access to attribute '{name}' of '{self.PythonTypeName}' object is unsafe.", self)
            {
                ErrorType = "SecurityError",
            };
        }
        return new BuiltinFunction(name, impl, self);
    }

    private static PyException NotSupported(string type, string name) =>
        new("NotImplementedError", $"{type}.{name}() is not supported by this template interpreter");

    private static string StrArg(JinjaValue v, string what)
    {
        if (v is JinjaString s)
            return s.Value;
        if (v is JinjaUndefined u)
            throw PyOps.UndefinedError(u);
        throw new PyException("TypeError", $"{what} must be str, not {v.PythonTypeName}");
    }

    private static string? OptStrArg(JinjaValue v, string what) => v is JinjaNone ? null : StrArg(v, what);

    internal static long IntArg(JinjaValue v)
    {
        if (PyOps.TryInt(v, out long i))
            return i;
        if (v is JinjaUndefined u)
            throw PyOps.UndefinedError(u);
        throw new PyException("TypeError", $"'{v.PythonTypeName}' object cannot be interpreted as an integer");
    }

    private static int? OptIndex(JinjaValue v) => v is JinjaNone ? null : (int)Math.Clamp(IntArg(v), int.MinValue, int.MaxValue);

    private static readonly JinjaValue NoneV = JinjaNone.Instance;

    public static JinjaValue CallStr(JinjaString self, string name, JinjaArguments args, Interpreter interp)
    {
        string s = self.Value;
        switch (name)
        {
            case "upper":
                args.Bind("upper", [], []);
                return new JinjaString(PyText.Upper(s));
            case "lower":
            case "casefold":
                args.Bind(name, [], []);
                return new JinjaString(PyText.Lower(s));
            case "title":
                args.Bind("title", [], []);
                return new JinjaString(PyText.Title(s));
            case "capitalize":
                args.Bind("capitalize", [], []);
                return new JinjaString(PyText.Capitalize(s));
            case "swapcase":
            {
                args.Bind("swapcase", [], []);
                var sb = new StringBuilder();
                foreach (string el in PyText.Elements(s))
                    sb.Append(el == PyText.Upper(el) ? PyText.Lower(el) : PyText.Upper(el));
                return new JinjaString(sb.ToString());
            }
            case "strip":
            case "lstrip":
            case "rstrip":
            {
                var a = args.Bind(name, ["chars"], [NoneV]);
                string? chars = OptStrArg(a[0], $"{name} arg");
                return new JinjaString(PyText.Strip(s, chars, name != "rstrip", name != "lstrip"));
            }
            case "split":
            case "rsplit":
            {
                var a = args.Bind(name, ["sep", "maxsplit"], [NoneV, new JinjaInt(-1)]);
                string? sep = OptStrArg(a[0], "must be str or None");
                long max = IntArg(a[1]);
                var parts = name == "split" ? PyText.Split(s, sep, (int)Math.Clamp(max, -1, int.MaxValue)) : PyText.RSplit(s, sep, (int)Math.Clamp(max, -1, int.MaxValue));
                return new JinjaList(parts.Select(p => (JinjaValue)new JinjaString(p)).ToList());
            }
            case "splitlines":
            {
                var a = args.Bind(name, ["keepends"], [JinjaBool.False]);
                return new JinjaList(PyText.SplitLines(s, a[0].IsTruthy).Select(p => (JinjaValue)new JinjaString(p)).ToList());
            }
            case "startswith":
            case "endswith":
            {
                var a = args.Bind(name, ["prefix", "start", "end"], [null, NoneV, NoneV]);
                var (lo, hi) = PyText.ClampRange(PyText.Length(s), OptIndex(a[1]), OptIndex(a[2]));
                string window = s[PyText.Utf16Index(s, lo)..PyText.Utf16Index(s, hi)];
                IEnumerable<JinjaValue> candidates = a[0] is JinjaTuple t ? t.Items : [a[0]];
                foreach (var c in candidates)
                {
                    if (c is not JinjaString cs)
                        throw new PyException("TypeError", $"{name} first arg must be str or a tuple of str, not {c.PythonTypeName}");
                    if (name == "startswith" ? window.StartsWith(cs.Value, StringComparison.Ordinal) : window.EndsWith(cs.Value, StringComparison.Ordinal))
                        return JinjaBool.True;
                }
                return JinjaBool.False;
            }
            case "replace":
            {
                var a = args.Bind(name, ["old", "new", "count"], [null, null, new JinjaInt(-1)]);
                return new JinjaString(PyText.Replace(s, StrArg(a[0], "replace() argument 1"), StrArg(a[1], "replace() argument 2"), IntArg(a[2])));
            }
            case "find":
            case "rfind":
            case "index":
            case "rindex":
            {
                var a = args.Bind(name, ["sub", "start", "end"], [null, NoneV, NoneV]);
                int k = PyText.Find(s, StrArg(a[0], "must be str"), OptIndex(a[1]), OptIndex(a[2]), reverse: name[0] == 'r');
                if (k < 0 && name.EndsWith("index", StringComparison.Ordinal))
                    throw new PyException("ValueError", "substring not found");
                return new JinjaInt(k);
            }
            case "count":
            {
                var a = args.Bind(name, ["sub"], [null]);
                return new JinjaInt(PyText.Count(s, StrArg(a[0], "must be str")));
            }
            case "join":
            {
                var a = args.Bind(name, ["iterable"], [null]);
                var items = PyOps.Iterate(a[0]);
                var sb = new StringBuilder();
                for (int i = 0; i < items.Count; i++)
                {
                    if (items[i] is not JinjaString item)
                        throw new PyException("TypeError", $"sequence item {i}: expected str instance, {items[i].PythonTypeName} found");
                    RenderBudget.CheckString((long)sb.Length + s.Length + item.Value.Length);
                    if (i > 0)
                        sb.Append(s);
                    sb.Append(item.Value);
                }
                return new JinjaString(sb.ToString());
            }
            case "removeprefix":
            {
                var a = args.Bind(name, ["prefix"], [null]);
                string p = StrArg(a[0], "removeprefix() argument");
                return new JinjaString(s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s);
            }
            case "removesuffix":
            {
                var a = args.Bind(name, ["suffix"], [null]);
                string p = StrArg(a[0], "removesuffix() argument");
                return new JinjaString(p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s);
            }
            case "partition":
            case "rpartition":
            {
                var a = args.Bind(name, ["sep"], [null]);
                string sep = StrArg(a[0], "must be str");
                if (sep.Length == 0)
                    throw new PyException("ValueError", "empty separator");
                int k = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                JinjaValue[] parts = k < 0
                    ? name == "partition" ? [new JinjaString(s), JinjaString.Empty, JinjaString.Empty] : [JinjaString.Empty, JinjaString.Empty, new JinjaString(s)]
                    : [new JinjaString(s[..k]), new JinjaString(sep), new JinjaString(s[(k + sep.Length)..])];
                return new JinjaTuple(parts);
            }
            case "center":
            case "ljust":
            case "rjust":
            {
                var a = args.Bind(name, ["width", "fillchar"], [null, new JinjaString(" ")]);
                long width = IntArg(a[0]);
                string fill = StrArg(a[1], "fill character");
                if (PyText.Length(fill) != 1)
                    throw new PyException("TypeError", "The fill character must be exactly one character long");
                int len = PyText.Length(s);
                if (width <= len)
                    return new JinjaString(s);
                RenderBudget.CheckString(width);
                int pad = (int)width - len;
                int left = name switch
                {
                    "ljust" => 0,
                    "rjust" => pad,
                    // CPython's centre puts the extra space on the left when the padding and width are both odd.
                    _ => pad / 2 + (pad & (int)width & 1),
                };
                return new JinjaString(Repeat(fill, left) + s + Repeat(fill, pad - left));
            }
            case "zfill":
            {
                var a = args.Bind(name, ["width"], [null]);
                long width = IntArg(a[0]);
                int len = PyText.Length(s);
                if (width <= len)
                    return new JinjaString(s);
                RenderBudget.CheckString(width);
                string zeros = new('0', (int)width - len);
                return new JinjaString(s.Length > 0 && s[0] is '+' or '-' ? s[0] + zeros + s[1..] : zeros + s);
            }
            case "isdigit":
            case "isdecimal":
            case "isnumeric":
                args.Bind(name, [], []);
                return JinjaValue.From(s.Length > 0 && PyText.CodePoints(s).All(cp => cp < 0x10000 && char.IsDigit((char)cp)));
            case "isalpha":
                args.Bind(name, [], []);
                return JinjaValue.From(s.Length > 0 && PyText.Elements(s).All(e => char.IsLetter(e, 0)));
            case "isalnum":
                args.Bind(name, [], []);
                return JinjaValue.From(s.Length > 0 && PyText.Elements(s).All(e => char.IsLetterOrDigit(e, 0)));
            case "isspace":
                args.Bind(name, [], []);
                return JinjaValue.From(s.Length > 0 && s.All(PyText.IsSpace));
            case "isascii":
                args.Bind(name, [], []);
                return JinjaValue.From(PyText.IsAscii(s));
            case "isupper":
            case "islower":
            {
                args.Bind(name, [], []);
                bool anyCased = false;
                foreach (string el in PyText.Elements(s))
                {
                    bool upper = char.IsUpper(el, 0), lower = char.IsLower(el, 0);
                    if (upper || lower)
                        anyCased = true;
                    if (name == "isupper" ? lower : upper)
                        return JinjaBool.False;
                }
                return JinjaValue.From(anyCased);
            }
            case "istitle":
                args.Bind(name, [], []);
                return JinjaValue.From(s.Length > 0 && PyText.Title(s) == s && s.Any(char.IsLetter));
            case "format":
                return new JinjaString(PyFormat.StrFormat(s, args, interp));
            default:
                throw NotSupported("str", name);
        }
    }

    private static string Repeat(string s, int n)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < n; i++)
            sb.Append(s);
        return sb.ToString();
    }

    public static JinjaValue CallSeq(IReadOnlyList<JinjaValue> items, string type, string name, JinjaArguments args)
    {
        switch (name)
        {
            case "count":
            {
                var a = args.Bind("count", ["value"], [null]);
                return new JinjaInt(items.Count(x => PyOps.Equal(x, a[0])));
            }
            case "index":
            {
                var a = args.Bind("index", ["value", "start", "stop"], [null, NoneV, NoneV]);
                var (lo, hi) = PyText.ClampRange(items.Count, OptIndex(a[1]), OptIndex(a[2]));
                for (int i = lo; i < hi; i++)
                {
                    if (PyOps.Equal(items[i], a[0]))
                        return new JinjaInt(i);
                }
                throw new PyException("ValueError", type == "list" ? $"{a[0].Repr()} is not in list" : "tuple.index(x): x not in tuple");
            }
            default:
                throw NotSupported(type, name);
        }
    }

    public static JinjaValue CallList(JinjaList self, string name, JinjaArguments args, Interpreter interp)
    {
        var items = self.Items;
        switch (name)
        {
            case "append":
                items.Add(args.Bind("append", ["object"], [null])[0]);
                return NoneV;
            case "extend":
                items.AddRange([.. PyOps.Iterate(args.Bind("extend", ["iterable"], [null])[0])]);
                return NoneV;
            case "insert":
            {
                var a = args.Bind("insert", ["index", "object"], [null, null]);
                long i = IntArg(a[0]);
                if (i < 0)
                    i = Math.Max(0, i + items.Count);
                items.Insert((int)Math.Min(i, items.Count), a[1]);
                return NoneV;
            }
            case "pop":
            {
                var a = args.Bind("pop", ["index"], [new JinjaInt(-1)]);
                if (items.Count == 0)
                    throw new PyException("IndexError", "pop from empty list");
                long i = IntArg(a[0]);
                if (i < 0)
                    i += items.Count;
                if (i < 0 || i >= items.Count)
                    throw new PyException("IndexError", "pop index out of range");
                var v = items[(int)i];
                items.RemoveAt((int)i);
                return v;
            }
            case "remove":
            {
                var x = args.Bind("remove", ["value"], [null])[0];
                int k = items.FindIndex(v => PyOps.Equal(v, x));
                if (k < 0)
                    throw new PyException("ValueError", "list.remove(x): x not in list");
                items.RemoveAt(k);
                return NoneV;
            }
            case "clear":
                args.Bind("clear", [], []);
                items.Clear();
                return NoneV;
            case "copy":
                args.Bind("copy", [], []);
                return new JinjaList([.. items]);
            case "reverse":
                args.Bind("reverse", [], []);
                items.Reverse();
                return NoneV;
            case "sort":
            {
                if (args.Positional.Count > 0)
                    throw new PyException("TypeError", "sort() takes no positional arguments");
                var a = args.Bind("sort", ["key", "reverse"], [NoneV, JinjaBool.False]);
                Func<JinjaValue, JinjaValue> key = a[0] is JinjaNone ? v => v : v => interp.Call(a[0], new JinjaArguments([v], []));
                var sorted = Filters.StableSort(items, key, a[1].IsTruthy);
                items.Clear();
                items.AddRange(sorted);
                return NoneV;
            }
            default:
                return CallSeq(items, "list", name, args);
        }
    }

    public static JinjaValue CallDict(JinjaDict self, string name, JinjaArguments args, Interpreter interp)
    {
        switch (name)
        {
            case "get":
            {
                var a = args.Bind("get", ["key", "default"], [null, NoneV]);
                CheckHashable(a[0]);
                return self.TryGetValue(a[0], out var v) ? v : a[1];
            }
            case "items":
                args.Bind("items", [], []);
                return new DictView(self, DictViewKind.Items);
            case "keys":
                args.Bind("keys", [], []);
                return new DictView(self, DictViewKind.Keys);
            case "values":
                args.Bind("values", [], []);
                return new DictView(self, DictViewKind.Values);
            case "copy":
            {
                args.Bind("copy", [], []);
                var copy = new JinjaDict();
                foreach (var (k, v) in self.Pairs)
                    copy[k] = v;
                return copy;
            }
            case "pop":
            {
                if (args.Positional.Count == 0 || args.Keywords.Count > 0)
                    throw new PyException("TypeError", "pop expected at least 1 argument");
                CheckHashable(args.Positional[0]);
                if (self.Remove(args.Positional[0], out var v))
                    return v;
                if (args.Positional.Count > 1)
                    return args.Positional[1];
                throw new PyException("KeyError", args.Positional[0].Repr());
            }
            case "popitem":
            {
                args.Bind("popitem", [], []);
                if (self.Count == 0)
                    throw new PyException("KeyError", "'popitem(): dictionary is empty'");
                var last = self.GetAt(self.Count - 1);
                self.RemoveAt(self.Count - 1);
                return new JinjaTuple([last.Key, last.Value]);
            }
            case "setdefault":
            {
                var a = args.Bind("setdefault", ["key", "default"], [null, NoneV]);
                CheckHashable(a[0]);
                if (self.TryGetValue(a[0], out var v))
                    return v;
                self[a[0]] = a[1];
                return a[1];
            }
            case "update":
            {
                if (args.Positional.Count > 1)
                    throw new PyException("TypeError", $"update expected at most 1 argument, got {args.Positional.Count}");
                if (args.Positional.Count == 1)
                    foreach (var (k, v) in Globals.PairsOf(args.Positional[0]))
                        self[k] = v;
                foreach (var (k, v) in args.Keywords)
                    self[new JinjaString(k)] = v;
                return NoneV;
            }
            case "clear":
                args.Bind("clear", [], []);
                self.Clear();
                return NoneV;
            default:
                throw NotSupported("dict", name);
        }
    }

    private static void CheckHashable(JinjaValue key) => PyKeyComparer.Instance.GetHashCode(key);
}
