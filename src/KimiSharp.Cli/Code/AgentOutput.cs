using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using KimiSharp.Agent;

namespace KimiSharp.Cli.Code;

/// <summary>Where <c>kimi code</c> shows a run: a terminal transcript, or one JSON event per line for scripts.</summary>
internal interface IAgentOutput
{
    void Event(AgentEvent e);
    /// <summary>Something from the program itself (a command's answer, the status line).</summary>
    void Info(string text, string kind = "info");
    void Error(string text);
    /// <summary>A proposed change shown before approval.</summary>
    void Diff(string diff);
}

/// <summary>
/// The terminal transcript: thinking streams dimmed and collapses to one line when the step moves on (unless thinking
/// is shown in full), tool calls show as <c>→ name(args)</c> and results as <c>← result</c>, notices in yellow.
/// </summary>
internal sealed class TerminalAgentOutput(TextWriter stdout, bool color) : IAgentOutput
{
    private const string Reset = "\u001b[0m", Dim = "\u001b[2m", Cyan = "\u001b[36m", Red = "\u001b[31m", Yellow = "\u001b[33m", Green = "\u001b[32m";
    private bool _inReasoning, _lineOpen;
    private readonly Stopwatch _thinkingClock = new();

    /// <summary>Show thinking in full instead of collapsing it (<c>/thinking</c> toggles).</summary>
    public bool ShowThinking { get; set; }

    /// <summary>The last step's reasoning, for <c>/thinking last</c>.</summary>
    public string LastReasoning { get; private set; } = "";

    private string C(string code) => color ? code : "";

    public void Event(AgentEvent e)
    {
        switch (e)
        {
            case AgentEvent.ReasoningDelta r:
                if (!_inReasoning)
                {
                    NewLine();
                    stdout.Write(C(Dim) + "thinking: ");
                    _inReasoning = true;
                    LastReasoning = "";
                    _thinkingClock.Restart();
                }
                LastReasoning += r.Text;
                stdout.Write(r.Text);
                break;
            case AgentEvent.ContentDelta c:
                EndReasoning();
                stdout.Write(c.Text);
                if (c.Text.Length > 0) _lineOpen = !c.Text.EndsWith('\n');
                break;
            case AgentEvent.ToolCalled call:
                EndReasoning();
                NewLine();
                stdout.WriteLine($"{C(Cyan)}→ {call.Name}({Clip(call.Arguments, 300)}){C(Reset)}");
                break;
            case AgentEvent.ToolReturned result:
                stdout.WriteLine($"{C(result.IsError ? Red : Dim)}← {Clip(result.Content, 600)}{C(Reset)}");
                break;
            case AgentEvent.Notice notice:
                EndReasoning();
                NewLine();
                stdout.WriteLine($"{C(Yellow)}! {notice.Text}{C(Reset)}");
                break;
            case AgentEvent.Compacted compacted:
                NewLine();
                stdout.WriteLine($"{C(Yellow)}⟲ context compacted at about {compacted.TokensBefore:N0} tokens{C(Reset)}");
                break;
            case AgentEvent.Finished finished:
                EndReasoning();
                NewLine();
                if (finished.Result.StopReason != AgentResult.Answer)
                    stdout.WriteLine($"{C(Yellow)}(stopped: {StopText(finished.Result.StopReason)}){C(Reset)}");
                break;
        }
    }

    public static string StopText(string reason) => reason switch
    {
        AgentResult.MaxSteps => "the step limit was reached",
        AgentResult.TokenBudget => "the token budget is spent",
        AgentResult.Length => "a step hit the output limit without finishing",
        AgentResult.RepeatedCall => "the same tool call was repeated 12 times",
        _ => reason,
    };

    public void Info(string text, string kind = "info")
    {
        EndReasoning();
        NewLine();
        stdout.WriteLine(kind == "status" ? C(Dim) + text + C(Reset) : text);
    }

    public void Error(string text)
    {
        EndReasoning();
        NewLine();
        stdout.WriteLine($"{C(Red)}error: {text}{C(Reset)}");
    }

    public void Diff(string diff)
    {
        EndReasoning();
        NewLine();
        foreach (string line in diff.Split('\n'))
        {
            string code = line.StartsWith('+') && !line.StartsWith("+++", StringComparison.Ordinal) ? Green
                : line.StartsWith('-') && !line.StartsWith("---", StringComparison.Ordinal) ? Red : line.StartsWith("@@", StringComparison.Ordinal) ? Cyan : "";
            stdout.WriteLine(code.Length > 0 ? C(code) + line + C(Reset) : line);
        }
    }

    private void EndReasoning()
    {
        if (!_inReasoning) return;
        _inReasoning = false;
        string took = string.Create(CultureInfo.InvariantCulture, $"{_thinkingClock.Elapsed.TotalSeconds:0.0} s");
        if (color && !ShowThinking)
        {
            // Collapse the streamed thinking into one line now that the step moves on: erase exactly the rows it took
            // (wrapped lines count; no move at all for one row, since ESC[0A moves up a row on most terminals).
            int rows = ChatCommand.TerminalRows("thinking: " + LastReasoning, Terminal.Width());
            stdout.Write(Reset + "\r" + (rows > 1 ? $"\u001b[{rows - 1}A" : "") + "\u001b[J");
            stdout.WriteLine($"{Dim}▸ thought for {took} (/thinking to show){Reset}");
        }
        else stdout.WriteLine(C(Reset));
        _lineOpen = false;
    }

    private void NewLine()
    {
        if (_lineOpen) stdout.WriteLine();
        _lineOpen = false;
    }

    private static string Clip(string text, int max)
    {
        text = text.Replace("\n", "⏎ ");
        return text.Length <= max ? text : text[..max] + "…";
    }
}

/// <summary>
/// <c>--output stream-json</c>: one JSON object per line, in order — <c>reasoning</c>, <c>content</c>, <c>tool_call</c>,
/// <c>tool_result</c>, <c>step</c>, <c>notice</c>, <c>compaction</c>, <c>result</c>, plus <c>session</c>, <c>info</c>,
/// <c>error</c> and <c>diff</c> from the program.
/// </summary>
internal sealed class StreamJsonOutput(TextWriter stdout) : IAgentOutput
{
    // Sub-agents of a swarm report from other threads; each line is written whole, and theirs carry an "agent" field.
    private readonly object _lock = new();
    private string? _agent;

    private void Write(JsonObject line)
    {
        lock (_lock)
        {
            if (_agent is not null) line["agent"] = _agent;
            stdout.WriteLine(line.ToJsonString());
            stdout.Flush();
        }
    }

    public void Event(AgentEvent e)
    {
        lock (_lock) EventCore(e);
    }

    /// <summary>A swarm sub-agent's event: the same line as the orchestrator's, with <c>"agent": ID</c>.</summary>
    public void SubAgentEvent(string agentId, AgentEvent e)
    {
        lock (_lock)
        {
            _agent = agentId;
            try { EventCore(e); }
            finally { _agent = null; }
        }
    }

    /// <summary>A line of the program's own (a sub-agent's start or report).</summary>
    public void Line(JsonObject line) => Write(line);

    private void EventCore(AgentEvent e)
    {
        switch (e)
        {
            case AgentEvent.ReasoningDelta r: Write(new JsonObject { ["type"] = "reasoning", ["text"] = r.Text }); break;
            case AgentEvent.ContentDelta c: Write(new JsonObject { ["type"] = "content", ["text"] = c.Text }); break;
            case AgentEvent.ToolCalled call:
                Write(new JsonObject { ["type"] = "tool_call", ["id"] = call.Id, ["name"] = call.Name, ["arguments"] = call.Arguments });
                break;
            case AgentEvent.ToolReturned result:
                Write(new JsonObject
                {
                    ["type"] = "tool_result", ["id"] = result.Id, ["name"] = result.Name, ["content"] = result.Content,
                    ["is_error"] = result.IsError, ["ms"] = Math.Round(result.Elapsed.TotalMilliseconds, 1),
                });
                break;
            case AgentEvent.StepCompleted step:
                Write(new JsonObject
                {
                    ["type"] = "step", ["step"] = step.Step, ["input_tokens"] = step.Usage.InputTokens,
                    ["cached_input_tokens"] = step.Usage.CachedInputTokens, ["output_tokens"] = step.Usage.OutputTokens,
                    ["ms"] = Math.Round(step.Elapsed.TotalMilliseconds, 1), ["finish"] = step.FinishReason,
                });
                break;
            case AgentEvent.Notice notice: Write(new JsonObject { ["type"] = "notice", ["kind"] = notice.Kind, ["text"] = notice.Text }); break;
            case AgentEvent.Compacted compacted:
                Write(new JsonObject { ["type"] = "compaction", ["tokens_before"] = compacted.TokensBefore, ["summary"] = compacted.Summary });
                break;
            case AgentEvent.Finished finished:
                var run = finished.Result;
                Write(new JsonObject
                {
                    ["type"] = "result", ["stop_reason"] = run.StopReason, ["answer"] = run.FinalAnswer, ["steps"] = run.Steps,
                    ["tool_calls"] = run.ToolCalls, ["malformed_calls"] = run.MalformedCalls, ["input_tokens"] = run.Usage.InputTokens,
                    ["cached_input_tokens"] = run.Usage.CachedInputTokens, ["output_tokens"] = run.Usage.OutputTokens,
                });
                break;
        }
    }

    public void Info(string text, string kind = "info") => Write(new JsonObject { ["type"] = kind, ["text"] = text });

    public void Error(string text) => Write(new JsonObject { ["type"] = "error", ["text"] = text });

    public void Diff(string diff) => Write(new JsonObject { ["type"] = "diff", ["text"] = diff });
}
