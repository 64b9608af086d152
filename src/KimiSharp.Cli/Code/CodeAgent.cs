using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Mcp;
using KimiSharp.Agent.Sessions;
using Microsoft.Extensions.AI;

namespace KimiSharp.Cli.Code;

/// <summary>
/// One <c>kimi code</c> session: the model (any <see cref="IChatClient"/>), its tools behind the dispatcher (approvals,
/// validation, timeouts), the JSONL session, and the turn loop with its slash commands.
/// </summary>
internal sealed class CodeAgent : IAsyncDisposable
{
    private readonly IChatClient _client;
    private readonly ToolDispatcher _dispatcher;
    private readonly McpToolset? _mcp;
    private readonly IAgentOutput _output;
    private readonly JsonArray _preamble;
    private AgentOptions _options;
    private AgentSession _session;
    private readonly Func<AgentSession> _newSession;
    private readonly PriceTable _prices;

    public CodeAgent(IChatClient client, string modelLabel, bool local, ToolDispatcher dispatcher, McpToolset? mcp, AgentOptions options,
        AgentSession session, Func<AgentSession> newSession, JsonArray preamble, IAgentOutput output, PriceTable prices, long contextTokens)
    {
        _client = client;
        ModelLabel = modelLabel;
        Local = local;
        _dispatcher = dispatcher;
        _mcp = mcp;
        _options = options;
        _session = session;
        _newSession = newSession;
        _preamble = preamble;
        _output = output;
        _prices = prices;
        ContextTokens = contextTokens;
    }

    public string ModelLabel { get; private set; }
    public bool Local { get; }
    public long ContextTokens { get; }
    public AgentSession Session => _session;
    public ApprovalMode Mode => _dispatcher.Mode;

    /// <summary>Tokens in the context after the last step (what the endpoint reported).</summary>
    public long ContextUsed { get; private set; }

    /// <summary>Runs one task to its end (or until cancelled; finished steps stay in the session). Returns null when cancelled.</summary>
    public async Task<AgentResult?> RunTurnAsync(string task, CancellationToken cancellationToken)
    {
        if (_session.Messages.Count == 0)
            foreach (var m in _preamble) _session.AddMessage(m!.AsObject()); // system messages first; AddUser records any message
        _session.AddMessage(AgentMessages.User(task));
        return await ContinueAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Continues the session's conversation as it stands (a resumed run with calls still to answer, or a new task).</summary>
    public async Task<AgentResult?> ContinueAsync(CancellationToken cancellationToken)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in _session.Messages)
            if (m?["tool_calls"] is JsonArray calls)
                foreach (var c in calls)
                    if (c?["id"]?.GetValue<string>() is { } id) used.Add(id);
        var runner = new AgentRunner(_client, _dispatcher, _options with { ReservedCallIds = used });
        AgentResult? result = null;
        try
        {
            await foreach (var e in _session.Record(runner.RunAsync(Visible(), cancellationToken), cancellationToken).ConfigureAwait(false))
            {
                if (e is AgentEvent.StepCompleted step && step.Usage.InputTokens + step.Usage.OutputTokens > 0)
                    ContextUsed = step.Usage.InputTokens + step.Usage.OutputTokens;
                if (e is AgentEvent.Finished f) result = f.Result;
                _output.Event(e);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _session.RecordCancelled();
            _output.Info("(stopped; the finished steps are kept in the session)", "notice");
            return null;
        }
        _output.Info(StatusLine(), "status");
        return result;
    }

    /// <summary>
    /// What the next run sees. A model trained on single tasks with a step window (k2-nano) sees the current task only
    /// (its notes in the memory tool carry over), so each question is answered on its own terms and a long session
    /// never outgrows its context; models that summarize see everything (compaction handles it).
    /// </summary>
    private JsonArray Visible()
    {
        if (!Local) return _session.Messages;
        var (prefix, steps) = ContextWindow.Split(_session.Messages);
        var visible = new JsonArray();
        foreach (var m in prefix.Where(m => AgentMessages.Role(m) == "system")) visible.Add(m.DeepClone());
        if (prefix.Count > 0 && AgentMessages.Role(prefix[^1]) == "user") visible.Add(prefix[^1].DeepClone());
        foreach (var step in steps)
            foreach (var m in step) visible.Add(m.DeepClone());
        return visible;
    }

    public string StatusLine()
    {
        var totals = _session.Totals;
        string context = ContextTokens > 0
            ? string.Create(CultureInfo.InvariantCulture, $"context {ContextUsed:N0}/{ContextTokens:N0} tokens ({100.0 * ContextUsed / ContextTokens:0}%)")
            : string.Create(CultureInfo.InvariantCulture, $"context {ContextUsed:N0} tokens");
        string cost = _prices == PriceTable.Free ? "local" : string.Create(CultureInfo.InvariantCulture, $"{totals.Cost:0.0000} {_prices.Currency}");
        return $"[{ModelLabel} · {context} · {totals.Steps} steps · {totals.InputTokens:N0} in / {totals.OutputTokens:N0} out · {cost} · {ModeName(Mode)}]";
    }

    private static string ModeName(ApprovalMode mode) => mode switch
    {
        ApprovalMode.Yolo => "yolo",
        ApprovalMode.Plan => "plan mode",
        _ => "asks before changes",
    };

    public const string Help = """
        /help              this list
        /model             the model and endpoint in use
        /thinking [on|off] show thinking in full, or collapse it (with no argument: toggles; 'last' prints the last)
        /new               start a new session (the current one stays on disk)
        /sessions          the sessions of this workspace
        /compact           summarize older history now
        /yolo              approve every tool call from now on (again: ask again)
        /plan              plan mode: read-only tools only (again: leave it)
        /mcp               the MCP servers and their tools
        /usage             tokens and cost of this session
        /exit              quit
        """;

    /// <summary>Handles a slash command; false when the session should end.</summary>
    public async Task<bool> CommandAsync(string line, TerminalAgentOutput? terminal, string sessionsDirectory, CancellationToken cancellationToken)
    {
        string[] parts = line.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string argument = parts.Length > 1 ? parts[1] : "";
        switch (parts[0])
        {
            case "/exit" or "/quit":
                return false;
            case "/help":
                _output.Info(Help);
                break;
            case "/model":
                _output.Info($"model: {ModelLabel}{(Local ? " (in process)" : "")}; context {ContextTokens:N0} tokens; thinking {(_options.Thinking is bool t ? (t ? "on" : "off") : "model default")}");
                break;
            case "/thinking":
                if (argument == "last") { _output.Info(terminal?.LastReasoning is { Length: > 0 } r ? r : "(no reasoning yet)"); break; }
                if (terminal is not null) terminal.ShowThinking = argument switch { "on" => true, "off" => false, _ => !terminal.ShowThinking };
                if (argument is "on" or "off" && !Local) _options = _options with { Thinking = argument == "on" };
                _output.Info($"thinking is {(terminal?.ShowThinking == true ? "shown in full" : "collapsed")}" +
                    (argument is "on" or "off" && !Local ? $"; the model's thinking is {argument}" : ""));
                break;
            case "/new":
                _session.Dispose();
                _session = _newSession();
                ContextUsed = 0;
                _output.Info($"new session {_session.Id}");
                break;
            case "/sessions":
                var files = Directory.Exists(sessionsDirectory)
                    ? new DirectoryInfo(sessionsDirectory).EnumerateFiles("*.jsonl").OrderByDescending(f => f.LastWriteTimeUtc).Take(20).ToList() : [];
                if (files.Count == 0) { _output.Info("(no sessions yet)"); break; }
                var sb = new StringBuilder();
                foreach (var f in files)
                    sb.AppendLine(CultureInfo.InvariantCulture, $"{Path.GetFileNameWithoutExtension(f.Name)}  {f.LastWriteTime:yyyy-MM-dd HH:mm}  {FirstTask(f.FullName)}{(f.FullName == _session.Path ? "  (current)" : "")}");
                sb.Append("resume one with: kimi code --session ID");
                _output.Info(sb.ToString());
                break;
            case "/compact":
                if (Local) { _output.Info("k2-nano keeps a window of recent steps instead of summarizing; nothing to compact"); break; }
                var compacted = await new AgentRunner(_client, _dispatcher, _options).CompactAsync(_session.Messages, cancellationToken).ConfigureAwait(false);
                if (compacted is null) { _output.Info("nothing older than the latest steps to summarize"); break; }
                _session.ReplaceMessages(compacted, ContextUsed);
                ContextUsed = compacted.EstimatedTokens;
                _output.Info($"compacted to about {compacted.EstimatedTokens:N0} tokens");
                break;
            case "/yolo":
                _dispatcher.Mode = _dispatcher.Mode == ApprovalMode.Yolo ? ApprovalMode.Ask : ApprovalMode.Yolo;
                _output.Info(_dispatcher.Mode == ApprovalMode.Yolo ? "yolo: every tool call runs without asking" : "tool calls that change things ask first again");
                break;
            case "/plan":
                _dispatcher.Mode = _dispatcher.Mode == ApprovalMode.Plan ? ApprovalMode.Ask : ApprovalMode.Plan;
                _output.Info(_dispatcher.Mode == ApprovalMode.Plan ? "plan mode: only read-only tools run" : "plan mode off: tool calls that change things ask first");
                break;
            case "/mcp":
                if (_mcp is null) { _output.Info("no MCP servers (pass --mcp FILE, an mcp.json with mcpServers)"); break; }
                var text = new StringBuilder();
                foreach (var source in _mcp.Sources)
                    text.AppendLine($"{source.Name}: {string.Join(", ", source.Tools.Select(t => t.Name))}");
                foreach (var failure in _mcp.Failures) text.AppendLine($"{failure.ServerName}: failed — {failure.Message}");
                _output.Info(text.ToString().TrimEnd());
                break;
            case "/usage":
                var totals = _session.Totals;
                _output.Info(string.Create(CultureInfo.InvariantCulture,
                    $"session {_session.Id}: {totals.Steps} steps, {totals.InputTokens:N0} input tokens ({totals.CachedInputTokens:N0} from cache), {totals.OutputTokens:N0} output tokens, {totals.Searches} searches, cost {totals.Cost:0.0000} {_prices.Currency}"));
                break;
            default:
                _output.Error($"unknown command {parts[0]} (/help lists them)");
                break;
        }
        return true;
    }

    private static string FirstTask(string path)
    {
        try
        {
            foreach (var line in File.ReadLines(path).Take(50))
                if (JsonNode.Parse(line) is JsonObject r && r["message"] is JsonObject m && AgentMessages.Role(m) == "user")
                {
                    string text = AgentMessages.Text(m["content"]).ReplaceLineEndings(" ");
                    return text.Length > 60 ? text[..60] + "…" : text;
                }
        }
        catch (System.Text.Json.JsonException) { }
        return "";
    }

    /// <summary>Where a workspace's sessions live: <c>$KIMI_HOME/sessions/NAME-HASH</c> (default <c>~/.kimisharp</c>).</summary>
    public static string SessionsDirectory(string workspace)
    {
        string home = Environment.GetEnvironmentVariable("KIMI_HOME") is { Length: > 0 } h ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kimisharp");
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(workspace));
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(full)))[..10];
        string name = new string(Path.GetFileName(full).Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        return Path.Combine(home, "sessions", $"{(name.Length > 0 ? name : "root")}-{hash}");
    }

    public async ValueTask DisposeAsync()
    {
        _session.Dispose();
        if (_mcp is not null) await _mcp.DisposeAsync().ConfigureAwait(false);
        _client.Dispose();
    }
}
