using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Swarm;

namespace KimiSharp.Agent.Sessions;

/// <summary>One session of a swarm run with its sub-agents' sessions, measured from the files.</summary>
/// <param name="Stage">For a sub-agent: the parent's step (1-based over the parent session) whose call spawned it.</param>
public sealed record SessionTreeNode(string Path, string Id, JsonObject Header, int Steps, int ToolCalls, StepUsage Usage, double Cost,
    string? StopReason, DateTimeOffset? Start, DateTimeOffset? End, int Stage, IReadOnlyList<SessionTreeNode> Children)
{
    public string? AgentId => Header["agent_id"]?.GetValue<string>();

    public string? ParentCallId => Header["parent_call_id"]?.GetValue<string>();

    /// <summary>Σ over this session's steps of 1 + the slowest sub-agent (itself measured the same way) spawned in that step.</summary>
    public int CriticalSteps => Steps + SwarmMetrics.Stages(Children.Select(c => (c.Stage, c.CriticalSteps, c.AgentId))).Sum(s => s.SlowestSubAgentSteps);

    /// <summary>Every session of the tree, this one first.</summary>
    public IEnumerable<SessionTreeNode> All() => Children.SelectMany(c => c.All()).Prepend(this);
}

/// <summary>
/// A swarm run on disk: the orchestrator's session and, in <c>ID.agents/</c> beside it, one session per sub-agent whose
/// header names the parent session and the call that spawned it (see <see cref="AgentSwarm"/>). <see cref="Render"/>
/// is <c>kimi trace show</c>: the orchestrator's trace with each sub-agent's trace indented under its spawning call,
/// then the critical path and the tree's totals.
/// </summary>
public static class SwarmTrace
{
    /// <summary>Reads a session and its sub-agent sessions (recursively).</summary>
    public static SessionTreeNode Load(string path) => Load(path, stageOf: null);

    private static SessionTreeNode Load(string path, Dictionary<string, int>? stageOf)
    {
        var (records, _) = AgentSession.ReadRecords(path);
        if (records.Count == 0 || records[0]["type"]?.GetValue<string>() != AgentSession.Start)
            throw new InvalidDataException($"{path} is not a KimiSharp session (its first line is not a session header)");
        var header = records[0];
        int steps = 0, calls = 0;
        var usage = default(StepUsage);
        double cost = 0;
        string? stop = null;
        var callStage = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            switch (r["type"]?.GetValue<string>())
            {
                case AgentSession.Step:
                    steps++;
                    usage += new StepUsage(Long(r["input_tokens"]), Long(r["cached_input_tokens"]), Long(r["output_tokens"]));
                    cost += r["cost"]?.GetValue<double>() ?? 0;
                    break;
                case AgentSession.ToolCall:
                    calls++;
                    // A step's calls are recorded after its step record, so they belong to the step counted so far.
                    if (r["id"]?.GetValue<string>() is { } callId) callStage[callId] = steps;
                    break;
                case AgentSession.RunEnd:
                    stop = r["stop_reason"]?.GetValue<string>();
                    break;
            }
        }
        string id = header["id"]?.GetValue<string>() ?? System.IO.Path.GetFileNameWithoutExtension(path);
        var children = new List<SessionTreeNode>();
        string folder = AgentSwarm.SubSessionsDirectory(path);
        if (Directory.Exists(folder))
            foreach (var file in Directory.EnumerateFiles(folder, "*.jsonl"))
            {
                var child = Load(file, callStage);
                if (child.Header["parent_session"]?.GetValue<string>() is { } parent && parent != id) continue;
                children.Add(child);
            }
        children.Sort((a, b) => AgentOrder(a).CompareTo(AgentOrder(b)));
        int stage = header["parent_call_id"]?.GetValue<string>() is { } parentCall && stageOf?.TryGetValue(parentCall, out int s) == true ? s
            : header["stage"]?.GetValue<int>() ?? 0;
        return new SessionTreeNode(path, id, header, steps, calls, usage, cost, stop, Time(records[0]), Time(records[^1]), stage, children);
    }

    /// <summary>Renders the tree: the orchestrator's trace, each sub-agent's trace indented under the call that spawned it, then the critical path.</summary>
    public static void Render(string path, TextWriter output, bool showReasoning = true, int clip = 400)
    {
        var tree = Load(path);
        RenderNode(tree, output, showReasoning, clip);
        if (tree.Children.Count == 0) return;
        output.WriteLine();
        WriteSummary(tree, output);
    }

    private static void RenderNode(SessionTreeNode node, TextWriter output, bool showReasoning, int clip)
    {
        var byCall = node.Children.GroupBy(c => c.ParentCallId ?? "").ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var shown = new HashSet<SessionTreeNode>();
        TraceRenderer.Render(node.Path, output, showReasoning, clip, (record, writer) =>
        {
            if (record["type"]?.GetValue<string>() != AgentSession.ToolResult || record["id"]?.GetValue<string>() is not { } callId) return;
            if (!byCall.TryGetValue(callId, out var children)) return;
            foreach (var child in children) WriteChild(child, writer, showReasoning, clip, shown);
        });
        // Sub-agents whose spawning call has no recorded result (the process stopped while they ran).
        foreach (var child in node.Children.Where(c => !shown.Contains(c))) WriteChild(child, output, showReasoning, clip, shown);
    }

    private static void WriteChild(SessionTreeNode child, TextWriter writer, bool showReasoning, int clip, HashSet<SessionTreeNode> shown)
    {
        shown.Add(child);
        writer.WriteLine($"    ┌ {child.AgentId ?? child.Id}: {child.StopReason ?? "unfinished"}, {child.Steps} steps, {child.ToolCalls} tool calls ({child.Path})");
        var indented = new IndentedWriter(writer, "    │ ");
        RenderNode(child, indented, showReasoning, clip);
        indented.Flush();
        writer.WriteLine("    └");
    }

    /// <summary>The critical path and totals of a tree.</summary>
    public static void WriteSummary(SessionTreeNode tree, TextWriter output)
    {
        var all = tree.All().ToList();
        var stages = SwarmMetrics.Stages(tree.Children.Select(c => (c.Stage, c.CriticalSteps, c.AgentId)));
        output.WriteLine($"swarm: {all.Count - 1} sub-agent session(s) under {tree.Id}");
        output.WriteLine($"critical path: {tree.CriticalSteps} critical steps ({tree.Steps} orchestrator steps" +
            (stages.Count > 0 ? " + " + string.Join(" + ", stages.Select(s => s.SlowestSubAgentSteps)) : "") + ")");
        foreach (var stage in stages)
        {
            var slowest = tree.Children.First(c => c.AgentId == stage.SlowestAgentId && c.Stage == stage.Stage);
            string task = slowest.Header["task"]?.GetValue<string>() ?? "";
            output.WriteLine($"  step {stage.Stage}: 1 + {stage.SlowestSubAgentSteps}, slowest of {stage.SubAgents}: {stage.SlowestAgentId} \"{Clip(task, 60)}\"");
        }
        var usage = all.Aggregate(default(StepUsage), (sum, n) => sum + n.Usage);
        var start = all.Where(n => n.Start is not null).Min(n => n.Start);
        var end = all.Where(n => n.End is not null).Max(n => n.End);
        var failed = all.Skip(1).Count(n => n.StopReason != AgentResult.Answer);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"tree totals: {all.Sum(n => n.Steps)} steps, {all.Sum(n => n.ToolCalls)} tool calls, {usage.InputTokens:N0} input / {usage.OutputTokens:N0} output tokens, cost {all.Sum(n => n.Cost):0.####}, wall-clock {(end - start)?.TotalSeconds ?? 0:0.0} s, {failed} sub-agent(s) without an answer"));
    }

    private static int AgentOrder(SessionTreeNode node) =>
        node.AgentId is { } a && a.StartsWith("agent-", StringComparison.Ordinal) && int.TryParse(a.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : int.MaxValue;

    private static DateTimeOffset? Time(JsonObject record) =>
        record["time"]?.GetValue<string>() is { } t && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) ? at : null;

    private static long Long(JsonNode? node) => node?.GetValue<long>() ?? 0;

    private static string Clip(string text, int max)
    {
        text = text.ReplaceLineEndings(" ");
        return text.Length <= max ? text : text[..max] + "…";
    }

    /// <summary>Prefixes every line written through it.</summary>
    private sealed class IndentedWriter(TextWriter inner, string prefix) : TextWriter
    {
        private bool _atLineStart = true;

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (_atLineStart && value != '\r') inner.Write(prefix);
            _atLineStart = value == '\n';
            inner.Write(value);
        }

        public override void Write(string? value)
        {
            foreach (char c in value ?? "") Write(c);
        }

        public override void Flush() => inner.Flush();
    }
}
