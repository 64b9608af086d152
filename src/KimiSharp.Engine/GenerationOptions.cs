using KimiSharp.Tokens.Parsing;
namespace KimiSharp.Engine;

/// <summary>How one request samples and when it stops (OpenAI-style semantics).</summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most.</summary>
    public int MaxTokens { get; init; } = 256;
    /// <summary>0 means greedy (argmax, lowest id on ties).</summary>
    public float Temperature { get; init; } = 1.0f;
    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this.</summary>
    public float TopP { get; init; } = 1.0f;
    /// <summary>Keep only the k most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }
    /// <summary>Drop tokens whose probability is below this fraction of the most likely one's.</summary>
    public float MinP { get; init; }
    /// <summary>Subtracted once from the logit of every token already generated.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted from a token's logit for each time it was generated.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Fixes the random stream: the same seed and prompt give the same tokens.</summary>
    public long? Seed { get; init; }
    /// <summary>Generation ends (reason <see cref="FinishReason.Stop"/>) after emitting one of these.</summary>
    public IReadOnlyCollection<int> StopTokens { get; init; } = [];
    /// <summary>
    /// Keep generating through the model's end tokens until <see cref="MaxTokens"/> (vLLM's <c>ignore_eos</c>): fixed
    /// output lengths for benchmarks. Stop strings and constraints still end a generation.
    /// </summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Report each sampled token's log-probability, and this many alternatives.</summary>
    public int TopLogprobs { get; init; }
    public bool Logprobs { get; init; }
    /// <summary>Masks tokens the output may not contain next (constrained decoding), or null.</summary>
    public ITokenConstraint? Constraint { get; init; }

    public void Validate()
    {
        static void Check(bool ok, string message) { if (!ok) throw new ArgumentException(message); }
        Check(MaxTokens >= 1, $"max_tokens must be at least 1, got {MaxTokens}");
        Check(Temperature >= 0 && float.IsFinite(Temperature), $"temperature must be ≥ 0, got {Temperature}");
        Check(TopP > 0 && TopP <= 1, $"top_p must be in (0, 1], got {TopP}");
        Check(TopK >= 0, $"top_k must be ≥ 0, got {TopK}");
        Check(MinP >= 0 && MinP <= 1, $"min_p must be in [0, 1], got {MinP}");
        Check(PresencePenalty is >= -2 and <= 2, $"presence_penalty must be in [-2, 2], got {PresencePenalty}");
        Check(FrequencyPenalty is >= -2 and <= 2, $"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}");
        Check(TopLogprobs is >= 0 and <= 20, $"top_logprobs must be in [0, 20], got {TopLogprobs}");
    }
}

/// <summary>Restricts which token may come next: grammar-guided (constrained) decoding.</summary>
public interface ITokenConstraint
{
    /// <summary>Sets the logits of every token not allowed next to −∞.</summary>
    void Mask(Span<float> logits);
    /// <summary>Advances past the sampled token.</summary>
    void Accept(int token);
    /// <summary>The output is complete: generation stops with <see cref="FinishReason.Stop"/>.</summary>
    bool IsComplete { get; }
}

