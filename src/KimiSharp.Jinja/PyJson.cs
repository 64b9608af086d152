using System.Globalization;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Python's <c>json.dumps</c>, which transformers' <c>tojson</c> filter calls with ensure_ascii=False: default
/// separators ", " and ": " (or "," and ": " with an indent), floats printed with <c>repr</c>, dict order kept,
/// NaN/Infinity allowed, and only <c>"</c>, <c>\</c> and control characters escaped.
/// </summary>
internal static class PyJson
{
    public static string Dumps(JinjaValue value, bool ensureAscii, JinjaValue indent, JinjaValue separators, bool sortKeys)
    {
        string? indentStr = indent switch
        {
            JinjaNone => null,
            JinjaString s => s.Value,
            JinjaInt or JinjaBool => new string(' ', (int)Math.Clamp(PyOps.TryInt(indent, out long n) ? n : 0, 0, 1000)),
            _ => throw new PyException("TypeError", $"can't multiply sequence by non-int of type '{indent.PythonTypeName}'"),
        };
        string itemSep, keySep;
        if (separators is JinjaNone)
        {
            itemSep = indentStr is null ? ", " : ",";
            keySep = ": ";
        }
        else
        {
            var parts = separators is JinjaTuple or JinjaList ? PyOps.Iterate(separators) : throw new PyException("TypeError", "separators must be a (item_separator, key_separator) tuple");
            if (parts.Count != 2)
                throw new PyException("ValueError", parts.Count < 2 ? $"not enough values to unpack (expected 2, got {parts.Count})" : "too many values to unpack (expected 2)");
            itemSep = parts[0] is JinjaString a ? a.Value : throw new PyException("TypeError", "item separator must be str");
            keySep = parts[1] is JinjaString b ? b.Value : throw new PyException("TypeError", "key separator must be str");
        }
        var writer = new Writer(ensureAscii, indentStr, itemSep, keySep, sortKeys);
        writer.Write(value, 0);
        return writer.ToString();
    }

    private sealed class Writer(bool ensureAscii, string? indent, string itemSep, string keySep, bool sortKeys)
    {
        private readonly StringBuilder _sb = new();
        private readonly HashSet<JinjaValue> _active = new(ReferenceEqualityComparer.Instance);

        public override string ToString() => _sb.ToString();

        public void Write(JinjaValue v, int level)
        {
            switch (v)
            {
                case JinjaNone:
                    _sb.Append("null");
                    break;
                case JinjaBool b:
                    _sb.Append(b.Value ? "true" : "false");
                    break;
                case JinjaInt i:
                    _sb.Append(i.Value.ToString(CultureInfo.InvariantCulture));
                    break;
                case JinjaBigInt big:
                    _sb.Append(big.Value.ToString(CultureInfo.InvariantCulture));
                    break;
                case JinjaFloat f:
                    _sb.Append(FloatToJson(f.Value));
                    break;
                case JinjaString s:
                    WriteString(s.Value);
                    break;
                case JinjaList l:
                    WriteArray(l, l.Items, level);
                    break;
                case JinjaTuple t:
                    WriteArray(t, t.Items, level);
                    break;
                case JinjaDict d:
                    WriteObject(d, level);
                    break;
                default:
                    throw new PyException("TypeError", $"Object of type {v.PythonTypeName} is not JSON serializable");
            }
        }

        private void Enter(JinjaValue container)
        {
            if (!_active.Add(container))
                throw new PyException("ValueError", "Circular reference detected");
        }

        private void NewLine(int level)
        {
            _sb.Append('\n');
            for (int i = 0; i < level; i++)
                _sb.Append(indent);
        }

        private void WriteArray(JinjaValue container, IReadOnlyList<JinjaValue> items, int level)
        {
            if (items.Count == 0)
            {
                _sb.Append("[]");
                return;
            }
            Enter(container);
            _sb.Append('[');
            if (indent is not null)
                NewLine(level + 1);
            for (int i = 0; i < items.Count; i++)
            {
                if (i > 0)
                {
                    _sb.Append(itemSep);
                    if (indent is not null)
                        NewLine(level + 1);
                }
                Write(items[i], level + 1);
            }
            if (indent is not null)
                NewLine(level);
            _sb.Append(']');
            _active.Remove(container);
        }

        private void WriteObject(JinjaDict d, int level)
        {
            if (d.Count == 0)
            {
                _sb.Append("{}");
                return;
            }
            Enter(d);
            IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> pairs = d.Pairs;
            if (sortKeys)
                pairs = Filters.StableSort(d.Keys.ToList(), k => k, false).Select(k => new KeyValuePair<JinjaValue, JinjaValue>(k, d[k]));
            _sb.Append('{');
            if (indent is not null)
                NewLine(level + 1);
            bool first = true;
            foreach (var (k, v) in pairs)
            {
                if (!first)
                {
                    _sb.Append(itemSep);
                    if (indent is not null)
                        NewLine(level + 1);
                }
                first = false;
                string key = k switch
                {
                    JinjaString s => s.Value,
                    JinjaBool b => b.Value ? "true" : "false",
                    JinjaInt i => i.Value.ToString(CultureInfo.InvariantCulture),
                    JinjaBigInt big => big.Value.ToString(CultureInfo.InvariantCulture),
                    JinjaFloat f => FloatToJson(f.Value),
                    JinjaNone => "null",
                    _ => throw new PyException("TypeError", $"keys must be str, int, float, bool or None, not {k.PythonTypeName}"),
                };
                WriteString(key);
                _sb.Append(keySep);
                Write(v, level + 1);
            }
            if (indent is not null)
                NewLine(level);
            _sb.Append('}');
            _active.Remove(d);
        }

        private static string FloatToJson(double d)
        {
            if (double.IsNaN(d))
                return "NaN";
            if (double.IsPositiveInfinity(d))
                return "Infinity";
            if (double.IsNegativeInfinity(d))
                return "-Infinity";
            return PyText.FloatRepr(d);
        }

        private void WriteString(string s)
        {
            _sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': _sb.Append("\\\""); break;
                    case '\\': _sb.Append("\\\\"); break;
                    case '\n': _sb.Append("\\n"); break;
                    case '\r': _sb.Append("\\r"); break;
                    case '\t': _sb.Append("\\t"); break;
                    case '\b': _sb.Append("\\b"); break;
                    case '\f': _sb.Append("\\f"); break;
                    default:
                        // ensure_ascii escapes everything outside ' '..'~' (UTF-16 units give the surrogate pairs Python emits).
                        if (c < 0x20 || (ensureAscii && c > 0x7E))
                            _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else
                            _sb.Append(c);
                        break;
                }
            }
            _sb.Append('"');
        }
    }
}
