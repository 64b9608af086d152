using System.Globalization;
using System.Text.Json;
using KimiSharp.Engine;

namespace KimiSharp.Server.Protocol;

/// <summary>Range checks of request fields; each failure is a 400 naming the field and its allowed range.</summary>
internal static class Fields
{
    public static int? Int(double? value, string name, int min, int max)
    {
        if (value is not double d) return null;
        if (d < min || d > max) throw ApiException.BadRequest($"{name} must be an integer from {min} to {max}; got {Show(d)}", name);
        if (d != Math.Floor(d)) throw ApiException.BadRequest($"{name} must be an integer; got {Show(d)}", name);
        return (int)d;
    }

    public static double? Number(double? value, string name, double min, double max)
    {
        if (value is not double d) return null;
        if (d < min || d > max) throw ApiException.BadRequest($"{name} must be between {Show(min)} and {Show(max)}; got {Show(d)}", name);
        return d;
    }

    public static string Show(double d) => d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A string or an array of strings (OpenAI's <c>stop</c>).</summary>
    public static IReadOnlyList<string> Strings(JsonElement? value, string name)
    {
        if (value is not JsonElement e || e.ValueKind == JsonValueKind.Null) return [];
        if (e.ValueKind == JsonValueKind.String) return [e.GetString()!];
        if (e.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"{name} must be a string or an array of strings", name);
        var strings = new List<string>();
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw ApiException.BadRequest($"{name}[{i}] must be a string", $"{name}[{i}]");
            strings.Add(item.GetString()!);
            i++;
        }
        return strings;
    }

    /// <summary>The sampling settings both APIs share, checked by the engine's own rules too.</summary>
    public static GenerationOptions Generation(int maxTokens, double temperature, double? topP, int? topK, double? minP = null,
        double? presencePenalty = null, double? frequencyPenalty = null, int? seed = null, bool logprobs = false, int topLogprobs = 0)
    {
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens,
            Temperature = (float)temperature,
            TopP = (float)(topP ?? 1.0),
            TopK = topK ?? 0,
            MinP = (float)(minP ?? 0),
            PresencePenalty = (float)(presencePenalty ?? 0),
            FrequencyPenalty = (float)(frequencyPenalty ?? 0),
            Seed = seed,
            Logprobs = logprobs || topLogprobs > 0,
            TopLogprobs = topLogprobs,
        };
        try { options.Validate(); }
        catch (ArgumentException e) { throw ApiException.BadRequest(e.Message); }
        return options;
    }
}
