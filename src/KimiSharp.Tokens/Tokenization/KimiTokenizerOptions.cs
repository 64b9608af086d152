using Microsoft.ML.Tokenizers;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// How <see cref="KimiTokenizer.FromRanks(Stream, IEnumerable{SpecialToken}, KimiTokenizerOptions?)"/> builds a
/// tokenizer. The defaults are Kimi's; other values let the same loader serve any tiktoken vocabulary (o200k_base...).
/// </summary>
public sealed record KimiTokenizerOptions
{
    /// <summary>Pre-tokenizer splitting ordinary text into BPE pieces. Null: Kimi's (<see cref="KimiPreTokenization.PreTokenizer"/>).</summary>
    public PreTokenizer? PreTokenizer { get; init; }

    /// <summary>
    /// Ids [NumBaseTokens, NumBaseTokens + this) are special; unnamed ones get <c>&lt;|reserved_token_{id}|&gt;</c>
    /// as Kimi does. 0: only the given special tokens exist.
    /// </summary>
    public int NumReservedSpecialTokens { get; init; } = KimiSpecialTokens.NumReservedSpecialTokens;

    /// <summary>Apply Kimi's encode-time splitting (400,000-code-point chunks, runs of at most 25,000 whitespace or non-whitespace code points). Only inputs that long are affected.</summary>
    public bool SplitLongInputs { get; init; } = true;

    /// <summary>Special token strings for <see cref="KimiTokenizer.BosId"/> etc.; a name that is not a special token leaves the id null.</summary>
    public string? BosToken { get; init; } = KimiSpecialTokens.Bos;

    public string? EosToken { get; init; } = KimiSpecialTokens.Eos;

    public string? PadToken { get; init; } = KimiSpecialTokens.Pad;

    public string? UnkToken { get; init; } = KimiSpecialTokens.Unk;

    /// <summary>Name of the ranks source in error messages.</summary>
    public string SourceName { get; init; } = "<ranks stream>";
}
