using System.Text;

namespace KimiSharp.Cli.Code;

/// <summary>
/// Project instructions for the coding agent: every <c>AGENTS.md</c> from the workspace root down to the working folder,
/// outermost first (a nested file refines the one above it), as kimi-cli and other coding agents read them.
/// </summary>
public static class AgentsMd
{
    public const string FileName = "AGENTS.md";

    /// <summary>Cap on the instructions taken from all files together: they are sent with every step.</summary>
    public const int MaxChars = 32 * 1024;

    /// <summary>The files that apply, outermost first; the working folder counts only when it is inside the workspace.</summary>
    public static IReadOnlyList<string> Find(string workspace, string workingFolder)
    {
        string root = Path.GetFullPath(workspace);
        string here = Path.GetFullPath(workingFolder);
        var folders = new List<string>();
        string relative = Path.GetRelativePath(root, here);
        bool inside = relative != ".." && !relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal) && !Path.IsPathRooted(relative);
        for (var dir = new DirectoryInfo(inside ? here : root); dir is not null; dir = dir.Parent)
        {
            folders.Add(dir.FullName);
            if (Path.TrimEndingDirectorySeparator(dir.FullName) == Path.TrimEndingDirectorySeparator(root)) break;
        }
        folders.Reverse();
        return folders.Select(f => Path.Combine(f, FileName)).Where(File.Exists).ToList();
    }

    /// <summary>The instructions as one system-prompt section, or null when there are none.</summary>
    public static string? Load(string workspace, string workingFolder)
    {
        var files = Find(workspace, workingFolder);
        if (files.Count == 0) return null;
        var sb = new StringBuilder();
        foreach (string file in files)
        {
            string text = File.ReadAllText(file).Trim();
            if (text.Length == 0) continue;
            sb.Append("## ").Append(Path.GetRelativePath(workspace, file)).Append("\n\n").Append(text).Append("\n\n");
        }
        if (sb.Length == 0) return null;
        string all = sb.ToString().TrimEnd();
        return all.Length <= MaxChars ? all : all[..MaxChars] + $"\n[AGENTS.md instructions clipped at {MaxChars} characters]";
    }
}
