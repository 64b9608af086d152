using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>glob: files whose workspace-relative path matches a pattern such as <c>**/*.cs</c>.</summary>
public sealed class GlobTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "glob",
    "Find files by path pattern, relative to the search folder: '*' within a name, '**' across folders, '?', [abc], {a,b}. "
    + "Example: '**/*.cs' (all C# files), 'src/*.json'.",
    """
    {
      "type": "object",
      "properties": {
        "pattern": { "type": "string", "minLength": 1, "description": "Glob pattern, e.g. **/*.cs" },
        "path": { "type": "string", "description": "Folder to search in, relative to the workspace root; default '.'." }
      },
      "required": ["pattern"],
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    protected override ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        var glob = new GlobPattern(arguments.GetString("pattern"));
        string directory = workspace.Resolve(arguments.GetOptionalString("path") ?? ".");
        if (!Directory.Exists(directory)) throw new ToolFailureException($"folder '{workspace.Relative(directory)}' does not exist");

        var matches = new List<string>();
        int total = 0;
        foreach (string file in WorkspaceWalker.Files(workspace, directory, options.IgnoredDirectories, cancellationToken))
        {
            string relative = Path.GetRelativePath(directory, file).Replace(Path.DirectorySeparatorChar, '/');
            if (!glob.IsMatch(relative)) continue;
            total++;
            if (matches.Count < options.MaxGlobResults) matches.Add(workspace.Relative(file));
        }
        if (total == 0) return ValueTask.FromResult($"no files match '{glob.Pattern}'");
        var output = new StringBuilder();
        foreach (string match in matches) output.Append(match).Append('\n');
        if (total > matches.Count) output.Append($"[{matches.Count} of {total} matching files shown]\n");
        return ValueTask.FromResult(TextFiles.Clip(output.ToString(), options.MaxOutputChars));
    }
}
