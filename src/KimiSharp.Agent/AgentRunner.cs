using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent;

/// <summary>How an <see cref="AgentRunner"/> runs a task.</summary>
public sealed record AgentOptions
{
    /// <summary>
    /// The step window: each step's prompt is <c>Window.Visible(messages)</c>. k2-nano was trained with a window of 4;
    /// models that can summarize use <see cref="ContextWindow.Unlimited"/> with <see cref="Compaction"/>.
    /// </summary>
    public ContextWindow Window { get; init; } = new(4);
    /// <summary>Model steps (assistant messages) per run at most.</summary>
    public int MaxSteps { get; init; } = 1000;
    /// <summary>Tokens one step may generate.</summary>
    public int MaxTokensPerStep { get; init; } = 384;
    /// <summary>Sampling settings (temperature, seed, ...) sent with every step; greedy when null.
    /// <see cref="ChatOptions.MaxOutputTokens"/> and <see cref="ChatOptions.Tools"/> are set per step.</summary>
    public ChatOptions? Sampling { get; init; }
    /// <summary>Thinking on or off (sent as the <c>thinking</c> option every K2 client here understands); null leaves the model's default.</summary>
    public bool? Thinking { get; init; }
    /// <summary>Generated tokens over the whole run at most.</summary>
    public long TokenBudget { get; init; } = 400_000;
    /// <summary>How often a step that failed in transit (a dropped stream, a timeout) is tried again before the run fails.</summary>
    public int StepRetries { get; init; } = 2;
    /// <summary>Identical consecutive tool calls (same tool, same arguments): reminders at these counts...</summary>
    public IReadOnlyList<int> RepeatReminders { get; init; } = [3, 5, 8];
    /// <summary>...and the run stops at this count, with a visible reason.</summary>
    public int RepeatStop { get; init; } = 12;
    /// <summary>Summarizing older history before the context fills; null keeps the whole history (or the step window).</summary>
    public CompactionOptions? Compaction { get; init; }
    /// <summary>Tool-call ids already used elsewhere in the session (outside the conversation the run sees), so new calls never reuse one.</summary>
    public IReadOnlyCollection<string> ReservedCallIds { get; init; } = [];
    /// <summary>Called when the model answers; returning text continues the run with it as a new user message (a stop hook).</summary>
    public Func<AgentResult, CancellationToken, ValueTask<string?>>? OnStop { get; init; }

    internal void Validate()
    {
        if (MaxSteps < 1) throw new ArgumentException("MaxSteps must be at least 1");
        if (MaxTokensPerStep < 1) throw new ArgumentException("MaxTokensPerStep must be at least 1");
        if (TokenBudget < 1) throw new ArgumentException("TokenBudget must be at least 1");
        if (StepRetries < 0) throw new ArgumentException("StepRetries must not be negative");
        if (RepeatStop < 2) throw new ArgumentException("RepeatStop must be at least 2");
        Compaction?.Validate();
    }
}

/// <summary>Token counts of one step as the model's endpoint reported them.</summary>
public readonly record struct StepUsage(long InputTokens, long CachedInputTokens, long OutputTokens)
{
    public static StepUsage operator +(StepUsage a, StepUsage b) =>
        new(a.InputTokens + b.InputTokens, a.CachedInputTokens + b.CachedInputTokens, a.OutputTokens + b.OutputTokens);
}

/// <summary>
/// What an agent run reports, in order: pieces of each step, its tool calls and their results, then
/// <see cref="Finished"/> (always last, unless the run is cancelled or fails).
/// </summary>
public abstract record AgentEvent
{
    private AgentEvent() { }

    /// <summary>A piece of the model's reasoning in the current step.</summary>
    public sealed record ReasoningDelta(string Text) : AgentEvent;

    /// <summary>A piece of the model's visible content in the current step.</summary>
    public sealed record ContentDelta(string Text) : AgentEvent;

    /// <summary>The model called a tool (reported before the tool runs).</summary>
    public sealed record ToolCalled(string Id, string Name, string Arguments) : AgentEvent;

    /// <summary>A tool's answer, or the error returned for a malformed, refused or failed call.</summary>
    public sealed record ToolReturned(string Id, string Name, string Content, bool IsError) : AgentEvent
    {
        /// <summary>How long the tool ran.</summary>
        public TimeSpan Elapsed { get; init; }
    }

    /// <summary>A message was added to the conversation (an assistant step, a tool result, a hook's follow-up).</summary>
    public sealed record MessageAdded(JsonObject Message) : AgentEvent;

    /// <summary>A model step ended.</summary>
    public sealed record StepCompleted(int Step, StepUsage Usage, TimeSpan Elapsed, string? FinishReason) : AgentEvent;

    /// <summary>Older history was summarized: the conversation is now <paramref name="Messages"/>.</summary>
    public sealed record Compacted(JsonArray Messages, string Summary, int TokensBefore) : AgentEvent;

    /// <summary>
    /// Something the user should see that is not model output: a retried step (its partial output is discarded), a
    /// repeated-call reminder, a compaction that could not be done.
    /// </summary>
    public sealed record Notice(string Kind, string Text) : AgentEvent;

    /// <summary>The run is over.</summary>
    public sealed record Finished(AgentResult Result) : AgentEvent;
}

/// <summary>The outcome of one agent run.</summary>
/// <param name="FinalAnswer">Content of the last step when it called no tool; null when the run stopped otherwise.</param>
/// <param name="Messages">The whole conversation (input plus every assistant and tool message), not windowed (but compacted when compaction ran).</param>
/// <param name="ToolCalls">Tool calls the model made, malformed ones included.</param>
/// <param name="MalformedCalls">Calls with unparseable arguments or an undeclared tool name (answered with an error, not run).</param>
/// <param name="Steps">Model steps generated.</param>
/// <param name="GeneratedTokens">Tokens generated over all steps.</param>
/// <param name="StopReason"><c>answer</c>, <c>max-steps</c>, <c>token-budget</c>, <c>length</c> or <c>repeated-call</c>.</param>
public sealed record AgentResult(string? FinalAnswer, JsonArray Messages, int ToolCalls, int MalformedCalls, int Steps,
    long GeneratedTokens, string StopReason)
{
    public const string Answer = "answer", MaxSteps = "max-steps", TokenBudget = "token-budget", Length = "length", RepeatedCall = "repeated-call";

    /// <summary>Tokens the endpoint reported over the run.</summary>
    public StepUsage Usage { get; init; }
}

/// <summary>
/// Runs a tool call. <see cref="Dispatch.ToolDispatcher"/> is the real one (schema validation, approvals, hooks,
/// timeouts); the swarm and tests supply their own.
/// </summary>
public interface IToolDispatcher
{
    /// <summary>The tools the model is told about.</summary>
    IReadOnlyList<AITool> Tools { get; }

    /// <summary>Runs one call; every failure comes back as an error result the model can read, never as an exception
    /// (except cancellation of <paramref name="cancellationToken"/>).</summary>
    Task<(string Content, bool IsError)> DispatchAsync(string name, string argumentsJson, CancellationToken cancellationToken);
}

/// <summary>
/// The tool-use loop over any <see cref="IChatClient"/>: <b>step</b> (stream one assistant message), <b>dispatch</b>
/// (run its tool calls), <b>accumulate</b> (append both to the conversation, count, compact when the context fills),
/// until the model answers without calling a tool or a limit stops it. Each step sees
/// <c>Window.Visible(messages)</c>; the full conversation is kept in <see cref="AgentResult.Messages"/>.
/// A conversation that ends with an assistant tool-call message whose results are partly missing (a run killed
/// mid-step) is resumed by running only the missing calls.
/// </summary>
public sealed class AgentRunner
{
    private readonly IChatClient _model;
    private readonly IToolDispatcher _tools;
    private readonly AgentOptions _options;
    private readonly ILogger _logger;
    private readonly HashSet<string> _declaredNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AITool> _toolsByName = new(StringComparer.Ordinal);

    public AgentRunner(IChatClient model, IEnumerable<AIFunction> tools, AgentOptions? options = null, ILogger? logger = null)
        : this(model, new Dispatch.ToolDispatcher(tools), options, logger) { }

    public AgentRunner(IChatClient model, IToolDispatcher tools, AgentOptions? options = null, ILogger? logger = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tools = tools ?? throw new ArgumentNullException(nameof(tools));
        _options = options ?? new AgentOptions();
        _options.Validate();
        _logger = logger ?? NullLogger.Instance;
        foreach (var tool in tools.Tools)
        {
            _declaredNames.Add(tool.Name);
            _toolsByName[tool.Name] = tool;
        }
    }

    public AgentOptions Options => _options;

    /// <summary>
    /// Runs the task that <paramref name="conversation"/> ends with (earlier turns before it). The input is not changed;
    /// the runner works on a copy, which <see cref="AgentEvent.Finished"/> returns.
    /// </summary>
    public async IAsyncEnumerable<AgentEvent> RunAsync(JsonArray conversation, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        var messages = (JsonArray)conversation.DeepClone();
        var run = new RunState { CallIndex = AgentMessages.ToolCallsInCurrentTask(messages) };
        run.SeenIds.UnionWith(_options.ReservedCallIds);
        foreach (var m in messages)
            if (m?["tool_calls"] is JsonArray earlier)
                foreach (var c in earlier)
                    if (c?["id"]?.GetValue<string>() is { Length: > 0 } id) run.SeenIds.Add(id);
        string stopReason = AgentResult.MaxSteps;
        string? finalAnswer = null;

        // A run killed between a step and its tool results: answer the calls that have no result yet, then go on.
        if (PendingCalls(messages) is { Count: > 0 } pending)
        {
            _logger.LogInformation("resuming: {Count} tool call(s) of the last step have no result yet", pending.Count);
            await foreach (var e in DispatchStepAsync(messages, pending, run, cancellationToken).ConfigureAwait(false))
                yield return e;
        }

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (run.RepeatStopped) { stopReason = AgentResult.RepeatedCall; break; }
            if (run.Steps >= _options.MaxSteps) { stopReason = AgentResult.MaxSteps; break; }
            long remaining = _options.TokenBudget - run.Generated;
            if (remaining <= 0) { stopReason = AgentResult.TokenBudget; break; }

            if (_options.Compaction is { } compaction && run.ContextTokens(compaction) is var tokens && compaction.ShouldCompact(tokens))
            {
                var compactor = new ContextCompactor(_model, compaction, _options.Sampling);
                Compacted? compacted = null;
                string? failure = null;
                try { compacted = await compactor.CompactAsync(messages, cancellationToken).ConfigureAwait(false); }
                catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested) { failure = e.Message; }
                if (compacted is not null)
                {
                    messages = compacted.Messages;
                    run.ResetContextEstimate(compacted.EstimatedTokens);
                    yield return new AgentEvent.Compacted((JsonArray)messages.DeepClone(), compacted.Summary, (int)Math.Min(int.MaxValue, tokens));
                }
                else yield return new AgentEvent.Notice("compaction", failure is null
                    ? $"the context holds about {tokens} tokens and there is no older history left to summarize"
                    : $"compaction failed ({failure}); continuing with the full history");
            }

            var step = new StepState();
            int maxTokens = (int)Math.Min(_options.MaxTokensPerStep, remaining);
            bool budgetCut = remaining < _options.MaxTokensPerStep;
            var clock = Stopwatch.StartNew();
            for (int attempt = 0; ; attempt++)
            {
                step.Reset();
                await foreach (var e in StepAsync(messages, maxTokens, step, cancellationToken).ConfigureAwait(false))
                    yield return e;
                if (step.Failure is null) break;
                // The caller sees the endpoint's own exception (a 400's message, the engine's busy or context error).
                if (attempt >= _options.StepRetries || !IsTransient(step.Failure))
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(step.Failure).Throw();
                _logger.LogWarning(step.Failure, "step {Step} failed in transit; trying again", run.Steps + 1);
                yield return new AgentEvent.Notice("retry", $"step {run.Steps + 1} failed ({step.Failure.Message}); trying it again");
                await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt), cancellationToken).ConfigureAwait(false);
            }
            cancellationToken.ThrowIfCancellationRequested();
            run.Steps++;
            run.Generated += step.Usage.OutputTokens;
            run.Usage += step.Usage;
            run.NoteStepContext(step.Usage);

            var assistant = new JsonObject { ["role"] = "assistant" };
            if (step.Reasoning.Length > 0) assistant["reasoning_content"] = step.Reasoning.ToString();
            assistant["content"] = step.Content.ToString();
            if (step.Calls.Count > 0)
            {
                var toolCalls = new JsonArray();
                foreach (var call in step.Calls)
                {
                    // Keep the endpoint's id (Moonshot and vLLM match results by it); make one only when it gave none or repeated one.
                    // (K2's own ids count calls within the prompt the model saw, so across windows and tasks they repeat.)
                    if (string.IsNullOrEmpty(call.Id) || !run.SeenIds.Add(call.Id))
                    {
                        int n = run.CallIndex;
                        while (!run.SeenIds.Add(call.Id = $"functions.{call.Name}:{n}")) n++;
                    }
                    run.CallIndex++;
                    toolCalls.Add(new JsonObject
                    {
                        ["id"] = call.Id, ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = call.Arguments },
                    });
                }
                assistant["tool_calls"] = toolCalls;
            }
            messages.Add(assistant);
            yield return new AgentEvent.MessageAdded((JsonObject)assistant.DeepClone());
            yield return new AgentEvent.StepCompleted(run.Steps, step.Usage, clock.Elapsed, step.Finish?.Value);

            if (step.Calls.Count == 0)
            {
                if (step.Finish == ChatFinishReason.Length)
                {
                    stopReason = budgetCut ? AgentResult.TokenBudget : AgentResult.Length;
                    _logger.LogDebug("agent step {Step} hit the token limit without a tool call", run.Steps);
                    break;
                }
                stopReason = AgentResult.Answer;
                finalAnswer = step.Content.ToString();
                if (_options.OnStop is { } onStop
                    && await onStop(Result(finalAnswer, messages, run, stopReason), cancellationToken).ConfigureAwait(false) is { Length: > 0 } followUp)
                {
                    var user = AgentMessages.User(followUp);
                    messages.Add(user);
                    yield return new AgentEvent.MessageAdded((JsonObject)user.DeepClone());
                    finalAnswer = null;
                    continue;
                }
                break;
            }

            await foreach (var e in DispatchStepAsync(messages, step.Calls, run, cancellationToken).ConfigureAwait(false))
                yield return e;
        }

        _logger.LogInformation("agent run stopped ({Reason}) after {Steps} steps, {Calls} tool calls ({Malformed} malformed), {Tokens} tokens",
            stopReason, run.Steps, run.ToolCalls, run.Malformed, run.Generated);
        yield return new AgentEvent.Finished(Result(finalAnswer, messages, run, stopReason));
    }

    /// <summary>Runs to the end, ignoring the stream, and returns the result.</summary>
    public async Task<AgentResult> RunToEndAsync(JsonArray conversation, CancellationToken cancellationToken = default)
    {
        AgentResult? result = null;
        await foreach (var e in RunAsync(conversation, cancellationToken).ConfigureAwait(false))
            if (e is AgentEvent.Finished f) result = f.Result;
        return result ?? throw new InvalidOperationException("the agent run ended without a result");
    }

    /// <summary>Summarizes older history now (<c>/compact</c>); null when there is nothing older than the kept steps.</summary>
    public async Task<Compacted?> CompactAsync(JsonArray conversation, CancellationToken cancellationToken = default)
    {
        var options = _options.Compaction ?? new CompactionOptions { ContextTokens = 128 * 1024 };
        return await new ContextCompactor(_model, options, _options.Sampling).CompactAsync(conversation, cancellationToken).ConfigureAwait(false);
    }

    private static AgentResult Result(string? answer, JsonArray messages, RunState run, string stopReason) =>
        new(answer, messages, run.ToolCalls, run.Malformed, run.Steps, run.Generated, stopReason) { Usage = run.Usage };

    /// <summary>Streams one assistant step into <paramref name="step"/>; a failure in transit is left in <see cref="StepState.Failure"/>.</summary>
    private async IAsyncEnumerable<AgentEvent> StepAsync(JsonArray messages, int maxTokens, StepState step,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var options = _options.Sampling?.Clone() ?? new ChatOptions { Temperature = 0 };
        options.MaxOutputTokens = maxTokens;
        if (_tools.Tools.Count > 0) options.Tools = [.. _tools.Tools];
        if (_options.Thinking is bool thinking)
        {
            options.AdditionalProperties ??= [];
            options.AdditionalProperties["thinking"] = thinking;
        }
        var visible = AgentMessages.ToChatMessages(_options.Window.Visible(messages));

        var updates = _model.GetStreamingResponseAsync(visible, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                ChatResponseUpdate update;
                try
                {
                    if (!await updates.MoveNextAsync().ConfigureAwait(false)) break;
                    update = updates.Current;
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    step.Failure = e;
                    yield break;
                }
                if (update.FinishReason is { } finish) step.Finish = finish;
                foreach (var content in update.Contents)
                {
                    switch (content)
                    {
                        case TextReasoningContent r when r.Text.Length > 0:
                            step.Reasoning.Append(r.Text);
                            yield return new AgentEvent.ReasoningDelta(r.Text);
                            break;
                        case TextContent t when t.Text.Length > 0:
                            step.Content.Append(t.Text);
                            yield return new AgentEvent.ContentDelta(t.Text);
                            break;
                        case FunctionCallContent call:
                            step.Calls.Add(new PendingCall(call.CallId, call.Name, AgentMessages.RawArguments(call), call.Exception?.Message));
                            break;
                        case UsageContent usage:
                            step.Usage = new StepUsage(usage.Details.InputTokenCount ?? 0, usage.Details.CachedInputTokenCount ?? 0,
                                usage.Details.OutputTokenCount ?? 0);
                            break;
                    }
                }
            }
        }
        finally
        {
            await updates.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs a step's calls in order, except that consecutive calls to tools that may run side by side (read-only ones
    /// and those marked <see cref="ToolTraits.ConcurrentKey"/>, such as <c>spawn_agents</c>) run at the same time.
    /// Results are appended in call order either way, so the conversation and the session read the same.
    /// </summary>
    private async IAsyncEnumerable<AgentEvent> DispatchStepAsync(JsonArray messages, IReadOnlyList<PendingCall> calls, RunState run,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (int start = 0; start < calls.Count;)
        {
            int end = start + 1;
            if (RunsConcurrently(calls[start]))
                while (end < calls.Count && RunsConcurrently(calls[end])) end++;

            var running = new List<(PendingCall Call, Task<(string, bool)> Result, Stopwatch Clock)>(end - start);
            try
            {
                for (int i = start; i < end; i++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    run.ToolCalls++;
                    yield return new AgentEvent.ToolCalled(calls[i].Id, calls[i].Name, calls[i].Arguments);
                    running.Add((calls[i], InvokeAsync(calls[i], run, cancellationToken), Stopwatch.StartNew()));
                }
                foreach (var (call, result, clock) in running)
                {
                    var (content, isError) = await result.ConfigureAwait(false);
                    clock.Stop();
                    foreach (var e in Accumulate(messages, call, content, isError, clock.Elapsed, run)) yield return e;
                }
            }
            finally
            {
                // Cancelled part-way: let the calls already started finish (they see the same token) before leaving.
                foreach (var (_, result, _) in running)
                    if (!result.IsCompleted)
                        try { await result.ConfigureAwait(false); } catch (Exception) { /* reported by the loop, or cancelled */ }
            }
            start = end;
        }
    }

    private bool RunsConcurrently(PendingCall call) =>
        call.Error is null && _toolsByName.TryGetValue(call.Name, out var tool) && ToolTraits.RunsConcurrently(tool);

    /// <summary>Runs one call, or answers a malformed one without running anything.</summary>
    private async Task<(string Content, bool IsError)> InvokeAsync(PendingCall call, RunState run, CancellationToken cancellationToken)
    {
        if (call.Error is not null)
        {
            run.Malformed++;
            return ("error: malformed call to '" + call.Name + "': " + call.Error, true);
        }
        if (!_declaredNames.Contains(call.Name))
        {
            run.Malformed++;
            return ($"error: unknown tool '{call.Name}' (known: {string.Join(", ", _declaredNames)})", true);
        }
        // Set inside this async method, so the id flows into the tool and is gone again for the caller.
        ToolCallContext.Enter(call.Id);
        return await _tools.DispatchAsync(call.Name, call.Arguments, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies the repeat rule to one finished call and appends its tool message.</summary>
    private IEnumerable<AgentEvent> Accumulate(JsonArray messages, PendingCall call, string content, bool isError, TimeSpan elapsed, RunState run)
    {
        int repeats = run.CountRepeat(call.Name, call.Arguments);
        if (repeats >= _options.RepeatStop)
        {
            run.RepeatStopped = true;
            yield return new AgentEvent.Notice("repeated-call",
                $"stopping: '{call.Name}' was called {repeats} times in a row with the same arguments");
        }
        else if (_options.RepeatReminders.Contains(repeats))
        {
            content += $"\n\n[note: this is the {repeats}th identical call to {call.Name} in a row, with the same result; " +
                "change the arguments, try another approach, or answer with what you have]";
            yield return new AgentEvent.Notice("repeated-call", $"'{call.Name}' was called {repeats} times in a row with the same arguments; the model was reminded");
        }

        var message = new JsonObject { ["role"] = "tool", ["tool_call_id"] = call.Id, ["name"] = call.Name, ["content"] = content };
        messages.Add(message);
        run.NoteAdded(content);
        // The message first: a session that records it has the result, even if the process dies right after.
        yield return new AgentEvent.MessageAdded((JsonObject)message.DeepClone());
        yield return new AgentEvent.ToolReturned(call.Id, call.Name, content, isError) { Elapsed = elapsed };
    }

    /// <summary>
    /// Whether the conversation ends mid-task — with a task not yet answered, tool results the model has not read, or
    /// tool calls without results (a run killed mid-step) — so that running it again carries the task on.
    /// </summary>
    public static bool IsUnfinished(JsonArray messages)
    {
        if (messages.Count == 0) return false;
        string last = AgentMessages.Role(messages[^1]);
        return last is "user" or "tool" || PendingCalls(messages).Count > 0;
    }

    /// <summary>Calls of the last assistant message that no tool message answers yet (a run interrupted mid-step).</summary>
    internal static List<PendingCall> PendingCalls(JsonArray messages)
    {
        var pending = new List<PendingCall>();
        int last = messages.Count - 1;
        while (last >= 0 && AgentMessages.Role(messages[last]) == "tool") last--;
        if (last < 0 || AgentMessages.Role(messages[last]) != "assistant" || messages[last]!["tool_calls"] is not JsonArray calls) return pending;
        var answered = new HashSet<string>(StringComparer.Ordinal);
        for (int i = last + 1; i < messages.Count; i++)
            if (messages[i]?["tool_call_id"]?.GetValue<string>() is { } id) answered.Add(id);
        foreach (var call in calls)
        {
            string id = call?["id"]?.GetValue<string>() ?? "";
            if (answered.Contains(id)) continue;
            string name = call?["function"]?["name"]?.GetValue<string>() ?? "";
            string arguments = AgentMessages.Text(call?["function"]?["arguments"]);
            pending.Add(new PendingCall(id, name, arguments, IsJsonObject(arguments) ? null : "arguments are not a JSON object"));
        }
        return pending;
    }

    private static bool IsJsonObject(string text)
    {
        try { return JsonNode.Parse(text) is JsonObject; }
        catch (JsonException) { return false; }
    }

    /// <summary>Failures worth trying the step again for: the network, a timeout, a stream cut short.</summary>
    private static bool IsTransient(Exception e) => e is HttpRequestException or IOException or TimeoutException
        || e is TaskCanceledException { InnerException: TimeoutException };

    internal sealed class PendingCall(string id, string name, string arguments, string? error)
    {
        public string Id { get; set; } = id;
        public string Name { get; } = name;
        public string Arguments { get; } = arguments;
        public string? Error { get; } = error;
    }

    private sealed class StepState
    {
        public StringBuilder Reasoning { get; } = new();
        public StringBuilder Content { get; } = new();
        public List<PendingCall> Calls { get; } = [];
        public ChatFinishReason? Finish { get; set; }
        public StepUsage Usage { get; set; }
        public Exception? Failure { get; set; }

        public void Reset()
        {
            Reasoning.Clear();
            Content.Clear();
            Calls.Clear();
            Finish = null;
            Usage = default;
            Failure = null;
        }
    }

    private sealed class RunState
    {
        public int Steps, ToolCalls, Malformed, CallIndex;
        public long Generated;
        public StepUsage Usage;
        public bool RepeatStopped;
        public HashSet<string> SeenIds { get; } = new(StringComparer.Ordinal);
        private string? _lastCall;
        private int _repeats;
        // The context as the endpoint last measured it (prompt + output of the latest step), plus what was added since.
        private long _measured, _addedChars;

        public int CountRepeat(string name, string arguments)
        {
            string key = name + "\n" + arguments;
            _repeats = key == _lastCall ? _repeats + 1 : 1;
            _lastCall = key;
            return _repeats;
        }

        public void NoteStepContext(StepUsage usage)
        {
            if (usage.InputTokens + usage.OutputTokens > 0) { _measured = usage.InputTokens + usage.OutputTokens; _addedChars = 0; }
        }

        public void NoteAdded(string text) => _addedChars += text.Length;

        public void ResetContextEstimate(long tokens) { _measured = tokens; _addedChars = 0; }

        public long ContextTokens(CompactionOptions options) => _measured + options.EstimateTokens(_addedChars);
    }
}
