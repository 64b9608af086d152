using System.CommandLine;
using KimiSharp.Agent.Sessions;

namespace KimiSharp.Cli;

/// <summary><c>kimi trace show FILE</c>: an agent session (JSONL) rendered for reading.</summary>
internal static class TraceCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "A session file (kimi code saves them under ~/.kimisharp/sessions)" };
        var noThinking = CliOptions.Flag("--no-thinking", "Leave the model's reasoning out");
        var clip = CliOptions.Int("--clip", "Characters shown of each reasoning, call and result", 400, min: 20);
        var show = new Command("show", "Render a session: prompts, thinking, tool calls and results with timings, answers, usage and cost")
        {
            file, noThinking, clip,
        };
        show.SetAction(r =>
        {
            string path = r.GetValue(file)!;
            if (!File.Exists(path)) throw new UsageException($"no session file at {path}");
            // A swarm run shows its sub-agents' sessions under the calls that spawned them, then the critical path.
            SwarmTrace.Render(path, r.Out(), showReasoning: !r.GetValue(noThinking), clip: r.GetValue(clip));
            return CliApp.Ok;
        });
        return new Command("trace", "Agent session traces") { show };
    }
}
