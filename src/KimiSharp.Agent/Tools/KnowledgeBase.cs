using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KimiSharp.Agent.Tools;

/// <summary>One fictional city and its attributes.</summary>
public sealed class KnowledgeEntity
{
    public KnowledgeEntity(string name, int population, int elevation, int founded, decimal area, string country, string river)
    {
        Name = name;
        Population = population;
        Elevation = elevation;
        Founded = founded;
        Area = area;
        Country = country;
        River = river;
    }

    public string Name { get; }
    public int Population { get; }
    /// <summary>Metres above sea level.</summary>
    public int Elevation { get; }
    public int Founded { get; }
    /// <summary>Square kilometres, one decimal place.</summary>
    public decimal Area { get; }
    public string Country { get; }
    public string River { get; }

    /// <summary>The formatted value of an attribute named in <see cref="KnowledgeBase.Attributes"/>, e.g. "4120", "12.5", "Osmeria".</summary>
    public string Attribute(string name) => name switch
    {
        "population" => Population.ToString(CultureInfo.InvariantCulture),
        "elevation" => Elevation.ToString(CultureInfo.InvariantCulture),
        "founded" => Founded.ToString(CultureInfo.InvariantCulture),
        "area" => Area.ToString("0.0", CultureInfo.InvariantCulture),
        "country" => Country,
        "river" => River,
        _ => throw new ArgumentException($"unknown attribute '{name}'", nameof(name)),
    };
}

/// <summary>A deterministic, fictional knowledge base of cities for the lookup tool.</summary>
public sealed class KnowledgeBase
{
    private static readonly string[] Starts =
    [
        "Var", "Bel", "Cor", "Dun", "Esk", "Fal", "Gor", "Hal", "Isk", "Jor", "Kel", "Lor", "Mar", "Nor", "Ost",
        "Pel", "Quen", "Ros", "Sal", "Tor", "Ul", "Vel", "Wen", "Yar", "Zan", "Ald", "Brin", "Cal", "Dor", "Fen",
    ];

    private static readonly string[] Middles = ["a", "e", "i", "o", "u", "an", "en", "ir", "or", "ul", "ar", "es"];

    private static readonly string[] Ends =
    [
        "holt", "dale", "mere", "ford", "wick", "stad", "burg", "heim", "grad", "vik", "moor", "ton", "by", "lund",
        "mark", "rin", "dor", "nes", "gard", "well", "brook", "crest", "fell", "haven",
    ];

    private static readonly string[] Countries =
        ["Osmeria", "Valdoria", "Kestrelia", "Brannmark", "Thalassa", "Corvenna", "Ilmoran", "Duskhaven"];

    private static readonly string[] Rivers =
    [
        "Ostrel", "Vanna", "Kell", "Merrow", "Sildra", "Taveren", "Orun", "Ebbrin", "Caldra", "Lethwyn",
        "Morra", "Feyle", "Ashwater", "Quill", "Draven", "Selune", "Tarrow", "Wyndle", "Harrow", "Brisk",
    ];

    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "m", "km", "cm", "mm", "mi", "ft", "in", "yd", "kg", "g", "lb", "oz", "l", "ml", "gal", "s", "min", "h", "day",
        "calculator", "calendar", "lookup", "memory", "population", "elevation", "founded", "area", "country", "river",
    };

    private static readonly Lazy<KnowledgeBase> DefaultInstance = new(() => Generate());

    private readonly Dictionary<string, KnowledgeEntity> _byName;

    public KnowledgeBase(IEnumerable<KnowledgeEntity> entities)
    {
        var list = entities.ToList();
        _byName = new Dictionary<string, KnowledgeEntity>(StringComparer.OrdinalIgnoreCase);
        foreach (KnowledgeEntity e in list)
        {
            if (string.IsNullOrWhiteSpace(e.Name)) throw new ArgumentException("entity names must not be empty");
            if (!_byName.TryAdd(e.Name, e)) throw new ArgumentException($"duplicate entity name '{e.Name}'");
        }
        Entities = list;
    }

    /// <summary>The attribute names, in their fixed order.</summary>
    public static IReadOnlyList<string> Attributes { get; } = ["population", "elevation", "founded", "area", "country", "river"];

    /// <summary>The knowledge base from <see cref="Generate"/> with its default arguments.</summary>
    public static KnowledgeBase Default => DefaultInstance.Value;

    public IReadOnlyList<KnowledgeEntity> Entities { get; }

    /// <summary>The entity with this name (case-insensitive), or null.</summary>
    public KnowledgeEntity? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Builds <paramref name="cities"/> fictional cities; the same arguments give the same knowledge base everywhere.</summary>
    public static KnowledgeBase Generate(int seed = 2026, int cities = 600)
    {
        if (cities is < 0 or > 5000) throw new ArgumentOutOfRangeException(nameof(cities), "cities must be between 0 and 5000");
        var rng = new SplitMix64((ulong)(uint)seed);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var entities = new List<KnowledgeEntity>(cities);
        int attempts = 0;
        while (entities.Count < cities)
        {
            if (++attempts > cities * 100 + 1000) throw new InvalidOperationException("could not generate enough unique city names");
            var sb = new StringBuilder(Starts[rng.Next(Starts.Length)]);
            if (rng.Next(2) == 0) sb.Append(Middles[rng.Next(Middles.Length)]);
            sb.Append(Ends[rng.Next(Ends.Length)]);
            string name = sb.ToString();
            if (name.Length is < 4 or > 10 || Reserved.Contains(name) || !names.Add(name)) continue;
            int population = 100 + rng.Next(9900);
            int elevation = 1 + rng.Next(2999);
            int founded = 1100 + rng.Next(900);
            decimal area = new(10 + rng.Next(990), 0, 0, false, 1);
            string country = Countries[rng.Next(Countries.Length)];
            string river = Rivers[rng.Next(Rivers.Length)];
            entities.Add(new KnowledgeEntity(name, population, elevation, founded, area, country, river));
        }
        return new KnowledgeBase(entities);
    }

    /// <summary>An indented JSON array of objects with "name" and the attributes in order.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartArray();
            foreach (KnowledgeEntity e in Entities)
            {
                writer.WriteStartObject();
                writer.WriteString("name", e.Name);
                writer.WriteNumber("population", e.Population);
                writer.WriteNumber("elevation", e.Elevation);
                writer.WriteNumber("founded", e.Founded);
                writer.WriteNumber("area", e.Area);
                writer.WriteString("country", e.Country);
                writer.WriteString("river", e.River);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Reads the form written by <see cref="ToJson"/>; malformed input throws <see cref="FormatException"/>.</summary>
    public static KnowledgeBase FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"knowledge base is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new FormatException("knowledge base JSON must be an array of entities");
            var entities = new List<KnowledgeEntity>();
            var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            int index = 0;
            foreach (JsonElement item in doc.RootElement.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                    throw new FormatException($"knowledge base entry {index} is not an object");
                string name = ReadString(item, "name", index);
                if (name.Trim().Length == 0) throw new FormatException($"knowledge base entry {index} has an empty name");
                if (!names.Add(name)) throw new FormatException($"knowledge base entry {index} repeats the name '{name}'");
                decimal area = ReadDecimal(item, "area", index);
                if (area * 10m != decimal.Truncate(area * 10m))
                    throw new FormatException($"knowledge base entry {index}: 'area' must have at most one decimal place");
                entities.Add(new KnowledgeEntity(
                    name,
                    ReadInt(item, "population", index),
                    ReadInt(item, "elevation", index),
                    ReadInt(item, "founded", index),
                    area,
                    ReadString(item, "country", index),
                    ReadString(item, "river", index)));
                index++;
            }
            return new KnowledgeBase(entities);
        }
    }

    private static JsonElement Property(JsonElement item, string name, int index)
    {
        if (!item.TryGetProperty(name, out JsonElement value))
            throw new FormatException($"knowledge base entry {index} lacks '{name}'");
        return value;
    }

    private static string ReadString(JsonElement item, string name, int index)
    {
        JsonElement value = Property(item, name, index);
        if (value.ValueKind != JsonValueKind.String)
            throw new FormatException($"knowledge base entry {index}: '{name}' must be a string");
        return value.GetString()!;
    }

    private static int ReadInt(JsonElement item, string name, int index)
    {
        JsonElement value = Property(item, name, index);
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result))
            throw new FormatException($"knowledge base entry {index}: '{name}' must be an integer");
        return result;
    }

    private static decimal ReadDecimal(JsonElement item, string name, int index)
    {
        JsonElement value = Property(item, name, index);
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal result))
            throw new FormatException($"knowledge base entry {index}: '{name}' must be a number");
        return result;
    }

    /// <summary>A small, platform-independent PRNG (SplitMix64).</summary>
    private struct SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        private ulong NextUInt64()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform integer in [0, bound).</summary>
        public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);
    }
}
