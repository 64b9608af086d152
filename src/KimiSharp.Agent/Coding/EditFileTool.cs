using KimiSharp.Agent.Approvals;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Coding;

/// <summary>edit_file: exact-string replacement in one file; asks for approval showing the diff.</summary>
public sealed class EditFileTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "edit_file",
    "Replace old_string with new_string in a file. old_string must match the file exactly (whitespace included) and "
    + "occur once, unless replace_all is true. Include surrounding lines to make it unique.",
    """
    {
      "type": "object",
      "properties": {
        "path": { "type": "string", "description": "File path relative to the workspace root." },
        "old_string": { "type": "string", "minLength": 1, "description": "Exact text to replace." },
        "new_string": { "type": "string", "description": "Replacement text." },
        "replace_all": { "type": "boolean", "description": "Replace every occurrence (default false)." }
      },
      "required": ["path", "old_string", "new_string"],
      "additionalProperties": false
    }
    """,
    readOnly: false, needsApproval: true), IApprovalPreview
{
    public async ValueTask<ApprovalPreview> PreviewAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        Planned edit = await PlanAsync(new ToolArguments(arguments), cancellationToken).ConfigureAwait(false);
        return new ApprovalPreview($"edit {edit.Shown}", UnifiedDiff.Create(edit.Before.Content, edit.After, edit.Shown));
    }

    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        Planned edit = await PlanAsync(arguments, cancellationToken).ConfigureAwait(false);
        await TextFiles.WriteAsync(edit.Path, edit.After, edit.Before.HasBom, cancellationToken).ConfigureAwait(false);
        return $"edited {edit.Shown}: {edit.Count} replacement{(edit.Count == 1 ? "" : "s")}";
    }

    private sealed record Planned(string Path, string Shown, TextFiles.Text Before, string After, int Count);

    private async Task<Planned> PlanAsync(ToolArguments arguments, CancellationToken ct)
    {
        string path = workspace.Resolve(arguments.GetString("path"));
        string oldString = arguments.GetString("old_string");
        string newString = arguments.GetString("new_string");
        bool replaceAll = arguments.GetBool("replace_all", false);
        string shown = workspace.Relative(path);
        if (oldString.Length == 0) throw new ToolFailureException("old_string must not be empty (use write_file to create a file)");
        if (oldString == newString) throw new ToolFailureException("old_string and new_string are the same; nothing to change");

        TextFiles.Text before = await TextFiles.ReadAsync(workspace, path, options.MaxFileBytes, ct).ConfigureAwait(false);
        string content = before.Content;
        int count = Occurrences(content, oldString);
        if (count == 0 && content.Contains("\r\n", StringComparison.Ordinal) && !oldString.Contains('\r'))
        {
            // The model writes '\n'; a CRLF file still matches, and the replacement keeps the file's line endings.
            oldString = oldString.Replace("\n", "\r\n", StringComparison.Ordinal);
            newString = newString.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal);
            count = Occurrences(content, oldString);
        }
        if (count == 0) throw new ToolFailureException($"old_string not found in {shown}");
        if (count > 1 && !replaceAll)
            throw new ToolFailureException(
                $"old_string occurs {count} times in {shown}; include more surrounding text to make it unique, or set replace_all to true");

        string after = content.Replace(oldString, newString, StringComparison.Ordinal);
        return new Planned(path, shown, before, after, count);
    }

    private static int Occurrences(string text, string value)
    {
        int count = 0;
        for (int at = text.IndexOf(value, StringComparison.Ordinal); at >= 0;
             at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
            count++;
        return count;
    }
}
