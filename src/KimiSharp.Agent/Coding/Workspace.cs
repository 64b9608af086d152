namespace KimiSharp.Agent.Coding;

/// <summary>A path the model asked for that lies outside the workspace (by <c>..</c>, an absolute path or a symlink).</summary>
public sealed class WorkspaceEscapeException(string message) : Exception(message);

/// <summary>
/// The folder the coding tools may touch. <see cref="Resolve"/> is the single gate every tool path goes through: it
/// follows symlinks component by component (dangling ones included) so that a link cannot smuggle a read or a write
/// out of the root. Checks happen at call time; a link swapped in between the check and the use is not guarded against.
/// </summary>
public sealed class Workspace
{
    private const int MaxLinkHops = 40;

    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <param name="root">An existing directory; its own symlinks are resolved once, here.</param>
    public Workspace(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        string full = Path.GetFullPath(root);
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"workspace root '{full}' does not exist");
        Root = Path.TrimEndingDirectorySeparator(RealPath(full));
    }

    /// <summary>The canonical full path of the root (symlinks resolved).</summary>
    public string Root { get; }

    /// <summary>
    /// The full path of <paramref name="path"/> (relative to the root, or absolute) after checking that it, and whatever
    /// any symlink along it points to, stays inside the root. The returned path is lexical (links not replaced).
    /// </summary>
    /// <exception cref="WorkspaceEscapeException">The path or a link on it leads outside the root.</exception>
    public string Resolve(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0) path = ".";
        if (path.Contains('\0')) throw new ArgumentException("path contains a NUL character", nameof(path));

        string full = Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(Root, path));
        full = Path.TrimEndingDirectorySeparator(full);
        string real = RealPath(full);
        if (!IsUnderRoot(real))
        {
            throw new WorkspaceEscapeException(IsUnderRoot(full)
                ? $"path '{path}' leads through a symlink to '{real}', outside the workspace {Root}"
                : $"path '{path}' is outside the workspace {Root}");
        }
        // An absolute path through another name for the root (e.g. a symlinked parent) is fine; report it canonically.
        return IsUnderRoot(full) ? full : real;
    }

    /// <summary>True when <paramref name="path"/> resolves inside the root.</summary>
    public bool Contains(string path)
    {
        try
        {
            Resolve(path);
            return true;
        }
        catch (WorkspaceEscapeException)
        {
            return false;
        }
    }

    /// <summary>The path relative to the root with '/' separators, for showing to the model.</summary>
    public string Relative(string fullPath)
    {
        string relative = Path.GetRelativePath(Root, fullPath);
        return Path.DirectorySeparatorChar == '/' ? relative : relative.Replace(Path.DirectorySeparatorChar, '/');
    }

    private bool IsUnderRoot(string fullPath) =>
        string.Equals(fullPath, Root, PathComparison)
        || (fullPath.StartsWith(Root, PathComparison)
            && fullPath.Length > Root.Length
            && (fullPath[Root.Length] == Path.DirectorySeparatorChar || Root.EndsWith(Path.DirectorySeparatorChar)));

    /// <summary>Like realpath(3), except that components that do not exist are kept as they are.</summary>
    private static string RealPath(string fullPath)
    {
        int hops = 0;
        return RealPath(fullPath, ref hops);
    }

    private static string RealPath(string fullPath, ref int hops)
    {
        string? rootPart = Path.GetPathRoot(fullPath);
        if (string.IsNullOrEmpty(rootPart)) throw new ArgumentException($"'{fullPath}' is not a full path");
        string current = rootPart;
        string[] parts = fullPath[rootPart.Length..].Split(
            [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);

        for (int i = 0; i < parts.Length; i++)
        {
            string part = parts[i];
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }
            string next = Path.Combine(current, part);
            string? target = LinkTarget(next);
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++hops > MaxLinkHops) throw new WorkspaceEscapeException($"too many levels of symlinks at '{next}'");
            string targetFull = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
            current = RealPath(targetFull, ref hops);
        }
        return Path.TrimEndingDirectorySeparator(current);
    }

    private static string? LinkTarget(string path)
    {
        try
        {
            // FileInfo reads the link itself (lstat), so it works for links to directories and for dangling links.
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
