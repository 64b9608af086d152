using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Constraints;

/// <summary>Turns a JSON Schema (the subset <see cref="JsonSchemaMatcher"/> documents) into grammar nodes.</summary>
internal sealed class SchemaCompiler
{
    private static readonly HashSet<string> Annotations =
    [
        "$schema", "$id", "$comment", "$defs", "definitions", "$anchor", "$dynamicAnchor", "$vocabulary", "title", "description",
        "default", "examples", "deprecated", "readOnly", "writeOnly", "format", "contentEncoding", "contentMediaType",
        "contentSchema", "strict", "name",
    ];

    /// <summary>Validation keywords we cannot enforce: an error for strict schemas, else ignored (listed in IgnoredKeywords).</summary>
    private static readonly HashSet<string> Unenforced =
    [
        "uniqueItems", "contains", "minContains", "maxContains",
        "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies", "not", "if", "then",
        "else", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
    ];

    /// <summary>
    /// <c>format</c>s enforced as patterns. Each accepts a subset of the valid strings (what generation needs): dates
    /// are not checked against month lengths, times take no leap second and an upper-case T/Z, e-mail addresses are
    /// dot-atoms at a DNS name, URIs are scheme ":" and RFC 3986 characters.
    /// </summary>
    private static readonly Dictionary<string, string> FormatPatterns = new(StringComparer.Ordinal)
    {
        ["date"] = @"^" + Date + "$",
        ["time"] = @"^" + Time + "$",
        ["date-time"] = @"^" + Date + "T" + Time + "$",
        ["uuid"] = @"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        ["email"] = @"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + Label + @"(\." + Label + ")+$",
        ["hostname"] = @"^" + Label + @"(\." + Label + ")*$",
        ["ipv4"] = @"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$",
        ["uri"] = @"^[A-Za-z][A-Za-z0-9+.-]*:([A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*$",
    };

    private const string Date = @"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])";
    private const string Time = @"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)";
    private const string Label = @"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

    private readonly JsonNode? _root;
    private readonly JsonSchemaOptions _options;
    private readonly Dictionary<string, RefNode> _refs = [];
    private readonly List<string> _ignored = [];
    private readonly GNode _any;
    private int _nesting;

    public IReadOnlyList<string> Ignored => _ignored;

    public SchemaCompiler(JsonNode? root, JsonSchemaOptions options)
    {
        _root = root;
        _options = options;
        _any = AnyValue(options);
    }

    /// <summary>Any JSON value (compact), sharing one graph.</summary>
    public static GNode AnyValue(JsonSchemaOptions options)
    {
        var anyObject = new ObjectNode { AllowSpace = options.AllowSpaceAfterSeparators };
        var anyArray = new ArrayNode { AllowSpace = options.AllowSpaceAfterSeparators };
        var any = new UnionNode(
        [
            anyObject, anyArray, new StringNode(0, int.MaxValue), Number(options, false, null, null),
            Literal([JsonValue.Create(true), JsonValue.Create(false), null]),
        ]);
        anyObject.Additional = any;
        anyObject.Seal();
        anyArray.Items = any;
        return any;
    }

    public static GNode AnyObject(JsonSchemaOptions options)
    {
        var any = AnyValue(options);
        var o = new ObjectNode { AllowSpace = options.AllowSpaceAfterSeparators, Additional = any };
        o.Seal();
        return o;
    }

    public GNode CompileRoot() => Compile(_root, "#");

    private static NumberNode Number(JsonSchemaOptions options, bool integer, long? min, long? max) =>
        new(integer, Math.Clamp(options.MaxIntegerDigits, 1, 18), Math.Max(1, options.MaxFractionDigits), Math.Max(1, options.MaxExponentDigits), min, max);

    private static LiteralNode Literal(IEnumerable<JsonNode?> values)
    {
        var builder = new SymbolTrie.Builder();
        int i = 0;
        foreach (var v in values) builder.Add(JsonText.EncodeValue(v), i++, 0);
        return new LiteralNode(builder.Build());
    }

    /// <summary>A validation keyword that cannot be enforced: an error for a strict schema, else ignored and listed.</summary>
    private void Unenforceable(string path, string keyword, string reason)
    {
        if (_options.Strict) throw new UnsupportedSchemaKeywordException(keyword, path, reason);
        _ignored.Add($"{path}/{keyword}");
    }

    /// <summary>Ignored in any mode (unknown format: JSON Schema makes format an annotation by default).</summary>
    private void Ignore(string path, string keyword) => _ignored.Add($"{path}/{keyword}");

    private GNode Compile(JsonNode? schema, string path)
    {
        if (++_nesting > 256) throw new ArgumentException($"{path}: schema nests too deeply (or allOf/$ref loops)");
        try { return CompileCore(schema, path); }
        finally { _nesting--; }
    }

    private GNode CompileCore(JsonNode? schema, string path)
    {
        switch (schema)
        {
            case null:
                return _any;
            case JsonValue v when v.GetValueKind() is JsonValueKind.True:
                return _any;
            case JsonValue v when v.GetValueKind() is JsonValueKind.False:
                return NeverNode.Instance;
            case JsonObject o:
                return CompileObject(o, path);
            default:
                throw new ArgumentException($"{path}: a schema must be an object or a boolean");
        }
    }

    private GNode CompileObject(JsonObject s, string path)
    {
        if (s["$ref"] is JsonNode refNode)
        {
            foreach (var (key, _) in s)
                if (key != "$ref" && !Annotations.Contains(key)) Unenforceable(path, key, "keywords beside $ref are not applied");
            string reference = refNode is JsonValue rv && rv.GetValueKind() == JsonValueKind.String
                ? rv.GetValue<string>() : throw new ArgumentException($"{path}/$ref: must be a string");
            if (!reference.StartsWith('#'))
            {
                Unenforceable(path, "$ref", $"only local references (#/...) are resolved, not '{reference}'");
                return _any;
            }
            return Resolve(reference);
        }

        foreach (var (key, value) in s)
            if (Unenforced.Contains(key) && !IsNoOp(key, value)) Unenforceable(path, key, "not supported");

        if (s["allOf"] is JsonArray allOf)
        {
            var merged = new JsonObject();
            foreach (var (key, value) in s) if (key != "allOf") merged[key] = value?.DeepClone();
            foreach (var part in allOf)
            {
                merged = Merge(merged, Deref(part), out string? conflict);
                if (conflict != null) Unenforceable(path, "allOf", $"its parts disagree on '{conflict}', and they are merged shallowly");
            }
            return Compile(merged, path + "/allOf");
        }

        var alternatives = s["anyOf"] as JsonArray ?? s["oneOf"] as JsonArray;
        if (alternatives != null)
        {
            string keyword = s["anyOf"] is JsonArray ? "anyOf" : "oneOf";
            if (s["anyOf"] is JsonArray && s["oneOf"] is JsonArray) Unenforceable(path, "oneOf", "oneOf beside anyOf is not supported");
            var siblings = new JsonObject();
            foreach (var (key, value) in s)
                if (key is not ("anyOf" or "oneOf") && !Annotations.Contains(key)) siblings[key] = value?.DeepClone();
            var nodes = new List<GNode>();
            for (int i = 0; i < alternatives.Count; i++)
            {
                var alternative = alternatives[i];
                string at = $"{path}/{keyword}/{i}";
                nodes.Add(siblings.Count == 0 ? Compile(alternative, at) : Compile(Merge(siblings.DeepClone().AsObject(), Deref(alternative), out _), at));
            }
            return new UnionNode([.. nodes]);
        }

        var types = new List<string>();
        switch (s["type"])
        {
            case JsonValue t: types.Add(t.GetValue<string>()); break;
            case JsonArray ts: types.AddRange(ts.Select(t => t!.GetValue<string>())); break;
        }
        if (s["nullable"] is JsonValue nullable && nullable.GetValueKind() == JsonValueKind.True && types.Count > 0 && !types.Contains("null"))
            types.Add("null");

        if (s.ContainsKey("const") || s["enum"] is JsonArray)
        {
            var values = s.ContainsKey("const") ? [s["const"]] : ((JsonArray)s["enum"]!).ToList();
            if (types.Count > 0) values = values.Where(v => types.Any(t => HasType(v, t))).ToList();
            values = values.Where(v => SatisfiesScalarKeywords(s, v, path)).ToList();
            return Literal(values);
        }

        if (types.Count == 0)
        {
            if (s.ContainsKey("properties") || s.ContainsKey("required") || s.ContainsKey("additionalProperties")) types.Add("object");
            else if (s.ContainsKey("items") || s.ContainsKey("prefixItems") || s.ContainsKey("minItems") || s.ContainsKey("maxItems")) types.Add("array");
            else if (s.ContainsKey("minLength") || s.ContainsKey("maxLength") || s.ContainsKey("pattern")) types.Add("string");
            else if (s.ContainsKey("minimum") || s.ContainsKey("maximum") || s.ContainsKey("exclusiveMinimum") || s.ContainsKey("exclusiveMaximum")
                || s.ContainsKey("multipleOf")) types.Add("number");
            else return _any;
        }

        var typed = types.Distinct().Select(t => CompileType(s, t, path)).ToArray();
        return typed.Length == 1 ? typed[0] : new UnionNode(typed);
    }

    private GNode CompileType(JsonObject s, string type, string path)
    {
        switch (type)
        {
            case "object": return CompileObjectType(s, path);
            case "array": return CompileArrayType(s, path);
            case "string": return CompileString(s, path);
            case "integer":
            case "number" when MultipleOf(s, path) is { } step && IsWhole(step):
                {
                    // A number that must be a multiple of a whole number is generated as an integer (a valid subset).
                    var (min, minExclusive, max, maxExclusive) = Bounds(s);
                    long? low = min is double a ? ClampLong(minExclusive ? Math.Floor(a) + 1 : Math.Ceiling(a)) : null;
                    long? high = max is double b ? ClampLong(maxExclusive ? Math.Ceiling(b) - 1 : Math.Floor(b)) : null;
                    var node = Number(_options, true, low, high);
                    if (MultipleOf(s, path) is { } m && !(DecimalPlaces(m) is int places && places > 0)) // 0.01 divides every integer
                    {
                        if (!IsWhole(m) || m > 1e18) Unenforceable(path, "multipleOf", "an integer's multipleOf must be a whole number up to 1e18, or 10^-n");
                        else if (m > 1) node.MultipleOf = (long)m;
                    }
                    return node;
                }
            case "number":
                {
                    var (min, minExclusive, max, maxExclusive) = Bounds(s);
                    var node = Number(_options, false, null, null);
                    if (MultipleOf(s, path) is { } m)
                    {
                        // multipleOf 10^-n: at most n fraction digits, no exponent.
                        if (DecimalPlaces(m) is int places)
                        {
                            node = new NumberNode(false, node.MaxIntegerDigits, Math.Min(places, node.MaxFractionDigits), node.MaxExponentDigits, null, null)
                            { NoExponent = true };
                        }
                        else Unenforceable(path, "multipleOf", "a number's multipleOf must be a whole number or 10^-n");
                    }
                    // Beyond ±1e17 a bound cannot matter (at most 18 integer digits are written).
                    if (min is double a) { node.RealMinimum = (decimal)Math.Clamp(a, -1e17, 1e17); node.RealMinimumExclusive = minExclusive; }
                    if (max is double b) { node.RealMaximum = (decimal)Math.Clamp(b, -1e17, 1e17); node.RealMaximumExclusive = maxExclusive; }
                    return node;
                }
            case "boolean": return Literal([JsonValue.Create(true), JsonValue.Create(false)]);
            case "null": return Literal([null]);
            default: throw new ArgumentException($"{path}: unknown type '{type}'");
        }
    }

    private GNode CompileString(JsonObject s, string path)
    {
        int min = Math.Max(0, IntKeyword(s, "minLength") ?? 0), max = IntKeyword(s, "maxLength") ?? int.MaxValue;
        var node = new StringNode(min, max);
        var automata = new List<RegexNfa>();
        if (s["pattern"] is JsonNode patternNode)
        {
            if (patternNode is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                throw new ArgumentException($"{path}/pattern: must be a string");
            try { automata.Add(new RegexNfa(RegexParser.Parse(v.GetValue<string>()))); }
            catch (PatternException e) { Unenforceable(path, "pattern", e.Message); }
        }
        if (s["format"] is JsonValue formatNode && formatNode.GetValueKind() == JsonValueKind.String)
        {
            if (FormatPatterns.TryGetValue(formatNode.GetValue<string>(), out var formatPattern))
                automata.Add(new RegexNfa(RegexParser.Parse(formatPattern)));
            else Ignore(path, $"format ({formatNode.GetValue<string>()})");
        }
        if (automata.Count == 0) return node;
        try { node.Pattern = new StringPattern(CharDfa.Build(automata), min, max); }
        catch (PatternException e) { Unenforceable(path, s.ContainsKey("pattern") ? "pattern" : "format", e.Message); }
        return node;
    }

    private double? MultipleOf(JsonObject s, string path)
    {
        if (!s.ContainsKey("multipleOf")) return null;
        if (Bound(s, "multipleOf") is not double m || !(m > 0) || double.IsInfinity(m))
            throw new ArgumentException($"{path}/multipleOf: must be a number greater than 0");
        return m;
    }

    private static readonly string[] StringKeywords = ["minLength", "maxLength", "pattern", "format"];
    private static readonly string[] NumberKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];

    /// <summary>
    /// An enum/const value also obeys the string or number keywords beside it (<c>{"enum": ["a", "bbb"], "maxLength": 2}</c>
    /// generates only "a"): the value's text is run through those keywords compiled on their own.
    /// </summary>
    private bool SatisfiesScalarKeywords(JsonObject s, JsonNode? value, string path)
    {
        var kind = value?.GetValueKind() ?? JsonValueKind.Null;
        string[] keywords = kind == JsonValueKind.String ? StringKeywords : kind == JsonValueKind.Number ? NumberKeywords : [];
        var check = new JsonObject { ["type"] = kind == JsonValueKind.String ? "string" : "number" };
        foreach (var k in keywords) if (s.ContainsKey(k)) check[k] = s[k]!.DeepClone();
        if (check.Count == 1) return true;
        var root = new JsonRootNode(Compile(check, path), 1);
        GrammarAnalysis.Run(root);
        if (root.MinDepth >= GNode.Unsatisfiable) return false;
        var threads = MatcherCore.Start(root, 1);
        var scratch = new List<Frame>();
        foreach (int symbol in JsonText.EncodeValue(value))
            if ((threads = MatcherCore.Advance(threads, symbol, scratch)).Length == 0) return false;
        return MatcherCore.IsAccepting(threads);
    }

    private static bool IsWhole(double value) => Math.Floor(value) == value;

    /// <summary>n when <paramref name="value"/> is 10^-n (n ≥ 1), else null.</summary>
    private static int? DecimalPlaces(double value)
    {
        for (int n = 1; n <= 18; n++)
            if (Math.Abs(value - Math.Pow(10, -n)) <= Math.Pow(10, -n) * 1e-9) return n;
        return null;
    }

    /// <summary>Keyword values that constrain nothing (e.g. <c>uniqueItems: false</c>).</summary>
    private static bool IsNoOp(string key, JsonNode? value) => key switch
    {
        "uniqueItems" => value is JsonValue v && v.GetValueKind() == JsonValueKind.False,
        "dependentRequired" or "dependentSchemas" or "dependencies" or "patternProperties" => value is JsonObject { Count: 0 },
        _ => false,
    };

    private GNode CompileObjectType(JsonObject s, string path)
    {
        var node = new ObjectNode { AllowSpace = _options.AllowSpaceAfterSeparators };
        var properties = s["properties"] as JsonObject;
        var required = (s["required"] as JsonArray)?.Select(r => r!.GetValue<string>()).ToHashSet() ?? [];
        var additional = s["additionalProperties"];
        if ((properties?.Count ?? 0) > 0 || required.Count > 0)
        {
            var list = new List<PropertyInfo>();
            if (properties != null)
                foreach (var (name, schema) in properties)
                    list.Add(new PropertyInfo(name, Compile(schema, $"{path}/properties/{name}"), required.Contains(name)));
            // Required but undeclared keys: described by additionalProperties (any value when it is absent).
            foreach (var name in required)
                if (properties?.ContainsKey(name) != true)
                    list.Add(new PropertyInfo(name, additional switch
                    {
                        JsonObject => Compile(additional, path + "/additionalProperties"),
                        JsonValue f when f.GetValueKind() == JsonValueKind.False => NeverNode.Instance, // no valid instance
                        _ => _any,
                    }, true));
            node.Properties = [.. list];
        }
        else if (additional is JsonValue f && f.GetValueKind() == JsonValueKind.False) node.Additional = null;
        else node.Additional = Compile(additional, path + "/additionalProperties");
        if (node.FreeForm)
        {
            node.MinProperties = IntKeyword(s, "minProperties") ?? 0;
            node.MaxProperties = IntKeyword(s, "maxProperties") ?? int.MaxValue;
        }
        else
            foreach (var k in new[] { "minProperties", "maxProperties" })
                if (s.ContainsKey(k)) Unenforceable(path, k, "only supported on objects without properties");
        node.Seal();
        return node;
    }

    private GNode CompileArrayType(JsonObject s, string path)
    {
        var node = new ArrayNode { AllowSpace = _options.AllowSpaceAfterSeparators };
        var prefix = s["prefixItems"] as JsonArray;
        JsonNode? rest = s["items"];
        if (rest is JsonArray tuple)
        {
            // Draft-4 tuple form: items is the prefix, additionalItems the rest.
            prefix = tuple;
            rest = s["additionalItems"];
        }
        if (prefix != null) node.Prefix = prefix.Select((p, i) => Compile(p, $"{path}/prefixItems/{i}")).ToArray();
        node.Items = rest is JsonValue f && f.GetValueKind() == JsonValueKind.False ? null : Compile(rest, path + "/items");
        node.MinItems = Math.Max(0, IntKeyword(s, "minItems") ?? 0);
        node.MaxItems = IntKeyword(s, "maxItems") ?? int.MaxValue;
        if (node.Items is null) node.MaxItems = Math.Min(node.MaxItems, node.Prefix.Length);
        return node;
    }

    private static int? IntKeyword(JsonObject s, string key) =>
        Bound(s, key) is double d ? (int)Math.Clamp(d, 0, int.MaxValue) : null;

    /// <summary>A numeric keyword, whether the node was parsed or built from a CLR number.</summary>
    private static double? Bound(JsonObject s, string key) =>
        s[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            ? double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)
            : null;

    /// <summary>minimum/maximum with exclusiveMinimum/exclusiveMaximum (numbers, or draft-4 booleans); the stricter wins.</summary>
    private static (double? Min, bool MinExclusive, double? Max, bool MaxExclusive) Bounds(JsonObject s)
    {
        double? min = Bound(s, "minimum"), max = Bound(s, "maximum");
        bool minExclusive = s["exclusiveMinimum"] is JsonValue em && em.GetValueKind() == JsonValueKind.True && min.HasValue;
        bool maxExclusive = s["exclusiveMaximum"] is JsonValue eM && eM.GetValueKind() == JsonValueKind.True && max.HasValue;
        if (Bound(s, "exclusiveMinimum") is double xm && (min is null || xm >= min)) { min = xm; minExclusive = true; }
        if (Bound(s, "exclusiveMaximum") is double xM && (max is null || xM <= max)) { max = xM; maxExclusive = true; }
        return (min, minExclusive, max, maxExclusive);
    }

    private static long ClampLong(double value) => value >= 9e18 ? long.MaxValue : value <= -9e18 ? long.MinValue : (long)value;

    private static bool HasType(JsonNode? value, string type)
    {
        var kind = value?.GetValueKind() ?? JsonValueKind.Null;
        return type switch
        {
            "null" => kind == JsonValueKind.Null,
            "boolean" => kind is JsonValueKind.True or JsonValueKind.False,
            "string" => kind == JsonValueKind.String,
            "object" => kind == JsonValueKind.Object,
            "array" => kind == JsonValueKind.Array,
            "number" => kind == JsonValueKind.Number,
            "integer" => kind == JsonValueKind.Number && double.TryParse(value!.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && Math.Floor(d) == d,
            _ => false,
        };
    }

    // ---------------------------------------------------------------- $ref

    private GNode Resolve(string reference)
    {
        if (_refs.TryGetValue(reference, out var existing)) return existing;
        var node = new RefNode();
        _refs[reference] = node;
        node.Target = Compile(Pointer(reference), reference);
        return node;
    }

    private JsonNode? Pointer(string reference)
    {
        if (!reference.StartsWith('#')) throw new ArgumentException($"only local $ref (#/...) is supported, got '{reference}'");
        JsonNode? current = _root;
        foreach (var raw in reference[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string token = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            current = current switch
            {
                JsonObject o when o.TryGetPropertyValue(token, out var child) => child,
                JsonArray a when int.TryParse(token, out int i) && i >= 0 && i < a.Count => a[i],
                _ => throw new ArgumentException($"$ref '{reference}' does not resolve"),
            };
        }
        return current;
    }

    private JsonNode? Deref(JsonNode? schema)
    {
        for (int hops = 0; hops < 32 && schema is JsonObject o && o["$ref"] is JsonValue r; hops++) schema = Pointer(r.GetValue<string>());
        return schema;
    }

    /// <summary>
    /// Shallow conjunction of two object schemas: properties merged, required united, other keys b over a.
    /// <paramref name="conflict"/> names a keyword (or property) both give differently, where b's wins and a's is lost.
    /// </summary>
    private static JsonObject Merge(JsonObject a, JsonNode? b, out string? conflict)
    {
        conflict = null;
        if (b is not JsonObject bo)
        {
            if (b is JsonValue v && v.GetValueKind() == JsonValueKind.False) return new JsonObject { ["enum"] = new JsonArray() };
            return a;
        }
        var result = a.DeepClone().AsObject();
        foreach (var (key, value) in bo)
        {
            if (key == "properties" && result["properties"] is JsonObject mine && value is JsonObject theirs)
                foreach (var (name, schema) in theirs)
                {
                    if (mine.TryGetPropertyValue(name, out var existing) && !JsonNode.DeepEquals(existing, schema)) conflict ??= $"properties/{name}";
                    mine[name] = schema?.DeepClone();
                }
            else if (key == "required" && result["required"] is JsonArray req && value is JsonArray more)
            {
                var names = req.Select(r => r!.GetValue<string>()).ToHashSet();
                foreach (var r in more) if (names.Add(r!.GetValue<string>())) req.Add(r.GetValue<string>());
            }
            else
            {
                if (!Annotations.Contains(key) && result.TryGetPropertyValue(key, out var existing) && !JsonNode.DeepEquals(existing, value))
                    conflict ??= key;
                result[key] = value?.DeepClone();
            }
        }
        return result;
    }
}
