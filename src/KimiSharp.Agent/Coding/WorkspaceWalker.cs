namespace KimiSharp.Agent.Coding;

/// <summary>
/// The files under a folder, in ordinal path order, skipping ignored folder names and never descending through a
/// symlinked folder (no cycles, no escapes); a symlinked file is kept only when it resolves inside the workspace.
/// </summary>
internal static class WorkspaceWalker
{
    public static IEnumerable<string> Files(Workspace workspace, string fullDirectory, IReadOnlyList<string> ignoredDirectories,
        CancellationToken ct)
    {
        var ignored = new HashSet<string>(ignoredDirectories, StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(fullDirectory);
        while (pending.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            string directory = pending.Pop();
            FileSystemInfo[] entries;
            try
            {
                entries = new DirectoryInfo(directory).GetFileSystemInfos();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            Array.Sort(entries, (a, b) => string.CompareOrdinal(a.Name, b.Name));
            var subdirectories = new List<string>();
            foreach (FileSystemInfo entry in entries)
            {
                bool isLink = entry.LinkTarget is not null;
                if (entry is DirectoryInfo)
                {
                    if (!isLink && !ignored.Contains(entry.Name)) subdirectories.Add(entry.FullName);
                    continue;
                }
                if (isLink && (!workspace.Contains(entry.FullName) || Directory.Exists(entry.FullName))) continue;
                yield return entry.FullName;
            }
            // Reverse so that the stack pops folders in name order, keeping the whole walk deterministic.
            for (int i = subdirectories.Count - 1; i >= 0; i--) pending.Push(subdirectories[i]);
        }
    }
}
