using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Jinja;

namespace KimiSharp.Tokens.Templates;

/// <summary>A tool list that the TypeScript-style encoder cannot express; the chat template falls back to JSON.</summary>
public sealed class ToolDeclarationException(string message) : Exception(message);

/// <summary>
/// Kimi K2.5's TypeScript-style tool declarations: the text its tokenizer passes to the chat template as
/// <c>tools_ts_str</c>, byte for byte what Moonshot's <c>tool_declaration_ts.encode_tools_to_typescript_style</c>
/// produces. Tools are OpenAI-shaped (<c>{"type": "function", "function": {name, description, parameters}}</c>);
/// other tool types are skipped.
/// </summary>
/// <remarks>
/// The K2.5 tokenizer's <c>apply_chat_template</c> first deep-sorts the tools (<c>deep_sort_dict</c>: every
/// object's keys, recursively, by code point) and then encodes them; when encoding raises it logs, leaves
/// <c>tools_ts_str</c> unset, and the template writes the tools as JSON instead. <see cref="Encode"/> and
/// <see cref="TryEncode"/> apply that sort unless told not to, so their output is what the template sees.
/// Where the Python would produce text from nonsense (a non-string <c>type</c>, an <c>enum</c> that is not a
/// list, a <c>properties</c> that is not an object) this encoder refuses instead, so the caller falls back to JSON.
/// </remarks>
public static class TypeScriptTools
{
    private const string Indent = "  ";
    private const string FieldDelimiter = ",\n";

    private static readonly string[] StringConstraints = ["maxLength", "minLength", "pattern"];
    private static readonly string[] NumberConstraints = ["maximum", "minimum"];
    private static readonly string[] ArrayConstraints = ["minItems", "maxItems"];

    private static readonly Dictionary<string, string> UnionMembers = new(StringComparer.Ordinal)
    {
        ["string"] = "string", ["number"] = "number", ["integer"] = "number", ["boolean"] = "boolean",
        ["null"] = "null", ["object"] = "{}", ["array"] = "Array<any>",
    };

    // json.dumps(x, ensure_ascii=False) is exactly transformers' tojson filter with its defaults.
    private static readonly JinjaTemplate JsonDumps = JinjaTemplate.Parse("{{ value|tojson }}");

    /// <summary>
    /// Encodes <paramref name="tools"/>; returns "" when there is no function tool.
    /// <paramref name="sortKeys"/> applies the K2.5 tokenizer's deep key sort first (on by default, as
    /// <c>apply_chat_template</c> does); pass false for the bare Python function's behaviour.
    /// </summary>
    /// <exception cref="ToolDeclarationException">The tools cannot be encoded (the Python raises).</exception>
    public static string Encode(JsonArray tools, bool sortKeys = true)
    {
        ArgumentNullException.ThrowIfNull(tools);
        if (sortKeys)
            tools = (JsonArray)ChatTemplate.SortKeysRecursively(tools)!;
        if (tools.Count == 0)
            return "";

        var functions = new List<string>();
        for (int i = 0; i < tools.Count; i++)
        {
            if (tools[i] is not JsonObject tool)
                throw new ToolDeclarationException($"tools[{i}] is not an object.");
            if (!(tool["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String && t.GetValue<string>() == "function"))
                continue; // other tool types (such as "_plugin") are not declared
            JsonNode? function = tool.TryGetPropertyValue("function", out var f) ? f : new JsonObject();
            if (!IsTruthy(function))
                continue;
            if (function is not JsonObject functionObject)
                throw new ToolDeclarationException($"tools[{i}].function is not an object.");
            try
            {
                functions.Add(EncodeFunction(functionObject));
            }
            catch (ToolDeclarationException e)
            {
                throw new ToolDeclarationException($"tools[{i}] ({FunctionLabel(functionObject)}): {e.Message}");
            }
        }
        if (functions.Count == 0)
            return "";
        return "# Tools\n\n## functions\nnamespace functions {\n" + string.Join("\n", functions) + "\n}\n";
    }

    /// <summary>
    /// Like <see cref="Encode"/>, but reports failure instead of throwing, as the tokenizer does before falling
    /// back to JSON. <paramref name="error"/> says why when it returns false.
    /// </summary>
    public static bool TryEncode(JsonArray tools, out string encoded, out string? error, bool sortKeys = true)
    {
        try
        {
            encoded = Encode(tools, sortKeys);
            error = null;
            return true;
        }
        catch (ToolDeclarationException e)
        {
            encoded = "";
            error = e.Message;
            return false;
        }
    }

    private static string FunctionLabel(JsonObject function) =>
        function["name"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : "unnamed";

    private static string EncodeFunction(JsonObject function)
    {
        var registry = new SchemaRegistry();
        JsonNode? parametersNode = function["parameters"];
        JsonObject parameters = !IsTruthy(parametersNode) ? new JsonObject()
            : parametersNode as JsonObject ?? throw new ToolDeclarationException("parameters is not an object.");
        var parsed = new ObjectType(parameters, registry);

        var interfaces = new List<string>();
        bool rootIsInterface = registry.HasSelfRef;
        if (rootIsInterface)
        {
            // A schema that refers to itself ("$ref": "#") is declared as an interface named "parameters";
            // its fields keep their (sorted) key order, not the required-first order of inline objects.
            string fields = string.Join(FieldDelimiter, parsed.Properties.Select(p => p.Render(Indent)));
            interfaces.Add("interface parameters {" + (fields.Length > 0 ? "\n" + fields + "\n" : "") + "}");
        }

        // Definitions registered while the definitions themselves are parsed are not declared (the Python
        // iterates over a snapshot).
        foreach (var (name, schema) in registry.Snapshot())
        {
            SchemaType type = ParseType(schema, registry, $"$defs.{name}");
            if (schema is not JsonObject schemaObject)
                throw new ToolDeclarationException($"$defs.{name} is not an object.");
            string description = DescriptionText(schemaObject["description"], $"$defs.{name}.description") is { } text
                ? FormatDescription(text, "") + "\n"
                : "";
            interfaces.Add($"{description}interface {name} {type.Render("")}");
        }

        string functionName = function.TryGetPropertyValue("name", out var nameNode) ? PythonStr(nameNode) : "function";
        string typeDefinition = rootIsInterface
            ? $"type {functionName} = (_: parameters) => any;"
            : $"type {functionName} = (_: {parsed.Render("")}) => any;";

        var parts = new List<string>(3);
        if (interfaces.Count > 0)
            parts.Add(string.Join("\n", interfaces));
        if (DescriptionText(function["description"], "description") is { } functionDescription)
            parts.Add(FormatDescription(functionDescription, ""));
        parts.Add(typeDefinition);
        return string.Join("\n", parts.Where(p => p.Length > 0));
    }

    // ---- schema model ----------------------------------------------------------------------------------

    private sealed class SchemaRegistry
    {
        private readonly List<string> _order = [];
        private readonly Dictionary<string, JsonNode?> _definitions = new(StringComparer.Ordinal);

        public bool HasSelfRef { get; set; }

        public void Register(JsonNode? defs, string where)
        {
            if (!IsTruthy(defs))
                return;
            if (defs is not JsonObject defsObject)
                throw new ToolDeclarationException($"{where}.$defs is not an object.");
            foreach (var (name, schema) in defsObject)
            {
                if (!_definitions.ContainsKey(name))
                    _order.Add(name); // a redefinition keeps its first position, like a Python dict
                _definitions[name] = schema;
            }
        }

        public bool TryGet(string name, out JsonNode? schema) => _definitions.TryGetValue(name, out schema);

        public List<KeyValuePair<string, JsonNode?>> Snapshot() =>
            _order.Select(n => KeyValuePair.Create(n, _definitions[n])).ToList();
    }

    private abstract class SchemaType
    {
        private readonly JsonNode? _description;
        private readonly string _where;
        private readonly List<KeyValuePair<string, JsonNode?>> _constraints = [];

        protected SchemaType(JsonObject? schema, string where, IReadOnlyCollection<string>? constraintKeys = null)
        {
            _where = where;
            if (schema is null)
                return;
            _description = schema["description"];
            if (constraintKeys is not null)
            {
                foreach (var (key, value) in schema)
                    if (constraintKeys.Contains(key))
                        _constraints.Add(KeyValuePair.Create(key, value));
            }
        }

        public abstract string Render(string indent);

        /// <summary>The comment lines written above a field (or an array's item): description, then constraints.</summary>
        public string Docstring(string indent)
        {
            var sb = new StringBuilder();
            if (DescriptionText(_description, _where + ".description") is { } description)
                sb.Append(FormatDescription(description, indent)).Append('\n');
            if (_constraints.Count > 0)
            {
                sb.Append(indent).Append("// ");
                sb.AppendJoin(", ", _constraints
                    .OrderBy(c => c.Key, StringComparer.Ordinal)
                    .Select(c => c.Key + ": " + PythonStr(c.Value)));
                sb.Append('\n');
            }
            return sb.ToString();
        }
    }

    private sealed class ScalarType : SchemaType
    {
        private readonly string _type;

        public ScalarType(string type, JsonObject? schema = null, string where = "")
            : base(schema, where, type switch
            {
                "string" => StringConstraints,
                "number" or "integer" => NumberConstraints,
                _ => null,
            })
        {
            _type = type;
        }

        public override string Render(string indent) => _type == "integer" ? "number" : _type;
    }

    private sealed class Property(string name, SchemaType type, bool optional, JsonNode? defaultValue)
    {
        public string Name { get; } = name;
        public bool Optional { get; } = optional;

        public string Render(string indent)
        {
            string comments = type.Docstring(indent);
            if (defaultValue is not null) // JSON null is Python None: no default comment
                comments += $"{indent}// Default: {DefaultRepr(defaultValue)}\n";
            return $"{comments}{indent}{Name}{(Optional ? "?" : "")}: {type.Render(indent)}";
        }
    }

    private sealed class ObjectType : SchemaType
    {
        private readonly JsonNode? _additional;
        private readonly bool _hasAdditional;
        private readonly SchemaType? _additionalType;
        private readonly string _where;

        public ObjectType(JsonObject schema, SchemaRegistry registry, string where = "parameters") : base(schema, where)
        {
            _where = where;
            if (schema.Count == 0)
                return;
            if (schema.ContainsKey("$defs"))
                registry.Register(schema["$defs"], where);

            _additional = schema["additionalProperties"];
            _hasAdditional = _additional is not null;
            if (_additional is JsonObject additionalSchema)
                _additionalType = ParseType(additionalSchema, registry, where + ".additionalProperties");

            if (!schema.TryGetPropertyValue("properties", out var propertiesNode))
                return;
            if (propertiesNode is not JsonObject properties)
                throw new ToolDeclarationException($"{where}.properties is not an object.");
            HashSet<string> required = RequiredNames(schema, where);
            foreach (var (name, propertySchema) in properties)
            {
                SchemaType type = ParseType(propertySchema, registry, $"{where}.{name}");
                JsonNode? defaultValue = propertySchema is JsonObject o ? o["default"] : null;
                Properties.Add(new Property(name, type, !required.Contains(name), defaultValue));
            }
        }

        public List<Property> Properties { get; } = [];

        public override string Render(string indent)
        {
            string inner = indent + Indent;
            var fields = Properties.Where(p => !p.Optional).OrderBy(p => p.Name, PythonOrdering.CodePoint)
                .Concat(Properties.Where(p => p.Optional).OrderBy(p => p.Name, PythonOrdering.CodePoint))
                .Select(p => p.Render(inner))
                .ToList();
            if (_hasAdditional)
            {
                string valueType = _additional switch
                {
                    JsonValue v when v.GetValueKind() == JsonValueKind.True => "any",
                    JsonValue v when v.GetValueKind() == JsonValueKind.False => "never",
                    JsonObject => _additionalType!.Render(inner),
                    _ => throw new ToolDeclarationException(
                        $"{_where}.additionalProperties must be a boolean or a schema, not {_additional!.ToJsonString()}."),
                };
                fields.Add($"{inner}[k: string]: {valueType}");
            }
            return fields.Count == 0 ? "{}" : "{\n" + string.Join(FieldDelimiter, fields) + "\n" + indent + "}";
        }

        /// <summary>Python's <c>set(schema.get("required", []))</c>, restricted to what can name a property.</summary>
        private static HashSet<string> RequiredNames(JsonObject schema, string where)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            if (!schema.TryGetPropertyValue("required", out var node))
                return names;
            switch (node)
            {
                case JsonArray list:
                    foreach (var item in list)
                    {
                        if (item is JsonArray or JsonObject)
                            throw new ToolDeclarationException($"{where}.required holds a {(item is JsonArray ? "list" : "object")}; it must list property names.");
                        if (item is JsonValue v && v.GetValueKind() == JsonValueKind.String)
                            names.Add(v.GetValue<string>());
                    }
                    return names;
                case JsonObject keys:
                    foreach (var (key, _) in keys)
                        names.Add(key);
                    return names;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    // set("abc") is the set of its characters; odd, but that is what the Python requires.
                    foreach (var rune in v.GetValue<string>().EnumerateRunes())
                        names.Add(rune.ToString());
                    return names;
                default:
                    throw new ToolDeclarationException($"{where}.required must be a list of property names, not {Describe(node)}.");
            }
        }
    }

    private sealed class ArrayType : SchemaType
    {
        private readonly SchemaType _item;

        public ArrayType(JsonObject schema, SchemaRegistry registry, string where) : base(schema, where, ArrayConstraints)
        {
            JsonNode? items = schema["items"];
            _item = IsTruthy(items) ? ParseType(items, registry, where + ".items") : new ScalarType("any");
        }

        public override string Render(string indent)
        {
            string inner = indent + Indent;
            string itemDocstring = _item.Docstring(inner);
            return itemDocstring.Length > 0
                ? "Array<\n" + itemDocstring + inner + _item.Render(inner) + "\n" + indent + ">"
                : $"Array<{_item.Render(indent)}>";
        }
    }

    private sealed class EnumType : SchemaType
    {
        private readonly List<string> _members = [];

        public EnumType(JsonObject schema, string where) : base(schema, where)
        {
            if (schema["enum"] is not JsonArray values)
                throw new ToolDeclarationException($"{where}.enum must be a list.");
            string? declared = schema.TryGetPropertyValue("type", out var typeNode) ? EnumDeclaredType(typeNode, where) : null;
            foreach (var value in values)
            {
                string pythonType = PythonTypeName(value);
                if (value is not null && declared is not null)
                {
                    bool ok = declared switch
                    {
                        "string" => pythonType == "str",
                        "number" => pythonType is "int" or "float" or "bool",
                        "integer" => pythonType is "int" or "bool", // bool is an int in Python
                        "boolean" => pythonType == "bool",
                        _ => true,
                    };
                    if (!ok)
                        throw new ToolDeclarationException($"{where}: enum value {PythonStr(value)} is not {(declared == "integer" ? "an" : "a")} {declared}.");
                }
                _members.Add(pythonType == "str" ? "\"" + value!.GetValue<string>() + "\"" : PythonStr(value));
            }
        }

        public override string Render(string indent) => string.Join(" | ", _members);

        /// <summary>The type enum values are checked against: a name, one name in a list, or a name paired with "null".</summary>
        private static string? EnumDeclaredType(JsonNode? type, string where)
        {
            if (type is not JsonArray list)
                return type is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
            static bool IsNull(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "null";
            JsonNode? chosen = list.Count switch
            {
                1 => list[0],
                2 when IsNull(list[0]) || IsNull(list[1]) => IsNull(list[0]) ? list[1] : list[0],
                _ => throw new ToolDeclarationException($"{where}: enum type {list.ToJsonString()} is not supported (one type, or one type and \"null\")."),
            };
            return chosen is JsonValue c && c.GetValueKind() == JsonValueKind.String ? c.GetValue<string>() : null;
        }
    }

    private sealed class AnyOfType : SchemaType
    {
        private readonly List<SchemaType> _types = [];

        public AnyOfType(JsonObject schema, SchemaRegistry registry, string where) : base(schema, where)
        {
            if (schema["anyOf"] is not JsonArray members)
                throw new ToolDeclarationException($"{where}.anyOf must be a list of schemas.");
            for (int i = 0; i < members.Count; i++)
                _types.Add(ParseType(members[i], registry, $"{where}.anyOf[{i}]"));
        }

        public override string Render(string indent) => string.Join(" | ", _types.Select(t => t.Render(indent)));
    }

    private sealed class UnionType : SchemaType
    {
        private readonly List<string> _members = [];

        public UnionType(JsonObject schema, JsonArray types, string where) : base(schema, where)
        {
            foreach (var t in types)
            {
                if (!(t is JsonValue v && v.GetValueKind() == JsonValueKind.String && UnionMembers.TryGetValue(v.GetValue<string>(), out var ts)))
                    throw new ToolDeclarationException($"{where}.type: {Describe(t)} is not a JSON Schema type ({string.Join(", ", UnionMembers.Keys)}).");
                _members.Add(ts);
            }
        }

        public override string Render(string indent) => string.Join(" | ", _members);
    }

    private sealed class RefType : SchemaType
    {
        private readonly string _name;

        public RefType(JsonObject schema, SchemaRegistry registry, string where) : base(schema, where)
        {
            if (!(schema["$ref"] is JsonValue v && v.GetValueKind() == JsonValueKind.String))
                throw new ToolDeclarationException($"{where}.$ref must be a string.");
            string reference = v.GetValue<string>();
            if (reference == "#")
            {
                registry.HasSelfRef = true;
                _name = "parameters";
                return;
            }
            if (!reference.StartsWith("#/$defs/", StringComparison.Ordinal))
                throw new ToolDeclarationException($"{where}: unsupported reference {reference} (only \"#\" and \"#/$defs/NAME\").");
            _name = reference[(reference.LastIndexOf('/') + 1)..];
            if (!registry.TryGet(_name, out var target))
                throw new ToolDeclarationException($"{where}: reference {reference} is not defined in any $defs seen so far.");
            if (target is not JsonObject targetObject)
                throw new ToolDeclarationException($"{where}: $defs.{_name} is not an object.");
            if (IsTruthy(targetObject["$self_ref"]))
                _name = "parameters";
        }

        public override string Render(string indent) => _name;
    }

    private static SchemaType ParseType(JsonNode? node, SchemaRegistry registry, string where)
    {
        if (node is JsonValue b && b.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
            return new ScalarType(b.GetValueKind() == JsonValueKind.True ? "any" : "null");
        if (node is not JsonObject schema)
            throw new ToolDeclarationException($"{where}: a schema must be an object or a boolean, not {Describe(node)}.");
        if (schema.ContainsKey("$ref"))
            return new RefType(schema, registry, where);
        if (schema.ContainsKey("anyOf"))
            return new AnyOfType(schema, registry, where);
        if (schema.ContainsKey("enum"))
            return new EnumType(schema, where);
        if (schema.TryGetPropertyValue("type", out var typeNode))
        {
            return typeNode switch
            {
                JsonArray types => (SchemaType)new UnionType(schema, types, where),
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>() switch
                {
                    "object" => (SchemaType)new ObjectType(schema, registry, where),
                    "array" => new ArrayType(schema, registry, where),
                    string name => new ScalarType(name, schema, where),
                },
                _ => throw new ToolDeclarationException($"{where}.type must be a string or a list of strings, not {Describe(typeNode)}."),
            };
        }
        if (schema.Count == 0)
            return new ScalarType("any");
        throw new ToolDeclarationException($"{where}: invalid schema {schema.ToJsonString()} (no type, enum, anyOf or $ref).");
    }

    // ---- Python text conventions -------------------------------------------------------------------

    /// <summary>Each line becomes a <c>// </c> comment at <paramref name="indent"/>; empty lines stay empty.</summary>
    private static string FormatDescription(string description, string indent) =>
        string.Join("\n", description.Split('\n').Select(line => line.Length > 0 ? indent + "// " + line : ""));

    /// <summary>A description to print, or null when it is falsy in Python (absent, null, "", 0, false, empty).</summary>
    private static string? DescriptionText(JsonNode? node, string where)
    {
        if (!IsTruthy(node))
            return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            return v.GetValue<string>();
        throw new ToolDeclarationException($"{where} must be a string, not {Describe(node)}.");
    }

    /// <summary>Python's truthiness of a JSON value as <c>json.loads</c> returns it.</summary>
    private static bool IsTruthy(JsonNode? node) => node switch
    {
        null => false,
        JsonObject o => o.Count > 0,
        JsonArray a => a.Count > 0,
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>().Length > 0,
            JsonValueKind.False or JsonValueKind.Null => false,
            JsonValueKind.Number => JsonSerializer.SerializeToElement(v).GetDouble() != 0,
            _ => true,
        },
        _ => true,
    };

    private static string PythonTypeName(JsonNode? node) => JinjaValue.FromJson(node).PythonTypeName;

    /// <summary>Python's <c>str()</c> of the value <c>json.loads</c> would give (ints unbounded, floats by repr).</summary>
    private static string PythonStr(JsonNode? node)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            string raw = JsonSerializer.SerializeToElement(v).GetRawText();
            if (raw.AsSpan().IndexOfAny(".eE") < 0)
                return BigInteger.Parse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture);
        }
        return JinjaValue.FromJson(node).ToString();
    }

    /// <summary><c>repr()</c> for numbers and booleans, <c>json.dumps(ensure_ascii=False)</c> for the rest.</summary>
    private static string DefaultRepr(JsonNode value)
    {
        if (value is JsonValue v && v.GetValueKind() is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False)
            return PythonStr(value);
        return JsonDumps.Render(new Dictionary<string, JinjaValue>(StringComparer.Ordinal) { ["value"] = JinjaValue.FromJson(value) });
    }

    private static string Describe(JsonNode? node) => node is null ? "null" : node.ToJsonString();
}
