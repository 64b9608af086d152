using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>list_dir: one folder's entries, folders first, with sizes and link targets.</summary>
public sealed class ListDirTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "list_dir",
    "List the entries of a folder in the workspace (not recursive). Folders end with '/'.",
    """
    {
      "type": "object",
      "properties": {
        "path": { "type": "string", "description": "Folder relative to the workspace root; default '.'." }
      },
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    protected override ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string path = workspace.Resolve(arguments.GetOptionalString("path") ?? ".");
        string shown = workspace.Relative(path);
        if (!Directory.Exists(path))
            throw new ToolFailureException(File.Exists(path) ? $"'{shown}' is a file, not a folder" : $"folder '{shown}' does not exist");

        var entries = new DirectoryInfo(path).EnumerateFileSystemInfos()
            .OrderBy(e => e is FileInfo)
            .ThenBy(e => e.Name, StringComparer.Ordinal)
            .ToList();
        if (entries.Count == 0) return ValueTask.FromResult($"({shown} is empty)");

        var output = new StringBuilder();
        foreach (FileSystemInfo entry in entries.Take(options.MaxListEntries))
        {
            output.Append(entry.Name);
            if (entry.LinkTarget is { } target) output.Append(" -> ").Append(target);
            else if (entry is DirectoryInfo) output.Append('/');
            else output.Append($"  ({((FileInfo)entry).Length} bytes)");
            output.Append('\n');
        }
        if (entries.Count > options.MaxListEntries)
            output.Append($"[{options.MaxListEntries} of {entries.Count} entries shown]\n");
        return ValueTask.FromResult(TextFiles.Clip(output.ToString(), options.MaxOutputChars));
    }
}
