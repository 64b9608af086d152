using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// Converts between units of length, mass, volume, time and temperature with exact decimal factors. Units are given
/// by symbol ("km", case-sensitive) or by name ("kilometers", "Kilometre", "degrees Celsius"; any case), and the
/// result names the target unit as the caller wrote it, so a model can copy the user's words instead of translating them.
/// </summary>
public sealed class UnitConverterTool : IAgentTool
{
    private sealed record Unit(string Key, string Dimension, decimal Factor);

    // Factor: size of the unit in the dimension's base unit (m, kg, l, s). Temperature is handled separately.
    private static readonly Unit[] AllUnits =
    [
        new("m", "length", 1m), new("km", "length", 1000m), new("cm", "length", 0.01m), new("mm", "length", 0.001m),
        new("mi", "length", 1609.344m), new("ft", "length", 0.3048m), new("in", "length", 0.0254m), new("yd", "length", 0.9144m),
        new("kg", "mass", 1m), new("g", "mass", 0.001m), new("lb", "mass", 0.45359237m), new("oz", "mass", 0.028349523125m),
        new("l", "volume", 1m), new("ml", "volume", 0.001m), new("gal", "volume", 3.785411784m),
        new("s", "time", 1m), new("min", "time", 60m), new("h", "time", 3600m), new("day", "time", 86400m),
        new("C", "temperature", 1m), new("F", "temperature", 1m), new("K", "temperature", 1m),
    ];

    private static readonly Dictionary<string, Unit> ByKey = AllUnits.ToDictionary(u => u.Key, StringComparer.Ordinal);

    // Names in lower case, singular and plural (and British spellings), each mapped to its symbol.
    private static readonly Dictionary<string, Unit> ByName = new (string Key, string[] Names)[]
    {
        ("m", ["meter", "meters", "metre", "metres"]), ("km", ["kilometer", "kilometers", "kilometre", "kilometres"]),
        ("cm", ["centimeter", "centimeters", "centimetre", "centimetres"]), ("mm", ["millimeter", "millimeters", "millimetre", "millimetres"]),
        ("mi", ["mile", "miles"]), ("ft", ["foot", "feet"]), ("in", ["inch", "inches"]), ("yd", ["yard", "yards"]),
        ("kg", ["kilogram", "kilograms"]), ("g", ["gram", "grams"]), ("lb", ["pound", "pounds", "lbs"]), ("oz", ["ounce", "ounces"]),
        ("l", ["liter", "liters", "litre", "litres"]), ("ml", ["milliliter", "milliliters", "millilitre", "millilitres"]),
        ("gal", ["gallon", "gallons"]), ("s", ["second", "seconds", "sec"]), ("min", ["minute", "minutes"]),
        ("h", ["hour", "hours", "hr"]), ("day", ["days"]),
        ("C", ["celsius", "degree celsius", "degrees celsius"]), ("F", ["fahrenheit", "degree fahrenheit", "degrees fahrenheit"]),
        ("K", ["kelvin", "kelvins"]),
    }.SelectMany(u => u.Names.Select(n => (Name: n, Unit: ByKey[u.Key]))).ToDictionary(p => p.Name, p => p.Unit, StringComparer.Ordinal);

    /// <summary>The unit keys in declaration order.</summary>
    public static IReadOnlyList<string> Units { get; } = AllUnits.Select(u => u.Key).ToArray();

    public string Name => "convert_units";

    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Convert between units, given by symbol (m km cm mm mi ft in yd kg g lb oz l ml gal s min h day C F K) or by name (e.g. kilometers, degrees Celsius).",
        new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["value"] = new JsonObject { ["type"] = "number" },
                ["from"] = new JsonObject { ["type"] = "string" },
                ["to"] = new JsonObject { ["type"] = "string" },
            },
            ["required"] = new JsonArray("value", "from", "to"),
        });

    public ToolResult Invoke(JsonObject arguments) => ToolArgs.Guard(() =>
    {
        if (!ToolArgs.TryGetDecimal(arguments, "value", out decimal value)) return ToolResult.Error("'value' must be a number");
        if (!ToolArgs.TryGetString(arguments, "from", out string from)) return ToolResult.Error("'from' must be a string");
        if (!ToolArgs.TryGetString(arguments, "to", out string to)) return ToolResult.Error("'to' must be a string");
        return Convert(value, from, to);
    });

    /// <summary>Converts <paramref name="value"/> from one unit to another; Ok text is "RESULT TO".</summary>
    public static ToolResult Convert(decimal value, string from, string to)
    {
        if (Find(from) is not { } source) return UnknownUnit(from);
        if (Find(to) is not { } target) return UnknownUnit(to);
        if (source.Dimension != target.Dimension) return ToolResult.Error($"cannot convert {ToolArgs.Clip(from)} to {ToolArgs.Clip(to)}");
        try
        {
            decimal result = source.Dimension == "temperature"
                ? FromCelsius(ToCelsius(value, source.Key), target.Key)
                : value * source.Factor / target.Factor;
            return ToolResult.Ok($"{DecimalText.Format(result)} {to}");
        }
        catch (OverflowException)
        {
            return ToolResult.Error("number too large");
        }
    }

    private static Unit? Find(string unit) =>
        ByKey.TryGetValue(unit, out Unit? u) || ByName.TryGetValue(unit.Trim().ToLowerInvariant(), out u) ? u : null;

    private static ToolResult UnknownUnit(string unit) =>
        ToolResult.Error($"unknown unit '{ToolArgs.Clip(unit)}' (known: {string.Join(", ", Units)}, or their names)");

    private static decimal ToCelsius(decimal v, string unit) => unit switch
    {
        "C" => v,
        "K" => v - 273.15m,
        "F" => (v - 32m) / 1.8m,
        _ => throw new ArgumentOutOfRangeException(nameof(unit)),
    };

    private static decimal FromCelsius(decimal c, string unit) => unit switch
    {
        "C" => c,
        "K" => c + 273.15m,
        "F" => c * 1.8m + 32m,
        _ => throw new ArgumentOutOfRangeException(nameof(unit)),
    };
}
