using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Jinja;

namespace KimiSharp.Tokens.Templates;

/// <summary>Settings for <see cref="ChatTemplate"/>.</summary>
public sealed record ChatTemplateOptions
{
    public static readonly ChatTemplateOptions Default = new();

    /// <summary>Passed to the template as <c>bos_token</c> when set (transformers passes its special_tokens_map).</summary>
    public string? BosToken { get; init; }

    /// <summary>Passed as <c>eos_token</c> when set.</summary>
    public string? EosToken { get; init; }

    /// <summary>Passed as <c>unk_token</c> when set.</summary>
    public string? UnkToken { get; init; }

    /// <summary>Passed as <c>pad_token</c> when set.</summary>
    public string? PadToken { get; init; }

    /// <summary>Passed as <c>additional_special_tokens</c> when set.</summary>
    public IReadOnlyList<string>? AdditionalSpecialTokens { get; init; }

    /// <summary>
    /// Recursively sort the keys of every dict in <c>tools</c> before rendering, as recent Kimi tokenizers'
    /// <c>apply_chat_template</c> override does (<c>deep_sort_dict</c>), so that the tool_declare JSON does not
    /// depend on the key order a client happened to send. <c>null</c> (the default) means: on for Kimi templates
    /// (recognised by their <c>&lt;|im_middle|&gt;</c> role separator), off for others, which transformers'
    /// stock <c>apply_chat_template</c> never sorts.
    /// </summary>
    public bool? SortToolKeys { get; init; }

    /// <summary>
    /// Pass the tools as Kimi K2.5's TypeScript-style declarations in the template variable <c>tools_ts_str</c>
    /// (see <see cref="TypeScriptTools"/>), as the K2.5 tokenizer's <c>apply_chat_template</c> does; when the
    /// tools cannot be encoded the variable is left unset and the template falls back to JSON. <c>null</c> (the
    /// default) means: on for templates that mention <c>tools_ts_str</c>, off for others, which never read it.
    /// </summary>
    public bool? EncodeToolsAsTypeScript { get; init; }

    /// <summary>Interpreter settings; the default mirrors transformers' Jinja environment.</summary>
    public JinjaOptions Jinja { get; init; } = JinjaOptions.Default;
}

/// <summary>
/// A model's chat template, rendered the way Hugging Face transformers' <c>apply_chat_template(tokenize=False)</c>
/// renders it, byte for byte.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>Name of the embedded fallback template (a copy of Kimi-K2-Thinking's chat_template.jinja).</summary>
    public const string BuiltInKimiK2ThinkingName = "Kimi-K2-Thinking.jinja";

    /// <summary>Name of the embedded copy of Kimi K2.5's published chat_template.jinja.</summary>
    public const string BuiltInKimiK25Name = "Kimi-K2.5.jinja";

    /// <summary><c>model_type</c> of a Kimi K2.5 checkpoint's config.json.</summary>
    public const string KimiK25ModelType = "kimi_k25";

    private const string KimiMarker = "<|im_middle|>";

    /// <summary>The template variable holding the TypeScript-style tool declarations (Kimi K2.5 and later).</summary>
    public const string ToolsTypeScriptVariable = "tools_ts_str";

    private static readonly HashSet<string> ReservedVariables = ["messages", "tools", "documents", "add_generation_prompt"];

    private readonly ChatTemplateOptions _options;

    public ChatTemplate(string source, ChatTemplateOptions? options = null, string? origin = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        _options = options ?? ChatTemplateOptions.Default;
        Origin = origin ?? "string";
        Template = JinjaTemplate.Parse(source, _options.Jinja, origin);
        SortsToolKeys = _options.SortToolKeys ?? source.Contains(KimiMarker, StringComparison.Ordinal);
        EncodesToolsAsTypeScript = _options.EncodeToolsAsTypeScript ?? source.Contains(ToolsTypeScriptVariable, StringComparison.Ordinal);
    }

    /// <summary>The parsed template, for callers that want to render with their own variables.</summary>
    public JinjaTemplate Template { get; }

    /// <summary>The template text.</summary>
    public string Source => Template.Source;

    /// <summary>Where the template came from: a file path, <c>path#chat_template</c>, or <c>builtin:...</c>.</summary>
    public string Origin { get; }

    /// <summary>Whether <see cref="Render"/> deep-sorts the keys of <c>tools</c> (see <see cref="ChatTemplateOptions.SortToolKeys"/>).</summary>
    public bool SortsToolKeys { get; }

    /// <summary>Whether <see cref="Render"/> sets <c>tools_ts_str</c> (see <see cref="ChatTemplateOptions.EncodeToolsAsTypeScript"/>).</summary>
    public bool EncodesToolsAsTypeScript { get; }

    public ChatTemplateOptions Options => _options;

    /// <summary>Loads a template file (UTF-8).</summary>
    public static ChatTemplate FromFile(string path, ChatTemplateOptions? options = null) =>
        new(File.ReadAllText(path), options, Path.GetFullPath(path));

    /// <summary>The embedded copy of Kimi-K2-Thinking's chat template.</summary>
    public static ChatTemplate BuiltInKimiK2Thinking(ChatTemplateOptions? options = null) =>
        new(ReadBuiltIn(BuiltInKimiK2ThinkingName), options, "builtin:" + BuiltInKimiK2ThinkingName);

    /// <summary>
    /// The embedded copy of Kimi K2.5's chat template: thinking by default (the generation prompt ends in
    /// <c>&lt;think&gt;</c>), instant with the variable <c>thinking=false</c> (<c>&lt;think&gt;&lt;/think&gt;</c>), tools as
    /// TypeScript through <c>tools_ts_str</c>, and media parts as placeholders. Its text is <see cref="Source"/>.
    /// </summary>
    public static ChatTemplate BuiltInKimiK25(ChatTemplateOptions? options = null) =>
        new(ReadBuiltIn(BuiltInKimiK25Name), options, "builtin:" + BuiltInKimiK25Name);

    /// <summary>
    /// Loads the template of a Hugging Face model directory: <c>chat_template.jinja</c> if present, else
    /// <c>chat_template</c> from <c>tokenizer_config.json</c> (a string, or a list of <c>{name, template}</c>
    /// from which "default" is taken), else a built-in one: Kimi K2.5's when <c>config.json</c> says
    /// <c>"model_type": "kimi_k25"</c>, Kimi-K2-Thinking's otherwise. Special tokens
    /// (<c>bos_token</c>, <c>eos_token</c>, ...) come from <c>tokenizer_config.json</c> unless
    /// <paramref name="options"/> sets them.
    /// </summary>
    public static ChatTemplate FromModelDirectory(string directory, ChatTemplateOptions? options = null)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Model directory not found: {directory}");
        options ??= ChatTemplateOptions.Default;

        string configPath = Path.Combine(directory, "tokenizer_config.json");
        JsonObject? config = null;
        if (File.Exists(configPath))
        {
            config = JsonNode.Parse(File.ReadAllText(configPath), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }) as JsonObject
                ?? throw new InvalidDataException($"{configPath} is not a JSON object.");
            options = WithConfigTokens(options, config);
        }

        string jinjaPath = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(jinjaPath))
            return new ChatTemplate(File.ReadAllText(jinjaPath), options, Path.GetFullPath(jinjaPath));

        if (config is not null && config["chat_template"] is { } node)
        {
            string origin = Path.GetFullPath(configPath) + "#chat_template";
            switch (node)
            {
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    return new ChatTemplate(v.GetValue<string>(), options, origin);
                case JsonArray list:
                    foreach (var item in list)
                    {
                        if (item is JsonObject entry && entry["name"]?.GetValue<string>() == "default")
                        {
                            string text = entry["template"]?.GetValue<string>()
                                ?? throw new InvalidDataException($"{configPath}: the \"default\" chat template has no \"template\" string.");
                            return new ChatTemplate(text, options, origin + "[default]");
                        }
                    }
                    throw new InvalidDataException($"{configPath}: chat_template is a list without an entry named \"default\".");
                default:
                    throw new InvalidDataException($"{configPath}: chat_template must be a string or a list of {{name, template}} objects.");
            }
        }

        return IsKimiK25Directory(directory) ? BuiltInKimiK25(options) : BuiltInKimiK2Thinking(options);
    }

    /// <summary>Whether the directory's config.json declares a Kimi K2.5 checkpoint (unreadable or absent: no).</summary>
    private static bool IsKimiK25Directory(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path))
            return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject config
                && config["model_type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String
                && type.GetValue<string>() == KimiK25ModelType;
        }
        catch (JsonException)
        {
            // The model loader reports a broken config.json; choosing a fallback template is no place to fail.
            return false;
        }
    }

    /// <summary>
    /// Renders a conversation to the prompt text. <paramref name="messages"/> and <paramref name="tools"/> are
    /// OpenAI-style JSON; <paramref name="extraVariables"/> are passed through (for example <c>thinking</c>).
    /// As in transformers, <c>tools</c> and <c>documents</c> are always defined (None when absent), special
    /// tokens are passed when known, and extra variables override special tokens but may not redefine
    /// <c>messages</c>, <c>tools</c>, <c>documents</c> or <c>add_generation_prompt</c>. For templates that read
    /// <c>tools_ts_str</c> (Kimi K2.5), a non-empty tool list is also passed there as TypeScript declarations.
    /// </summary>
    public string Render(JsonArray messages, JsonArray? tools = null, bool addGenerationPrompt = true,
        IReadOnlyDictionary<string, JsonNode?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var vars = new Dictionary<string, JinjaValue>(StringComparer.Ordinal);
        AddToken(vars, "bos_token", _options.BosToken);
        AddToken(vars, "eos_token", _options.EosToken);
        AddToken(vars, "unk_token", _options.UnkToken);
        AddToken(vars, "pad_token", _options.PadToken);
        if (_options.AdditionalSpecialTokens is { } extraTokens)
            vars["additional_special_tokens"] = new JinjaList(extraTokens.Select(t => (JinjaValue)new JinjaString(t)).ToList());

        if (extraVariables is not null)
        {
            foreach (var (k, v) in extraVariables)
            {
                if (ReservedVariables.Contains(k))
                    throw new ArgumentException($"Template variable '{k}' is set by Render itself and cannot be passed as an extra variable.", nameof(extraVariables));
                vars[k] = JinjaValue.FromJson(v);
            }
        }

        vars["messages"] = JinjaValue.FromJson(messages);
        JinjaValue toolsValue = tools is null ? JinjaNone.Instance : JinjaValue.FromJson(tools);
        if (tools is not null && SortsToolKeys)
            toolsValue = PythonOrdering.SortDictKeysRecursively(toolsValue);
        vars["tools"] = toolsValue;
        // As the K2.5 tokenizer: only for a non-empty tool list, overriding a caller's tools_ts_str, and on
        // failure leaving the variable as it was so the template writes JSON.
        if (tools is { Count: > 0 } && EncodesToolsAsTypeScript
            && TypeScriptTools.TryEncode(tools, out string declarations, out _, sortKeys: SortsToolKeys))
            vars[ToolsTypeScriptVariable] = new JinjaString(declarations);
        vars["documents"] = JinjaNone.Instance;
        vars["add_generation_prompt"] = JinjaValue.From(addGenerationPrompt);
        return Template.Render(vars);
    }

    /// <summary>
    /// Returns a copy with every object's keys sorted recursively (Python <c>sorted()</c> order, i.e. by code
    /// point); arrays keep their order. This is Kimi's <c>deep_sort_dict</c>.
    /// </summary>
    public static JsonNode? SortKeysRecursively(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj
            .OrderBy(p => p.Key, PythonOrdering.CodePoint)
            .Select(p => KeyValuePair.Create(p.Key, SortKeysRecursively(p.Value)))),
        JsonArray arr => new JsonArray(arr.Select(SortKeysRecursively).ToArray()),
        null => null,
        _ => node.DeepClone(),
    };

    private static void AddToken(Dictionary<string, JinjaValue> vars, string name, string? value)
    {
        if (value is not null)
            vars[name] = new JinjaString(value);
    }

    private static ChatTemplateOptions WithConfigTokens(ChatTemplateOptions options, JsonObject config)
    {
        return options with
        {
            BosToken = options.BosToken ?? TokenText(config["bos_token"]),
            EosToken = options.EosToken ?? TokenText(config["eos_token"]),
            UnkToken = options.UnkToken ?? TokenText(config["unk_token"]),
            PadToken = options.PadToken ?? TokenText(config["pad_token"]),
            AdditionalSpecialTokens = options.AdditionalSpecialTokens
                ?? (config["additional_special_tokens"] is JsonArray extra
                    ? extra.Select(TokenText).Where(t => t is not null).Select(t => t!).ToList()
                    : null),
        };
    }

    /// <summary>A special token in tokenizer_config.json: a string or a serialised AddedToken with "content".</summary>
    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String => c.GetValue<string>(),
        _ => null,
    };

    private static string ReadBuiltIn(string name)
    {
        var asm = typeof(ChatTemplate).Assembly;
        using var stream = asm.GetManifestResourceStream("KimiSharp.Tokens.Templates." + name)
            ?? throw new InvalidOperationException($"Embedded template {name} is missing from {asm.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
