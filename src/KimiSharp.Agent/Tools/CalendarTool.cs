using System.Globalization;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>Date arithmetic on proleptic Gregorian dates (0001-01-01 to 9999-12-31).</summary>
public sealed class CalendarTool : IAgentTool
{
    public const int MaxDays = 1_000_000;

    /// <summary>The operations in declaration order.</summary>
    public static IReadOnlyList<string> Operations { get; } = ["weekday", "add_days", "days_between"];

    public string Name => "calendar";

    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Dates as YYYY-MM-DD: weekday, add_days or days_between.",
        new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["operation"] = new JsonObject { ["type"] = "string", ["enum"] = ToolArgs.Strings(Operations) },
                ["date"] = new JsonObject { ["type"] = "string" },
                ["days"] = new JsonObject { ["type"] = "integer" },
                ["end_date"] = new JsonObject { ["type"] = "string" },
            },
            ["required"] = new JsonArray("operation", "date"),
        });

    public ToolResult Invoke(JsonObject arguments) => ToolArgs.Guard(() =>
    {
        if (!ToolArgs.TryGetString(arguments, "operation", out string operation))
            return ToolResult.Error("'operation' must be a string");
        if (!Operations.Contains(operation))
            return ToolResult.Error($"unknown operation '{ToolArgs.Clip(operation)}' (known: {string.Join(", ", Operations)})");
        if (!TryGetDate(arguments, "date", out DateOnly date, out ToolResult? error)) return error!;

        switch (operation)
        {
            case "weekday":
                return ToolResult.Ok(date.DayOfWeek.ToString());
            case "add_days":
                if (!ToolArgs.TryGetDecimal(arguments, "days", out decimal d) || d != decimal.Truncate(d))
                    return ToolResult.Error("'days' must be an integer");
                if (Math.Abs(d) > MaxDays)
                    return ToolResult.Error($"'days' must be between -{MaxDays} and {MaxDays}");
                int days = (int)d;
                long dayNumber = (long)date.DayNumber + days;
                if (dayNumber < DateOnly.MinValue.DayNumber || dayNumber > DateOnly.MaxValue.DayNumber)
                    return ToolResult.Error("date out of range");
                return ToolResult.Ok(FormatDate(DateOnly.FromDayNumber((int)dayNumber)));
            default:
                if (!TryGetDate(arguments, "end_date", out DateOnly end, out error)) return error!;
                return ToolResult.Ok((end.DayNumber - date.DayNumber).ToString(CultureInfo.InvariantCulture));
        }
    });

    /// <summary>Formats a date as YYYY-MM-DD.</summary>
    public static string FormatDate(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static bool TryGetDate(JsonObject args, string name, out DateOnly date, out ToolResult? error)
    {
        error = null;
        if (ToolArgs.TryGetString(args, name, out string text)
            && text.Length == 10
            && DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out date))
            return true;
        date = default;
        error = ToolResult.Error($"'{name}' must be a date in YYYY-MM-DD form, got '{ToolArgs.Describe(args, name)}'");
        return false;
    }
}
