using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>Shared helpers for reading tool arguments and building declarations.</summary>
internal static class ToolArgs
{
    public static bool TryGetString(JsonObject args, string name, out string value)
    {
        value = "";
        if (!args.TryGetPropertyValue(name, out JsonNode? node) || node is not JsonValue v) return false;
        if (v.GetValueKind() != JsonValueKind.String) return false;
        value = v.GetValue<string>();
        return true;
    }

    /// <summary>A JSON number, or a string holding a plain decimal number.</summary>
    public static bool TryGetDecimal(JsonObject args, string name, out decimal value)
    {
        value = 0m;
        if (!args.TryGetPropertyValue(name, out JsonNode? node) || node is not JsonValue v) return false;
        string text;
        switch (v.GetValueKind())
        {
            case JsonValueKind.Number: text = v.ToJsonString(); break;
            case JsonValueKind.String: text = v.GetValue<string>().Trim(); break;
            default: return false;
        }
        if (text.Length == 0 || text.Length > 100) return false;
        return decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>Text for an argument in an error message: the string itself, the JSON of anything else, or "" when missing.</summary>
    public static string Describe(JsonObject args, string name)
    {
        if (!args.TryGetPropertyValue(name, out JsonNode? node) || node is null) return "";
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String) return Clip(v.GetValue<string>());
        return Clip(node.ToJsonString());
    }

    /// <summary>Shortens text echoed into an error message to at most 100 characters plus an ellipsis.</summary>
    public static string Clip(string text) => text.Length > 100 ? text[..100] + "…" : text;

    public static JsonObject Declaration(string name, string description, JsonObject parameters) => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = name,
            ["description"] = description,
            ["parameters"] = parameters,
        },
    };

    public static JsonArray Strings(IEnumerable<string> items)
    {
        var array = new JsonArray();
        foreach (string item in items) array.Add(item);
        return array;
    }

    /// <summary>Runs a tool body, turning any unexpected exception into an error result.</summary>
    public static ToolResult Guard(Func<ToolResult> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return ToolResult.Error(e.Message);
        }
    }
}
