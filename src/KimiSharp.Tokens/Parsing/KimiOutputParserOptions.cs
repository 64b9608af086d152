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

    /// <summary>
    /// The settings for output that continues <paramref name="renderedPrompt"/>: a prompt ending in an open
    /// <c>&lt;think&gt;</c> (Kimi K2.5's thinking mode) makes the output start inside reasoning, so the model's first
    /// words before <c>&lt;/think&gt;</c> are reasoning although it never writes <c>&lt;think&gt;</c>; any other
    /// ending (K2-Thinking, whose model opens the block itself, or K2.5's instant <c>&lt;think&gt;&lt;/think&gt;</c>)
    /// keeps <see cref="ReasoningMode.ExplicitThinkTag"/>.
    /// </summary>
    public static KimiOutputParserOptions ForPrompt(string renderedPrompt)
    {
        ArgumentNullException.ThrowIfNull(renderedPrompt);
        return renderedPrompt.EndsWith("<think>", StringComparison.Ordinal)
            ? new KimiOutputParserOptions { Reasoning = ReasoningMode.StartsInReasoning }
            : new KimiOutputParserOptions();
    }
}
