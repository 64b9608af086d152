using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Sessions;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Agent.Swarm;

/// <summary>
/// An orchestrator's sub-agents: <see cref="SpawnTool"/> (<c>spawn_agents</c>) runs sub-tasks as independent
/// <see cref="AgentRunner"/>s — each with only its own instructions and task in context, fresh tool instances, its own
/// step, token and time budget, and its own model — up to <see cref="SwarmOptions.MaxConcurrency"/> at once, and hands
/// back only their final reports; <see cref="CollectTool"/> (<c>collect_agents</c>) gathers the reports of those run in
/// the background. A sub-agent that fails, times out, runs out of budget or is cancelled yields an error report naming
/// why; the orchestrator's run goes on. Cancelling the orchestrator's call cancels its sub-agents; disposing the swarm
/// (or <see cref="CancelAll"/>) cancels background ones too.
/// <para>
/// For measurement, pass the orchestrator's events through <see cref="Observe(AgentEvent)"/> (or the enumerable
/// overload): the swarm then knows which step and call spawned each sub-agent, and <see cref="Report"/> gives critical
/// steps. Each sub-agent is recorded in its own session next to <see cref="ParentSession"/>, linked by ids.
/// </para>
/// </summary>
public sealed class AgentSwarm : IAsyncDisposable
{
    /// <summary>The tools' names as the orchestrator sees them.</summary>
    public const string SpawnToolName = "spawn_agents", CollectToolName = "collect_agents";

    private readonly SwarmOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly object _eventLock = new();
    private readonly object _stateLock = new();
    private readonly IReadOnlyList<string> _toolNames;
    private readonly List<SubAgentReport> _finished = [];
    private readonly ConcurrentDictionary<string, BackgroundAgent> _background = new(StringComparer.Ordinal);
    private readonly Queue<string> _pendingSpawnCalls = new();
    private readonly List<Task> _running = [];
    private int _nextId, _orchestratorSteps, _orchestratorToolCalls, _unobservedStages;
    private StepUsage _orchestratorUsage;
    private double _orchestratorCost;
    private long _startTicks, _lastTicks;

    public AgentSwarm(SwarmOptions options, ILogger<AgentSwarm>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        _toolNames = options.CreateTools().Select(t => t.Name).Where(n => n is not SpawnToolName and not CollectToolName).ToList();
        SpawnTool = new SpawnAgentsFunction(this);
        CollectTool = new CollectAgentsFunction(this);
    }

    public SwarmOptions Options => _options;

    /// <summary><c>spawn_agents</c>: give it to the orchestrator.</summary>
    public AIFunction SpawnTool { get; }

    /// <summary><c>collect_agents</c>: gathers background sub-agents' reports.</summary>
    public AIFunction CollectTool { get; }

    /// <summary>Both tools.</summary>
    public IReadOnlyList<AIFunction> Tools => [SpawnTool, CollectTool];

    /// <summary>The names of the tools a sub-agent can be given.</summary>
    public IReadOnlyList<string> SubAgentToolNames => _toolNames;

    /// <summary>The orchestrator's session: sub-agent sessions go in a folder beside it (<see cref="SubSessionsDirectory"/>) and name it as their parent.</summary>
    public AgentSession? ParentSession { get; set; }

    /// <summary>Where the sub-agent sessions of the session at <paramref name="sessionPath"/> are kept: <c>ID.agents/</c> beside it.</summary>
    public static string SubSessionsDirectory(string sessionPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(sessionPath))!, Path.GetFileNameWithoutExtension(sessionPath) + ".agents");

    /// <summary>Notes an orchestrator event: its steps, usage and tool calls, and which call a spawn belongs to.</summary>
    public void Observe(AgentEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        lock (_stateLock)
        {
            Touch();
            switch (e)
            {
                case AgentEvent.StepCompleted step:
                    _orchestratorSteps++;
                    _orchestratorUsage += step.Usage;
                    _orchestratorCost += _options.Prices.Cost(step.Usage);
                    break;
                case AgentEvent.ToolCalled call:
                    _orchestratorToolCalls++;
                    if (call.Name == SpawnToolName) _pendingSpawnCalls.Enqueue(call.Id);
                    break;
                case AgentEvent.ToolReturned returned when returned.Name == SpawnToolName && _pendingSpawnCalls.Contains(returned.Id):
                    // A spawn the dispatcher refused before running it (plan mode, a bad argument): drop its id.
                    var keep = _pendingSpawnCalls.Where(id => id != returned.Id).ToList();
                    _pendingSpawnCalls.Clear();
                    foreach (var id in keep) _pendingSpawnCalls.Enqueue(id);
                    break;
            }
        }
    }

    /// <summary>Passes an orchestrator run through <see cref="Observe(AgentEvent)"/>.</summary>
    public async IAsyncEnumerable<AgentEvent> Observe(IAsyncEnumerable<AgentEvent> run, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        await foreach (var e in run.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            Observe(e);
            yield return e;
        }
    }

    /// <summary>Runs sub-tasks and waits for them (background ones are only started); the reports of the waited-for ones, in order.</summary>
    public async Task<SpawnResult> SpawnAsync(IReadOnlyList<SubAgentTask> tasks, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        if (tasks.Count == 0) throw new ArgumentException("no sub-tasks given", nameof(tasks));
        if (tasks.Count > _options.MaxTasksPerCall)
            throw new ArgumentException($"{tasks.Count} sub-tasks in one call; at most {_options.MaxTasksPerCall} are allowed", nameof(tasks));
        for (int i = 0; i < tasks.Count; i++)
        {
            var task = tasks[i] ?? throw new ArgumentException($"sub-task {i} is null", nameof(tasks));
            if (string.IsNullOrWhiteSpace(task.Task)) throw new ArgumentException($"sub-task {i} has no task text", nameof(tasks));
            if (task.Model is { } model && !_options.Models.ContainsKey(model))
                throw new ArgumentException($"sub-task {i} names an unknown model '{model}'", nameof(tasks));
            if (task.Tools?.FirstOrDefault(t => !_toolNames.Contains(t)) is { } tool)
                throw new ArgumentException($"sub-task {i} names an unknown tool '{tool}' (available: {string.Join(", ", _toolNames)})", nameof(tasks));
            if (task.MaxSteps < 1 || task.MaxTokens < 1 || task.Timeout <= TimeSpan.Zero)
                throw new ArgumentException($"sub-task {i}: steps, tokens and timeout must be positive", nameof(tasks));
        }
        string? callId;
        int stage;
        lock (_stateLock)
        {
            Touch();
            // The running call's own id when the runner gives it (calls of one step may run side by side); else the
            // oldest spawn call observed and not yet started.
            if (ToolCallContext.CurrentCallId is { } current && _pendingSpawnCalls.Contains(current))
            {
                callId = current;
                var rest = _pendingSpawnCalls.Where(id => id != current).ToList();
                _pendingSpawnCalls.Clear();
                foreach (var id in rest) _pendingSpawnCalls.Enqueue(id);
            }
            else callId = _pendingSpawnCalls.TryDequeue(out var id) ? id : null;
            // Unobserved orchestrators: each spawn call is a stage of its own (numbered below zero, apart from real steps).
            stage = callId is not null || _orchestratorSteps > 0 ? _orchestratorSteps : -++_unobservedStages;
        }

        var foreground = new List<Task<SubAgentReport>>();
        var started = new List<(string Id, string Task)>();
        foreach (var task in tasks)
        {
            string agentId = "agent-" + Interlocked.Increment(ref _nextId).ToString(CultureInfo.InvariantCulture);
            if (task.RunInBackground)
            {
                var run = RunAsync(agentId, task, callId, stage, _lifetime.Token);
                _background[agentId] = new BackgroundAgent(agentId, task.Task, run);
                lock (_stateLock) _running.Add(run);
                started.Add((agentId, task.Task));
            }
            else foreground.Add(RunAsync(agentId, task, callId, stage, cancellationToken));
        }
        var reports = await Task.WhenAll(foreground).ConfigureAwait(false);
        // The reports say who was cancelled, but the orchestrator's own call must still end as cancelled.
        cancellationToken.ThrowIfCancellationRequested();
        return new SpawnResult(reports, started);
    }

    /// <summary>
    /// Reports of background sub-agents: those named (again, if already collected), or else every one not yet
    /// collected; with <paramref name="wait"/>, waits for them to end first, otherwise returns the ended ones and names
    /// the rest as still running.
    /// </summary>
    public async Task<CollectResult> CollectAsync(IReadOnlyList<string>? ids, bool wait, CancellationToken cancellationToken = default)
    {
        List<BackgroundAgent> chosen;
        if (ids is { Count: > 0 })
        {
            chosen = [];
            foreach (var id in ids.Distinct(StringComparer.Ordinal))
                chosen.Add(_background.TryGetValue(id, out var agent) ? agent
                    : throw new ArgumentException($"no background sub-agent '{id}'" + (_background.IsEmpty ? " (none were started)" : $" (known: {string.Join(", ", _background.Keys.Order(StringComparer.Ordinal))})")));
        }
        else chosen = _background.Values.Where(a => !a.Collected).OrderBy(a => a.Order).ToList();

        if (wait)
            await Task.WhenAll(chosen.Select(a => (Task)a.Run)).WaitAsync(cancellationToken).ConfigureAwait(false);
        var reports = new List<SubAgentReport>();
        var running = new List<string>();
        foreach (var agent in chosen)
        {
            if (agent.Run.IsCompleted)
            {
                reports.Add(await agent.Run.ConfigureAwait(false));
                agent.Collected = true;
            }
            else running.Add(agent.Id);
        }
        return new CollectResult(reports, running);
    }

    /// <summary>Cancels every running sub-agent, background ones included.</summary>
    public void CancelAll()
    {
        try { _lifetime.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Every sub-agent that has ended so far, in the order they ended.</summary>
    public IReadOnlyList<SubAgentReport> Finished
    {
        get { lock (_stateLock) return [.. _finished]; }
    }

    /// <summary>The run so far measured: the orchestrator's observed steps plus every ended sub-agent.</summary>
    public SwarmReport Report()
    {
        lock (_stateLock)
        {
            var agents = _finished.OrderBy(a => int.Parse(a.Id.AsSpan("agent-".Length), CultureInfo.InvariantCulture)).ToList();
            var stages = SwarmMetrics.Stages(agents.Select(a => (a.Stage, a.Steps, (string?)a.Id)));
            int critical = SwarmMetrics.CriticalSteps(_orchestratorSteps, agents.Select(a => (a.Stage, a.Steps)));
            var usage = agents.Aggregate(_orchestratorUsage, (sum, a) => sum + a.Usage);
            TimeSpan wall = _startTicks == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_startTicks, _lastTicks);
            return new SwarmReport(_orchestratorSteps, critical, _orchestratorSteps + agents.Sum(a => a.Steps),
                _orchestratorToolCalls + agents.Sum(a => a.ToolCalls), usage, _orchestratorCost + agents.Sum(a => a.Cost), wall, agents, stages);
        }
    }

    private void Touch()
    {
        _lastTicks = Stopwatch.GetTimestamp();
        if (_startTicks == 0) _startTicks = _lastTicks;
    }

    private void Emit(SwarmEvent e)
    {
        if (_options.OnEvent is not { } handler) return;
        lock (_eventLock)
        {
            try { handler(e); }
            catch (Exception ex) { _logger.LogWarning(ex, "a swarm event handler failed for {Agent}", e.AgentId); }
        }
    }

    /// <summary>Runs one sub-agent to its report; never throws (a cancelled caller gets a cancelled report).</summary>
    private async Task<SubAgentReport> RunAsync(string agentId, SubAgentTask task, string? callId, int stage, CancellationToken callerToken)
    {
        var clock = Stopwatch.StartNew();
        var progress = new Progress();
        AgentSession? session = null;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(callerToken, _lifetime.Token);
        bool holdsSlot = false;
        TimeSpan timeout = Min(task.Timeout ?? _options.DefaultTimeout, _options.MaxTimeout);
        SubAgentReport Report(SubAgentStatus status, string? answer, string? error) =>
            new(agentId, task.Task, status, answer, error, progress.Steps, progress.ToolCalls, progress.Usage, progress.Cost, clock.Elapsed,
                callId, stage, task.RunInBackground, session?.Path);
        SubAgentReport report;
        try
        {
            await _slots.WaitAsync(linked.Token).ConfigureAwait(false);
            holdsSlot = true;
            // The time limit counts from the start of the run, not from the wait for a free slot.
            linked.CancelAfter(timeout);
            session = CreateSession(agentId, task, callId, stage, timeout);
            Emit(new SwarmEvent.Started(agentId, task.Task, callId, task.RunInBackground, session?.Path));
            var run = RunAgentAsync(task, progress, session, agentId, linked.Token, Report);
            try { report = await run.WaitAsync(linked.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (linked.IsCancellationRequested)
            {
                // A model that honours cancellation stops at once; one that ignores it is left behind rather than waited for.
                try { await run.WaitAsync(TimeSpan.FromSeconds(1), CancellationToken.None).ConfigureAwait(false); }
                catch (Exception) { }
                if (!run.IsCompleted) _ = run.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                throw;
            }
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            bool cancelled = callerToken.IsCancellationRequested || _lifetime.IsCancellationRequested;
            report = cancelled
                ? Report(SubAgentStatus.Cancelled, null, holdsSlot ? $"cancelled by the orchestrator after {progress.Steps} step(s)" : "cancelled before it started")
                : Report(SubAgentStatus.TimedOut, null, string.Create(CultureInfo.InvariantCulture,
                    $"timed out after {timeout.TotalSeconds:0.###} s ({progress.Steps} step(s), {progress.ToolCalls} tool call(s) done)") + progress.LastWords());
            session?.RecordStopped(cancelled ? "cancelled" : "timed-out", report.Error);
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "sub-agent {Agent} failed", agentId);
            report = Report(SubAgentStatus.Failed, null, $"failed: {e.GetType().Name}: {e.Message}");
            session?.RecordStopped("error", report.Error);
        }
        finally
        {
            if (holdsSlot) _slots.Release();
            session?.Dispose();
        }
        lock (_stateLock)
        {
            Touch();
            _finished.Add(report);
        }
        Emit(new SwarmEvent.Ended(report));
        return report;
    }

    private async Task<SubAgentReport> RunAgentAsync(SubAgentTask task, Progress progress, AgentSession? session, string agentId,
        CancellationToken cancellationToken, Func<SubAgentStatus, string?, string?, SubAgentReport> report)
    {
        var model = task.Model is null ? _options.Model : _options.Models[task.Model];
        var tools = _options.CreateTools().Where(t => t.Name is not SpawnToolName and not CollectToolName);
        if (task.Tools is { } subset) tools = tools.Where(t => subset.Contains(t.Name));
        var toolList = tools.ToList();
        var dispatcher = _options.CreateDispatcher?.Invoke(toolList) ?? new ToolDispatcher(toolList);
        var options = _options.AgentOptions with
        {
            MaxSteps = Math.Min(task.MaxSteps ?? _options.DefaultMaxSteps, _options.MaxStepsCeiling),
            TokenBudget = Math.Min(task.MaxTokens ?? _options.DefaultMaxTokens, _options.MaxTokensCeiling),
        };
        var runner = new AgentRunner(model, dispatcher, options, _logger);

        // Isolation: the sub-agent sees its instructions and its task, nothing of the orchestrator or its siblings.
        var conversation = new JsonArray();
        if ((task.Instructions ?? _options.DefaultInstructions) is { Length: > 0 } instructions) conversation.Add(AgentMessages.System(instructions));
        conversation.Add(AgentMessages.User(task.Task));
        foreach (var m in conversation) session?.AddMessage(m!.AsObject());

        AgentResult? result = null;
        var events = runner.RunAsync(conversation, cancellationToken);
        if (session is not null) events = session.Record(events, cancellationToken);
        await foreach (var e in events.ConfigureAwait(false))
        {
            progress.Note(e, _options.Prices);
            if (e is AgentEvent.Finished finished) result = finished.Result;
            Emit(new SwarmEvent.Progress(agentId, e));
        }
        if (result is null) throw new InvalidOperationException("the sub-agent's run ended without a result");
        return result.StopReason switch
        {
            AgentResult.Answer => report(SubAgentStatus.Completed, result.FinalAnswer ?? "", null),
            AgentResult.MaxSteps => report(SubAgentStatus.BudgetExhausted, null, $"ran out of steps ({options.MaxSteps}) before answering" + progress.LastWords()),
            AgentResult.TokenBudget => report(SubAgentStatus.BudgetExhausted, null, $"ran out of tokens ({options.TokenBudget}) before answering" + progress.LastWords()),
            AgentResult.Length => report(SubAgentStatus.Failed, null, "a step hit the output limit without finishing" + progress.LastWords()),
            AgentResult.RepeatedCall => report(SubAgentStatus.Failed, null, "stopped repeating the same tool call" + progress.LastWords()),
            var other => report(SubAgentStatus.Failed, null, $"stopped: {other}" + progress.LastWords()),
        };
    }

    private AgentSession? CreateSession(string agentId, SubAgentTask task, string? callId, int stage, TimeSpan timeout)
    {
        var parent = ParentSession;
        string? directory = parent is not null ? SubSessionsDirectory(parent.Path) : _options.SessionsDirectory;
        if (directory is null) return null;
        var header = new JsonObject
        {
            ["agent_id"] = agentId, ["parent_session"] = parent?.Id, ["parent_call_id"] = callId, ["stage"] = stage,
            ["task"] = task.Task, ["instructions"] = task.Instructions, ["model"] = task.Model ?? "default",
            ["tools"] = task.Tools is null ? null : new JsonArray(task.Tools.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["background"] = task.RunInBackground, ["timeout_s"] = timeout.TotalSeconds,
        };
        foreach (var (key, value) in header.ToList())
            if (value is null) header.Remove(key);
        try { return AgentSession.Create(directory, header, _options.Prices); }
        catch (IOException e)
        {
            // Losing the record is worse than not running, but not by much: run unrecorded and say so in the log.
            _logger.LogWarning(e, "could not create a session for sub-agent {Agent} in {Directory}", agentId, directory);
            return null;
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    public async ValueTask DisposeAsync()
    {
        CancelAll();
        Task[] running;
        lock (_stateLock) running = [.. _running];
        try { await Task.WhenAll(running).ConfigureAwait(false); }
        catch (Exception e) { _logger.LogDebug(e, "a background sub-agent ended badly while the swarm was disposed"); }
        _lifetime.Dispose();
        _slots.Dispose();
    }

    /// <summary>What a sub-agent has done so far, for its report whichever way it ends.</summary>
    private sealed class Progress
    {
        public int Steps, ToolCalls;
        public StepUsage Usage;
        public double Cost;
        private string _lastContent = "";

        public void Note(AgentEvent e, PriceTable prices)
        {
            switch (e)
            {
                case AgentEvent.StepCompleted step:
                    Steps++;
                    Usage += step.Usage;
                    Cost += prices.Cost(step.Usage);
                    break;
                case AgentEvent.ToolCalled:
                    ToolCalls++;
                    break;
                case AgentEvent.MessageAdded { Message: var m } when AgentMessages.Role(m) == "assistant" && AgentMessages.Text(m["content"]) is { Length: > 0 } text:
                    _lastContent = text;
                    break;
            }
        }

        /// <summary>The last thing it said, so a failed sub-agent's partial work is not lost entirely.</summary>
        public string LastWords() => _lastContent.Length == 0 ? ""
            : "; its last words: " + (_lastContent.Length > 500 ? _lastContent[..500] + "…" : _lastContent);
    }

    private sealed class BackgroundAgent(string id, string task, Task<SubAgentReport> run)
    {
        private static int _order;
        public string Id { get; } = id;
        public string Task { get; } = task;
        public Task<SubAgentReport> Run { get; } = run;
        public int Order { get; } = Interlocked.Increment(ref _order);
        public bool Collected { get; set; }
    }
}

/// <summary>What <see cref="AgentSwarm.SpawnAsync"/> returns: the reports of the sub-agents it waited for, and the ids of those started in the background.</summary>
public sealed record SpawnResult(IReadOnlyList<SubAgentReport> Reports, IReadOnlyList<(string Id, string Task)> Background);

/// <summary>What <see cref="AgentSwarm.CollectAsync"/> returns: ended sub-agents' reports and the ids still running.</summary>
public sealed record CollectResult(IReadOnlyList<SubAgentReport> Reports, IReadOnlyList<string> Running);
