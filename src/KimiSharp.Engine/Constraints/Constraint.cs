using System.Text;
using System.Text.Json.Nodes;

namespace KimiSharp.Engine.Constraints;

/// <summary>
/// A composable description of what the output must be: special tokens, literal text, JSON values, in sequence or
/// as alternatives. Matching is over bytes (text may be split into tokens any way) plus special-token symbols.
/// Immutable and reusable; <see cref="Build"/> makes the per-request <see cref="ITokenConstraint"/>.
/// <example>
/// Kimi tool call:
/// <code>
/// Constraint.Sequence(
///     Constraint.Tokens(sectionBegin, callBegin),
///     Constraint.Choice(
///         ("functions.get_weather:0", Constraint.Sequence(Constraint.Tokens(argBegin), Constraint.Json(weatherSchema))),
///         ("functions.search:0", Constraint.Sequence(Constraint.Tokens(argBegin), Constraint.Json(searchSchema)))),
///     Constraint.Tokens(callEnd, sectionEnd),
///     Constraint.AnyOfTokens(eos))
/// </code>
/// </example>
/// </summary>
public sealed class Constraint
{
    internal GNode Node { get; }

    private Constraint(GNode node) => Node = node;

    /// <summary>Matches nothing at all (zero tokens).</summary>
    public static Constraint Empty { get; } = new(EmptyNode.Instance);

    /// <summary>Exactly these token ids, in order (special tokens such as <c>&lt;|tool_call_begin|&gt;</c>).</summary>
    public static Constraint Tokens(params int[] ids)
    {
        if (ids.Length == 0) return Empty;
        var builder = new SymbolTrie.Builder();
        builder.Add(ids.Select(TokenSymbol).ToArray(), 0, 0);
        return new(GrammarAnalysis.Seal(new LiteralNode(builder.Build())));
    }

    /// <summary>One token among <paramref name="ids"/> (e.g. the end-of-turn tokens).</summary>
    public static Constraint AnyOfTokens(params int[] ids)
    {
        if (ids.Length == 0) throw new ArgumentException("at least one token id is required", nameof(ids));
        var builder = new SymbolTrie.Builder();
        foreach (int id in ids) builder.Add([TokenSymbol(id)], 0, 0);
        return new(GrammarAnalysis.Seal(new LiteralNode(builder.Build())));
    }

    /// <summary>This exact text (UTF-8), however it is split into tokens.</summary>
    public static Constraint Literal(string text) => Literals(text);

    /// <summary>One of these texts.</summary>
    public static Constraint Literals(params string[] texts)
    {
        if (texts.Length == 0) throw new ArgumentException("at least one literal is required", nameof(texts));
        var nonEmpty = texts.Where(t => t.Length > 0).ToArray();
        if (nonEmpty.Length == 0) return Empty;
        var builder = new SymbolTrie.Builder();
        foreach (var t in nonEmpty) builder.Add(JsonText.ToSymbols(Encoding.UTF8.GetBytes(t)), 0, 0);
        var node = new Constraint(GrammarAnalysis.Seal(new LiteralNode(builder.Build())));
        return nonEmpty.Length < texts.Length ? Optional(node) : node;
    }

    /// <summary>A JSON value the matcher accepts.</summary>
    public static Constraint Json(JsonSchemaMatcher matcher) => new(matcher.Root);

    /// <summary>A JSON value conforming to <paramref name="schema"/> (see <see cref="JsonSchemaMatcher"/>).</summary>
    public static Constraint Json(JsonNode? schema, JsonSchemaOptions? options = null) => Json(JsonSchemaMatcher.Compile(schema, options));

    /// <summary>A JSON value conforming to the schema in <paramref name="schemaJson"/>.</summary>
    public static Constraint Json(string schemaJson, JsonSchemaOptions? options = null) => Json(JsonSchemaMatcher.Compile(schemaJson, options));

    /// <summary>Any JSON object.</summary>
    public static Constraint JsonObject(JsonSchemaOptions? options = null) => Json(JsonSchemaMatcher.AnyObject(options));

    /// <summary>Each part in turn.</summary>
    public static Constraint Sequence(params Constraint[] parts) =>
        parts.Length == 1 ? parts[0] : new(GrammarAnalysis.Seal(new SeqNode(parts.Select(p => p.Node).ToArray())));

    /// <summary>Any one of the alternatives (explored in parallel until they diverge).</summary>
    public static Constraint Choice(params Constraint[] alternatives)
    {
        if (alternatives.Length == 0) throw new ArgumentException("at least one alternative is required", nameof(alternatives));
        return alternatives.Length == 1 ? alternatives[0] : new(GrammarAnalysis.Seal(new UnionNode(alternatives.Select(a => a.Node).ToArray())));
    }

    /// <summary>A choice among literal texts, each followed by its own continuation (e.g. a function name, then its arguments).</summary>
    public static Constraint Choice(params (string Literal, Constraint Then)[] branches) =>
        Choice(branches.Select(b => Sequence(Literal(b.Literal), b.Then)).ToArray());

    /// <summary><paramref name="inner"/> or nothing.</summary>
    public static Constraint Optional(Constraint inner) => Choice(inner, Empty);

    /// <summary><paramref name="min"/> to <paramref name="max"/> items; item i (from 0) is <c>item(i)</c>.</summary>
    public static Constraint Repeat(Func<int, Constraint> item, int min, int max)
    {
        if (min < 0 || max < min || max < 1) throw new ArgumentOutOfRangeException(nameof(max), "need 0 ≤ min ≤ max, max ≥ 1");
        var rest = Empty;
        for (int i = max - 1; i >= 0; i--)
        {
            var step = Sequence(item(i), rest);
            rest = i < min ? step : Optional(step);
        }
        return rest;
    }

    /// <summary>The per-request constraint over <paramref name="vocabulary"/>.</summary>
    public GrammarConstraint Build(TokenVocabulary vocabulary) => new(this, vocabulary);

    private static int TokenSymbol(int id) =>
        id >= 0 ? MatcherCore.TokenSymbolBase + id : throw new ArgumentOutOfRangeException(nameof(id), "token ids are ≥ 0");
}

/// <summary>A function a tool call may name, with its parameters' JSON Schema.</summary>
public sealed record ToolFunction(string Name, JsonSchemaMatcher Parameters);

/// <summary>Special-token ids of Kimi's tool-call syntax.</summary>
public sealed record KimiToolCallTokens(int SectionBegin, int CallBegin, int ArgumentBegin, int CallEnd, int SectionEnd);

/// <summary>Builds the constraint for Kimi K2's tool-call section (<c>tool_choice</c> required or a named function).</summary>
public static class KimiToolCalls
{
    /// <summary>
    /// <c>&lt;|tool_calls_section_begin|&gt;</c>, then 1…<paramref name="maxCalls"/> calls
    /// <c>&lt;|tool_call_begin|&gt;functions.NAME:INDEX&lt;|tool_call_argument_begin|&gt;{json}&lt;|tool_call_end|&gt;</c>
    /// (INDEX counts calls from 0), then <c>&lt;|tool_calls_section_end|&gt;</c> and one of <paramref name="endTokens"/>
    /// if any are given.
    /// </summary>
    public static Constraint Section(KimiToolCallTokens tokens, IReadOnlyList<ToolFunction> functions, int maxCalls = 1, params int[] endTokens)
    {
        if (functions.Count == 0) throw new ArgumentException("at least one function is required", nameof(functions));
        var calls = Constraint.Repeat(i => Constraint.Sequence(
            Constraint.Tokens(tokens.CallBegin),
            Constraint.Choice(functions.Select(f => ($"functions.{f.Name}:{i}",
                Constraint.Sequence(Constraint.Tokens(tokens.ArgumentBegin), Constraint.Json(f.Parameters)))).ToArray()),
            Constraint.Tokens(tokens.CallEnd)), 1, maxCalls);
        var parts = new List<Constraint> { Constraint.Tokens(tokens.SectionBegin), calls, Constraint.Tokens(tokens.SectionEnd) };
        if (endTokens.Length > 0) parts.Add(Constraint.AnyOfTokens(endTokens));
        return Constraint.Sequence([.. parts]);
    }
}
