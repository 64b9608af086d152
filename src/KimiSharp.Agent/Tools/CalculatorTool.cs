using System.Globalization;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// Exact decimal arithmetic: + - * / (also × ÷), unary signs, postfix % (percent), binary % (remainder, when an operand
/// follows), powers ^ and ** (right-associative and above unary minus, as in Python: -2**2 = -4), √ and the functions
/// sqrt, cbrt, abs, round, floor and ceil, and parentheses. Every evaluation is bounded: the expression's length, its
/// nesting (parentheses, functions and powers together), integer exponents (by repeated squaring, so at most ~40
/// multiplications) and every intermediate value's magnitude (the decimal range, about 7.9e28), so no input can hang or
/// exhaust memory.
/// </summary>
public sealed class CalculatorTool : IAgentTool
{
    public const int MaxLength = 500;
    public const int MaxDepth = 64;
    /// <summary>Largest magnitude of an exponent; beyond it every base but 0, 1 and -1 overflows or vanishes anyway.</summary>
    public const int MaxExponent = 10_000;

    /// <summary>The functions an expression may call, each with one argument.</summary>
    public static IReadOnlyList<string> Functions { get; } = ["sqrt", "cbrt", "abs", "round", "floor", "ceil"];

    public string Name => "calculator";

    // k2-nano's template renders tools as bare signatures, so this text changes nothing in its prompts.
    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Exact arithmetic: + - * / % (per cent, or remainder between numbers), ^ or ** powers, sqrt cbrt abs round floor ceil, parentheses.",
        new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["expression"] = new JsonObject { ["type"] = "string" },
            },
            ["required"] = new JsonArray("expression"),
        });

    public ToolResult Invoke(JsonObject arguments) => ToolArgs.Guard(() =>
    {
        if (!ToolArgs.TryGetString(arguments, "expression", out string expression))
            return ToolResult.Error("'expression' must be a string");
        return Evaluate(expression);
    });

    /// <summary>Evaluates <paramref name="expression"/>; the result is the formatted value or an error.</summary>
    public static ToolResult Evaluate(string expression)
    {
        if (expression.Length > MaxLength)
            return ToolResult.Error($"expression is longer than {MaxLength} characters");
        var parser = new Parser(expression);
        try
        {
            decimal value = parser.ParseAll();
            return ToolResult.Ok(DecimalText.Format(value));
        }
        catch (CalcException e)
        {
            return ToolResult.Error(e.Message);
        }
        catch (DivideByZeroException)
        {
            return ToolResult.Error("division by zero");
        }
        catch (OverflowException)
        {
            return ToolResult.Error("number too large");
        }
    }

    private sealed class CalcException(string message) : Exception(message);

    private sealed class Parser(string text)
    {
        private int _pos;
        private int _depth;

        public decimal ParseAll()
        {
            decimal value = ParseSum();
            SkipSpace();
            if (_pos < text.Length) throw Unexpected();
            return value;
        }

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        private CalcException Unexpected() => _pos >= text.Length
            ? new CalcException("unexpected end of expression")
            : new CalcException($"unexpected character '{text[_pos]}' at position {_pos.ToString(CultureInfo.InvariantCulture)}");

        private void Enter()
        {
            if (++_depth > MaxDepth) throw new CalcException($"expression nests deeper than {MaxDepth} levels");
        }

        /// <summary>Whether an operand (number, parenthesis, function, √) starts at <paramref name="at"/>, after spaces.</summary>
        private bool OperandAt(int at)
        {
            while (at < text.Length && char.IsWhiteSpace(text[at])) at++;
            if (at >= text.Length) return false;
            char c = text[at];
            return IsDigit(c) || c is '.' or '(' or '√' || char.IsAsciiLetter(c);
        }

        private decimal ParseSum()
        {
            decimal left = ParseProduct();
            while (true)
            {
                SkipSpace();
                if (_pos >= text.Length) return left;
                char op = text[_pos];
                if (op is not ('+' or '-' or '−')) return left;
                _pos++;
                decimal right = ParseProduct();
                left = op == '+' ? left + right : left - right;
            }
        }

        private decimal ParseProduct()
        {
            decimal left = ParseUnary();
            while (true)
            {
                SkipSpace();
                if (_pos >= text.Length) return left;
                char op = text[_pos];
                // "x" between operands is how people type "times" ("3 x 4"); anywhere else a letter stays an error.
                bool times = op is '*' or '×' || (op is 'x' or 'X' && OperandAt(_pos + 1));
                if (op == '*' && _pos + 1 < text.Length && text[_pos + 1] == '*') return left; // "**" is a power, handled below
                if (!times && op is not ('/' or '÷' or '%')) return left;
                _pos++;
                decimal right = ParseUnary();
                if (times) left *= right;
                else if (right == 0m) throw new DivideByZeroException();
                else if (op == '%') left = Remainder(left, right);
                else left /= right;
            }
        }

        /// <summary>The remainder with the divisor's sign, as Python's %: -7 % 3 = 2.</summary>
        private static decimal Remainder(decimal left, decimal right)
        {
            decimal r = left % right;
            return r != 0m && (r < 0m) != (right < 0m) ? r + right : r;
        }

        private decimal ParseUnary()
        {
            bool negate = false;
            while (true)
            {
                SkipSpace();
                if (_pos < text.Length && text[_pos] is '-' or '+' or '−')
                {
                    if (text[_pos] != '+') negate = !negate;
                    _pos++;
                    continue;
                }
                break;
            }
            decimal value = ParsePower();
            return negate ? -value : value;
        }

        /// <summary>base (^ | **) exponent; the exponent may carry signs and is itself a power (right-associative).</summary>
        private decimal ParsePower()
        {
            decimal value = ParsePostfix();
            SkipSpace();
            if (_pos >= text.Length) return value;
            if (text[_pos] == '^') _pos++;
            else if (text[_pos] == '*' && _pos + 1 < text.Length && text[_pos + 1] == '*') _pos += 2;
            else return value;
            Enter();
            decimal exponent = ParseUnary();
            _depth--;
            return Power(value, exponent);
        }

        private decimal ParsePostfix()
        {
            decimal value = ParsePrimary();
            while (true)
            {
                SkipSpace();
                if (_pos >= text.Length) return value;
                char c = text[_pos];
                // A % followed by an operand is the remainder operator (ParseProduct); otherwise it is "per cent".
                if (c == '%' && !OperandAt(_pos + 1)) value /= 100m;
                else if (c == '²') value *= value;
                else if (c == '³') value = value * value * value;
                else return value;
                _pos++;
            }
        }

        private decimal ParsePrimary()
        {
            SkipSpace();
            if (_pos >= text.Length) throw Unexpected();
            char c = text[_pos];
            if (c == '(')
            {
                Enter();
                _pos++;
                decimal value = ParseSum();
                SkipSpace();
                if (_pos >= text.Length || text[_pos] != ')') throw Unexpected();
                _pos++;
                _depth--;
                return value;
            }
            if (c == '√')
            {
                Enter();
                _pos++;
                decimal value = Sqrt(ParseUnary()); // √-4 reaches Sqrt and its error; √2^2 is √(2^2)
                _depth--;
                return value;
            }
            if (char.IsAsciiLetter(c)) return ParseFunction();
            if (IsDigit(c) || (c == '.' && _pos + 1 < text.Length && IsDigit(text[_pos + 1])))
                return ParseNumber();
            throw Unexpected();
        }

        private decimal ParseFunction()
        {
            int start = _pos;
            while (_pos < text.Length && char.IsAsciiLetter(text[_pos])) _pos++;
            string name = text[start.._pos].ToLowerInvariant();
            SkipSpace();
            bool call = _pos < text.Length && text[_pos] == '(';
            if (!Functions.Contains(name))
            {
                if (call) throw new CalcException($"unknown function '{ToolArgs.Clip(text[start.._pos].TrimEnd())}' (known: {string.Join(", ", Functions)})");
                _pos = start;
                throw Unexpected();
            }
            if (!call) throw new CalcException($"'{name}' needs its argument in parentheses, e.g. {name}(2)");
            Enter();
            _pos++;
            decimal argument = ParseSum();
            SkipSpace();
            if (_pos >= text.Length || text[_pos] != ')') throw Unexpected();
            _pos++;
            _depth--;
            return name switch
            {
                "sqrt" => Sqrt(argument),
                "cbrt" => Cbrt(argument),
                "abs" => Math.Abs(argument),
                "round" => Math.Round(argument, 0, MidpointRounding.AwayFromZero),
                "floor" => Math.Floor(argument),
                _ => Math.Ceiling(argument),
            };
        }

        private static bool IsDigit(char c) => c is >= '0' and <= '9';

        private decimal ParseNumber()
        {
            var digits = new System.Text.StringBuilder();
            while (_pos < text.Length)
            {
                char c = text[_pos];
                if (IsDigit(c)) digits.Append(c);
                else if (c == ',' && digits.Length > 0 && _pos + 1 < text.Length && IsDigit(text[_pos + 1])) { }
                else break;
                _pos++;
            }
            if (_pos < text.Length && text[_pos] == '.')
            {
                digits.Append('.');
                _pos++;
                while (_pos < text.Length && IsDigit(text[_pos])) digits.Append(text[_pos++]);
            }
            string number = digits.ToString();
            if (number.StartsWith('.')) number = "0" + number;
            if (number.EndsWith('.')) number += "0";
            if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value))
                throw new OverflowException();
            return value;
        }

        /// <summary>
        /// Integer exponents exactly, by repeated squaring (at most ~28 squarings for |exponent| ≤ 10,000; a value past
        /// the decimal range throws <see cref="OverflowException"/>); fractional ones in double precision.
        /// </summary>
        private static decimal Power(decimal value, decimal exponent)
        {
            if (Math.Abs(exponent) > MaxExponent)
                throw new CalcException($"exponent {DecimalText.Format(exponent)} is out of range (at most {MaxExponent} either way)");
            if (exponent == decimal.Truncate(exponent))
            {
                int n = (int)Math.Abs(exponent);
                decimal result = 1m, square = value;
                while (n > 0)
                {
                    if ((n & 1) == 1) result *= square;
                    n >>= 1;
                    if (n > 0) square *= square;
                }
                if (exponent >= 0m) return result;
                if (result == 0m) throw value == 0m ? new DivideByZeroException() : new OverflowException(); // 0.1^-10000: the power vanished, its inverse is too large
                return 1m / result;
            }
            if (value < 0m) throw new CalcException("a negative number to a fractional power is not a real number");
            if (value == 0m) return exponent > 0m ? 0m : throw new DivideByZeroException();
            if (exponent == 0.5m) return Sqrt(value);
            double power = Math.Pow((double)value, (double)exponent);
            if (double.IsNaN(power) || double.IsInfinity(power) || power >= (double)decimal.MaxValue) throw new OverflowException();
            return (decimal)power;
        }

        /// <summary>Newton's method in decimal from a double estimate: exact for perfect squares, 28 digits otherwise.</summary>
        private static decimal Sqrt(decimal value)
        {
            if (value < 0m) throw new CalcException("square root of a negative number");
            if (value == 0m) return 0m;
            decimal root = (decimal)Math.Sqrt((double)value);
            for (int i = 0; i < 8 && root != 0m; i++)
            {
                decimal next = (root + value / root) / 2m;
                if (next == root) break;
                root = next;
            }
            return root;
        }

        private static decimal Cbrt(decimal value)
        {
            if (value == 0m) return 0m;
            decimal root = (decimal)Math.Cbrt((double)value);
            for (int i = 0; i < 8 && root != 0m; i++)
            {
                decimal next = (2m * root + value / (root * root)) / 3m;
                if (next == root) break;
                root = next;
            }
            return root;
        }
    }
}
