using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>Python's printf-style <c>str % args</c> and <c>str.format()</c>, for the common conversions.</summary>
internal static class PyFormat
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Python <c>format % args</c>: a tuple supplies positional values, a dict named ones.</summary>
    public static string Percent(string format, JinjaValue args)
    {
        IReadOnlyList<JinjaValue> values = args is JinjaTuple t ? t.Items : [args];
        var mapping = args as JinjaDict;
        int next = 0;
        bool usedMapping = false;
        var sb = new StringBuilder();
        int i = 0;
        while (i < format.Length)
        {
            char c = format[i++];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            if (i >= format.Length)
                throw new PyException("ValueError", "incomplete format");

            JinjaValue? keyed = null;
            if (format[i] == '(')
            {
                int depth = 1, j = i + 1;
                while (j < format.Length && depth > 0)
                {
                    if (format[j] == '(') depth++;
                    else if (format[j] == ')') depth--;
                    j++;
                }
                if (depth > 0)
                    throw new PyException("ValueError", "incomplete format key");
                string key = format[(i + 1)..(j - 1)];
                if (mapping is null)
                    throw new PyException("TypeError", "format requires a mapping");
                if (!mapping.TryGetValue(key, out keyed))
                    throw new PyException("KeyError", PyText.Repr(key));
                usedMapping = true;
                i = j;
            }

            var spec = new Spec();
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '#' or '0')
            {
                switch (format[i])
                {
                    case '-': spec.Align = '<'; break;
                    case '+': spec.Sign = '+'; break;
                    case ' ': if (spec.Sign != '+') spec.Sign = ' '; break;
                    case '#': spec.Alternate = true; break;
                    case '0': spec.ZeroPad = true; break;
                }
                i++;
            }
            if (i < format.Length && format[i] == '*')
            {
                spec.Width = (int)Methods.IntArg(NextValue());
                if (spec.Width < 0)
                {
                    spec.Align = '<';
                    spec.Width = -spec.Width;
                }
                i++;
            }
            else
            {
                spec.Width = ReadInt(format, ref i);
            }
            if (i < format.Length && format[i] == '.')
            {
                i++;
                if (i < format.Length && format[i] == '*')
                {
                    spec.Precision = (int)Methods.IntArg(NextValue());
                    i++;
                }
                else
                {
                    spec.Precision = ReadInt(format, ref i) ?? 0;
                }
            }
            while (i < format.Length && format[i] is 'h' or 'l' or 'L')
                i++;
            if (i >= format.Length)
                throw new PyException("ValueError", "incomplete format");
            int typeIndex = i;
            char type = format[i++];
            if (type == '%')
            {
                sb.Append('%');
                continue;
            }
            var value = keyed ?? NextValue();
            if (spec.Align == '<')
                spec.ZeroPad = false;
            spec.Align ??= '>';
            try
            {
                sb.Append(FormatValue(value, type, spec, percentStyle: true));
            }
            catch (PyException e) when (e.PythonType == "ValueError" && e.Message.StartsWith("unsupported format character", StringComparison.Ordinal))
            {
                throw new PyException("ValueError", $"{e.Message} at index {typeIndex}");
            }
        }
        if (!usedMapping && mapping is null && next < values.Count)
            throw new PyException("TypeError", "not all arguments converted during string formatting");
        return sb.ToString();

        JinjaValue NextValue()
        {
            if (mapping is not null && values.Count == 1 && ReferenceEquals(values[0], mapping) && next > 0)
                throw new PyException("TypeError", "not enough arguments for format string");
            if (next >= values.Count)
                throw new PyException("TypeError", "not enough arguments for format string");
            return values[next++];
        }
    }

    private static int? ReadInt(string s, ref int i)
    {
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i]))
            i++;
        return i > start ? int.Parse(s[start..i], Inv) : null;
    }

    private sealed class Spec
    {
        public char Fill = ' ';
        public char? Align;
        public char Sign = '-';
        public bool Alternate;
        public bool ZeroPad;
        public int? Width;
        public char? Grouping;
        public int? Precision;
    }

    /// <summary>Python <c>str.format(*args, **kwargs)</c>: auto/explicit/named fields, .attr and [key], !r/!s/!a, format specs.</summary>
    public static string StrFormat(string format, JinjaArguments args, Interpreter interp)
    {
        var sb = new StringBuilder();
        int auto = 0;
        int i = 0;
        while (i < format.Length)
        {
            char c = format[i];
            if (c == '{')
            {
                if (i + 1 < format.Length && format[i + 1] == '{')
                {
                    sb.Append('{');
                    i += 2;
                    continue;
                }
                int end = format.IndexOf('}', i + 1);
                if (end < 0)
                    throw new PyException("ValueError", "expected '}' before end of string");
                string field = format[(i + 1)..end];
                if (field.Contains('{'))
                    throw new PyException("NotImplementedError", "nested format fields are not supported by this template interpreter");
                sb.Append(FormatField(field, args, interp, ref auto));
                i = end + 1;
            }
            else if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}')
                {
                    sb.Append('}');
                    i += 2;
                    continue;
                }
                throw new PyException("ValueError", "Single '}' encountered in format string");
            }
            else
            {
                sb.Append(c);
                i++;
            }
        }
        return sb.ToString();
    }

    private static string FormatField(string field, JinjaArguments args, Interpreter interp, ref int auto)
    {
        string? specText = null;
        char? conversion = null;
        int colon = field.IndexOf(':');
        if (colon >= 0)
        {
            specText = field[(colon + 1)..];
            field = field[..colon];
        }
        int bang = field.IndexOf('!');
        if (bang >= 0)
        {
            if (bang + 2 != field.Length)
                throw new PyException("ValueError", "expected ':' after conversion specifier");
            conversion = field[bang + 1];
            field = field[..bang];
        }
        int k = 0;
        while (k < field.Length && field[k] is not ('.' or '['))
            k++;
        string first = field[..k];
        JinjaValue value;
        if (first.Length == 0)
        {
            if (auto < 0)
                throw new PyException("ValueError", "cannot switch from manual field specification to automatic field numbering");
            value = auto < args.Positional.Count ? args.Positional[auto++] : throw new PyException("IndexError", $"Replacement index {auto} out of range for positional args tuple");
        }
        else if (first.All(char.IsAsciiDigit))
        {
            if (auto > 0)
                throw new PyException("ValueError", "cannot switch from automatic field numbering to manual field specification");
            auto = -1;
            int idx = int.Parse(first, Inv);
            value = idx < args.Positional.Count ? args.Positional[idx] : throw new PyException("IndexError", $"Replacement index {idx} out of range for positional args tuple");
        }
        else
        {
            var kw = args.Keywords.FirstOrDefault(p => p.Key == first);
            value = kw.Value ?? throw new PyException("KeyError", PyText.Repr(first));
        }
        while (k < field.Length)
        {
            if (field[k] == '.')
            {
                int j = k + 1;
                while (j < field.Length && field[j] is not ('.' or '['))
                    j++;
                value = Access.GetAttr(value, field[(k + 1)..j], interp);
                k = j;
            }
            else
            {
                int j = field.IndexOf(']', k);
                if (j < 0)
                    throw new PyException("ValueError", "Missing ']' in format string");
                string key = field[(k + 1)..j];
                JinjaValue keyValue = key.Length > 0 && key.All(char.IsAsciiDigit) ? new JinjaInt(long.Parse(key, Inv)) : new JinjaString(key);
                value = Access.GetItem(value, keyValue, interp);
                k = j + 1;
            }
        }
        if (conversion is not null)
        {
            value = conversion switch
            {
                'r' => new JinjaString(value.Repr()),
                's' => new JinjaString(value.ToString()),
                'a' => new JinjaString(AsciiRepr(value.Repr())),
                _ => throw new PyException("ValueError", $"Unknown conversion specifier {conversion}"),
            };
        }
        return FormatSpec(value, specText ?? "");
    }

    private static string AsciiRepr(string repr)
    {
        var sb = new StringBuilder();
        foreach (int cp in PyText.CodePoints(repr))
        {
            if (cp < 0x80) sb.Append((char)cp);
            else if (cp <= 0xFF) sb.Append("\\x").Append(cp.ToString("x2", Inv));
            else if (cp <= 0xFFFF) sb.Append("\\u").Append(cp.ToString("x4", Inv));
            else sb.Append("\\U").Append(cp.ToString("x8", Inv));
        }
        return sb.ToString();
    }

    /// <summary>Python's format-spec mini-language: [[fill]align][sign][#][0][width][,|_][.precision][type].</summary>
    private static string FormatSpec(JinjaValue value, string text)
    {
        var spec = new Spec();
        int i = 0;
        if (text.Length >= 2 && text[1] is '<' or '>' or '^' or '=')
        {
            spec.Fill = text[0];
            spec.Align = text[1];
            i = 2;
        }
        else if (text.Length >= 1 && text[0] is '<' or '>' or '^' or '=')
        {
            spec.Align = text[0];
            i = 1;
        }
        if (i < text.Length && text[i] is '+' or '-' or ' ')
            spec.Sign = text[i++];
        if (i < text.Length && text[i] == '#')
        {
            spec.Alternate = true;
            i++;
        }
        if (i < text.Length && text[i] == '0')
        {
            spec.ZeroPad = true;
            i++;
        }
        spec.Width = ReadInt(text, ref i);
        if (i < text.Length && text[i] is ',' or '_')
            spec.Grouping = text[i++];
        if (i < text.Length && text[i] == '.')
        {
            i++;
            spec.Precision = ReadInt(text, ref i) ?? throw new PyException("ValueError", "Format specifier missing precision");
        }
        char type = '\0';
        if (i < text.Length)
            type = text[i++];
        if (i < text.Length)
            throw new PyException("ValueError", "Invalid format specifier");
        if (spec.ZeroPad && spec.Align is null)
        {
            spec.Fill = '0';
            spec.Align = '=';
        }

        if (type == '\0')
        {
            type = value switch
            {
                JinjaString => 's',
                JinjaInt or JinjaBool or JinjaBigInt when spec.Precision is null && spec.Sign == '-' && spec.Grouping is null => 'S',
                JinjaInt or JinjaBool or JinjaBigInt => 'd',
                JinjaFloat when spec.Precision is not null => 'g',
                JinjaFloat => 'R',
                _ => 'S',
            };
        }
        return FormatValue(value, type, spec, percentStyle: false);
    }

    private static string FormatValue(JinjaValue value, char type, Spec spec, bool percentStyle)
    {
        string body;
        bool numeric = true;
        switch (type)
        {
            case 's' or 'S':
                numeric = false;
                body = value.ToString();
                if (spec.Precision is int p && type == 's')
                    body = string.Concat(PyText.Elements(body).Take(p));
                break;
            case 'r' or 'a':
                numeric = false;
                body = type == 'a' ? AsciiRepr(value.Repr()) : value.Repr();
                if (spec.Precision is int pr)
                    body = string.Concat(PyText.Elements(body).Take(pr));
                break;
            case 'R':
                body = value is JinjaFloat rf ? PyText.FloatRepr(Math.Abs(rf.Value)) : value.ToString();
                break;
            case 'c':
                numeric = false;
                body = value is JinjaString cs && PyText.Length(cs.Value) == 1 ? cs.Value
                    : PyOps.TryInt(value, out long cp) ? char.ConvertFromUtf32((int)cp)
                    : throw new PyException("TypeError", "%c requires an int or a unicode character");
                break;
            case 'd' or 'i' or 'u' or 'x' or 'X' or 'o' or 'b' or 'n':
            {
                System.Numerics.BigInteger n;
                if (PyOps.TryBigInt(value, out var iv))
                    n = iv;
                else if (value is JinjaFloat fv && type is 'd' or 'i' or 'u' && percentStyle)
                    n = double.IsFinite(fv.Value)
                        ? new System.Numerics.BigInteger(Math.Truncate(fv.Value))
                        : throw new PyException(double.IsNaN(fv.Value) ? "ValueError" : "OverflowError",
                            double.IsNaN(fv.Value) ? "cannot convert float NaN to integer" : "cannot convert float infinity to integer");
                else if (percentStyle)
                    throw new PyException("TypeError", $"%{type} format: {(type is 'd' or 'i' or 'u' ? "a real number" : "an integer")} is required, not {value.PythonTypeName}");
                else
                    throw new PyException("ValueError", $"Unknown format code '{type}' for object of type '{value.PythonTypeName}'");
                var mag = System.Numerics.BigInteger.Abs(n);
                body = type switch
                {
                    'x' => InBase(mag, 16, "0123456789abcdef"),
                    'X' => InBase(mag, 16, "0123456789ABCDEF"),
                    'o' => InBase(mag, 8, "01234567"),
                    'b' => InBase(mag, 2, "01"),
                    _ => mag.ToString(Inv),
                };
                if (spec.Grouping is char g && type is 'd' or 'n')
                    body = Group(body, g);
                if (spec.Alternate && type is 'x' or 'X' or 'o' or 'b')
                    body = (type switch { 'x' => "0x", 'X' => "0X", 'o' => "0o", _ => "0b" }) + body;
                if (percentStyle && spec.Precision is int minDigits && body.Length < minDigits)
                    body = new string('0', minDigits - body.Length) + body;
                return Pad(Signed(body, n.Sign < 0, spec), spec, numeric: true);
            }
            case 'f' or 'F' or 'e' or 'E' or 'g' or 'G' or '%':
            {
                if (!PyOps.IsNumber(value))
                {
                    throw percentStyle
                        ? new PyException("TypeError", $"must be real number, not {value.PythonTypeName}")
                        : new PyException("ValueError", $"Unknown format code '{type}' for object of type '{value.PythonTypeName}'");
                }
                double d = PyOps.ToDouble(value);
                bool negative = d < 0 || (d == 0 && double.IsNegative(d));
                body = FormatFloat(Math.Abs(d), type, spec.Precision ?? 6, spec.Alternate);
                if (spec.Grouping is char g)
                {
                    int dot = body.IndexOfAny(['.', 'e', 'E', '%']);
                    body = dot < 0 ? Group(body, g) : Group(body[..dot], g) + body[dot..];
                }
                return Pad(Signed(body, negative, spec), spec, numeric: true);
            }
            default:
                throw new PyException("ValueError", percentStyle
                    ? $"unsupported format character '{type}' (0x{(int)type:x})"
                    : $"Unknown format code '{type}' for object of type '{value.PythonTypeName}'");
        }
        if (type == 'R')
            return Pad(Signed(body, value is JinjaFloat nf && (nf.Value < 0 || double.IsNegative(nf.Value)), spec), spec, numeric: true);
        return Pad(body, spec, numeric);
    }

    /// <summary>Digits of a non-negative integer in base 2, 8 or 16, without leading zeros.</summary>
    private static string InBase(System.Numerics.BigInteger value, int radix, string digits)
    {
        if (value.IsZero)
            return "0";
        var reversed = new List<char>();
        while (!value.IsZero)
        {
            value = System.Numerics.BigInteger.DivRem(value, radix, out var digit);
            reversed.Add(digits[(int)digit]);
        }
        reversed.Reverse();
        return new string(reversed.ToArray());
    }

    private static string Signed(string body, bool negative, Spec spec) =>
        negative ? "-" + body : spec.Sign switch { '+' => "+" + body, ' ' => " " + body, _ => body };

    private static string Group(string digits, char sep)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < digits.Length; i++)
        {
            if (i > 0 && (digits.Length - i) % 3 == 0)
                sb.Append(sep);
            sb.Append(digits[i]);
        }
        return sb.ToString();
    }

    private static string Pad(string s, Spec spec, bool numeric)
    {
        int width = spec.Width ?? 0;
        int len = PyText.Length(s);
        if (len >= width)
            return s;
        RenderBudget.CheckString(width);
        int pad = width - len;
        char align = spec.Align ?? (numeric ? '>' : '<');
        char fill = spec.Fill;
        if (spec.ZeroPad && numeric && spec.Align is '>' or '=' && spec.Fill == ' ')
        {
            fill = '0';
            align = '=';
        }
        switch (align)
        {
            case '<':
                return s + new string(fill, pad);
            case '^':
                return new string(fill, pad / 2) + s + new string(fill, pad - pad / 2);
            case '=':
            {
                int signLen = s.Length > 0 && s[0] is '+' or '-' or ' ' ? 1 : 0;
                if (s.Length > signLen + 1 && s[signLen] == '0' && s[signLen + 1] is 'x' or 'X' or 'o' or 'b')
                    signLen += 2;
                return s[..signLen] + new string(fill, pad) + s[signLen..];
            }
            default:
                return new string(fill, pad) + s;
        }
    }

    private static string FormatFloat(double d, char type, int precision, bool alternate)
    {
        if (double.IsNaN(d))
            return char.IsUpper(type) ? "NAN" : "nan";
        if (double.IsInfinity(d))
            return char.IsUpper(type) ? "INF" : "inf";
        switch (type)
        {
            case 'f' or 'F':
            {
                string s = d.ToString("F" + precision, Inv);
                return alternate && precision == 0 ? s + "." : s;
            }
            case '%':
                return (d * 100).ToString("F" + precision, Inv) + "%";
            case 'e' or 'E':
                return Exp(d, precision, type == 'E', alternate);
            default: // g / G
            {
                int p = precision == 0 ? 1 : precision;
                if (d == 0)
                    return alternate ? "0." + new string('0', p - 1) : "0";
                string e = d.ToString("E" + (p - 1), Inv);
                int exp = int.Parse(e[(e.IndexOf('E') + 1)..], Inv);
                string r;
                if (exp >= -4 && exp < p)
                {
                    r = d.ToString("F" + Math.Max(0, p - 1 - exp), Inv);
                    if (!alternate && r.Contains('.'))
                        r = r.TrimEnd('0').TrimEnd('.');
                }
                else
                {
                    r = Exp(d, p - 1, type == 'G', alternate);
                    if (!alternate)
                    {
                        int ei = r.IndexOfAny(['e', 'E']);
                        string mant = r[..ei];
                        if (mant.Contains('.'))
                            mant = mant.TrimEnd('0').TrimEnd('.');
                        r = mant + r[ei..];
                    }
                }
                return r;
            }
        }
    }

    private static string Exp(double d, int precision, bool upper, bool alternate)
    {
        string s = d.ToString((upper ? "E" : "e") + precision, Inv);
        int ei = s.IndexOfAny(['e', 'E']);
        string mant = s[..ei];
        int exp = int.Parse(s[(ei + 1)..], Inv);
        if (alternate && precision == 0)
            mant += ".";
        return mant + (upper ? "E" : "e") + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", Inv);
    }
}
