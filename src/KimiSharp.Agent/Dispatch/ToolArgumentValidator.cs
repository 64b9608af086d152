using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace KimiSharp.Agent.Dispatch;

/// <summary>
/// Checks tool-call arguments against the tool's JSON schema (the subset tools use: type and type unions, properties,
/// required, additionalProperties, enum, const, minimum/maximum and their exclusive forms, minLength/maxLength, pattern,
/// minItems/maxItems, items, anyOf, nested objects). Messages name the argument path so the model can fix its call,
/// e.g. <c>argument 'limit' must be an integer</c>. Keywords outside the subset are ignored, never rejected.
/// </summary>
public static class ToolArgumentValidator
{
    private static readonly TimeSpan PatternTimeout = TimeSpan.FromMilliseconds(200);

    /// <summary>Every violation found, in schema order; empty when the arguments are valid.</summary>
    public static IReadOnlyList<string> Validate(JsonElement schema, JsonElement arguments)
    {
        var errors = new List<string>();
        if (arguments.ValueKind != JsonValueKind.Object)
        {
            errors.Add($"arguments must be a JSON object, got {KindName(arguments)}");
            return errors;
        }
        Check(schema, arguments, "", errors);
        return errors;
    }

    /// <summary>Parses <paramref name="argumentsJson"/> and validates it; a parse failure is reported as one error.</summary>
    public static IReadOnlyList<string> Validate(JsonElement schema, string argumentsJson)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(string.IsNullOrWhiteSpace(argumentsJson) ? "{}" : argumentsJson);
            return Validate(schema, document.RootElement);
        }
        catch (JsonException e)
        {
            return [$"arguments are not valid JSON: {e.Message}"];
        }
    }

    private static void Check(JsonElement schema, JsonElement value, string path, List<string> errors)
    {
        if (schema.ValueKind == JsonValueKind.False)
        {
            errors.Add($"{Subject(path)} is not allowed");
            return;
        }
        if (schema.ValueKind != JsonValueKind.Object) return;

        if (schema.TryGetProperty("type", out JsonElement type) && !MatchesType(type, value))
        {
            errors.Add($"{Subject(path)} must be {DescribeType(type)}");
            return;
        }
        if (schema.TryGetProperty("enum", out JsonElement choices) && choices.ValueKind == JsonValueKind.Array
            && !choices.EnumerateArray().Any(choice => JsonElement.DeepEquals(choice, value)))
            errors.Add($"{Subject(path)} must be one of {string.Join(", ", choices.EnumerateArray().Select(c => c.GetRawText()))}");
        if (schema.TryGetProperty("const", out JsonElement constant) && !JsonElement.DeepEquals(constant, value))
            errors.Add($"{Subject(path)} must be {constant.GetRawText()}");
        if (schema.TryGetProperty("anyOf", out JsonElement anyOf) && anyOf.ValueKind == JsonValueKind.Array
            && !anyOf.EnumerateArray().Any(branch => IsValid(branch, value, path)))
            errors.Add($"{Subject(path)} does not match any of the allowed forms");

        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                CheckNumber(schema, value, path, errors);
                break;
            case JsonValueKind.String:
                CheckString(schema, value.GetString()!, path, errors);
                break;
            case JsonValueKind.Array:
                CheckArray(schema, value, path, errors);
                break;
            case JsonValueKind.Object:
                CheckObject(schema, value, path, errors);
                break;
        }
    }

    private static bool IsValid(JsonElement schema, JsonElement value, string path)
    {
        var scratch = new List<string>();
        Check(schema, value, path, scratch);
        return scratch.Count == 0;
    }

    private static void CheckObject(JsonElement schema, JsonElement value, string path, List<string> errors)
    {
        JsonElement properties = schema.TryGetProperty("properties", out JsonElement p) && p.ValueKind == JsonValueKind.Object ? p : default;
        if (schema.TryGetProperty("required", out JsonElement required) && required.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement name in required.EnumerateArray())
            {
                if (name.ValueKind == JsonValueKind.String && !value.TryGetProperty(name.GetString()!, out _))
                    errors.Add($"argument '{Join(path, name.GetString()!)}' is required");
            }
        }

        schema.TryGetProperty("additionalProperties", out JsonElement additional);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonProperty property in value.EnumerateObject())
        {
            string childPath = Join(path, property.Name);
            if (!seen.Add(property.Name))
            {
                errors.Add($"argument '{childPath}' is given more than once");
                continue;
            }
            if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(property.Name, out JsonElement propertySchema))
                Check(propertySchema, property.Value, childPath, errors);
            else if (additional.ValueKind == JsonValueKind.False)
            {
                string known = properties.ValueKind == JsonValueKind.Object
                    ? string.Join(", ", properties.EnumerateObject().Select(x => x.Name))
                    : "";
                errors.Add($"unknown argument '{childPath}'" + (known.Length > 0 ? $" (expected: {known})" : ""));
            }
            else if (additional.ValueKind == JsonValueKind.Object)
                Check(additional, property.Value, childPath, errors);
        }
    }

    private static void CheckArray(JsonElement schema, JsonElement value, string path, List<string> errors)
    {
        int count = value.GetArrayLength();
        if (TryGetCount(schema, "minItems", out long minItems) && count < minItems)
            errors.Add($"{Subject(path)} must have at least {minItems} item{(minItems == 1 ? "" : "s")}");
        if (TryGetCount(schema, "maxItems", out long maxItems) && count > maxItems)
            errors.Add($"{Subject(path)} must have at most {maxItems} item{(maxItems == 1 ? "" : "s")}");
        if (schema.TryGetProperty("items", out JsonElement items) && items.ValueKind is JsonValueKind.Object or JsonValueKind.False)
        {
            int index = 0;
            foreach (JsonElement item in value.EnumerateArray())
                Check(items, item, $"{path}[{index++}]", errors);
        }
    }

    private static void CheckString(JsonElement schema, string text, string path, List<string> errors)
    {
        // JSON Schema counts characters as code points, so a surrogate pair is one.
        int length = text.EnumerateRunes().Count();
        if (TryGetCount(schema, "minLength", out long minLength) && length < minLength)
            errors.Add(minLength == 1
                ? $"{Subject(path)} must not be empty"
                : $"{Subject(path)} must be at least {minLength} characters long");
        if (TryGetCount(schema, "maxLength", out long maxLength) && length > maxLength)
            errors.Add($"{Subject(path)} must be at most {maxLength} characters long");
        if (schema.TryGetProperty("pattern", out JsonElement pattern) && pattern.ValueKind == JsonValueKind.String)
        {
            try
            {
                if (!Regex.IsMatch(text, pattern.GetString()!, RegexOptions.CultureInvariant, PatternTimeout))
                    errors.Add($"{Subject(path)} must match the pattern {pattern.GetString()}");
            }
            catch (Exception e) when (e is ArgumentException or RegexMatchTimeoutException)
            {
                // A broken or pathological pattern is the schema author's problem; do not blame the model for it.
            }
        }
    }

    private static void CheckNumber(JsonElement schema, JsonElement value, string path, List<string> errors)
    {
        if (!TryGetFinite(value, out double number))
        {
            errors.Add($"{Subject(path)} must be a finite number");
            return;
        }
        if (TryGetNumber(schema, "minimum", out double minimum) && number < minimum)
            errors.Add($"{Subject(path)} must be at least {Format(minimum)}");
        if (TryGetNumber(schema, "maximum", out double maximum) && number > maximum)
            errors.Add($"{Subject(path)} must be at most {Format(maximum)}");
        if (TryGetNumber(schema, "exclusiveMinimum", out double exclusiveMinimum) && number <= exclusiveMinimum)
            errors.Add($"{Subject(path)} must be greater than {Format(exclusiveMinimum)}");
        if (TryGetNumber(schema, "exclusiveMaximum", out double exclusiveMaximum) && number >= exclusiveMaximum)
            errors.Add($"{Subject(path)} must be less than {Format(exclusiveMaximum)}");
    }

    private static bool MatchesType(JsonElement type, JsonElement value) => type.ValueKind switch
    {
        JsonValueKind.String => MatchesType(type.GetString()!, value),
        JsonValueKind.Array => type.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && MatchesType(t.GetString()!, value)),
        _ => true,
    };

    private static bool MatchesType(string type, JsonElement value) => type switch
    {
        "string" => value.ValueKind == JsonValueKind.String,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "number" => TryGetFinite(value, out _),
        // As in JSON Schema, 3.0 is an integer; 3.5 and 1e400 are not.
        "integer" => TryGetFinite(value, out double number) && number == Math.Floor(number),
        _ => true,
    };

    private static bool TryGetFinite(JsonElement value, out double number)
    {
        number = 0;
        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out number) && double.IsFinite(number);
    }

    private static string DescribeType(JsonElement type)
    {
        IEnumerable<string> names = type.ValueKind == JsonValueKind.Array
            ? type.EnumerateArray().Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!)
            : [type.GetString()!];
        List<string> phrases = names.Select(name => name switch
        {
            "integer" or "object" or "array" => "an " + name,
            "null" => "null",
            _ => "a " + name,
        }).ToList();
        return phrases.Count switch
        {
            0 => "of an allowed type",
            1 => phrases[0],
            _ => string.Join(", ", phrases[..^1]) + " or " + phrases[^1],
        };
    }

    private static string KindName(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString().ToLowerInvariant(),
    };

    private static bool TryGetCount(JsonElement schema, string keyword, out long count)
    {
        count = 0;
        return schema.TryGetProperty(keyword, out JsonElement element) && element.ValueKind == JsonValueKind.Number
            && element.TryGetInt64(out count);
    }

    private static bool TryGetNumber(JsonElement schema, string keyword, out double number)
    {
        number = 0;
        return schema.TryGetProperty(keyword, out JsonElement element) && element.ValueKind == JsonValueKind.Number
            && element.TryGetDouble(out number);
    }

    private static string Subject(string path) => path.Length == 0 ? "arguments" : $"argument '{path}'";

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Format(double number) => number.ToString(CultureInfo.InvariantCulture);
}
