using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Global functions: Jinja2's defaults (<c>range</c> as the sandbox's safe_range, <c>dict</c>, <c>namespace</c>,
/// <c>joiner</c>, <c>cycler</c>) plus the two transformers adds (<c>raise_exception</c>, <c>strftime_now</c>).
/// </summary>
internal static class Globals
{
    /// <summary>Jinja2's sandbox refuses ranges longer than this (MAX_RANGE).</summary>
    private const long MaxRange = 100_000;

    public static void Install(Scope scope)
    {
        scope.Set("range", new BuiltinFunction("range", (a, _) => Range(a)));
        scope.Set("dict", new BuiltinFunction("dict", (a, _) => Dict(a)));
        scope.Set("namespace", new BuiltinFunction("namespace", (a, _) => Namespace(a)));
        scope.Set("joiner", new BuiltinFunction("joiner", (a, _) => Joiner(a)));
        scope.Set("cycler", new BuiltinFunction("cycler", (a, _) => Cycler(a)));
        scope.Set("raise_exception", new BuiltinFunction("raise_exception", (a, _) =>
        {
            var v = a.Bind("raise_exception", ["message"], [null]);
            // transformers: raise jinja2.exceptions.TemplateError(message)
            throw new PyException("TemplateError", v[0].ToString());
        }));
        scope.Set("strftime_now", new BuiltinFunction("strftime_now", (a, interp) =>
        {
            var v = a.Bind("strftime_now", ["format"], [null]);
            if (v[0] is not JinjaString fmt)
                throw new PyException("TypeError", $"strftime() argument 1 must be str, not {v[0].PythonTypeName}");
            var now = interp.Options.TimeProvider.GetLocalNow().DateTime;
            return new JinjaString(Strftime.Format(now, fmt.Value));
        }));
    }

    private static JinjaValue Range(JinjaArguments a)
    {
        if (a.Keywords.Count > 0)
            throw new PyException("TypeError", "range() takes no keyword arguments");
        var p = a.Positional;
        long start = 0, stop, step = 1;
        switch (p.Count)
        {
            case 1:
                stop = Methods.IntArg(p[0]);
                break;
            case 2:
                start = Methods.IntArg(p[0]);
                stop = Methods.IntArg(p[1]);
                break;
            case 3:
                start = Methods.IntArg(p[0]);
                stop = Methods.IntArg(p[1]);
                step = Methods.IntArg(p[2]);
                break;
            default:
                throw new PyException("TypeError", $"range expected at most 3 arguments, got {p.Count}");
        }
        if (step == 0)
            throw new PyException("ValueError", "range() arg 3 must not be zero");
        var range = new JinjaRange(start, stop, step);
        if (range.Count > MaxRange)
            throw new PyException("OverflowError", $"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        return range;
    }

    /// <summary>Key/value pairs of a mapping or of an iterable of pairs (Python <c>dict(x)</c> input).</summary>
    internal static IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> PairsOf(JinjaValue source)
    {
        if (source is JinjaDict d)
            return d.Pairs.ToList();
        var result = new List<KeyValuePair<JinjaValue, JinjaValue>>();
        var items = PyOps.Iterate(source);
        for (int i = 0; i < items.Count; i++)
        {
            var pair = PyOps.Iterate(items[i]);
            if (pair.Count != 2)
                throw new PyException("ValueError", $"dictionary update sequence element #{i} has length {pair.Count}; 2 is required");
            result.Add(new(pair[0], pair[1]));
        }
        return result;
    }

    private static JinjaValue Dict(JinjaArguments a)
    {
        if (a.Positional.Count > 1)
            throw new PyException("TypeError", $"dict expected at most 1 argument, got {a.Positional.Count}");
        var dict = new JinjaDict();
        if (a.Positional.Count == 1)
            foreach (var (k, v) in PairsOf(a.Positional[0]))
                dict[k] = v;
        foreach (var (k, v) in a.Keywords)
            dict[new JinjaString(k)] = v;
        return dict;
    }

    private static JinjaValue Namespace(JinjaArguments a)
    {
        var ns = new JinjaNamespace();
        var init = (JinjaDict)Dict(a);
        foreach (var (k, v) in init.Pairs)
        {
            if (k is not JinjaString ks)
                throw new PyException("TypeError", "keywords must be strings");
            ns.Attributes[ks.Value] = v;
        }
        return ns;
    }

    private static JinjaValue Joiner(JinjaArguments a)
    {
        var sep = a.Bind("joiner", ["sep"], [new JinjaString(", ")])[0];
        bool used = false;
        return new BuiltinFunction("joiner", (_, _) =>
        {
            if (!used)
            {
                used = true;
                return JinjaString.Empty;
            }
            return sep;
        });
    }

    private static JinjaValue Cycler(JinjaArguments a)
    {
        if (a.Positional.Count == 0)
            throw new PyException("RuntimeError", "at least one item has to be provided");
        var items = a.Positional.ToList();
        int pos = 0;
        var ns = new JinjaNamespace();
        ns.Attributes["current"] = items[0];
        ns.Attributes["next"] = new BuiltinFunction("next", (_, _) =>
        {
            var rv = items[pos];
            pos = (pos + 1) % items.Count;
            ns.Attributes["current"] = items[pos];
            return rv;
        });
        ns.Attributes["reset"] = new BuiltinFunction("reset", (_, _) =>
        {
            pos = 0;
            ns.Attributes["current"] = items[0];
            return JinjaNone.Instance;
        });
        return ns;
    }
}

/// <summary>Python's <c>datetime.strftime</c> for a naive local time in the C locale (what glibc produces).</summary>
internal static class Strftime
{
    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    public static string Format(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%' || i + 1 >= format.Length)
            {
                sb.Append(c);
                continue;
            }
            char f = format[++i];
            bool noPad = false;
            if (f == '-' && i + 1 < format.Length)
            {
                noPad = true; // glibc extension: %-d, %-m, ...
                f = format[++i];
            }
            string? part = Directive(t, f);
            if (part is null)
            {
                sb.Append('%');
                if (noPad)
                    sb.Append('-');
                sb.Append(f);
                continue;
            }
            if (noPad && part.Length > 1 && part[0] is '0' or ' ')
                part = part.TrimStart('0', ' ') is { Length: > 0 } trimmed ? trimmed : "0";
            sb.Append(part);
        }
        return sb.ToString();
    }

    private static string? Directive(DateTime t, char f)
    {
        var inv = CultureInfo.InvariantCulture;
        int hour12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
        return f switch
        {
            'a' => Days[(int)t.DayOfWeek][..3],
            'A' => Days[(int)t.DayOfWeek],
            'b' or 'h' => Months[t.Month - 1][..3],
            'B' => Months[t.Month - 1],
            'c' => $"{Days[(int)t.DayOfWeek][..3]} {Months[t.Month - 1][..3]} {t.Day,2} {t:HH:mm:ss} {t.Year}",
            'C' => (t.Year / 100).ToString("00", inv),
            'd' => t.Day.ToString("00", inv),
            'D' => t.ToString("MM/dd/yy", inv),
            'e' => t.Day.ToString(inv).PadLeft(2),
            'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", inv),
            'F' => t.ToString("yyyy-MM-dd", inv),
            'G' => ISOWeek.GetYear(t).ToString("0000", inv),
            'H' => t.Hour.ToString("00", inv),
            'I' => hour12.ToString("00", inv),
            'j' => t.DayOfYear.ToString("000", inv),
            'k' => t.Hour.ToString(inv).PadLeft(2),
            'l' => hour12.ToString(inv).PadLeft(2),
            'm' => t.Month.ToString("00", inv),
            'M' => t.Minute.ToString("00", inv),
            'n' => "\n",
            'p' => t.Hour < 12 ? "AM" : "PM",
            'P' => t.Hour < 12 ? "am" : "pm",
            'r' => $"{hour12:00}:{t.Minute:00}:{t.Second:00} {(t.Hour < 12 ? "AM" : "PM")}",
            'R' => t.ToString("HH:mm", inv),
            's' => ((long)(t - DateTime.UnixEpoch).TotalSeconds).ToString(inv),
            'S' => t.Second.ToString("00", inv),
            't' => "\t",
            'T' => t.ToString("HH:mm:ss", inv),
            'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(inv),
            'U' => ((t.DayOfYear + 6 - (int)t.DayOfWeek) / 7).ToString("00", inv),
            'V' => ISOWeek.GetWeekOfYear(t).ToString("00", inv),
            'w' => ((int)t.DayOfWeek).ToString(inv),
            'W' => ((t.DayOfYear + 6 - ((int)t.DayOfWeek + 6) % 7) / 7).ToString("00", inv),
            'x' => t.ToString("MM/dd/yy", inv),
            'X' => t.ToString("HH:mm:ss", inv),
            'y' => (t.Year % 100).ToString("00", inv),
            'Y' => t.Year.ToString(inv),
            'z' or 'Z' => "", // naive datetime: no offset or zone name
            '%' => "%",
            _ => null,
        };
    }
}
