namespace KimiSharp.Jinja;

/// <summary>Jinja2's built-in tests (<c>x is name</c>), following jinja2/tests.py.</summary>
internal static class Tests
{
    private static readonly HashSet<string> Names =
    [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge",
        "<", "lt", "lessthan", "<=", "le",
    ];

    public static bool Exists(string name) => Names.Contains(name);

    public static bool Apply(string name, JinjaValue value, JinjaArguments args, Interpreter interp)
    {
        switch (name)
        {
            case "defined": args.Bind(name, [], []); return value is not JinjaUndefined;
            case "undefined": args.Bind(name, [], []); return value is JinjaUndefined;
            case "none": args.Bind(name, [], []); return value is JinjaNone;
            case "boolean": args.Bind(name, [], []); return value is JinjaBool;
            case "true": args.Bind(name, [], []); return value is JinjaBool { Value: true };
            case "false": args.Bind(name, [], []); return value is JinjaBool { Value: false };
            case "integer": args.Bind(name, [], []); return value is JinjaInt or JinjaBigInt;
            case "float": args.Bind(name, [], []); return value is JinjaFloat;
            case "number": args.Bind(name, [], []); return PyOps.IsNumber(value);
            case "string": args.Bind(name, [], []); return value is JinjaString;
            case "mapping": args.Bind(name, [], []); return value is JinjaDict;
            case "escaped": args.Bind(name, [], []); return value is JinjaString { IsSafe: true };
            case "callable":
                args.Bind(name, [], []);
                // Undefined defines __call__ (to raise), so callable() is True for it, as in Jinja2.
                return value is JinjaCallable or JinjaUndefined;
            case "sequence":
                args.Bind(name, [], []);
                // len(x) and x.__getitem__ must both exist: str, list, tuple, dict, range, and Undefined.
                return value is JinjaString or JinjaList or JinjaTuple or JinjaDict or JinjaRange or JinjaUndefined;
            case "iterable":
                args.Bind(name, [], []);
                return PyOps.IsIterable(value);
            case "lower":
            case "upper":
            {
                args.Bind(name, [], []);
                var method = Methods.CallStr(new JinjaString(value.ToString()), name == "lower" ? "islower" : "isupper", JinjaArguments.None, interp);
                return method.IsTruthy;
            }
            case "odd":
            case "even":
            {
                args.Bind(name, [], []);
                var r = PyOps.Mod(value, new JinjaInt(2));
                return PyOps.Equal(r, new JinjaInt(name == "odd" ? 1 : 0));
            }
            case "divisibleby":
            {
                var a = args.Bind(name, ["num"], [null]);
                return PyOps.Equal(PyOps.Mod(value, a[0]), new JinjaInt(0));
            }
            case "filter":
                args.Bind(name, [], []);
                return value is JinjaString fs && Filters.Exists(fs.Value);
            case "test":
                args.Bind(name, [], []);
                return value is JinjaString ts && Exists(ts.Value);
            case "sameas":
            {
                var a = args.Bind(name, ["other"], [null]);
                return SameAs(value, a[0]);
            }
            case "in":
            {
                var a = args.Bind(name, ["seq"], [null]);
                return PyOps.Contains(a[0], value);
            }
            case "==" or "eq" or "equalto":
                return PyOps.Equal(value, args.Bind(name, ["other"], [null])[0]);
            case "!=" or "ne":
                return !PyOps.Equal(value, args.Bind(name, ["other"], [null])[0]);
            case ">" or "gt" or "greaterthan":
                return PyOps.Compare(value, args.Bind(name, ["other"], [null])[0], ">");
            case ">=" or "ge":
                return PyOps.Compare(value, args.Bind(name, ["other"], [null])[0], ">=");
            case "<" or "lt" or "lessthan":
                return PyOps.Compare(value, args.Bind(name, ["other"], [null])[0], "<");
            case "<=" or "le":
                return PyOps.Compare(value, args.Bind(name, ["other"], [null])[0], "<=");
            default:
                throw new PyException("TemplateAssertionError", $"No test named '{name}'.");
        }
    }

    /// <summary>
    /// Python identity. Singletons (None, True, False, Undefined is never identical) and CPython's small-int
    /// cache (-5..256) compare by value; everything else by reference.
    /// </summary>
    private static bool SameAs(JinjaValue a, JinjaValue b)
    {
        if (ReferenceEquals(a, b))
            return true;
        return (a, b) switch
        {
            (JinjaNone, JinjaNone) => true,
            (JinjaBool x, JinjaBool y) => x.Value == y.Value,
            (JinjaInt x, JinjaInt y) => x.Value == y.Value && x.Value is >= -5 and <= 256,
            (JinjaString x, JinjaString y) => x.Value.Length <= 1 && x.Value == y.Value,
            _ => false,
        };
    }
}
