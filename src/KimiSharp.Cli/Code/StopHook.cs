using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Hooks;

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
        string payload = new JsonObject
        {
            ["event"] = "stop", ["answer"] = result.FinalAnswer, ["steps"] = result.Steps, ["tool_calls"] = result.ToolCalls,
        }.ToJsonString();
        var run = await HookProcess.RunAsync(command, workspace, payload, TimeSpan.FromMinutes(2), cancellationToken);
        if (run.TimedOut)
        {
            output.Error($"the stop hook '{command}' ran past two minutes and was killed");
            return null;
        }
        if (run.ExitCode != ContinueExitCode) return null;
        output.Info($"stop hook: {(run.Stderr.Length > 0 ? run.Stderr : "continue")}", "notice");
        return run.Stderr.Length > 0 ? run.Stderr : $"The check '{command}' did not pass. Continue the task.";
    }
}
