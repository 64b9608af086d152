using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Sessions;
using KimiSharp.Agent.Swarm;
using Microsoft.Extensions.AI;

namespace KimiSharp.Cli.Code;

/// <summary>
/// <c>kimi code --swarm</c>: gives the agent <c>spawn_agents</c> and <c>collect_agents</c>. Sub-agents run on the same
/// model with fresh instances of the same built-in tools (not the MCP servers' tools, whose connections are shared) under
/// the same approval mode, but nobody is asked: a sub-agent's call that needs approval is refused unless --yolo. Their
/// sessions go beside the main session (<c>ID.agents/</c>), their events to the output (with an <c>agent</c> field in
/// stream-json), and cancelling the run cancels them.
/// </summary>
internal sealed class CodeSwarm : IAsyncDisposable
{
    private readonly IAgentOutput _view;
    private Func<AgentSession>? _session;

    private CodeSwarm(AgentSwarm swarm, IAgentOutput view)
    {
        Swarm = swarm;
        _view = view;
    }

    public AgentSwarm Swarm { get; }

    /// <param name="instructions">The sub-agents' system prompt when their task gives none (the coding agent's, against an endpoint).</param>
    public static CodeSwarm Create(IChatClient client, Func<IReadOnlyList<AIFunction>> createTools, ApprovalMode mode, AgentOptions agentOptions,
        PriceTable prices, string? instructions, IAgentOutput view)
    {
        CodeSwarm? wiring = null;
        var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = client,
            CreateTools = createTools,
            CreateDispatcher = tools => new ToolDispatcher(tools, new ToolDispatcherOptions { Mode = mode }),
            AgentOptions = agentOptions with { ReservedCallIds = [], OnStop = null },
            Prices = prices,
            DefaultInstructions = instructions,
            OnEvent = e => wiring?.Show(e),
        });
        wiring = new CodeSwarm(swarm, view);
        return wiring;
    }

    /// <summary>The output the main agent writes to: it also tells the swarm which step and call spawn sub-agents.</summary>
    public IAgentOutput Wrap(IAgentOutput view) => new ObservingOutput(view, this);

    /// <summary>Sub-agent sessions follow the main agent's current session (it changes with /new).</summary>
    public void Attach(CodeAgent agent) => _session = () => agent.Session;

    private void Show(SwarmEvent e)
    {
        if (_view is StreamJsonOutput json)
        {
            switch (e)
            {
                case SwarmEvent.Started started:
                    json.Line(new JsonObject
                    {
                        ["type"] = "agent_start", ["agent"] = started.AgentId, ["task"] = started.Task, ["background"] = started.Background,
                        ["parent_call_id"] = started.ParentCallId, ["session"] = started.SessionPath,
                    });
                    break;
                case SwarmEvent.Progress progress:
                    json.SubAgentEvent(progress.AgentId, progress.Event);
                    break;
                case SwarmEvent.Ended ended:
                    var line = ended.Report.ToJson(int.MaxValue);
                    line["agent"] = line["id"]!.DeepClone();
                    line.Remove("id");
                    line["type"] = "agent_report";
                    json.Line(line);
                    break;
            }
            return;
        }
        // The terminal: one line per start, tool call, result and report (their streamed text would interleave).
        switch (e)
        {
            case SwarmEvent.Started started:
                _view.Info($"  [{started.AgentId}] started{(started.Background ? " in the background" : "")}: {Clip(started.Task, 120)}", "status");
                break;
            case SwarmEvent.Progress { Event: AgentEvent.ToolCalled call } p:
                _view.Info($"  [{p.AgentId}] → {call.Name}({Clip(call.Arguments, 120)})", "status");
                break;
            case SwarmEvent.Progress { Event: AgentEvent.ToolReturned result } p:
                _view.Info($"  [{p.AgentId}] ← {(result.IsError ? "error " : "")}{Clip(result.Content, 160)}", "status");
                break;
            case SwarmEvent.Ended ended:
                var report = ended.Report;
                _view.Info($"  [{report.Id}] {SubAgentReport.StatusName(report.Status)} after {report.Steps} steps: {Clip(report.Answer ?? report.Error ?? "", 200)}", "status");
                break;
        }
    }

    private static string Clip(string text, int max)
    {
        text = text.ReplaceLineEndings(" ⏎ ");
        return text.Length <= max ? text : text[..max] + "…";
    }

    public ValueTask DisposeAsync() => Swarm.DisposeAsync();

    private sealed class ObservingOutput(IAgentOutput inner, CodeSwarm owner) : IAgentOutput
    {
        public void Event(AgentEvent e)
        {
            if (owner._session is { } session) owner.Swarm.ParentSession = session();
            owner.Swarm.Observe(e);
            inner.Event(e);
        }

        public void Info(string text, string kind = "info") => inner.Info(text, kind);

        public void Error(string text) => inner.Error(text);

        public void Diff(string diff) => inner.Diff(diff);
    }
}
