using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Engine.Chat;

/// <summary>What a chat generation reports, in order: started, output pieces, completed.</summary>
public abstract record ChatEvent;

/// <summary>The prompt was read; <paramref name="CachedTokens"/> of it came from the prefix cache.</summary>
public sealed record ChatStarted(int PromptTokens, int CachedTokens) : ChatEvent;

/// <summary>A piece of the answer: reasoning, content, or a tool call's start, arguments or end.</summary>
public sealed record ChatOutput(ParserEvent Piece) : ChatEvent;

/// <summary>One generated token with its log-probability (only when logprobs were requested).</summary>
public sealed record ChatToken(int Token, string Text, float Logprob, IReadOnlyList<(string Text, float Logprob)>? TopLogprobs) : ChatEvent;

/// <summary>Token counts of a finished request.</summary>
public sealed record ChatUsage(int PromptTokens, int CompletionTokens, int CachedTokens)
{
    /// <summary>Prompt tokens that are image features (counted in <see cref="PromptTokens"/> too).</summary>
    public int ImageTokens { get; init; }

    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// The answer is over, for <paramref name="FinishReason"/>; <paramref name="StopSequence"/> is the stop string that
/// ended it when the reason is <see cref="Tokens.Parsing.FinishReason.StopSequence"/>.
/// </summary>
public sealed record ChatCompleted(FinishReason FinishReason, ChatUsage Usage, string? StopSequence = null) : ChatEvent;
