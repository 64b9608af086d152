using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Constraints;

/// <summary>Limits and formatting of the JSON the matcher accepts.</summary>
public sealed record JsonSchemaOptions
{
    public static readonly JsonSchemaOptions Default = new();

    /// <summary>Deepest nesting of objects/arrays (System.Text.Json's reader allows 64 by default).</summary>
    public int MaxDepth { get; init; } = 32;
    /// <summary>Accept one space after ':' and ',' (as <c>json.dumps</c> writes); no other whitespace, ever.</summary>
    public bool AllowSpaceAfterSeparators { get; init; } = true;
    /// <summary>Digits before the decimal point (at most 18).</summary>
    public int MaxIntegerDigits { get; init; } = 15;
    public int MaxFractionDigits { get; init; } = 15;
    public int MaxExponentDigits { get; init; } = 2;
    /// <summary>
    /// A validation keyword the matcher cannot enforce throws <see cref="UnsupportedSchemaKeywordException"/>; when
    /// false it is ignored (listed in <see cref="JsonSchemaMatcher.IgnoredKeywords"/>). Annotations (title,
    /// description, examples, default…), unknown keywords and unknown <c>format</c>s are always ignored, as JSON
    /// Schema treats them as annotations.
    /// </summary>
    public bool Strict { get; init; } = true;
}

/// <summary>
/// Where a <see cref="JsonSchemaMatcher"/> is: a set of live threads (alternatives of anyOf/oneOf explored in
/// parallel). Immutable; copying the struct clones it. <c>default</c> is a dead state.
/// </summary>
public readonly struct MatcherState : IEquatable<MatcherState>
{
    internal readonly Frame[]? Threads;

    internal MatcherState(Frame[] threads) => Threads = threads;

    /// <summary>No continuation can match any more.</summary>
    public bool IsDead => Threads is null || Threads.Length == 0;

    /// <summary>Parallel alternatives still alive.</summary>
    public int ThreadCount => Threads?.Length ?? 0;

    public bool Equals(MatcherState other)
    {
        var a = Threads ?? [];
        var b = other.Threads ?? [];
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (!a[i].Equals(b[i])) return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is MatcherState s && Equals(s);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var t in Threads ?? []) hash.Add(t.GetHashCode());
        return hash.ToHashCode();
    }

    public static bool operator ==(MatcherState a, MatcherState b) => a.Equals(b);
    public static bool operator !=(MatcherState a, MatcherState b) => !a.Equals(b);
}

/// <summary>
/// Incremental byte-level recognizer for compact JSON conforming to a JSON Schema subset. Every state it reaches is a
/// viable prefix: some continuation completes it to a valid document (so a token mask built from it is never empty).
/// <para>Supported: <c>type</c> (string or array of types; <c>nullable: true</c>); object (<c>properties</c> in schema
/// order — keys must appear in that order, optional ones may be skipped; <c>required</c>; with properties only those keys
/// are generated, without them <c>additionalProperties</c> (schema/true/false) governs free keys, which must be distinct,
/// and <c>minProperties</c>/<c>maxProperties</c> bound their number);
/// array (<c>items</c>, <c>prefixItems</c>/tuple <c>items</c>, <c>additionalItems</c>, <c>minItems</c>, <c>maxItems</c>);
/// string (<c>minLength</c>, <c>maxLength</c> in code points; <c>pattern</c>, a regular-expression subset run as a DFA over
/// the decoded characters (Constraints/README.md lists the subset); <c>format</c> date, time, date-time, uuid, email, hostname, ipv4,
/// uri); integer and number (<c>minimum</c>, <c>maximum</c>, exclusive forms incl. draft-4 booleans; <c>multipleOf</c>
/// a whole number, or 10^-n for numbers; a bounded number is written without exponent,
/// with at most 18 significant digits, and checked exactly in decimal); boolean; null; <c>enum</c>/<c>const</c> of any JSON value (matched in its
/// compact serialization); <c>anyOf</c>/<c>oneOf</c> (parallel alternatives; oneOf is treated as anyOf), sibling keywords
/// merged into each alternative; <c>allOf</c> (shallow merge); local <c>$ref</c> (<c>#/$defs/…</c>,
/// <c>#/definitions/…</c>, <c>#</c>, recursive); <c>true</c>/<c>{}</c> = any value.</para>
/// <para>Not enforceable (an <see cref="UnsupportedSchemaKeywordException"/> for strict schemas, else ignored and listed in
/// <see cref="IgnoredKeywords"/>): uniqueItems, contains, patternProperties, propertyNames, not, if/then/else,
/// dependentRequired/dependentSchemas, unevaluated*, min/maxProperties beside properties, keywords beside $ref, allOf parts
/// that disagree, remote $ref, other multipleOf values, patterns beyond the subset.</para>
/// <para>Format: no whitespace except (optionally) one space after ':' and ','; numbers have at most
/// <see cref="JsonSchemaOptions.MaxIntegerDigits"/> integer digits etc.; integers are written without fraction or
/// exponent; strings are valid UTF-8 with standard escapes and paired surrogate escapes.</para>
/// </summary>
public sealed class JsonSchemaMatcher
{
    internal GNode Root { get; }
    public JsonSchemaOptions Options { get; }
    /// <summary>Schema keywords (as JSON-pointer-like paths) the matcher does not enforce.</summary>
    public IReadOnlyList<string> IgnoredKeywords { get; }

    private JsonSchemaMatcher(GNode inner, JsonSchemaOptions options, IReadOnlyList<string> ignored)
    {
        Options = options;
        IgnoredKeywords = ignored;
        Root = new JsonRootNode(inner, options.MaxDepth);
        GrammarAnalysis.Run(Root);
        if (Root.MinDepth >= GNode.Unsatisfiable)
            throw new ArgumentException("the schema matches no JSON value (within the depth and digit limits)");
        Start = new MatcherState(MatcherCore.Start(Root, options.MaxDepth));
    }

    /// <summary>Compiles <paramref name="schema"/> (null, <c>true</c> or <c>{}</c>: any JSON value).</summary>
    /// <exception cref="ArgumentException">Malformed or unsatisfiable schema, or bad options.</exception>
    /// <exception cref="UnsupportedSchemaKeywordException">A strict schema uses a keyword that cannot be enforced (e.g. a remote <c>$ref</c>).</exception>
    public static JsonSchemaMatcher Compile(JsonNode? schema, JsonSchemaOptions? options = null)
    {
        options ??= JsonSchemaOptions.Default;
        Validate(options);
        var compiler = new SchemaCompiler(schema, options);
        GNode root;
        try { root = compiler.CompileRoot(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new ArgumentException($"malformed schema: {e.Message}", nameof(schema), e);
        }
        return new JsonSchemaMatcher(root, options, [.. compiler.Ignored]);
    }

    public static JsonSchemaMatcher Compile(string schemaJson, JsonSchemaOptions? options = null) =>
        Compile(JsonNode.Parse(schemaJson), options);

    /// <summary>Any JSON object (<c>response_format: json_object</c>).</summary>
    public static JsonSchemaMatcher AnyObject(JsonSchemaOptions? options = null)
    {
        options ??= JsonSchemaOptions.Default;
        Validate(options);
        return new JsonSchemaMatcher(SchemaCompiler.AnyObject(options), options, []);
    }

    private static void Validate(JsonSchemaOptions options)
    {
        if (options.MaxDepth is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(options), "MaxDepth must be in [1, 64]");
        if (options.MaxIntegerDigits is < 1 or > 18) throw new ArgumentOutOfRangeException(nameof(options), "MaxIntegerDigits must be in [1, 18]");
        if (options.MaxFractionDigits < 1 || options.MaxExponentDigits < 1) throw new ArgumentOutOfRangeException(nameof(options), "digit limits must be ≥ 1");
    }

    /// <summary>Nothing consumed yet.</summary>
    public MatcherState Start { get; }

    /// <summary>Consumes <paramref name="bytes"/>; false (and <paramref name="state"/> unchanged) if they cannot continue a valid document.</summary>
    public bool TryAdvance(ref MatcherState state, ReadOnlySpan<byte> bytes)
    {
        if (state.IsDead) return false;
        var threads = state.Threads!;
        var scratch = new List<Frame>();
        foreach (byte b in bytes)
        {
            threads = MatcherCore.Advance(threads, b, scratch);
            if (threads.Length == 0) return false;
        }
        state = new MatcherState(threads);
        return true;
    }

    /// <summary>The bytes so far form a complete valid document.</summary>
    public bool IsAccepting(MatcherState state) => !state.IsDead && MatcherCore.IsAccepting(state.Threads!);

    /// <summary>Some byte may follow (false once the document is closed, or a number is at its digit limit).</summary>
    public bool CanContinue(MatcherState state)
    {
        if (state.IsDead) return false;
        var scratch = new List<Frame>();
        for (int b = 0; b < 256; b++) if (MatcherCore.Advance(state.Threads!, b, scratch).Length > 0) return true;
        return false;
    }

    /// <summary>The whole of <paramref name="json"/> is a document this matcher accepts.</summary>
    public bool Matches(ReadOnlySpan<byte> json)
    {
        var state = Start;
        return TryAdvance(ref state, json) && IsAccepting(state);
    }

    public bool Matches(string json) => Matches(System.Text.Encoding.UTF8.GetBytes(json));
}
