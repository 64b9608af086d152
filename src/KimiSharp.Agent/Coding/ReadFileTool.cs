using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>read_file: a text file's lines, numbered, from an optional 1-based line offset.</summary>
public sealed class ReadFileTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "read_file",
    "Read a text file in the workspace. Lines come numbered (number, tab, text); the numbers are not part of the file. "
    + "Use offset (1-based line) and limit to page through long files.",
    """
    {
      "type": "object",
      "properties": {
        "path": { "type": "string", "description": "File path relative to the workspace root." },
        "offset": { "type": "integer", "minimum": 1, "description": "First line to return (1-based)." },
        "limit": { "type": "integer", "minimum": 1, "description": "Most lines to return." }
      },
      "required": ["path"],
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string path = workspace.Resolve(arguments.GetString("path"));
        int offset = arguments.GetOptionalInt("offset", 1, int.MaxValue) ?? 1;
        int limit = arguments.GetOptionalInt("limit", 1, int.MaxValue) ?? options.DefaultReadLines;

        TextFiles.Text text = await TextFiles.ReadAsync(workspace, path, options.MaxFileBytes, cancellationToken).ConfigureAwait(false);
        string shown = workspace.Relative(path);
        if (text.Content.Length == 0) return $"({shown} is empty)";

        string[] lines = text.Content.Split('\n');
        int total = text.Content.EndsWith('\n') ? lines.Length - 1 : lines.Length;
        if (offset > total) throw new ToolFailureException($"offset {offset} is past the end of '{shown}' ({total} lines)");

        var output = new StringBuilder();
        int last = offset - 1;
        for (int i = offset - 1; i < total && i < offset - 1 + limit; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length > options.MaxLineLength) line = line[..options.MaxLineLength] + " [line cut]";
            string numbered = $"{i + 1,6}\t{line}\n";
            if (output.Length + numbered.Length > options.MaxOutputChars) break;
            output.Append(numbered);
            last = i + 1;
        }
        if (last < total)
            output.Append($"[lines {offset}-{last} of {total} shown; read on with offset={last + 1}]\n");
        return output.ToString();
    }
}
