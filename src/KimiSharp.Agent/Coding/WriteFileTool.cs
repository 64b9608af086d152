using KimiSharp.Agent.Approvals;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Coding;

/// <summary>write_file: creates or replaces a file (and its folders); asks for approval showing the diff.</summary>
public sealed class WriteFileTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "write_file",
    "Create a file or overwrite it entirely with content. Missing folders are created. Prefer edit_file for changes to an existing file.",
    """
    {
      "type": "object",
      "properties": {
        "path": { "type": "string", "description": "File path relative to the workspace root." },
        "content": { "type": "string", "description": "The whole new content of the file." }
      },
      "required": ["path", "content"],
      "additionalProperties": false
    }
    """,
    readOnly: false, needsApproval: true), IApprovalPreview
{
    public async ValueTask<ApprovalPreview> PreviewAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        var args = new ToolArguments(arguments);
        string path = workspace.Resolve(args.GetString("path"));
        string content = args.GetString("content");
        string before = await ExistingAsync(path, cancellationToken).ConfigureAwait(false);
        string shown = workspace.Relative(path);
        string verb = File.Exists(path) ? "overwrite" : "create";
        return new ApprovalPreview($"{verb} {shown}", UnifiedDiff.Create(before, content, shown));
    }

    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string path = workspace.Resolve(arguments.GetString("path"));
        string content = arguments.GetString("content");
        string shown = workspace.Relative(path);
        if (Directory.Exists(path)) throw new ToolFailureException($"'{shown}' is a directory");

        bool existed = File.Exists(path);
        bool bom = false;
        if (existed) bom = (await TextFiles.ReadAsync(workspace, path, options.MaxFileBytes, cancellationToken).ConfigureAwait(false)).HasBom;
        await TextFiles.WriteAsync(path, content, bom, cancellationToken).ConfigureAwait(false);
        int lines = content.Length == 0 ? 0 : content.Count(c => c == '\n') + (content.EndsWith('\n') ? 0 : 1);
        return $"{(existed ? "overwrote" : "created")} {shown} ({lines} lines)";
    }

    private async Task<string> ExistingAsync(string path, CancellationToken ct) =>
        File.Exists(path) ? (await TextFiles.ReadAsync(workspace, path, options.MaxFileBytes, ct).ConfigureAwait(false)).Content : "";
}
