using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests;

/// <summary>Powers, roots, functions, remainders and the typed symbols (× ÷ − x ² ³), and their bounds.</summary>
public class CalculatorPowerTests
{
    private static ToolResult Calc(string expression) =>
        new CalculatorTool().Invoke(new JsonObject { ["expression"] = expression });

    [Theory]
    [InlineData("2^10", "1024")]
    [InlineData("2**10", "1024")]
    [InlineData("2 ** 20", "1048576")]
    [InlineData("2^3^2", "512")]          // right-associative: 2^(3^2)
    [InlineData("(2^3)^2", "64")]
    [InlineData("-2**2", "-4")]           // above unary minus, as in Python
    [InlineData("(-2)**2", "4")]
    [InlineData("(-2)^3", "-8")]
    [InlineData("2**-1", "0.5")]
    [InlineData("2^-2^2", "0.0625")]      // 2^(-(2^2))
    [InlineData("3*2^2", "12")]
    [InlineData("2^2*3", "12")]
    [InlineData("1+2^3", "9")]
    [InlineData("0^0", "1")]
    [InlineData("1.5^2", "2.25")]
    [InlineData("1.1^2", "1.21")]
    [InlineData("10^-6", "0.000001")]
    [InlineData("4^0.5", "2")]
    [InlineData("8^(1/3)", "2")]
    [InlineData("2^0.5", "1.414214")]
    [InlineData("1^10000", "1")]
    [InlineData("(-1)^9999", "-1")]
    [InlineData("0.1^10000", "0")]
    [InlineData("50%^2", "0.25")]
    [InlineData("5²", "25")]
    [InlineData("-5²", "-25")]
    [InlineData("2³+1", "9")]
    [InlineData("sqrt(144)", "12")]
    [InlineData("SQRT(2)", "1.414214")]
    [InlineData("sqrt (0.25)", "0.5")]
    [InlineData("√81", "9")]
    [InlineData("√(9+16)", "5")]
    [InlineData("sqrt(79228162514264337593543950335)", "281474976710656")]
    [InlineData("cbrt(27)", "3")]
    [InlineData("cbrt(-8)", "-2")]
    [InlineData("cbrt(2)", "1.259921")]
    [InlineData("abs(-3.5)", "3.5")]
    [InlineData("round(2.5)", "3")]
    [InlineData("round(-2.5)", "-3")]
    [InlineData("round(2.4999)", "2")]
    [InlineData("floor(-2.5)", "-3")]
    [InlineData("ceil(2.1)", "3")]
    [InlineData("sqrt(2)^2", "2")]
    [InlineData("sqrt(sqrt(16))", "2")]
    [InlineData("7 % 3", "1")]
    [InlineData("7%3", "1")]
    [InlineData("-7 % 3", "2")]             // sign of the divisor, as in Python
    [InlineData("7 % (-3)", "-2")]
    [InlineData("7 % -3", "-2.93")]         // a sign after % keeps the old meaning: 7 per cent, minus 3
    [InlineData("7.5 % 2", "1.5")]
    [InlineData("10 % (4)", "2")]
    [InlineData("2340*17.5%+99", "508.5")] // percent unchanged when no operand follows
    [InlineData("50% * 3", "1.5")]
    [InlineData("6 × 7", "42")]
    [InlineData("84 ÷ 2", "42")]
    [InlineData("50 − 8", "42")]
    [InlineData("−8", "-8")]
    [InlineData("6 x 7", "42")]
    [InlineData("6X7", "42")]
    [InlineData("1,000 x 3", "3000")]
    public void Evaluates(string expression, string expected)
    {
        ToolResult r = Calc(expression);
        Assert.False(r.IsError, r.Content);
        Assert.Equal(expected, r.Content);
    }

    [Theory]
    [InlineData("2√16", "unexpected character '√' at position 1")]
    [InlineData("2(3)", "unexpected character '(' at position 1")]
    [InlineData("2 x", "unexpected character 'x' at position 2")]
    [InlineData("x + 1", "unexpected character 'x' at position 0")]
    [InlineData("sqrt(-4)", "square root of a negative number")]
    [InlineData("√-4", "square root of a negative number")]
    [InlineData("(-8)^0.5", "a negative number to a fractional power is not a real number")]
    [InlineData("0^-1", "division by zero")]
    [InlineData("5 % 0", "division by zero")]
    [InlineData("2^100", "number too large")]
    [InlineData("10^29", "number too large")]
    [InlineData("2^2^2^2^2", "exponent 65536 is out of range (at most 10000 either way)")]
    [InlineData("9^9^2", "number too large")]
    [InlineData("0.1^-10000", "number too large")]
    [InlineData("10^29.5", "number too large")]
    [InlineData("2^10001", "exponent 10001 is out of range (at most 10000 either way)")]
    [InlineData("2^(-99999)", "exponent -99999 is out of range (at most 10000 either way)")]
    [InlineData("1.5^1e9", "unexpected character 'e' at position 5")]
    [InlineData("sin(1)", "unknown function 'sin' (known: sqrt, cbrt, abs, round, floor, ceil)")]
    [InlineData("sqrt 16", "'sqrt' needs its argument in parentheses, e.g. sqrt(2)")]
    [InlineData("sqrt(16", "unexpected end of expression")]
    [InlineData("2^", "unexpected end of expression")]
    [InlineData("2***3", "unexpected character '*' at position 3")]
    [InlineData("2^^3", "unexpected character '^' at position 2")]
    public void ReportsErrors(string expression, string message)
    {
        ToolResult r = Calc(expression);
        Assert.True(r.IsError, r.Content);
        Assert.Equal("error: " + message, r.Content);
    }

    [Fact]
    public void PowerChainsAndFunctionNestingCountTowardsTheDepthLimit()
    {
        string chain64 = string.Join("^", Enumerable.Repeat("1", 65)); // 64 powers
        Assert.Equal("1", Calc(chain64).Content);
        string chain65 = string.Join("^", Enumerable.Repeat("1", 66));
        Assert.Equal("error: expression nests deeper than 64 levels", Calc(chain65).Content);
        string roots = string.Concat(Enumerable.Repeat("√", 65)) + "1";
        Assert.Equal("error: expression nests deeper than 64 levels", Calc(roots).Content);
        string calls = string.Concat(Enumerable.Repeat("abs(", 65)) + "1" + new string(')', 65);
        Assert.Equal("error: expression nests deeper than 64 levels", Calc(calls).Content);
    }

    [Fact]
    public void HostileExpressionsFinishQuickly()
    {
        // Each one is the worst of its kind within the length limit: it must be answered (value or error) at once.
        string[] hostile =
        [
            string.Join("^", Enumerable.Repeat("9", 250)),
            string.Join("**", Enumerable.Repeat("1.0000001", 45)),
            "(" + string.Join("*", Enumerable.Repeat("1.0001^9999", 40)) + ")",
            string.Concat(Enumerable.Repeat("sqrt(", 60)) + "79228162514264337593543950335" + new string(')', 60),
            string.Join("%", Enumerable.Repeat("7", 250)),
            string.Concat(Enumerable.Repeat("cbrt(", 60)) + "0.0000000000000000000000000001" + new string(')', 60),
        ];
        foreach (string expression in hostile)
        {
            Assert.True(expression.Length <= CalculatorTool.MaxLength, $"{expression.Length} characters");
            var clock = Stopwatch.StartNew();
            ToolResult r = Calc(expression);
            Assert.True(clock.ElapsedMilliseconds < 1000, $"{expression[..20]}… took {clock.ElapsedMilliseconds} ms: {r.Content}");
            Assert.False(string.IsNullOrEmpty(r.Content));
        }
    }

    [Fact]
    public void IntegerPowersAreExactAgainstBigInteger()
    {
        var rng = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            int b = rng.Next(-40, 41), e = rng.Next(0, 30);
            var exact = System.Numerics.BigInteger.Pow(b, e);
            string expected = System.Numerics.BigInteger.Abs(exact) <= new System.Numerics.BigInteger(decimal.MaxValue)
                ? exact.ToString(System.Globalization.CultureInfo.InvariantCulture) : "error: number too large";
            string text = b < 0 ? $"({b})^{e}" : $"{b}**{e}";
            Assert.Equal(expected, Calc(text).Content);
        }
    }

    [Fact]
    public void SquareRootsOfPerfectSquaresAreExact()
    {
        for (long n = 0; n < 2000; n += 7)
        {
            decimal square = (decimal)n * n * 1_000_003;
            decimal root = n * 1000m;
            // sqrt(n² · k²) for k = 1000 exactly: check the scaled square too.
            Assert.Equal(DecimalText.Format(root), Calc($"sqrt({(decimal)n * n * 1_000_000})").Content);
            Assert.False(Calc($"sqrt({square})").IsError);
        }
    }
}
