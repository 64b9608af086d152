using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace KimiSharp.Jinja;

/// <summary>Python key equality and hashing for dict keys and <c>in</c> on dicts.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<JinjaValue>
{
    public static readonly PyKeyComparer Instance = new();

    public bool Equals(JinjaValue? x, JinjaValue? y) => x is not null && y is not null && PyOps.Equal(x, y);

    public int GetHashCode(JinjaValue v) => v switch
    {
        JinjaString s => string.GetHashCode(s.Value, StringComparison.Ordinal),
        JinjaInt i => i.Value.GetHashCode(),
        // Equal to a float only when the float holds it exactly: hash as that float does.
        JinjaBigInt big => (BigInteger)(double)big.Value == big.Value ? ((double)big.Value).GetHashCode() : big.Value.GetHashCode(),
        JinjaBool b => b.Value ? 1L.GetHashCode() : 0L.GetHashCode(),
        JinjaFloat f => f.Value == Math.Floor(f.Value) && Math.Abs(f.Value) < 9.2e18 ? ((long)f.Value).GetHashCode() : f.Value.GetHashCode(),
        JinjaNone => 0x5eed,
        JinjaUndefined => 0x0dd,
        JinjaTuple t => t.Items.Aggregate(17, (h, item) => h * 31 + GetHashCode(item)),
        JinjaList or JinjaDict or DictView => throw new PyException("TypeError", $"unhashable type: '{v.PythonTypeName}'"),
        _ => RuntimeHelpers.GetHashCode(v),
    };
}

/// <summary>Python operator semantics over <see cref="JinjaValue"/>s.</summary>
internal static class PyOps
{
    public static bool IsNumber(JinjaValue v) => v is JinjaInt or JinjaFloat or JinjaBool or JinjaBigInt;

    /// <summary>Integer value of an int (of any size) or bool.</summary>
    public static bool TryBigInt(JinjaValue v, out BigInteger value)
    {
        switch (v)
        {
            case JinjaBigInt big: value = big.Value; return true;
            case var _ when TryInt(v, out long l): value = l; return true;
            default: value = default; return false;
        }
    }

    /// <summary>Both operands are integers and at least one is beyond 64 bits: exact arithmetic applies.</summary>
    private static bool BigOperands(JinjaValue a, JinjaValue b, out BigInteger x, out BigInteger y)
    {
        x = y = default;
        return (a is JinjaBigInt || b is JinjaBigInt) && TryBigInt(a, out x) && TryBigInt(b, out y);
    }

    /// <summary>Exact comparison of a float with an integer of any size (Python compares them exactly too).</summary>
    private static int CompareFloatWithInteger(double d, BigInteger n)
    {
        if (double.IsPositiveInfinity(d)) return 1;
        if (double.IsNegativeInfinity(d)) return -1;
        var whole = new BigInteger(Math.Floor(d));
        int c = whole.CompareTo(n);
        return c != 0 ? c : (d > Math.Floor(d) ? 1 : 0);
    }

    /// <summary>Integer value of an int or bool (Python's bool is an int subclass).</summary>
    public static bool TryInt(JinjaValue v, out long value)
    {
        switch (v)
        {
            case JinjaInt i: value = i.Value; return true;
            case JinjaBool b: value = b.Value ? 1 : 0; return true;
            default: value = 0; return false;
        }
    }

    public static double ToDouble(JinjaValue v) => v switch
    {
        JinjaInt i => i.Value,
        JinjaFloat f => f.Value,
        JinjaBool b => b.Value ? 1 : 0,
        JinjaBigInt big => (double)big.Value,
        _ => throw new InvalidOperationException(),
    };

    public static PyException UndefinedError(JinjaUndefined u) => new(u.ErrorType, u.Message);

    public static bool Equal(JinjaValue a, JinjaValue b)
    {
        if (ReferenceEquals(a, b))
            return true;
        switch (a)
        {
            case JinjaUndefined:
                return b is JinjaUndefined;
            case JinjaNone:
                return b is JinjaNone;
            case JinjaString sa:
                return b is JinjaString sb && string.Equals(sa.Value, sb.Value, StringComparison.Ordinal);
            case JinjaInt or JinjaBool or JinjaFloat or JinjaBigInt:
                if (!IsNumber(b))
                    return false;
                if (TryInt(a, out long x) && TryInt(b, out long y))
                    return x == y;
                if (a is JinjaBigInt || b is JinjaBigInt)
                    return Order(a, b, "==") == 0 && !(a is JinjaFloat { Value: double.NaN } || b is JinjaFloat { Value: double.NaN });
                return ToDouble(a) == ToDouble(b);
            case JinjaList la:
                return b is JinjaList lb && SeqEqual(la.Items, lb.Items);
            case JinjaTuple ta:
                return b is JinjaTuple tb && SeqEqual(ta.Items, tb.Items);
            case JinjaDict da:
            {
                if (b is not JinjaDict db || da.Count != db.Count)
                    return false;
                foreach (var (k, v) in da.Pairs)
                {
                    if (!db.TryGetValue(k, out var other) || !Equal(v, other))
                        return false;
                }
                return true;
            }
            case DictView va:
                return b is DictView vb && va.Kind == vb.Kind && va.Kind != DictViewKind.Values && SetEqual(va.Items, vb.Items);
            default:
                return false;
        }
    }

    private static bool SeqEqual(IReadOnlyList<JinjaValue> a, IReadOnlyList<JinjaValue> b)
    {
        if (a.Count != b.Count)
            return false;
        for (int i = 0; i < a.Count; i++)
        {
            if (!Equal(a[i], b[i]))
                return false;
        }
        return true;
    }

    private static bool SetEqual(IReadOnlyList<JinjaValue> a, IReadOnlyList<JinjaValue> b) =>
        a.Count == b.Count && a.All(x => b.Any(y => Equal(x, y)));

    /// <summary>Python rich comparison for &lt; &lt;= &gt; &gt;= (<paramref name="op"/> is the operator text).</summary>
    public static bool Compare(JinjaValue a, JinjaValue b, string op)
    {
        if (a is JinjaUndefined ua)
            throw UndefinedError(ua);
        if (b is JinjaUndefined ub)
            throw UndefinedError(ub);
        int c = Order(a, b, op);
        return op switch
        {
            "<" => c < 0,
            "<=" => c <= 0,
            ">" => c > 0,
            ">=" => c >= 0,
            _ => throw new InvalidOperationException(op),
        };
    }

    /// <summary>Three-way ordering used by comparisons and sorting; NaN compares as unordered (false).</summary>
    public static int Order(JinjaValue a, JinjaValue b, string op = "<")
    {
        if (a is JinjaUndefined ua)
            throw UndefinedError(ua);
        if (b is JinjaUndefined ub)
            throw UndefinedError(ub);
        if (IsNumber(a) && IsNumber(b))
        {
            if (TryInt(a, out long x) && TryInt(b, out long y))
                return x.CompareTo(y);
            if (a is JinjaBigInt || b is JinjaBigInt)
            {
                if (TryBigInt(a, out var bx) && TryBigInt(b, out var by))
                    return bx.CompareTo(by);
                double d = a is JinjaFloat fa ? fa.Value : ((JinjaFloat)b).Value;
                if (double.IsNaN(d))
                    return op is "<" or "<=" ? 1 : -1;
                int c = a is JinjaFloat ? CompareFloatWithInteger(d, ((JinjaBigInt)b).Value) : -CompareFloatWithInteger(d, ((JinjaBigInt)a).Value);
                return c;
            }
            double dx = ToDouble(a), dy = ToDouble(b);
            if (double.IsNaN(dx) || double.IsNaN(dy))
                return op is "<" or "<=" ? 1 : -1; // every ordered comparison with NaN is False
            return dx.CompareTo(dy);
        }
        if (a is JinjaString sa && b is JinjaString sb)
            return PyText.Compare(sa.Value, sb.Value);
        if (a is JinjaList la && b is JinjaList lb)
            return SeqOrder(la.Items, lb.Items, op);
        if (a is JinjaTuple ta && b is JinjaTuple tb)
            return SeqOrder(ta.Items, tb.Items, op);
        throw new PyException("TypeError", $"'{op}' not supported between instances of '{a.PythonTypeName}' and '{b.PythonTypeName}'");
    }

    private static int SeqOrder(IReadOnlyList<JinjaValue> a, IReadOnlyList<JinjaValue> b, string op)
    {
        int n = Math.Min(a.Count, b.Count);
        for (int i = 0; i < n; i++)
        {
            if (!Equal(a[i], b[i]))
                return Order(a[i], b[i], op);
        }
        return a.Count.CompareTo(b.Count);
    }

    // ---- arithmetic -------------------------------------------------------------------------------

    private static void FailUndefined(JinjaValue a, JinjaValue b)
    {
        if (a is JinjaUndefined ua)
            throw UndefinedError(ua);
        if (b is JinjaUndefined ub)
            throw UndefinedError(ub);
    }

    private static PyException Unsupported(string op, JinjaValue a, JinjaValue b) =>
        new("TypeError", $"unsupported operand type(s) for {op}: '{a.PythonTypeName}' and '{b.PythonTypeName}'");

    /// <summary>
    /// Largest integer kept, in bits: Python's are unbounded, but a template has no business with bigger ones and a
    /// loop of multiplications must not grow without end. 14,000 bits print in fewer digits than Python's default
    /// int-to-str limit (4,300), so every integer we keep, Python could print too.
    /// </summary>
    public const int MaxIntBits = 14_000;

    private static PyException IntTooLarge() =>
        new("OverflowError", $"integer result exceeds {MaxIntBits} bits (KimiSharp limitation)");

    /// <summary>An integer result: a JinjaInt within 64 bits, else a JinjaBigInt, refused beyond <see cref="MaxIntBits"/>.</summary>
    internal static JinjaValue IntResult(BigInteger v)
    {
        if (v >= long.MinValue && v <= long.MaxValue)
            return new JinjaInt((long)v);
        if (v.GetBitLength() > MaxIntBits)
            throw IntTooLarge();
        return new JinjaBigInt(v);
    }

    private static BigInteger FloorMod(BigInteger x, BigInteger y)
    {
        var r = BigInteger.Remainder(x, y);
        return !r.IsZero && (r.Sign < 0) != (y.Sign < 0) ? r + y : r;
    }

    public static JinjaValue Add(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (TryInt(a, out long x) && TryInt(b, out long y))
            return IntResult((BigInteger)x + y);
        if (BigOperands(a, b, out var bx, out var by))
            return IntResult(bx + by);
        if (IsNumber(a) && IsNumber(b))
            return new JinjaFloat(ToDouble(a) + ToDouble(b));
        switch (a)
        {
            case JinjaString sa when b is JinjaString sb:
                // Markup + str escapes the plain operand (MarkupSafe semantics).
                if (sa.IsSafe && !sb.IsSafe)
                    return new JinjaString(sa.Value + Filters.HtmlEscape(sb.Value), true);
                if (sb.IsSafe && !sa.IsSafe)
                    return new JinjaString(Filters.HtmlEscape(sa.Value) + sb.Value, true);
                return new JinjaString(sa.Value + sb.Value, sa.IsSafe);
            case JinjaString sa2 when !sa2.IsSafe:
                throw new PyException("TypeError", $"can only concatenate str (not \"{b.PythonTypeName}\") to str");
            case JinjaList la when b is JinjaList lb:
                RenderBudget.CheckCollection((long)la.Items.Count + lb.Items.Count);
                return new JinjaList([.. la.Items, .. lb.Items]);
            case JinjaList:
                throw new PyException("TypeError", $"can only concatenate list (not \"{b.PythonTypeName}\") to list");
            case JinjaTuple ta when b is JinjaTuple tb:
                return new JinjaTuple([.. ta.Items, .. tb.Items]);
            case JinjaTuple:
                throw new PyException("TypeError", $"can only concatenate tuple (not \"{b.PythonTypeName}\") to tuple");
        }
        throw Unsupported("+", a, b);
    }

    public static JinjaValue Sub(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (TryInt(a, out long x) && TryInt(b, out long y))
            return IntResult((BigInteger)x - y);
        if (BigOperands(a, b, out var bx, out var by))
            return IntResult(bx - by);
        if (IsNumber(a) && IsNumber(b))
            return new JinjaFloat(ToDouble(a) - ToDouble(b));
        throw Unsupported("-", a, b);
    }

    public static JinjaValue Mul(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (TryInt(a, out long x) && TryInt(b, out long y))
            return IntResult((BigInteger)x * y);
        if (BigOperands(a, b, out var bx, out var by))
            return IntResult(bx * by);
        if (IsNumber(a) && IsNumber(b))
            return new JinjaFloat(ToDouble(a) * ToDouble(b));
        if (TryInt(b, out long n) && a is JinjaString or JinjaList or JinjaTuple)
            return Repeat(a, n);
        if (TryInt(a, out long m) && b is JinjaString or JinjaList or JinjaTuple)
            return Repeat(b, m);
        throw a is JinjaString or JinjaList or JinjaTuple || b is JinjaString or JinjaList or JinjaTuple
            ? new PyException("TypeError", $"can't multiply sequence by non-int of type '{(a is JinjaString or JinjaList or JinjaTuple ? b : a).PythonTypeName}'")
            : Unsupported("*", a, b);
    }

    private static JinjaValue Repeat(JinjaValue seq, long n)
    {
        if (n < 0)
            n = 0;
        switch (seq)
        {
            case JinjaString str: RenderBudget.CheckString(str.Value.Length * Math.Min(n, int.MaxValue)); break;
            case JinjaList lst: RenderBudget.CheckCollection(lst.Items.Count * Math.Min(n, int.MaxValue)); break;
            case JinjaTuple tup: RenderBudget.CheckCollection(tup.Items.Count * Math.Min(n, int.MaxValue)); break;
        }
        if (n > 10_000_000)
            throw new PyException("OverflowError", "repeat count too large");
        switch (seq)
        {
            case JinjaString s:
                var sb = new StringBuilder(checked((int)(s.Value.Length * n)));
                for (long i = 0; i < n; i++)
                    sb.Append(s.Value);
                return new JinjaString(sb.ToString(), s.IsSafe);
            case JinjaList l:
                var list = new List<JinjaValue>();
                for (long i = 0; i < n; i++)
                    list.AddRange(l.Items);
                return new JinjaList(list);
            default:
                var t = (JinjaTuple)seq;
                var items = new List<JinjaValue>();
                for (long i = 0; i < n; i++)
                    items.AddRange(t.Items);
                return new JinjaTuple(items);
        }
    }

    public static JinjaValue TrueDiv(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b))
            throw Unsupported("/", a, b);
        double y = ToDouble(b);
        if (y == 0)
            throw new PyException("ZeroDivisionError", TryInt(a, out _) && TryInt(b, out _) ? "division by zero" : "float division by zero");
        return new JinjaFloat(ToDouble(a) / y);
    }

    public static JinjaValue FloorDiv(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (TryInt(a, out long x) && TryInt(b, out long y))
        {
            if (y == 0)
                throw new PyException("ZeroDivisionError", "integer division or modulo by zero");
            return IntResult(BigInteger.Divide(x - FloorMod(x, y), y));
        }
        if (BigOperands(a, b, out var bx, out var by))
        {
            if (by.IsZero)
                throw new PyException("ZeroDivisionError", "integer division or modulo by zero");
            return IntResult(BigInteger.Divide(bx - FloorMod(bx, by), by));
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double dx = ToDouble(a), dy = ToDouble(b);
            if (dy == 0)
                throw new PyException("ZeroDivisionError", "float floor division by zero");
            return new JinjaFloat(Math.Floor(dx / dy));
        }
        throw Unsupported("//", a, b);
    }

    /// <summary>Integer power, refused before computing when the result would pass <see cref="MaxIntBits"/>.</summary>
    private static JinjaValue IntPow(BigInteger x, long y)
    {
        if (BigInteger.Abs(x) <= 1)
            return new JinjaInt(y == 0 || x.IsOne || (x == BigInteger.MinusOne && y % 2 == 0) ? 1 : (long)x);
        if ((double)y * (double)(x.GetBitLength() - 1) > MaxIntBits)
            throw IntTooLarge();
        return IntResult(BigInteger.Pow(x, (int)y));
    }

    private static long FloorMod(long x, long y)
    {
        long r = x % y;
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
    }

    public static JinjaValue Mod(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (a is JinjaString s)
            return new JinjaString(PyFormat.Percent(s.Value, b), s.IsSafe);
        if (TryInt(a, out long x) && TryInt(b, out long y))
        {
            if (y == 0)
                throw new PyException("ZeroDivisionError", "integer modulo by zero");
            return new JinjaInt(FloorMod(x, y));
        }
        if (BigOperands(a, b, out var bx, out var by))
        {
            if (by.IsZero)
                throw new PyException("ZeroDivisionError", "integer modulo by zero");
            return IntResult(FloorMod(bx, by));
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double dx = ToDouble(a), dy = ToDouble(b);
            if (dy == 0)
                throw new PyException("ZeroDivisionError", "float modulo");
            // CPython float_rem: fmod, then move the result to the divisor's sign; a zero takes the divisor's sign.
            double r = dx % dy;
            if (r != 0)
            {
                if ((r < 0) != (dy < 0))
                    r += dy;
            }
            else
            {
                r = Math.CopySign(0.0, dy);
            }
            return new JinjaFloat(r);
        }
        throw Unsupported("%", a, b);
    }

    public static JinjaValue Pow(JinjaValue a, JinjaValue b)
    {
        FailUndefined(a, b);
        if (TryInt(a, out long x) && TryInt(b, out long y))
        {
            if (y >= 0)
                return IntPow(x, y);
            if (x == 0)
                throw new PyException("ZeroDivisionError", "0.0 cannot be raised to a negative power");
            return new JinjaFloat(Math.Pow(x, y));
        }
        if (BigOperands(a, b, out var bx, out var by))
        {
            if (by.Sign >= 0)
                return by > long.MaxValue ? (BigInteger.Abs(bx) <= 1 ? IntPow(bx, by.IsEven ? 2 : 1) : throw IntTooLarge()) : IntPow(bx, (long)by);
            if (bx.IsZero)
                throw new PyException("ZeroDivisionError", "0.0 cannot be raised to a negative power");
            return new JinjaFloat(Math.Pow((double)bx, (double)by));
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double dx = ToDouble(a), dy = ToDouble(b);
            if (dx == 0 && dy < 0)
                throw new PyException("ZeroDivisionError", "0.0 cannot be raised to a negative power");
            if (dx < 0 && dy != Math.Floor(dy))
                throw new PyException("ValueError", "complex results are not supported");
            return new JinjaFloat(Math.Pow(dx, dy));
        }
        throw Unsupported("** or pow()", a, b);
    }

    public static JinjaValue Negate(JinjaValue a) => a switch
    {
        JinjaUndefined u => throw UndefinedError(u),
        JinjaInt i => IntResult(-(BigInteger)i.Value),
        JinjaBigInt big => IntResult(-big.Value),
        JinjaBool b => new JinjaInt(b.Value ? -1 : 0),
        JinjaFloat f => new JinjaFloat(-f.Value),
        _ => throw new PyException("TypeError", $"bad operand type for unary -: '{a.PythonTypeName}'"),
    };

    public static JinjaValue Plus(JinjaValue a) => a switch
    {
        JinjaUndefined u => throw UndefinedError(u),
        JinjaInt or JinjaFloat or JinjaBigInt => a,
        JinjaBool b => new JinjaInt(b.Value ? 1 : 0),
        _ => throw new PyException("TypeError", $"bad operand type for unary +: '{a.PythonTypeName}'"),
    };

    /// <summary>Python <c>item in container</c>.</summary>
    public static bool Contains(JinjaValue container, JinjaValue item)
    {
        switch (container)
        {
            case JinjaString s:
                if (item is JinjaString sub)
                    return s.Value.Contains(sub.Value, StringComparison.Ordinal);
                if (item is JinjaUndefined u)
                    throw UndefinedError(u);
                throw new PyException("TypeError", $"'in <string>' requires string as left operand, not {item.PythonTypeName}");
            case JinjaList l:
                return l.Items.Any(x => Equal(x, item));
            case JinjaTuple t:
                return t.Items.Any(x => Equal(x, item));
            case JinjaDict d:
                return d.ContainsKey(item);
            case DictView v:
                return v.Kind == DictViewKind.Keys ? v.Owner.ContainsKey(item) : v.Items.Any(x => Equal(x, item));
            case JinjaUndefined:
                return false; // iterating an Undefined yields nothing
            case LoopContext or JinjaRange:
                return Iterate(container).Any(x => Equal(x, item));
            default:
                throw new PyException("TypeError", $"argument of type '{container.PythonTypeName}' is not iterable");
        }
    }

    /// <summary>Python <c>iter(x)</c>, materialised: dicts give keys, strings give code points.</summary>
    public static IReadOnlyList<JinjaValue> Iterate(JinjaValue v) => v switch
    {
        JinjaList l => l.Items,
        JinjaTuple t => t.Items,
        JinjaDict d => [.. d.Keys],
        JinjaString s => PyText.Elements(s.Value).Select(e => (JinjaValue)new JinjaString(e)).ToList(),
        JinjaUndefined => [],
        DictView dv => dv.Items,
        JinjaRange r => r.ToList(),
        _ => throw new PyException("TypeError", $"'{v.PythonTypeName}' object is not iterable"),
    };

    public static bool IsIterable(JinjaValue v) => v is JinjaList or JinjaTuple or JinjaDict or JinjaString or JinjaUndefined or DictView or JinjaRange or LoopContext;

    /// <summary>Python <c>len(x)</c>.</summary>
    public static long Length(JinjaValue v) => v switch
    {
        JinjaString s => PyText.Length(s.Value),
        JinjaList l => l.Items.Count,
        JinjaTuple t => t.Items.Count,
        JinjaDict d => d.Count,
        DictView dv => dv.Items.Count,
        JinjaUndefined => 0,
        JinjaRange r => r.Count,
        LoopContext lc => lc.Length,
        _ => throw new PyException("TypeError", $"object of type '{v.PythonTypeName}' has no len()"),
    };

    /// <summary>Python <c>str(x)</c>; Undefined prints as the empty string (Jinja's default Undefined).</summary>
    public static string Str(JinjaValue v) => v.ToString();
}
