using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Server;

/// <summary>Typed access to a JSON request body; every mistake becomes a 400 naming the parameter.</summary>
internal sealed class RequestReader(JsonObject body)
{
    public JsonObject Body { get; } = body;

    public static async Task<RequestReader> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonNode? node;
        try { node = await JsonNode.ParseAsync(request.Body, cancellationToken: cancellationToken); }
        catch (JsonException e) { throw ApiException.BadRequest($"the request body is not valid JSON: {e.Message}"); }
        return node is JsonObject obj ? new RequestReader(obj) : throw ApiException.BadRequest("the request body must be a JSON object");
    }

    public JsonNode? this[string name] => Body[name];

    public bool Has(string name) => Body[name] is not null;

    public string? String(string name) => Body[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => throw ApiException.BadRequest($"'{name}' must be a string", name),
    };

    public double? Number(string name) => Body[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        _ => throw ApiException.BadRequest($"'{name}' must be a number", name),
    };

    public int? Int(string name)
    {
        double? d = Number(name);
        if (d is null) return null;
        if (d != Math.Floor(d.Value) || d > int.MaxValue || d < int.MinValue) throw ApiException.BadRequest($"'{name}' must be an integer", name);
        return (int)d.Value;
    }

    public bool? Bool(string name) => Body[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        _ => throw ApiException.BadRequest($"'{name}' must be true or false", name),
    };

    public JsonArray? Array(string name) => Body[name] switch
    {
        null => null,
        JsonArray a => a,
        _ => throw ApiException.BadRequest($"'{name}' must be an array", name),
    };

    /// <summary>A string or an array of strings (OpenAI's <c>stop</c>).</summary>
    public IReadOnlyList<string> Strings(string name) => Body[name] switch
    {
        null => [],
        JsonValue v when v.TryGetValue(out string? s) => [s],
        JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue(out string? _)) => a.Select(x => x!.GetValue<string>()).ToArray(),
        _ => throw ApiException.BadRequest($"'{name}' must be a string or an array of strings", name),
    };
}
