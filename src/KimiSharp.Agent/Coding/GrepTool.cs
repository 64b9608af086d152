using System.Text;
using System.Text.RegularExpressions;

namespace KimiSharp.Agent.Coding;

/// <summary>grep: lines matching a .NET regular expression, as <c>path:line: text</c>.</summary>
public sealed class GrepTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "grep",
    "Search file contents with a regular expression (.NET syntax). Prints path:line: text for each matching line. "
    + "Filter files with glob (e.g. '*.cs' for any depth, 'src/**/*.cs' for a path).",
    """
    {
      "type": "object",
      "properties": {
        "pattern": { "type": "string", "minLength": 1, "description": "Regular expression." },
        "path": { "type": "string", "description": "File or folder to search, relative to the workspace root; default '.'." },
        "glob": { "type": "string", "description": "Only files matching this glob; without '/', it matches file names at any depth." },
        "ignore_case": { "type": "boolean", "description": "Case-insensitive match (default false)." }
      },
      "required": ["pattern"],
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string pattern = arguments.GetString("pattern");
        string target = workspace.Resolve(arguments.GetOptionalString("path") ?? ".");
        string? globText = arguments.GetOptionalString("glob");
        GlobPattern? glob = globText is null ? null : new GlobPattern(globText);
        var regexOptions = RegexOptions.CultureInvariant | (arguments.GetBool("ignore_case", false) ? RegexOptions.IgnoreCase : 0);

        Regex regex;
        try
        {
            regex = new Regex(pattern, regexOptions, options.RegexTimeout);
        }
        catch (ArgumentException e)
        {
            throw new ToolFailureException($"invalid regular expression: {e.Message}");
        }

        IEnumerable<string> files;
        if (File.Exists(target)) files = [target];
        else if (Directory.Exists(target))
            files = WorkspaceWalker.Files(workspace, target, options.IgnoredDirectories, cancellationToken)
                .Where(file => glob is null || glob.IsMatch(glob.IsNameOnly
                    ? Path.GetFileName(file)
                    : Path.GetRelativePath(target, file).Replace(Path.DirectorySeparatorChar, '/')));
        else throw new ToolFailureException($"'{workspace.Relative(target)}' does not exist");

        var output = new StringBuilder();
        int matches = 0;
        bool stopped = false;
        foreach (string file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string? text = await TryReadTextAsync(file, cancellationToken).ConfigureAwait(false);
            if (text is null) continue;
            string shown = workspace.Relative(file);
            string[] lines = text.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i].TrimEnd('\r');
                bool hit;
                try
                {
                    hit = regex.IsMatch(line);
                }
                catch (RegexMatchTimeoutException)
                {
                    throw new ToolFailureException(
                        $"the regular expression took longer than {options.RegexTimeout.TotalSeconds:0.###} s on {shown}:{i + 1}; simplify it");
                }
                if (!hit) continue;
                if (matches == options.MaxGrepMatches)
                {
                    stopped = true;
                    break;
                }
                matches++;
                if (line.Length > options.MaxLineLength) line = line[..options.MaxLineLength] + " [line cut]";
                output.Append(shown).Append(':').Append(i + 1).Append(": ").Append(line).Append('\n');
            }
            if (stopped) break;
        }
        if (matches == 0) return $"no matches for /{pattern}/";
        if (stopped) output.Append($"[stopped at {options.MaxGrepMatches} matches; narrow the pattern, path or glob]\n");
        return TextFiles.Clip(output.ToString(), options.MaxOutputChars);
    }

    /// <summary>The file's text, or null for binary, oversized or unreadable files (skipped silently).</summary>
    private async Task<string?> TryReadTextAsync(string file, CancellationToken ct)
    {
        try
        {
            if (new FileInfo(file).Length > options.MaxFileBytes) return null;
            byte[] bytes = await File.ReadAllBytesAsync(file, ct).ConfigureAwait(false);
            return TextFiles.LooksBinary(bytes) ? null : Encoding.UTF8.GetString(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
