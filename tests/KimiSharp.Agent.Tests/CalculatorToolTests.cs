using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests;

public class CalculatorToolTests
{
    private static ToolResult Calc(string expression) =>
        new CalculatorTool().Invoke(new JsonObject { ["expression"] = expression });

    [Theory]
    [InlineData("2340*17.5%+99", "508.5")]
    [InlineData("2,340 * 17.5 / 100 + 99", "508.5")]
    [InlineData("1,234,567.5 + 0.5", "1234568")]
    [InlineData("2+3*4", "14")]
    [InlineData("(2+3)*4", "20")]
    [InlineData("10-4-3", "3")]
    [InlineData("100/10/5", "2")]
    [InlineData("-3*-2", "6")]
    [InlineData("-(2+3)", "-5")]
    [InlineData("+5 - -5", "10")]
    [InlineData("--4", "4")]
    [InlineData("1/3", "0.333333")]
    [InlineData("2/3", "0.666667")]
    [InlineData("-2/3", "-0.666667")]
    [InlineData("0.1+0.2", "0.3")]
    [InlineData(".5*4", "2")]
    [InlineData("5.", "5")]
    [InlineData("50%", "0.5")]
    [InlineData("200*10%%", "0.2")]
    [InlineData("-50%", "-0.5")]
    [InlineData("  7 \t*\n 6 ", "42")]
    [InlineData("0.0000004", "0")]
    [InlineData("-0.0000004", "0")]
    [InlineData("0.0000005", "0.000001")]
    [InlineData("1000000*1000000", "1000000000000")]
    public void Evaluates(string expression, string expected)
    {
        ToolResult r = Calc(expression);
        Assert.False(r.IsError, r.Content);
        Assert.Equal(expected, r.Content);
    }

    [Theory]
    [InlineData("1/0", "division by zero")]
    [InlineData("5/(2-2)", "division by zero")]
    [InlineData("2+x", "unexpected character 'x' at position 2")]
    [InlineData("2 $ 3", "unexpected character '$' at position 2")]
    [InlineData("(1+2", "unexpected end of expression")]
    [InlineData("1+", "unexpected end of expression")]
    [InlineData("", "unexpected end of expression")]
    [InlineData("1+2)", "unexpected character ')' at position 3")]
    [InlineData("2 3", "unexpected character '3' at position 2")]
    [InlineData("1e5", "unexpected character 'e' at position 1")]
    [InlineData("2, 3", "unexpected character ',' at position 1")]
    [InlineData(".", "unexpected character '.' at position 0")]
    [InlineData("99999999999999999999999999999999", "number too large")]
    [InlineData("79228162514264337593543950335*10", "number too large")]
    public void ReportsErrors(string expression, string message)
    {
        ToolResult r = Calc(expression);
        Assert.True(r.IsError);
        Assert.Equal("error: " + message, r.Content);
    }

    [Fact]
    public void LengthAndDepthLimits()
    {
        Assert.Equal("error: expression is longer than 500 characters", Calc(new string('1', 501)).Content);
        Assert.False(Calc(new string('1', 28)).IsError);
        string ok = new string('(', 64) + "1" + new string(')', 64);
        Assert.Equal("1", Calc(ok).Content);
        string deep = new string('(', 65) + "1" + new string(')', 65);
        Assert.Equal("error: expression nests deeper than 64 levels", Calc(deep).Content);
        Assert.Equal("error: expression nests deeper than 64 levels", Calc(new string('(', 400)).Content);
        Assert.Equal("-1", Calc(new string('-', 499) + "1").Content);
    }

    [Fact]
    public void RequiresStringExpression()
    {
        var tool = new CalculatorTool();
        Assert.Equal("error: 'expression' must be a string", tool.Invoke([]).Content);
        Assert.Equal("error: 'expression' must be a string", tool.Invoke(new JsonObject { ["expression"] = 12 }).Content);
        Assert.Equal("error: 'expression' must be a string", tool.Invoke(new JsonObject { ["expression"] = null }).Content);
    }

    [Fact]
    public void DeclarationMatchesSpec()
    {
        JsonObject d = new CalculatorTool().Declaration;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(
            """{"type":"function","function":{"name":"calculator","description":"Exact arithmetic: + - * / % (per cent, or remainder between numbers), ^ or ** powers, sqrt cbrt abs round floor ceil, parentheses.","parameters":{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"]}}}"""),
            d));
    }

    // ---- fuzz: random expression trees evaluated independently ----

    private abstract record Node;
    private sealed record Num(int Value) : Node;
    private sealed record Neg(Node Inner) : Node;
    private sealed record Pct(Node Inner) : Node;
    private sealed record Bin(char Op, Node Left, Node Right) : Node;

    private static Node Build(Random rng, int depth)
    {
        if (depth == 0 || rng.Next(4) == 0) return new Num(rng.Next(10) == 0 ? rng.Next(1000, 100000) : rng.Next(0, 25));
        return rng.Next(10) switch
        {
            0 => new Neg(Build(rng, depth - 1)),
            1 => new Pct(Build(rng, depth - 1)),
            _ => new Bin("+-*/"[rng.Next(4)], Build(rng, depth - 1), Build(rng, depth - 1)),
        };
    }

    private static decimal Eval(Node n) => n switch
    {
        Num x => x.Value,
        Neg x => -Eval(x.Inner),
        Pct x => Eval(x.Inner) / 100m,
        Bin { Op: '+' } b => Eval(b.Left) + Eval(b.Right),
        Bin { Op: '-' } b => Eval(b.Left) - Eval(b.Right),
        Bin { Op: '*' } b => Eval(b.Left) * Eval(b.Right),
        Bin b => Div(Eval(b.Left), Eval(b.Right)),
        _ => throw new InvalidOperationException(),
    };

    private static decimal Div(decimal a, decimal b) => b == 0m ? throw new DivideByZeroException() : a / b;

    // Precedence levels: 1 sum, 2 product, 3 unary, 4 postfix/primary.
    private static int Level(Node n) => n switch
    {
        Bin { Op: '+' or '-' } => 1,
        Bin => 2,
        Neg => 3,
        _ => 4,
    };

    private static string Render(Node n, Random rng)
    {
        string Wrap(Node child, bool needed) =>
            needed || rng.Next(5) == 0 ? "(" + Render(child, rng) + ")" : Render(child, rng);
        string Space() => rng.Next(3) == 0 ? " " : "";
        return n switch
        {
            Num x => x.Value >= 1000 && rng.Next(2) == 0 ? x.Value.ToString("#,0", System.Globalization.CultureInfo.InvariantCulture) : x.Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Neg x => "-" + Wrap(x.Inner, Level(x.Inner) < 3),
            Pct x => Wrap(x.Inner, Level(x.Inner) < 4) + "%",
            Bin b => Wrap(b.Left, Level(b.Left) < Level(b)) + Space() + b.Op + Space()
                     + Wrap(b.Right, Level(b.Right) <= Level(b)),
            _ => throw new InvalidOperationException(),
        };
    }

    [Fact]
    public void FuzzAgainstIndependentEvaluation()
    {
        var rng = new Random(12345);
        int checkedCount = 0;
        for (int i = 0; i < 500; i++)
        {
            Node tree = Build(rng, 4);
            string text = Render(tree, rng);
            if (text.Length > 500) continue;
            string expected;
            try
            {
                expected = DecimalText.Format(Eval(tree));
            }
            catch (DivideByZeroException)
            {
                expected = "error: division by zero";
            }
            catch (OverflowException)
            {
                expected = "error: number too large";
            }
            Assert.True(expected == Calc(text).Content, $"'{text}': expected {expected}, got {Calc(text).Content}");
            checkedCount++;
        }
        Assert.True(checkedCount >= 450);
    }
}
