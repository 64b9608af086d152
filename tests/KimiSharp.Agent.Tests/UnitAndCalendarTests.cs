using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests;

public class UnitConverterToolTests
{
    private static ToolResult Convert(JsonNode? value, string from, string to) =>
        new UnitConverterTool().Invoke(new JsonObject { ["value"] = value, ["from"] = from, ["to"] = to });

    [Theory]
    [InlineData(12, "km", "mi", "7.456454 mi")]
    [InlineData(1, "mi", "m", "1609.344 m")]
    [InlineData(1, "ft", "in", "12 in")]
    [InlineData(3, "ft", "yd", "1 yd")]
    [InlineData(250, "cm", "mm", "2500 mm")]
    [InlineData(1, "lb", "oz", "16 oz")]
    [InlineData(1, "kg", "lb", "2.204623 lb")]
    [InlineData(500, "g", "kg", "0.5 kg")]
    [InlineData(1, "gal", "l", "3.785412 l")]
    [InlineData(2, "l", "ml", "2000 ml")]
    [InlineData(1, "day", "min", "1440 min")]
    [InlineData(90, "min", "h", "1.5 h")]
    [InlineData(7200, "s", "h", "2 h")]
    [InlineData(100, "C", "F", "212 F")]
    [InlineData(0, "K", "C", "-273.15 C")]
    [InlineData(32, "F", "C", "0 C")]
    [InlineData(-40, "F", "C", "-40 C")]
    [InlineData(98.6, "F", "K", "310.15 K")]
    [InlineData(0, "C", "K", "273.15 K")]
    [InlineData(5, "m", "m", "5 m")]
    // By name, in any case; the result names the unit as the caller wrote it.
    [InlineData(12, "kilometers", "miles", "7.456454 miles")]
    [InlineData(3, "Feet", "yard", "1 yard")]
    [InlineData(100, "degrees Celsius", "degrees Fahrenheit", "212 degrees Fahrenheit")]
    [InlineData(0, "kelvin", "C", "-273.15 C")]
    [InlineData(2, "litres", "ml", "2000 ml")]
    [InlineData(90, "minutes", "hours", "1.5 hours")]
    public void Converts(double value, string from, string to, string expected)
    {
        ToolResult r = Convert(JsonNode.Parse(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)), from, to);
        Assert.False(r.IsError, r.Content);
        Assert.Equal(expected, r.Content);
    }

    [Fact]
    public void Unit_names_are_checked_like_symbols()
    {
        Assert.Equal("error: cannot convert kilograms to meters", Convert(1, "kilograms", "meters").Content);
        Assert.StartsWith("error: unknown unit 'kilometerz'", Convert(1, "kilometerz", "m").Content);
    }

    [Fact]
    public void AcceptsNumericStringAndBuiltValues()
    {
        Assert.Equal("1250 m", Convert("1.25", "km", "m").Content);
        Assert.Equal("12000 m", Convert(12, "km", "m").Content);
        Assert.Equal("2500 m", Convert(2.5m, "km", "m").Content);
        var parsed = JsonNode.Parse("""{"value": 12.5, "from": "km", "to": "m"}""")!.AsObject();
        Assert.Equal("12500 m", new UnitConverterTool().Invoke(parsed).Content);
    }

    [Fact]
    public void Errors()
    {
        Assert.Equal("error: cannot convert km to kg", Convert(1, "km", "kg").Content);
        Assert.Equal("error: cannot convert C to s", Convert(1, "C", "s").Content);
        Assert.Equal("error: unknown unit 'parsec' (known: m, km, cm, mm, mi, ft, in, yd, kg, g, lb, oz, l, ml, gal, s, min, h, day, C, F, K, or their names)",
            Convert(1, "parsec", "m").Content);
        Assert.StartsWith("error: unknown unit 'KM' (known: ", Convert(1, "m", "KM").Content);
        Assert.Equal("error: 'value' must be a number", Convert("abc", "m", "km").Content);
        Assert.Equal("error: 'value' must be a number", Convert(true, "m", "km").Content);
        Assert.Equal("error: 'value' must be a number", new UnitConverterTool().Invoke(new JsonObject { ["from"] = "m", ["to"] = "km" }).Content);
        Assert.Equal("error: 'from' must be a string", new UnitConverterTool().Invoke(new JsonObject { ["value"] = 1, ["to"] = "km" }).Content);
        Assert.Equal("error: 'to' must be a string", new UnitConverterTool().Invoke(new JsonObject { ["value"] = 1, ["from"] = "m", ["to"] = 3 }).Content);
        Assert.Equal("error: number too large", Convert(JsonNode.Parse("79228162514264337593543950335"), "km", "mm").Content);
        Assert.Equal("error: 'value' must be a number", Convert(JsonNode.Parse("1e300"), "km", "mm").Content);
    }
}

public class CalendarToolTests
{
    private static ToolResult Call(JsonObject args) => new CalendarTool().Invoke(args);

    [Theory]
    [InlineData("2026-11-23", "Monday")]
    [InlineData("2000-01-01", "Saturday")]
    [InlineData("2024-02-29", "Thursday")]
    [InlineData("1969-07-20", "Sunday")]
    [InlineData("0001-01-01", "Monday")]
    public void Weekday(string date, string expected) =>
        Assert.Equal(expected, Call(new JsonObject { ["operation"] = "weekday", ["date"] = date }).Content);

    [Theory]
    [InlineData("2026-01-01", 14, "2026-01-15")]
    [InlineData("2024-02-28", 1, "2024-02-29")]
    [InlineData("2023-02-28", 1, "2023-03-01")]
    [InlineData("2000-02-28", 1, "2000-02-29")]
    [InlineData("1900-02-28", 1, "1900-03-01")]
    [InlineData("2026-03-01", -1, "2026-02-28")]
    [InlineData("2026-01-01", 0, "2026-01-01")]
    [InlineData("2026-01-01", 1000000, "4763-11-29")]
    public void AddDays(string date, int days, string expected) =>
        Assert.Equal(expected, Call(new JsonObject { ["operation"] = "add_days", ["date"] = date, ["days"] = days }).Content);

    [Theory]
    [InlineData("2026-01-01", "2026-02-15", "45")]
    [InlineData("2026-02-15", "2026-01-01", "-45")]
    [InlineData("2024-01-01", "2025-01-01", "366")]
    [InlineData("2025-01-01", "2026-01-01", "365")]
    [InlineData("2026-05-05", "2026-05-05", "0")]
    public void DaysBetween(string date, string end, string expected) =>
        Assert.Equal(expected, Call(new JsonObject { ["operation"] = "days_between", ["date"] = date, ["end_date"] = end }).Content);

    [Fact]
    public void Errors()
    {
        Assert.Equal("error: 'date' must be a date in YYYY-MM-DD form, got '2026-13-01'",
            Call(new JsonObject { ["operation"] = "weekday", ["date"] = "2026-13-01" }).Content);
        Assert.Equal("error: 'date' must be a date in YYYY-MM-DD form, got '2023-02-29'",
            Call(new JsonObject { ["operation"] = "weekday", ["date"] = "2023-02-29" }).Content);
        Assert.Equal("error: 'date' must be a date in YYYY-MM-DD form, got '26-1-1'",
            Call(new JsonObject { ["operation"] = "weekday", ["date"] = "26-1-1" }).Content);
        Assert.Equal("error: 'date' must be a date in YYYY-MM-DD form, got ''",
            Call(new JsonObject { ["operation"] = "weekday" }).Content);
        Assert.Equal("error: 'end_date' must be a date in YYYY-MM-DD form, got '20260101'",
            Call(new JsonObject { ["operation"] = "days_between", ["date"] = "2026-01-01", ["end_date"] = 20260101 }).Content);
        Assert.Equal("error: unknown operation 'month' (known: weekday, add_days, days_between)",
            Call(new JsonObject { ["operation"] = "month", ["date"] = "2026-01-01" }).Content);
        Assert.Equal("error: 'operation' must be a string", Call([]).Content);
        Assert.Equal("error: 'days' must be an integer",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "2026-01-01", ["days"] = 1.5 }).Content);
        Assert.Equal("error: 'days' must be an integer",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "2026-01-01" }).Content);
        Assert.Equal("error: 'days' must be between -1000000 and 1000000",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "2026-01-01", ["days"] = 1000001 }).Content);
        Assert.Equal("error: date out of range",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "9999-12-31", ["days"] = 1 }).Content);
        Assert.Equal("error: date out of range",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "0001-01-01", ["days"] = -1 }).Content);
        Assert.Equal("2026-01-31",
            Call(new JsonObject { ["operation"] = "add_days", ["date"] = "2026-01-01", ["days"] = "30" }).Content);
    }
}
