using KimiSharp.Model;

namespace KimiSharp.Vision;

/// <summary>
/// Expands media placeholders for the language model: a K2.5 prompt carries one <c>&lt;|media_pad|&gt;</c>
/// (<c>media_placeholder_token_id</c>) per image or video chunk, and the model sees one copy per projected feature row,
/// whose input embedding is that row instead of the token's own.
/// </summary>
public static class MediaPlaceholders
{
    /// <summary>
    /// The expanded tokens and the embedding patch that puts <paramref name="features"/>[i] (rows of
    /// <paramref name="hiddenSize"/> floats) at the i-th placeholder's copies.
    /// </summary>
    public static (int[] Tokens, EmbeddingPatch Embeddings) Expand(ReadOnlySpan<int> tokens, int placeholderId,
        IReadOnlyList<float[]> features, int hiddenSize)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (hiddenSize <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenSize), hiddenSize, "the hidden size must be positive");
        int placeholders = 0;
        foreach (int token in tokens) if (token == placeholderId) placeholders++;
        if (placeholders != features.Count)
            throw new ArgumentException($"the prompt has {placeholders} media placeholder(s) (token {placeholderId}) but {features.Count} image(s) or video chunk(s) were given");
        long added = 0;
        for (int i = 0; i < features.Count; i++)
        {
            if (features[i].Length == 0 || features[i].Length % hiddenSize != 0)
                throw new ArgumentException($"features of media {i} hold {features[i].Length} values, not whole rows of {hiddenSize}");
            added += features[i].Length / hiddenSize - 1;
        }
        var expanded = new int[checked(tokens.Length + (int)added)];
        var positions = new List<int>();
        var rows = new float[features.Sum(f => (long)f.Length)];
        int at = 0, media = 0;
        long rowAt = 0;
        foreach (int token in tokens)
        {
            if (token != placeholderId) { expanded[at++] = token; continue; }
            var item = features[media++];
            item.CopyTo(rows, rowAt);
            rowAt += item.Length;
            for (int r = 0; r < item.Length / hiddenSize; r++)
            {
                positions.Add(at);
                expanded[at++] = placeholderId;
            }
        }
        return (expanded, new EmbeddingPatch(positions, rows));
    }
}
