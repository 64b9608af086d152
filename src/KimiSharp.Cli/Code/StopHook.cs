using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Agent;

namespace KimiSharp.Cli.Code;

/// <summary>
/// <c>--stop-hook CMD</c>: when the agent answers, CMD reads <c>{"event":"stop","answer":…,"steps":…,"tool_calls":…}</c>
/// on stdin. Exit 2 sends its stderr back as the next instruction (e.g. "the tests still fail: …"); any other exit
/// lets the run end. A hook that runs past two minutes is killed and the run ends.
/// </summary>
internal static class StopHook
{
    public const int ContinueExitCode = 2;

    public static async ValueTask<string?> RunAsync(string command, string workspace, AgentResult result, IAgentOutput output, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = workspace, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash for the stop hook");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.StandardInput.WriteLineAsync(new JsonObject
            {
                ["event"] = "stop", ["answer"] = result.FinalAnswer, ["steps"] = result.Steps, ["tool_calls"] = result.ToolCalls,
            }.ToJsonString().AsMemory(), cancellationToken);
            process.StandardInput.Close();
        }
        catch (IOException) { } // the hook did not read its input; its exit code still decides
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromMinutes(2));
        try { await process.WaitForExitAsync(deadline.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            cancellationToken.ThrowIfCancellationRequested();
            output.Error($"the stop hook '{command}' ran past two minutes and was killed");
            return null;
        }
        await stdout;
        string reason = (await stderr).Trim();
        if (process.ExitCode != ContinueExitCode) return null;
        output.Info($"stop hook: {(reason.Length > 0 ? reason : "continue")}", "notice");
        return reason.Length > 0 ? reason : $"The check '{command}' did not pass. Continue the task.";
    }
}
