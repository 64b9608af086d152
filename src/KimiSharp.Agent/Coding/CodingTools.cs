using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Coding;

/// <summary>The built-in coding tools of <c>kimi code</c>.</summary>
public static class CodingTools
{
    /// <summary>
    /// read_file, write_file, edit_file, list_dir, glob, grep, shell, fetch, and search_docs when
    /// <see cref="CodingToolOptions.DocsFolder"/> is set.
    /// </summary>
    public static IReadOnlyList<AIFunction> Create(Workspace workspace, CodingToolOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        options ??= new CodingToolOptions();
        var tools = new List<AIFunction>
        {
            new ReadFileTool(workspace, options),
            new WriteFileTool(workspace, options),
            new EditFileTool(workspace, options),
            new ListDirTool(workspace, options),
            new GlobTool(workspace, options),
            new GrepTool(workspace, options),
            new ShellTool(workspace, options),
            new FetchTool(options),
        };
        if (options.DocsFolder is { } docs) tools.Add(new SearchDocsTool(docs, options));
        return tools;
    }
}
