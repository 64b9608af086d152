using System.Text.Json.Nodes;
using KimiSharp.Engine.Constraints;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Engine.Chat;

internal static partial class ChatConstraints
{
    /// <summary>
    /// tool_choice required / a named function: the answer is forced into Kimi's tool-call section with arguments
    /// valid for the chosen function's schema. response_format json_object / json_schema: the answer is the JSON.
    /// </summary>
    private static ITokenConstraint? ForStructured(ChatRequest request, KimiChatService service)
    {
        var tokenizer = service.Tokenizer;
        int[] end = service.StopTokens.Order().Take(1).Concat(tokenizer.ImEndId is int imEnd ? [imEnd] : []).Distinct().ToArray();
        switch (request.ToolChoice)
        {
            case ToolChoice.RequiredChoice or ToolChoice.FunctionChoice:
            {
                var functions = Functions(request);
                if (request.ToolChoice is ToolChoice.FunctionChoice named)
                    functions = functions.Where(f => f.Name == named.Name).ToArray() is { Length: 1 } one
                        ? one
                        : throw new ArgumentException($"tool_choice names function '{named.Name}', which is not among the declared tools");
                if (functions.Count == 0) throw new ArgumentException("tool_choice 'required' needs at least one tool");
                var ids = new KimiToolCallTokens(
                    Id(tokenizer, KimiSpecialTokens.ToolCallsSectionBegin), Id(tokenizer, KimiSpecialTokens.ToolCallBegin),
                    Id(tokenizer, KimiSpecialTokens.ToolCallArgumentBegin), Id(tokenizer, KimiSpecialTokens.ToolCallEnd),
                    Id(tokenizer, KimiSpecialTokens.ToolCallsSectionEnd));
                // Call ids continue the conversation's count (functions.NAME:IDX), as Kimi's template numbers them.
                int firstIndex = request.Messages.Sum(m => (m?["tool_calls"] as JsonArray)?.Count ?? 0);
                var call = Constraint.Choice(functions.Select(f => ($"functions.{f.Name}:{firstIndex}",
                    Constraint.Sequence(Constraint.Tokens(ids.ArgumentBegin), Constraint.Json(f.Parameters)))).ToArray());
                var grammar = Constraint.Sequence(
                    Constraint.Tokens(ids.SectionBegin), Constraint.Tokens(ids.CallBegin), call, Constraint.Tokens(ids.CallEnd),
                    Constraint.Tokens(ids.SectionEnd), Constraint.AnyOfTokens(end));
                return grammar.Build(Vocabulary(service));
            }
        }
        return request.ResponseFormat switch
        {
            ResponseFormat.JsonObject => Constraint.Sequence(Constraint.JsonObject(), Constraint.AnyOfTokens(end)).Build(Vocabulary(service)),
            ResponseFormat.JsonSchema s => Constraint.Sequence(Constraint.Json(s.Schema, SchemaOptions(s.Strict)), Constraint.AnyOfTokens(end)).Build(Vocabulary(service)),
            _ => null,
        };
    }

    private static int Id(KimiTokenizer tokenizer, string special) =>
        tokenizer.TokenToId(special) ?? throw new InvalidOperationException($"the tokenizer has no {special} token, which tool calls need");

    private static IReadOnlyList<ToolFunction> Functions(ChatRequest request) =>
        (request.Tools ?? []).Select(t => t?["function"]).OfType<JsonNode>()
            .Select(f => new ToolFunction(f["name"]!.GetValue<string>(),
                JsonSchemaMatcher.Compile(f["parameters"]?.DeepClone() ?? new JsonObject(), SchemaOptions(IsStrict(f)))))
            .ToArray();

    private static readonly JsonSchemaOptions s_strictSchemas = JsonSchemaOptions.Default;
    private static readonly JsonSchemaOptions s_lenientSchemas = JsonSchemaOptions.Default with { Strict = false };

    /// <summary>Strict schemas refuse keywords constrained decoding cannot enforce; lenient ones ignore them.</summary>
    private static JsonSchemaOptions SchemaOptions(bool strict) => strict ? s_strictSchemas : s_lenientSchemas;

    /// <summary>A tool function's <c>strict</c> (OpenAI's tool shape): absent means strict.</summary>
    private static bool IsStrict(JsonNode function) =>
        function["strict"] is not JsonValue v || v.GetValueKind() != System.Text.Json.JsonValueKind.False;

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<KimiChatService, TokenVocabulary> s_vocabularies = new();

    /// <summary>Every token's bytes, with special tokens excluded from free text (built once per model).</summary>
    private static TokenVocabulary Vocabulary(KimiChatService service) => s_vocabularies.GetValue(service, s =>
    {
        var tokenizer = s.Tokenizer;
        var bytes = new byte[]?[tokenizer.VocabSize];
        for (int id = 0; id < bytes.Length; id++)
            bytes[id] = tokenizer.IsSpecial(id) ? null : tokenizer.GetTokenBytes(id).ToArray();
        return new TokenVocabulary(bytes);
    });
}
