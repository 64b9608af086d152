using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Tests.Constraints;

/// <summary>
/// An independent validator for the schema subset the matcher supports (written from the JSON Schema spec, not from
/// the matcher), used to check generated documents. Also checks the matcher's canonical key order.
/// </summary>
internal static class MiniSchemaValidator
{
    public static void AssertValid(string json, JsonNode? schema)
    {
        using var doc = JsonDocument.Parse(json);
        var errors = new List<string>();
        Validate(doc.RootElement, schema, schema, "$", errors);
        Assert.True(errors.Count == 0, $"{json}\n  violates: {string.Join("; ", errors)}");
    }

    public static bool IsValid(JsonElement value, JsonNode? schema)
    {
        var errors = new List<string>();
        Validate(value, schema, schema, "$", errors);
        return errors.Count == 0;
    }

    private static void Validate(JsonElement value, JsonNode? schema, JsonNode? root, string at, List<string> errors)
    {
        if (schema is null) return;
        if (schema is JsonValue b)
        {
            if (!b.GetValue<bool>()) errors.Add($"{at}: false schema");
            return;
        }
        var s = schema.AsObject();
        if (s["$ref"] is JsonValue r)
        {
            Validate(value, Resolve(root, r.GetValue<string>()), root, at, errors);
            return;
        }
        if (s["allOf"] is JsonArray allOf) foreach (var part in allOf) Validate(value, part, root, at, errors);
        var alternatives = s["anyOf"] as JsonArray ?? s["oneOf"] as JsonArray;
        if (alternatives != null)
        {
            int matches = alternatives.Count(a => { var e = new List<string>(); Validate(value, a, root, at, e); return e.Count == 0; });
            if (matches == 0) errors.Add($"{at}: matches no alternative");
            if (s["oneOf"] is JsonArray && matches > 1) errors.Add($"{at}: matches {matches} oneOf alternatives");
        }
        if (s.ContainsKey("const") && !JsonNode.DeepEquals(JsonNode.Parse(value.GetRawText()), s["const"])) errors.Add($"{at}: not the const");
        if (s["enum"] is JsonArray en && !en.Any(e => JsonNode.DeepEquals(JsonNode.Parse(value.GetRawText()), e))) errors.Add($"{at}: not in enum");

        var types = s["type"] switch
        {
            JsonValue t => [t.GetValue<string>()],
            JsonArray ts => ts.Select(t => t!.GetValue<string>()).ToList(),
            _ => null,
        };
        if (types != null && !types.Any(t => HasType(value, t))) errors.Add($"{at}: not of type {string.Join("|", types)}");

        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                {
                    var props = s["properties"] as JsonObject;
                    var required = (s["required"] as JsonArray)?.Select(x => x!.GetValue<string>()).ToList() ?? [];
                    var names = value.EnumerateObject().Select(p => p.Name).ToList();
                    if (names.Distinct().Count() != names.Count) errors.Add($"{at}: duplicate keys");
                    foreach (var req in required) if (!names.Contains(req)) errors.Add($"{at}: missing {req}");
                    if (s["minProperties"] is JsonValue mp && names.Count < mp.GetValue<int>()) errors.Add($"{at}: fewer than minProperties");
                    if (s["maxProperties"] is JsonValue xp && names.Count > xp.GetValue<int>()) errors.Add($"{at}: more than maxProperties");
                    int lastIndex = -1;
                    foreach (var p in value.EnumerateObject())
                    {
                        if (props != null && props.TryGetPropertyValue(p.Name, out var ps))
                        {
                            int index = props.Select(kv => kv.Key).ToList().IndexOf(p.Name);
                            if (index < lastIndex) errors.Add($"{at}: key {p.Name} out of schema order");
                            lastIndex = index;
                            Validate(p.Value, ps, root, $"{at}.{p.Name}", errors);
                        }
                        else if (s["additionalProperties"] is JsonNode ap) Validate(p.Value, ap, root, $"{at}.{p.Name}", errors);
                    }
                    break;
                }
            case JsonValueKind.Array:
                {
                    var items = value.EnumerateArray().ToList();
                    if (s["minItems"] is JsonValue mi && items.Count < mi.GetValue<int>()) errors.Add($"{at}: fewer than minItems");
                    if (s["maxItems"] is JsonValue ma && items.Count > ma.GetValue<int>()) errors.Add($"{at}: more than maxItems");
                    var prefix = s["prefixItems"] as JsonArray;
                    for (int i = 0; i < items.Count; i++)
                    {
                        var itemSchema = prefix != null && i < prefix.Count ? prefix[i] : s["items"];
                        if (itemSchema != null) Validate(items[i], itemSchema, root, $"{at}[{i}]", errors);
                    }
                    break;
                }
            case JsonValueKind.String:
                {
                    string text = value.GetString()!;
                    int length = text.EnumerateRunes().Count();
                    if (s["minLength"] is JsonValue mn && length < mn.GetValue<int>()) errors.Add($"{at}: shorter than minLength");
                    if (s["maxLength"] is JsonValue mx && length > mx.GetValue<int>()) errors.Add($"{at}: longer than maxLength");
                    break;
                }
            case JsonValueKind.Number:
                {
                    double d = value.GetDouble();
                    if (s["minimum"] is JsonValue mn && d < mn.GetValue<double>()) errors.Add($"{at}: below minimum");
                    if (s["maximum"] is JsonValue mx && d > mx.GetValue<double>()) errors.Add($"{at}: above maximum");
                    if (s["exclusiveMinimum"] is JsonValue xn && xn.GetValueKind() == JsonValueKind.Number && d <= xn.GetValue<double>()) errors.Add($"{at}: not above exclusiveMinimum");
                    if (s["exclusiveMaximum"] is JsonValue xx && xx.GetValueKind() == JsonValueKind.Number && d >= xx.GetValue<double>()) errors.Add($"{at}: not below exclusiveMaximum");
                    break;
                }
        }
    }

    private static bool HasType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m == decimal.Truncate(m),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => false,
    };

    private static JsonNode? Resolve(JsonNode? root, string reference)
    {
        JsonNode? current = root;
        foreach (var part in reference.TrimStart('#').Split('/', StringSplitOptions.RemoveEmptyEntries)) current = current![part];
        return current;
    }
}
