using DiffPlex;
using DiffPlex.Renderer;

namespace KimiSharp.Agent.Coding;

/// <summary>Unified diffs for approval previews.</summary>
public static class UnifiedDiff
{
    /// <summary>The diff from <paramref name="before"/> to <paramref name="after"/> with three lines of context;
    /// empty when they are equal.</summary>
    public static string Create(string before, string after, string path)
    {
        if (before == after) return "";
        // A final newline ends the last line; it is not a line of its own (DiffPlex would show an empty one).
        if (before.EndsWith('\n') && after.EndsWith('\n')) (before, after) = (before[..^1], after[..^1]);
        var renderer = new UnidiffRenderer(Differ.Instance, contextLines: 3);
        return renderer.Generate(before, after, "a/" + path, "b/" + path, ignoreWhitespace: false, ignoreCase: false);
    }
}
