using System.Text.RegularExpressions;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis.Evaluation;

/// <summary>
/// Keeps the held-out natural suite out of synthesized data: a generated request is rejected when it equals a suite
/// question after normalization, or has its shape (numbers, dates and knowledge-base names masked; case, spacing and
/// closing punctuation ignored). A compositional grammar can reach a short question such as "what's # + #" by
/// chance; this check makes that impossible rather than unlikely.
/// </summary>
public static partial class Decontamination
{
    [GeneratedRegex(@"[^\p{L}\p{N}%]+")]
    private static partial Regex NonWord();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    [GeneratedRegex(@"\d[\d,\-/]*(?:\.\d+)?")]
    private static partial Regex NumberLike();

    /// <summary>Lower case, words and digits only, single spaces.</summary>
    public static string Normalize(string text) => Spaces().Replace(NonWord().Replace(text.ToLowerInvariant(), " "), " ").Trim();

    /// <summary>The request's shape: numbers, dates and knowledge-base city names masked; spacing, case and closing punctuation dropped.</summary>
    public static string Shape(string text)
    {
        string masked = NumberLike().Replace(text, "#");
        foreach (var entity in KnowledgeBase.Default.Entities)
            masked = masked.Replace(entity.Name, "@", StringComparison.Ordinal);
        return Spaces().Replace(masked.ToLowerInvariant(), "").TrimEnd('.', '?', '!');
    }

    private static readonly Lazy<(HashSet<string> Prompts, HashSet<string> Shapes)> s_suite = new(() =>
        (NaturalSuite.Items.Select(i => Normalize(i.Prompt)).ToHashSet(StringComparer.Ordinal),
         NaturalSuite.Items.Select(i => Shape(i.Prompt)).ToHashSet(StringComparer.Ordinal)));

    /// <summary>Whether <paramref name="prompt"/> is a natural-suite question, verbatim or in shape.</summary>
    public static bool ResemblesSuite(string prompt) =>
        s_suite.Value.Prompts.Contains(Normalize(prompt)) || s_suite.Value.Shapes.Contains(Shape(prompt));
}
