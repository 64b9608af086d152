using System.Diagnostics;
using System.Text;
using KimiSharp.Agent.Approvals;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Coding;

/// <summary>shell: <c>bash -c command</c> in the workspace root, with a timeout and an output cap; the whole process
/// tree is killed on timeout or cancellation. Asks for approval showing the command.</summary>
public sealed class ShellTool(Workspace workspace, CodingToolOptions options) : BuiltinFunction(
    "shell",
    "Run a bash command in the workspace root and return its exit code, stdout and stderr. No input is given on stdin. "
    + "Commands are killed after timeout_seconds.",
    """
    {
      "type": "object",
      "properties": {
        "command": { "type": "string", "minLength": 1, "description": "The bash command line." },
        "timeout_seconds": { "type": "integer", "minimum": 1, "description": "Kill the command after this many seconds." }
      },
      "required": ["command"],
      "additionalProperties": false
    }
    """,
    readOnly: false, needsApproval: true), IApprovalPreview
{
    /// <summary>How long to wait for the output pipes after the process ends (a background child may hold them).</summary>
    private static readonly TimeSpan PipeDrainGrace = TimeSpan.FromSeconds(2);

    public ValueTask<ApprovalPreview> PreviewAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        string command = new ToolArguments(arguments).GetString("command");
        string oneLine = command.ReplaceLineEndings(" ⏎ ");
        return ValueTask.FromResult(new ApprovalPreview(oneLine.Length > 300 ? oneLine[..300] + "…" : oneLine));
    }

    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string command = arguments.GetString("command");
        int maxSeconds = (int)Math.Max(1, options.MaxShellTimeout.TotalSeconds);
        int? seconds = arguments.GetOptionalInt("timeout_seconds", 1, maxSeconds);
        TimeSpan timeout = seconds is { } s ? TimeSpan.FromSeconds(s) : options.ShellTimeout;

        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = workspace.Root,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        // Nobody reads a pager or answers a prompt here.
        start.Environment["PAGER"] = "cat";
        start.Environment["GIT_PAGER"] = "cat";
        start.Environment["GIT_TERMINAL_PROMPT"] = "0";

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ToolFailureException($"could not start bash: {e.Message}");
        }
        process.StandardInput.Close();

        int cap = options.MaxOutputChars;
        Task<CappedText> stdout = CappedText.ReadAsync(process.StandardOutput, cap);
        Task<CappedText> stderr = CappedText.ReadAsync(process.StandardError, cap);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        bool timedOut = false;
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillTree(process);
            if (cancellationToken.IsCancellationRequested) throw;
            timedOut = true;
        }

        string output = await FormatAsync(stdout, stderr).ConfigureAwait(false);
        if (timedOut)
            throw new ToolFailureException($"command timed out after {timeout.TotalSeconds:0.###} s and was killed\n{output}".TrimEnd());
        int exitCode = process.ExitCode;
        if (exitCode != 0) throw new ToolFailureException($"exit code {exitCode}\n{output}".TrimEnd());
        return output.Length == 0 ? "exit code 0 (no output)" : $"exit code 0\n{output}".TrimEnd();
    }

    private static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static async Task<string> FormatAsync(Task<CappedText> stdoutTask, Task<CappedText> stderrTask)
    {
        // Bounded: a background job the command started may keep a pipe open after bash itself is gone.
        Task both = Task.WhenAll(stdoutTask, stderrTask);
        await Task.WhenAny(both, Task.Delay(PipeDrainGrace)).ConfigureAwait(false);
        var text = new StringBuilder();
        if (stdoutTask.IsCompletedSuccessfully) text.Append(stdoutTask.Result.Render("stdout"));
        if (stderrTask.IsCompletedSuccessfully) text.Append(stderrTask.Result.Render("stderr"));
        if (!both.IsCompleted) text.Append("[output still open when the command ended; a background process may hold it]\n");
        return text.ToString();
    }

    private sealed record CappedText(string Text, long Dropped)
    {
        public static async Task<CappedText> ReadAsync(StreamReader reader, int cap)
        {
            var kept = new StringBuilder();
            long dropped = 0;
            char[] buffer = new char[4096];
            int read;
            while ((read = await reader.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                int room = Math.Max(0, cap - kept.Length);
                kept.Append(buffer, 0, Math.Min(room, read));
                dropped += Math.Max(0, read - room);
            }
            return new CappedText(kept.ToString(), dropped);
        }

        public string Render(string label)
        {
            if (Text.Length == 0 && Dropped == 0) return "";
            string body = Text.EndsWith('\n') ? Text : Text + "\n";
            string note = Dropped > 0 ? $"[{label} clipped: {Dropped} more characters]\n" : "";
            return $"[{label}]\n{body}{note}";
        }
    }
}
