namespace KimiSharp.Jinja;

/// <summary>
/// Interpreter settings. The defaults reproduce the environment Hugging Face transformers builds for
/// <c>apply_chat_template</c>: trim_blocks and lstrip_blocks on, keep_trailing_newline off, loop controls on,
/// and its <c>tojson</c>, <c>raise_exception</c> and <c>strftime_now</c>.
/// </summary>
public sealed record JinjaOptions
{
    /// <summary>Shared default instance (transformers' settings).</summary>
    public static readonly JinjaOptions Default = new();

    /// <summary>Remove the first newline after a block or comment tag.</summary>
    public bool TrimBlocks { get; init; } = true;

    /// <summary>Strip spaces and tabs from the start of a line up to a block or comment tag.</summary>
    public bool LStripBlocks { get; init; } = true;

    /// <summary>Keep a single trailing newline at the end of the template source.</summary>
    public bool KeepTrailingNewline { get; init; }

    /// <summary>
    /// Behave like Jinja2's <c>ImmutableSandboxedEnvironment</c>, which transformers uses: calling list/dict
    /// mutators (<c>append</c>, <c>pop</c>, <c>update</c>...) fails with a security error. Off by default because
    /// the Kimi templates shipped with llama.cpp (and the copies in this repository) mutate lists in a namespace,
    /// which only renders under a mutable sandbox.
    /// </summary>
    public bool ImmutableSandbox { get; init; }

    /// <summary>Clock for <c>strftime_now</c> (local time, like Python's naive <c>datetime.now()</c>).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Output size, string size, loop iteration and time limits of each render.</summary>
    public JinjaLimits Limits { get; init; } = JinjaLimits.Default;

    /// <summary>Extra global functions or values, visible in every render (render variables shadow them).</summary>
    public IReadOnlyDictionary<string, JinjaValue>? Globals { get; init; }
}

/// <summary>A parsed Jinja template. Immutable and thread-safe: each <c>Render</c> call has its own state.</summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _body;
    private readonly SourceMap _map;

    private JinjaTemplate(string source, string? name, JinjaOptions options, List<Node> body, SourceMap map)
    {
        Source = source;
        Name = name;
        Options = options;
        _body = body;
        _map = map;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>A name used in error messages (for example a file path).</summary>
    public string? Name { get; }

    public JinjaOptions Options { get; }

    /// <summary>Parses a template. Throws <see cref="TemplateException"/> (kind <see cref="TemplateErrorKind.Syntax"/>) on errors.</summary>
    public static JinjaTemplate Parse(string source, JinjaOptions? options = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= JinjaOptions.Default;
        string normalized = Lexer.Normalize(source, options.KeepTrailingNewline);
        var map = new SourceMap(normalized);
        var tokens = Lexer.Tokenize(normalized, options, map, name);
        var body = Parser.Parse(tokens, map, name);
        return new JinjaTemplate(source, name, options, body, map);
    }

    /// <summary>Renders with the given variables, within <see cref="JinjaOptions.Limits"/>.</summary>
    /// <exception cref="TemplateException">The template failed (<see cref="TemplateLimitExceededException"/>: a limit was hit).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked with the clock).</exception>
    public string Render(IReadOnlyDictionary<string, JinjaValue> variables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new Interpreter(this, _map, cancellationToken).Render(_body, variables);
    }

    /// <summary>Renders with CLR or JSON values, converted by <see cref="JinjaValue.FromObject"/>.</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var converted = new Dictionary<string, JinjaValue>(StringComparer.Ordinal);
        foreach (var (k, v) in variables)
            converted[k] = JinjaValue.FromObject(v);
        return Render(converted, cancellationToken);
    }
}
