using System.Diagnostics;

namespace KimiSharp.Agent.Hooks;

/// <summary>How a hook command ended: its exit code and stderr, or that it ran past its time and was killed.</summary>
public sealed record HookProcessResult(int ExitCode, string Stderr, bool TimedOut);

/// <summary>
/// Runs a hook command the way Claude Code and kimi-cli run theirs: <c>bash -c COMMAND</c> with one JSON line on stdin,
/// killed (with its children) when it outlives <c>timeout</c>. A command that exits without reading stdin is fine.
/// </summary>
public static class HookProcess
{
    public static async Task<HookProcessResult> RunAsync(string command, string? workingDirectory, string stdinLine, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash for the hook");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        Task<string> stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.StandardInput.WriteAsync((stdinLine + "\n").AsMemory(), cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The hook exited without reading its input; its exit code still decides.
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { } // already gone
            cancellationToken.ThrowIfCancellationRequested();
            return new HookProcessResult(-1, "", TimedOut: true);
        }
        await stdout.ConfigureAwait(false);
        return new HookProcessResult(process.ExitCode, (await stderr.ConfigureAwait(false)).Trim(), TimedOut: false);
    }
}
