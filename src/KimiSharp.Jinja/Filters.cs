using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Jinja2's built-in filters (jinja2/filters.py, version 3.1) with transformers' <c>tojson</c> override.
/// Filters that return generators in Jinja2 (<c>map</c>, <c>select</c>, <c>reverse</c>...) return lists here;
/// that only differs if a template prints the generator object itself, whose text includes a memory address.
/// </summary>
internal static class Filters
{
    private static readonly HashSet<string> Names =
    [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "pprint", "reject", "rejectattr", "replace", "reverse", "round", "safe",
        "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
        "wordcount", "slice", "groupby",
    ];

    // Jinja2 built-ins this interpreter leaves out (text layout, randomness, URLs, HTML); chat templates do not use them.
    private static readonly HashSet<string> UnsupportedNames = ["wordwrap", "random", "urlencode", "urlize", "filesizeformat", "striptags", "xmlattr"];

    public static bool Exists(string name) => Names.Contains(name);

    public static bool IsUnsupportedJinjaFilter(string name) => UnsupportedNames.Contains(name);

    private static readonly JinjaValue NoneV = JinjaNone.Instance;

    /// <summary>Jinja2's soft_str: <c>str(x)</c> unless it already is a string (keeps Markup).</summary>
    private static string SoftStr(JinjaValue v) => v.ToString();

    public static JinjaValue Apply(string name, JinjaValue value, JinjaArguments args, Interpreter interp)
    {
        switch (name)
        {
            case "abs":
                args.Bind("abs", [], []);
                return value switch
                {
                    JinjaInt i => PyOps.IntResult(System.Numerics.BigInteger.Abs(i.Value)),
                    JinjaBigInt big => PyOps.IntResult(System.Numerics.BigInteger.Abs(big.Value)),
                    JinjaBool b => new JinjaInt(b.Value ? 1 : 0),
                    JinjaFloat f => new JinjaFloat(Math.Abs(f.Value)),
                    _ => throw new PyException("TypeError", $"bad operand type for abs(): '{value.PythonTypeName}'"),
                };
            case "attr":
            {
                var a = args.Bind("attr", ["name"], [null]);
                string attrName = SoftStr(a[0]);
                if (value is JinjaUndefined u)
                    throw PyOps.UndefinedError(u);
                return Access.TryPyGetAttr(value, attrName, interp, out var attr) ? attr : new JinjaUndefined(attrName, owner: value);
            }
            case "batch":
            {
                var a = args.Bind("batch", ["linecount", "fill_with"], [null, NoneV]);
                long n = Methods.IntArg(a[0]);
                if (n <= 0)
                    throw new PyException("ValueError", "batch size must be positive");
                var result = new List<JinjaValue>();
                var current = new List<JinjaValue>();
                foreach (var item in PyOps.Iterate(value))
                {
                    if (current.Count == n)
                    {
                        result.Add(new JinjaList(current));
                        current = [];
                    }
                    current.Add(item);
                }
                if (current.Count > 0)
                {
                    if (a[1] is not JinjaNone && current.Count < n)
                        while (current.Count < n) current.Add(a[1]);
                    result.Add(new JinjaList(current));
                }
                return new JinjaList(result);
            }
            case "capitalize":
                args.Bind(name, [], []);
                return new JinjaString(PyText.Capitalize(SoftStr(value)));
            case "center":
            {
                var a = args.Bind("center", ["width"], [new JinjaInt(80)]);
                return Methods.CallStr(new JinjaString(SoftStr(value)), "center", new JinjaArguments([a[0]], []), interp);
            }
            case "count":
            case "length":
                args.Bind(name, [], []);
                return new JinjaInt(PyOps.Length(value));
            case "d":
            case "default":
            {
                var a = args.Bind(name, ["default_value", "boolean"], [JinjaString.Empty, JinjaBool.False]);
                return value is JinjaUndefined || (a[1].IsTruthy && !value.IsTruthy) ? a[0] : value;
            }
            case "dictsort":
            {
                var a = args.Bind("dictsort", ["case_sensitive", "by", "reverse"], [JinjaBool.False, new JinjaString("key"), JinjaBool.False]);
                if (value is JinjaUndefined u)
                    throw PyOps.UndefinedError(u);
                string by = SoftStr(a[1]);
                int pos = by switch
                {
                    "key" => 0,
                    "value" => 1,
                    _ => throw new PyException("FilterArgumentError", "You can only sort by either \"key\" or \"value\""),
                };
                var pairs = PairsOfMapping(value, "dictsort").Select(p => (JinjaValue)new JinjaTuple([p.Key, p.Value])).ToList();
                bool cs = a[0].IsTruthy;
                var sorted = StableSort(pairs, t => IgnoreCase(((JinjaTuple)t).Items[pos], cs), a[2].IsTruthy);
                return new JinjaList(sorted);
            }
            case "e":
            case "escape":
                args.Bind(name, [], []);
                return value is JinjaString { IsSafe: true } ? value : new JinjaString(HtmlEscape(SoftStr(value)), true);
            case "forceescape":
                args.Bind(name, [], []);
                return new JinjaString(HtmlEscape(SoftStr(value)), true);
            case "first":
            {
                args.Bind(name, [], []);
                var items = PyOps.Iterate(value);
                return items.Count > 0 ? items[0] : new JinjaUndefined(null, "No first item, sequence was empty.");
            }
            case "last":
            {
                args.Bind(name, [], []);
                if (value is not (JinjaList or JinjaTuple or JinjaString or JinjaDict or JinjaRange or JinjaUndefined or DictView))
                    throw new PyException("TypeError", $"'{value.PythonTypeName}' object is not reversible");
                var items = PyOps.Iterate(value);
                return items.Count > 0 ? items[^1] : new JinjaUndefined(null, "No last item, sequence was empty.");
            }
            case "float":
            {
                var a = args.Bind("float", ["default"], [new JinjaFloat(0.0)]);
                if (value is JinjaUndefined u)
                    throw PyOps.UndefinedError(u);
                return TryPyFloat(value, out double d) ? new JinjaFloat(d) : a[0];
            }
            case "int":
            {
                var a = args.Bind("int", ["default", "base"], [new JinjaInt(0), new JinjaInt(10)]);
                if (value is JinjaUndefined u)
                    throw PyOps.UndefinedError(u);
                return DoInt(value, a[0], Methods.IntArg(a[1]));
            }
            case "format":
            {
                if (args.Positional.Count > 0 && args.Keywords.Count > 0)
                    throw new PyException("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
                JinjaValue fmtArgs;
                if (args.Keywords.Count > 0)
                {
                    var dict = new JinjaDict();
                    foreach (var (k, v) in args.Keywords)
                        dict[new JinjaString(k)] = v;
                    fmtArgs = dict;
                }
                else
                {
                    fmtArgs = new JinjaTuple([.. args.Positional]);
                }
                return new JinjaString(PyFormat.Percent(SoftStr(value), fmtArgs));
            }
            case "indent":
            {
                var a = args.Bind("indent", ["width", "first", "blank"], [new JinjaInt(4), JinjaBool.False, JinjaBool.False]);
                return new JinjaString(Indent(SoftStr(value), a[0], a[1].IsTruthy, a[2].IsTruthy));
            }
            case "items":
            {
                args.Bind(name, [], []);
                if (value is JinjaUndefined)
                    return new JinjaList();
                if (value is not JinjaDict)
                    throw new PyException("TypeError", "Can only get item pairs from a mapping.");
                return new JinjaList(PairsOfMapping(value, "items").Select(p => (JinjaValue)new JinjaTuple([p.Key, p.Value])).ToList());
            }
            case "join":
            {
                var a = args.Bind("join", ["d", "attribute"], [JinjaString.Empty, NoneV]);
                IEnumerable<JinjaValue> items = PyOps.Iterate(value);
                if (a[1] is not JinjaNone)
                {
                    var getter = AttrGetter(a[1], null, interp);
                    items = items.Select(getter).ToList();
                }
                // Without autoescape Jinja2 joins with plain str(), Markup or not.
                string separator = SoftStr(a[0]);
                var parts = items.Select(SoftStr).ToList();
                RenderBudget.CheckString(parts.Sum(p => (long)p.Length) + (long)separator.Length * Math.Max(0, parts.Count - 1));
                return new JinjaString(string.Join(separator, parts));
            }
            case "list":
                args.Bind(name, [], []);
                return new JinjaList([.. PyOps.Iterate(value)]);
            case "lower":
                args.Bind(name, [], []);
                return new JinjaString(PyText.Lower(SoftStr(value)));
            case "upper":
                args.Bind(name, [], []);
                return new JinjaString(PyText.Upper(SoftStr(value)));
            case "map":
                return new JinjaList(PyOps.Iterate(value).Select(PrepareMap(args, interp)).ToList());
            case "max":
            case "min":
            {
                var a = args.Bind(name, ["case_sensitive", "attribute"], [JinjaBool.False, NoneV]);
                var items = PyOps.Iterate(value);
                if (items.Count == 0)
                    return new JinjaUndefined(null, "No aggregated item, sequence was empty.");
                var getter = a[1] is JinjaNone ? (v => v) : AttrGetter(a[1], null, interp);
                bool cs = a[0].IsTruthy;
                var best = items[0];
                var bestKey = IgnoreCase(getter(best), cs);
                for (int i = 1; i < items.Count; i++)
                {
                    var k = IgnoreCase(getter(items[i]), cs);
                    int c = PyOps.Order(k, bestKey, name == "max" ? ">" : "<");
                    if (name == "max" ? c > 0 : c < 0)
                    {
                        best = items[i];
                        bestKey = k;
                    }
                }
                return best;
            }
            case "pprint":
                args.Bind(name, [], []);
                return new JinjaString(value.Repr());
            case "select":
            case "reject":
                return new JinjaList(SelectOrReject(value, args, interp, attrMode: false, select: name == "select"));
            case "selectattr":
            case "rejectattr":
                return new JinjaList(SelectOrReject(value, args, interp, attrMode: true, select: name == "selectattr"));
            case "replace":
            {
                var a = args.Bind("replace", ["old", "new", "count"], [null, null, NoneV]);
                long count = a[2] is JinjaNone ? -1 : Methods.IntArg(a[2]);
                if (value is JinjaString { IsSafe: true } safe)
                {
                    // Markup.replace escapes plain-string arguments.
                    string o = a[0] is JinjaString { IsSafe: true } so ? so.Value : HtmlEscape(SoftStr(a[0]));
                    string n = a[1] is JinjaString { IsSafe: true } sn ? sn.Value : HtmlEscape(SoftStr(a[1]));
                    return new JinjaString(PyText.Replace(safe.Value, o, n, count), true);
                }
                return new JinjaString(PyText.Replace(SoftStr(value), SoftStr(a[0]), SoftStr(a[1]), count));
            }
            case "reverse":
            {
                args.Bind(name, [], []);
                if (value is JinjaString s)
                {
                    var el = PyText.Elements(s.Value);
                    el.Reverse();
                    return new JinjaString(string.Concat(el), s.IsSafe);
                }
                var items = new List<JinjaValue>(PyOps.Iterate(value));
                items.Reverse();
                return new JinjaList(items);
            }
            case "round":
            {
                var a = args.Bind("round", ["precision", "method"], [new JinjaInt(0), new JinjaString("common")]);
                return Round(value, Methods.IntArg(a[0]), SoftStr(a[1]));
            }
            case "safe":
                args.Bind(name, [], []);
                return value is JinjaString { IsSafe: true } ? value : new JinjaString(SoftStr(value), true);
            case "sort":
            {
                var a = args.Bind("sort", ["reverse", "case_sensitive", "attribute"], [JinjaBool.False, JinjaBool.False, NoneV]);
                var getter = a[2] is JinjaNone ? (v => v) : AttrGetter(a[2], null, interp);
                bool cs = a[1].IsTruthy;
                return new JinjaList(StableSort(PyOps.Iterate(value), v => IgnoreCase(getter(v), cs), a[0].IsTruthy));
            }
            case "string":
                args.Bind(name, [], []);
                return value is JinjaString ? value : new JinjaString(SoftStr(value));
            case "sum":
            {
                var a = args.Bind("sum", ["attribute", "start"], [NoneV, new JinjaInt(0)]);
                var getter = a[0] is JinjaNone ? (v => v) : AttrGetter(a[0], null, interp);
                JinjaValue total = a[1];
                foreach (var item in PyOps.Iterate(value))
                    total = PyOps.Add(total, getter(item));
                return total;
            }
            case "title":
                args.Bind(name, [], []);
                return new JinjaString(TitleFilter(SoftStr(value)));
            case "tojson":
            {
                // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
                var a = args.Bind("tojson", ["ensure_ascii", "indent", "separators", "sort_keys"], [JinjaBool.False, NoneV, NoneV, JinjaBool.False]);
                return new JinjaString(PyJson.Dumps(value, a[0].IsTruthy, a[1], a[2], a[3].IsTruthy));
            }
            case "trim":
            {
                var a = args.Bind("trim", ["chars"], [NoneV]);
                string? chars = a[0] is JinjaNone ? null : SoftStr(a[0]);
                return new JinjaString(PyText.Strip(SoftStr(value), chars, true, true));
            }
            case "truncate":
            {
                var a = args.Bind("truncate", ["length", "killwords", "end", "leeway"], [new JinjaInt(255), JinjaBool.False, new JinjaString("..."), NoneV]);
                string s = SoftStr(value);
                long length = Methods.IntArg(a[0]);
                string end = SoftStr(a[2]);
                long leeway = a[3] is JinjaNone ? 5 : Methods.IntArg(a[3]);
                if (length < PyText.Length(end))
                    throw new PyException("AssertionError", $"expected length >= {PyText.Length(end)}, got {length}");
                if (leeway < 0)
                    throw new PyException("AssertionError", $"expected leeway >= 0, got {leeway}");
                var el = PyText.Elements(s);
                if (el.Count <= length + leeway)
                    return new JinjaString(s);
                string head = string.Concat(el.Take((int)(length - PyText.Length(end))));
                if (a[1].IsTruthy)
                    return new JinjaString(head + end);
                return new JinjaString(PyText.RSplit(head, " ", 1)[0] + end);
            }
            case "unique":
            {
                var a = args.Bind("unique", ["case_sensitive", "attribute"], [JinjaBool.False, NoneV]);
                var getter = a[1] is JinjaNone ? (v => v) : AttrGetter(a[1], null, interp);
                bool cs = a[0].IsTruthy;
                var seen = new HashSet<JinjaValue>(PyKeyComparer.Instance);
                var result = new List<JinjaValue>();
                foreach (var item in PyOps.Iterate(value))
                {
                    if (seen.Add(IgnoreCase(getter(item), cs)))
                        result.Add(item);
                }
                return new JinjaList(result);
            }
            case "slice":
            {
                var a = args.Bind("slice", ["slices", "fill_with"], [null, NoneV]);
                long slices = Methods.IntArg(a[0]);
                var seq = PyOps.Iterate(value);
                int length = seq.Count;
                long perSlice = slices > 0 ? length / slices : throw new PyException("ZeroDivisionError", "integer division or modulo by zero");
                long withExtra = length % slices;
                long offset = 0;
                var result = new List<JinjaValue>();
                for (long n = 0; n < slices; n++)
                {
                    long start = offset + n * perSlice;
                    if (n < withExtra)
                        offset++;
                    long end = offset + (n + 1) * perSlice;
                    var part = seq.Skip((int)start).Take((int)Math.Max(0, end - start)).ToList();
                    if (a[1] is not JinjaNone && n >= withExtra)
                        part.Add(a[1]);
                    result.Add(new JinjaList(part));
                }
                return new JinjaList(result);
            }
            case "groupby":
            {
                var a = args.Bind("groupby", ["attribute", "default", "case_sensitive"], [null, NoneV, JinjaBool.False]);
                var def = a[1] is JinjaNone ? null : a[1];
                bool cs = a[2].IsTruthy;
                var getter = AttrGetter(a[0], def, interp);
                var sorted = StableSort(PyOps.Iterate(value), v => IgnoreCase(getter(v), cs), false);
                var groups = new List<JinjaValue>();
                int i = 0;
                while (i < sorted.Count)
                {
                    var key = IgnoreCase(getter(sorted[i]), cs);
                    int j = i + 1;
                    while (j < sorted.Count && PyOps.Equal(IgnoreCase(getter(sorted[j]), cs), key))
                        j++;
                    var members = sorted.Skip(i).Take(j - i).ToList();
                    // The group key shown is the first member's real value, not the lower-cased one.
                    groups.Add(new JinjaTuple([cs ? key : getter(members[0]), new JinjaList(members)]) { Named = ("_GroupTuple", ["grouper", "list"]) });
                    i = j;
                }
                return new JinjaList(groups);
            }
            case "wordcount":
            {
                args.Bind(name, [], []);
                int count = 0;
                bool inWord = false;
                foreach (string el in PyText.Elements(SoftStr(value)))
                {
                    bool w = char.IsLetterOrDigit(el, 0) || el == "_";
                    if (w && !inWord)
                        count++;
                    inWord = w;
                }
                return new JinjaInt(count);
            }
            default:
                throw new PyException("TemplateAssertionError", $"No filter named '{name}'.");
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    internal static string HtmlEscape(string s)
    {
        if (s.AsSpan().IndexOfAny("&<>'\"") < 0)
            return s;
        var sb = new StringBuilder(s.Length + 16);
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '\'' => "&#39;",
                '"' => "&#34;",
                _ => null,
            } ?? c.ToString());
        }
        return sb.ToString();
    }

    private static IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> PairsOfMapping(JinjaValue value, string filter) =>
        value is JinjaDict d
            ? d.Pairs.ToList()
            : throw new PyException("TypeError", $"'{value.PythonTypeName}' object has no attribute 'items'");

    private static JinjaValue IgnoreCase(JinjaValue v, bool caseSensitive) =>
        !caseSensitive && v is JinjaString s ? new JinjaString(PyText.Lower(s.Value)) : v;

    /// <summary>
    /// Python's <c>sorted(items, key=key, reverse=reverse)</c>: stable, comparing only with <c>&lt;</c> and always
    /// as <c>later &lt; earlier</c> like CPython's timsort (so a TypeError names the operand types in the same
    /// order), with reverse done by reversing before and after a stable sort.
    /// </summary>
    internal static List<JinjaValue> StableSort(IReadOnlyList<JinjaValue> items, Func<JinjaValue, JinjaValue> key, bool reverse)
    {
        var keyed = items.Select(v => (Key: key(v), Value: v)).ToArray();
        if (reverse)
            Array.Reverse(keyed);
        var sorted = MergeSort(keyed);
        if (reverse)
            Array.Reverse(sorted);
        return sorted.Select(k => k.Value).ToList();

        static bool Less((JinjaValue Key, JinjaValue Value) a, (JinjaValue Key, JinjaValue Value) b) => PyOps.Order(a.Key, b.Key) < 0;

        static (JinjaValue Key, JinjaValue Value)[] MergeSort((JinjaValue Key, JinjaValue Value)[] a)
        {
            if (a.Length <= 32)
            {
                // Binary insertion sort, as timsort uses for short runs.
                for (int i = 1; i < a.Length; i++)
                {
                    var pivot = a[i];
                    int lo = 0, hi = i;
                    while (lo < hi)
                    {
                        int mid = (lo + hi) / 2;
                        if (Less(pivot, a[mid]))
                            hi = mid;
                        else
                            lo = mid + 1;
                    }
                    Array.Copy(a, lo, a, lo + 1, i - lo);
                    a[lo] = pivot;
                }
                return a;
            }
            var left = MergeSort(a[..(a.Length / 2)]);
            var right = MergeSort(a[(a.Length / 2)..]);
            var result = new (JinjaValue, JinjaValue)[a.Length];
            int l = 0, r = 0, k = 0;
            while (l < left.Length && r < right.Length)
                result[k++] = Less(right[r], left[l]) ? right[r++] : left[l++];
            while (l < left.Length)
                result[k++] = left[l++];
            while (r < right.Length)
                result[k++] = right[r++];
            return result;
        }
    }

    /// <summary>
    /// Jinja2's make_attrgetter: "a.b.0" walks with getitem semantics (item first, then attribute; integer
    /// parts index sequences); <paramref name="defaultValue"/> replaces an undefined result.
    /// </summary>
    internal static Func<JinjaValue, JinjaValue> AttrGetter(JinjaValue attribute, JinjaValue? defaultValue, Interpreter interp)
    {
        var parts = new List<JinjaValue>();
        if (attribute is JinjaString s)
        {
            foreach (string part in s.Value.Split('.'))
                parts.Add(part.Length > 0 && part.All(char.IsAsciiDigit) && long.TryParse(part, out long n) ? new JinjaInt(n) : new JinjaString(part));
        }
        else
        {
            parts.Add(attribute);
        }
        return item =>
        {
            foreach (var p in parts)
                item = Access.GetItem(item, p, interp);
            if (defaultValue is not null && item is JinjaUndefined)
                item = defaultValue;
            return item;
        };
    }

    private static Func<JinjaValue, JinjaValue> PrepareMap(JinjaArguments args, Interpreter interp)
    {
        var kw = args.Keywords.ToList();
        if (args.Positional.Count == 0 && kw.Any(k => k.Key == "attribute"))
        {
            var attribute = kw.First(k => k.Key == "attribute").Value;
            kw.RemoveAll(k => k.Key == "attribute");
            JinjaValue? def = null;
            int di = kw.FindIndex(k => k.Key == "default");
            if (di >= 0)
            {
                def = kw[di].Value is JinjaNone ? null : kw[di].Value;
                kw.RemoveAt(di);
            }
            if (kw.Count > 0)
                throw new PyException("FilterArgumentError", $"Unexpected keyword argument '{kw[0].Key}'");
            return AttrGetter(attribute, def, interp);
        }
        if (args.Positional.Count == 0)
            throw new PyException("FilterArgumentError", "map requires a filter argument");
        string filterName = SoftStr(args.Positional[0]);
        if (!Exists(filterName))
            throw new PyException("TemplateRuntimeError", $"No filter named '{filterName}'.");
        var rest = new JinjaArguments([.. args.Positional.Skip(1)], kw);
        return item => Apply(filterName, item, rest, interp);
    }

    private static List<JinjaValue> SelectOrReject(JinjaValue value, JinjaArguments args, Interpreter interp, bool attrMode, bool select)
    {
        var positional = args.Positional.ToList();
        Func<JinjaValue, JinjaValue> transform = v => v;
        if (attrMode)
        {
            if (positional.Count == 0)
                throw new PyException("FilterArgumentError", "Missing parameter for attribute name");
            transform = AttrGetter(positional[0], null, interp);
            positional.RemoveAt(0);
        }
        Func<JinjaValue, bool> test;
        if (positional.Count > 0)
        {
            string testName = SoftStr(positional[0]);
            if (!Tests.Exists(testName))
                throw new PyException("TemplateRuntimeError", $"No test named '{testName}'.");
            var testArgs = new JinjaArguments([.. positional.Skip(1)], [.. args.Keywords]);
            test = v => Tests.Apply(testName, v, testArgs, interp);
        }
        else
        {
            test = v => v.IsTruthy;
        }
        var result = new List<JinjaValue>();
        foreach (var item in PyOps.Iterate(value))
        {
            if (test(transform(item)) == select)
                result.Add(item);
        }
        return result;
    }

    private static string TitleFilter(string s)
    {
        // Jinja2: "".join(item[0].upper() + item[1:].lower() for item in re.split(r"([-\s({\[<]+)", s) if item)
        var sb = new StringBuilder(s.Length);
        var elements = PyText.Elements(s);
        int i = 0;
        while (i < elements.Count)
        {
            bool sep = IsTitleSeparator(elements[i]);
            int j = i;
            while (j < elements.Count && IsTitleSeparator(elements[j]) == sep)
                j++;
            sb.Append(PyText.UpperElement(elements[i]));
            sb.Append(PyText.Lower(string.Concat(elements.Skip(i + 1).Take(j - i - 1))));
            i = j;
        }
        return sb.ToString();

        static bool IsTitleSeparator(string el) => el.Length == 1 && (el[0] is '-' or '(' or '{' or '[' or '<' || PyText.IsSpace(el[0]));
    }

    private static string Indent(string s, JinjaValue width, bool first, bool blank)
    {
        long spaces = width is JinjaString ? 0 : Math.Max(0, Methods.IntArg(width));
        RenderBudget.CheckString(spaces);
        string indention = width is JinjaString ws ? ws.Value : new string(' ', (int)spaces);
        s += "\n"; // Jinja2 appends a newline so that splitlines() keeps a trailing empty line
        var lines = PyText.SplitLines(s);
        RenderBudget.CheckString(s.Length + (long)lines.Count * indention.Length);
        string rv;
        if (blank)
        {
            rv = string.Join("\n" + indention, lines);
        }
        else
        {
            rv = lines[0];
            if (lines.Count > 1)
                rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l));
        }
        return first ? indention + rv : rv;
    }

    private static bool TryPyFloat(JinjaValue v, out double d)
    {
        switch (v)
        {
            case JinjaFloat f: d = f.Value; return true;
            case JinjaInt i: d = i.Value; return true;
            case JinjaBigInt big: d = (double)big.Value; return true;
            case JinjaBool b: d = b.Value ? 1 : 0; return true;
            case JinjaString s: return TryParsePyFloat(s.Value, out d);
            default: d = 0; return false;
        }
    }

    /// <summary>Python <c>float(str)</c>: surrounding whitespace, underscores between digits, inf/nan spellings.</summary>
    internal static bool TryParsePyFloat(string text, out double d)
    {
        string t = PyText.Strip(text, null, true, true);
        d = 0;
        if (t.Length == 0)
            return false;
        string lower = t.ToLowerInvariant();
        string unsigned = lower.TrimStart('+', '-');
        if (unsigned.Length == lower.Length - 1 || unsigned.Length == lower.Length)
        {
            bool neg = lower.StartsWith('-');
            if (unsigned is "inf" or "infinity")
            {
                d = neg ? double.NegativeInfinity : double.PositiveInfinity;
                return true;
            }
            if (unsigned == "nan")
            {
                d = double.NaN;
                return true;
            }
        }
        if (t.Contains('_'))
        {
            for (int i = 0; i < t.Length; i++)
            {
                if (t[i] == '_' && (i == 0 || i == t.Length - 1 || !char.IsAsciiDigit(t[i - 1]) || !char.IsAsciiDigit(t[i + 1])))
                    return false;
            }
            t = t.Replace("_", "");
        }
        foreach (char c in t)
        {
            if (!(char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-'))
                return false;
        }
        return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d);
    }

    private static JinjaValue DoInt(JinjaValue value, JinjaValue defaultValue, long numberBase)
    {
        // Jinja2: int(value, base) for strings, int(value) otherwise; failing that int(float(value)), then default.
        switch (value)
        {
            case JinjaInt or JinjaBigInt:
                return value;
            case JinjaBool b:
                return new JinjaInt(b.Value ? 1 : 0);
            case JinjaFloat f:
                return double.IsFinite(f.Value) ? PyOps.IntResult(new System.Numerics.BigInteger(Math.Truncate(f.Value))) : defaultValue;
            case JinjaString s:
            {
                if (TryParsePyInt(s.Value, (int)numberBase, out long l))
                    return new JinjaInt(l);
                if (TryParsePyFloat(s.Value, out double d) && double.IsFinite(d) && Math.Abs(d) < 9.2e18)
                    return new JinjaInt((long)Math.Truncate(d));
                return defaultValue;
            }
            default:
                return defaultValue;
        }
    }

    private static bool TryParsePyInt(string text, int numberBase, out long value)
    {
        value = 0;
        string t = PyText.Strip(text, null, true, true).Replace("_", "");
        bool neg = false;
        if (t.StartsWith('-') || t.StartsWith('+'))
        {
            neg = t[0] == '-';
            t = t[1..];
        }
        if (numberBase == 16 && t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) t = t[2..];
        else if (numberBase == 8 && t.StartsWith("0o", StringComparison.OrdinalIgnoreCase)) t = t[2..];
        else if (numberBase == 2 && t.StartsWith("0b", StringComparison.OrdinalIgnoreCase)) t = t[2..];
        if (t.Length == 0 || numberBase is < 2 or > 36)
            return false;
        long acc = 0;
        foreach (char c in t)
        {
            int digit = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetter(c) ? char.ToLowerInvariant(c) - 'a' + 10 : 99;
            if (digit >= numberBase)
                return false;
            try
            {
                acc = checked(acc * numberBase + digit);
            }
            catch (OverflowException)
            {
                return false;
            }
        }
        value = neg ? -acc : acc;
        return true;
    }

    private static JinjaValue Round(JinjaValue value, long precision, string method)
    {
        if (method is not ("common" or "ceil" or "floor"))
            throw new PyException("FilterArgumentError", "method must be common, ceil or floor");
        if (value is JinjaUndefined or not (JinjaInt or JinjaFloat or JinjaBool or JinjaBigInt))
            throw new PyException("TypeError", $"type {value.PythonTypeName} doesn't define __round__ method");
        if (value is JinjaBigInt && method == "common" && precision >= 0)
            return value;
        if (method == "common")
        {
            // Python's round(): ints stay ints when precision >= 0; floats round half-to-even on the exact binary value.
            if (PyOps.TryInt(value, out long iv))
            {
                if (precision >= 0)
                    return new JinjaInt(iv);
                double scale = Math.Pow(10, -precision);
                return new JinjaInt((long)(Math.Round(iv / scale, MidpointRounding.ToEven) * scale));
            }
            return new JinjaFloat(PyRound(((JinjaFloat)value).Value, (int)Math.Clamp(precision, -400, 400)));
        }
        double x = PyOps.ToDouble(value);
        double p = Math.Pow(10, precision);
        double r = method == "ceil" ? Math.Ceiling(x * p) : Math.Floor(x * p);
        return new JinjaFloat(r / p);
    }

    /// <summary>
    /// Python's <c>round(float, ndigits)</c>: correctly rounded (half to even) based on the exact decimal
    /// expansion of the double, so <c>round(2.675, 2) == 2.67</c>.
    /// </summary>
    internal static double PyRound(double x, int ndigits)
    {
        if (!double.IsFinite(x) || x == 0)
            return x;
        if (ndigits > 22)
            return x;
        // The exact decimal expansion of a double has at most ~1075 digits after the point.
        var exact = ExactDecimal(x);
        return RoundDecimalString(exact, ndigits, x);
    }

    private static string ExactDecimal(double x)
    {
        // Decompose x = mantissa * 2^exponent and build the exact value with BigInteger arithmetic.
        long bits = BitConverter.DoubleToInt64Bits(x);
        bool negative = bits < 0;
        int exp = (int)((bits >> 52) & 0x7FF);
        long mant = bits & 0xFFFFFFFFFFFFFL;
        if (exp == 0)
            exp++;
        else
            mant |= 1L << 52;
        exp -= 1075;
        System.Numerics.BigInteger num = mant;
        string digits;
        int pointFromRight;
        if (exp >= 0)
        {
            num <<= exp;
            digits = num.ToString(CultureInfo.InvariantCulture);
            pointFromRight = 0;
        }
        else
        {
            // mant / 2^-exp == mant * 5^-exp / 10^-exp
            num *= System.Numerics.BigInteger.Pow(5, -exp);
            digits = num.ToString(CultureInfo.InvariantCulture);
            pointFromRight = -exp;
        }
        if (digits.Length <= pointFromRight)
            digits = new string('0', pointFromRight - digits.Length + 1) + digits;
        string intPart = digits[..^pointFromRight];
        string frac = pointFromRight > 0 ? digits[^pointFromRight..] : "";
        if (pointFromRight == 0)
            intPart = digits;
        return (negative ? "-" : "") + intPart + (frac.Length > 0 ? "." + frac : "");
    }

    private static double RoundDecimalString(string exact, int ndigits, double original)
    {
        bool negative = exact.StartsWith('-');
        string s = negative ? exact[1..] : exact;
        int dot = s.IndexOf('.');
        string intPart = dot >= 0 ? s[..dot] : s;
        string frac = dot >= 0 ? s[(dot + 1)..] : "";
        string all = intPart + frac;
        int pointPos = intPart.Length;       // digits before the point
        int keep = pointPos + ndigits;      // digits kept
        if (keep >= all.Length)
            return original;
        if (keep < 0)
            return negative ? -0.0 : 0.0;
        string kept = all[..keep];
        char next = all[keep];
        bool restNonZero = all[(keep + 1)..].Any(c => c != '0');
        bool roundUp = next > '5' || (next == '5' && (restNonZero || (kept.Length > 0 && (kept[^1] - '0') % 2 == 1)));
        var n = kept.Length == 0 ? System.Numerics.BigInteger.Zero : System.Numerics.BigInteger.Parse(kept, CultureInfo.InvariantCulture);
        if (roundUp)
            n += 1;
        // value = n * 10^-(ndigits)
        string text = n.ToString(CultureInfo.InvariantCulture) + "e" + (-ndigits).ToString(CultureInfo.InvariantCulture);
        double r = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        return negative ? -r : r;
    }
}
