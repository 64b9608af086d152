using KimiSharp.Model;

namespace KimiSharp.Engine;

/// <summary>
/// Prompt positions whose input embeddings are given instead of looked up (a multimodal prompt's image features at its
/// media placeholders), each with a content key. Placeholder tokens are the same for every image, so the prefix cache
/// compares these keys as well as the tokens: two prompts share cached positions only where their images are the same.
/// </summary>
public sealed class PromptEmbeddings
{
    private readonly int[] _positions;

    /// <param name="patch">Rows for prompt positions, in ascending position order.</param>
    /// <param name="contentKeys">One non-zero key per patch row: equal keys promise equal rows (e.g. a hash of the image).</param>
    public PromptEmbeddings(EmbeddingPatch patch, IReadOnlyList<ulong> contentKeys)
    {
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(contentKeys);
        _positions = [.. patch.Positions];
        if (contentKeys.Count != _positions.Length)
            throw new ArgumentException($"{contentKeys.Count} content keys for {_positions.Length} embedding rows", nameof(contentKeys));
        for (int i = 0; i < _positions.Length; i++)
        {
            if (i > 0 && _positions[i] <= _positions[i - 1])
                throw new ArgumentException($"embedding positions must ascend ({_positions[i - 1]} then {_positions[i]})", nameof(patch));
            if (_positions[i] < 0) throw new ArgumentException($"embedding position {_positions[i]} is negative", nameof(patch));
            if (contentKeys[i] == 0) throw new ArgumentException($"content key {i} is zero (zero means 'no embedding' to the prefix cache)", nameof(contentKeys));
        }
        Patch = patch;
        ContentKeys = contentKeys;
        PositionKeys = new ulong[_positions.Length == 0 ? 0 : _positions[^1] + 1];
        for (int i = 0; i < _positions.Length; i++) PositionKeys[_positions[i]] = contentKeys[i];
    }

    public EmbeddingPatch Patch { get; }
    public IReadOnlyList<ulong> ContentKeys { get; }

    /// <summary>The content key of each prompt position up to the last patched one; 0 where the token's own embedding is used.</summary>
    internal ulong[] PositionKeys { get; }

    internal void Validate(int promptLength, int hiddenSize)
    {
        if (Patch.Rows.Length != (long)_positions.Length * hiddenSize)
            throw new ArgumentException($"{Patch.Rows.Length} embedding values are not {_positions.Length} rows of hidden_size {hiddenSize}");
        if (_positions.Length > 0 && _positions[^1] >= promptLength)
            throw new ArgumentException($"embedding position {_positions[^1]} is outside the {promptLength}-token prompt");
    }

    /// <summary>The rows for prompt positions [start, start + length), positions relative to start; null when none fall there.</summary>
    internal EmbeddingPatch? Slice(int start, int length)
    {
        int first = LowerBound(start), end = LowerBound(start + length);
        if (first == end) return null;
        int hidden = Patch.Rows.Length / _positions.Length;
        var positions = new int[end - first];
        for (int i = 0; i < positions.Length; i++) positions[i] = _positions[first + i] - start;
        return new EmbeddingPatch(positions, Patch.Rows.AsSpan(first * hidden, positions.Length * hidden).ToArray());
    }

    private int LowerBound(int position)
    {
        int at = Array.BinarySearch(_positions, position);
        return at >= 0 ? at : ~at;
    }
}
