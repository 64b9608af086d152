namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// A tokenizer file (<c>tiktoken.model</c>, <c>tokenizer_config.json</c>) is malformed.
/// <see cref="Exception.Message"/> always names the file and, where one applies, the 1-based line.
/// </summary>
public sealed class TokenizerFormatException : Exception
{
    public TokenizerFormatException(string sourceName, int? lineNumber, string problem, Exception? inner = null)
        : base(Format(sourceName, lineNumber, problem), inner)
    {
        SourceName = sourceName;
        LineNumber = lineNumber;
        Problem = problem;
    }

    /// <summary>The file path (or stream name) that failed to parse.</summary>
    public string SourceName { get; }

    /// <summary>1-based line of the offending entry, or null when the problem is not tied to one line.</summary>
    public int? LineNumber { get; }

    /// <summary>What is wrong, without the location prefix.</summary>
    public string Problem { get; }

    private static string Format(string source, int? line, string problem) =>
        line is int l ? $"{source}, line {l}: {problem}" : $"{source}: {problem}";
}
