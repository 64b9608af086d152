namespace KimiSharp.Tokens.Parsing;

/// <summary>Where the output's reasoning is.</summary>
public enum ReasoningMode
{
    /// <summary>No reasoning: everything before the tool section is content, <c>&lt;think&gt;</c> included (K2-Instruct).</summary>
    None,

    /// <summary>
    /// Reasoning only when the output starts with <c>&lt;think&gt;</c>. K2-Thinking's generation prompt ends at
    /// <c>&lt;|im_assistant|&gt;assistant&lt;|im_middle|&gt;</c> and the model writes <c>&lt;think&gt;</c> itself.
    /// </summary>
    ExplicitThinkTag,

    /// <summary>
    /// The output starts inside reasoning whether or not it opens with <c>&lt;think&gt;</c> (consumed if present);
    /// vLLM's kimi_k2 reasoning parser with thinking on. Use it when the prompt already ends with <c>&lt;think&gt;</c>
    /// or the model may omit it.
    /// </summary>
    StartsInReasoning,
}

/// <summary>Options of <see cref="KimiOutputParser"/>.</summary>
public sealed record KimiOutputParserOptions
{
    public ReasoningMode Reasoning { get; init; } = ReasoningMode.ExplicitThinkTag;
}
