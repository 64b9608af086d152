using System.Globalization;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>Exact decimal arithmetic: + - * /, unary signs, postfix %, parentheses.</summary>
public sealed class CalculatorTool : IAgentTool
{
    public const int MaxLength = 500;
    public const int MaxDepth = 64;

    public string Name => "calculator";

    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Exact arithmetic: + - * / % and parentheses.",
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

        private decimal ParseSum()
        {
            decimal left = ParseProduct();
            while (true)
            {
                SkipSpace();
                if (_pos >= text.Length) return left;
                char op = text[_pos];
                if (op != '+' && op != '-') return left;
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
                if (op != '*' && op != '/') return left;
                _pos++;
                decimal right = ParseUnary();
                if (op == '*') left *= right;
                else
                {
                    if (right == 0m) throw new DivideByZeroException();
                    left /= right;
                }
            }
        }

        private decimal ParseUnary()
        {
            bool negate = false;
            while (true)
            {
                SkipSpace();
                if (_pos < text.Length && (text[_pos] == '-' || text[_pos] == '+'))
                {
                    if (text[_pos] == '-') negate = !negate;
                    _pos++;
                    continue;
                }
                break;
            }
            decimal value = ParsePostfix();
            return negate ? -value : value;
        }

        private decimal ParsePostfix()
        {
            decimal value = ParsePrimary();
            while (true)
            {
                SkipSpace();
                if (_pos < text.Length && text[_pos] == '%')
                {
                    _pos++;
                    value /= 100m;
                    continue;
                }
                return value;
            }
        }

        private decimal ParsePrimary()
        {
            SkipSpace();
            if (_pos >= text.Length) throw Unexpected();
            char c = text[_pos];
            if (c == '(')
            {
                if (++_depth > MaxDepth) throw new CalcException($"expression nests deeper than {MaxDepth} levels");
                _pos++;
                decimal value = ParseSum();
                SkipSpace();
                if (_pos >= text.Length || text[_pos] != ')') throw Unexpected();
                _pos++;
                _depth--;
                return value;
            }
            if (IsDigit(c) || (c == '.' && _pos + 1 < text.Length && IsDigit(text[_pos + 1])))
                return ParseNumber();
            throw Unexpected();
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
    }
}
