using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Hooks;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Agent.Dispatch;

/// <summary>
/// Runs the model's tool calls: looks the tool up, validates the arguments against its schema, runs the before-call
/// hooks, applies the approval policy, invokes the tool with a timeout, runs the after-call hooks and clips the result.
/// Every failure becomes an error <see cref="ToolOutcome"/> the model can react to; the only exception that escapes is
/// the <see cref="OperationCanceledException"/> of the caller's own token.
/// </summary>
public sealed class ToolDispatcher : IToolDispatcher
{
    // Compact: a tool result is read by the model, and indentation only costs tokens.
    private static readonly JsonSerializerOptions CompactJson = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    private readonly Dictionary<string, AIFunction> _byName = new(StringComparer.Ordinal);
    private readonly List<AIFunction> _tools = [];
    private readonly ConcurrentDictionary<string, bool> _approvedForSession = new(StringComparer.Ordinal);
    private readonly ToolDispatcherOptions _options;
    private readonly ILogger _logger;

    public ToolDispatcher(IEnumerable<AIFunction> tools, ToolDispatcherOptions? options = null, ILogger<ToolDispatcher>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(tools);
        foreach (AIFunction tool in tools)
        {
            ArgumentNullException.ThrowIfNull(tool);
            if (!_byName.TryAdd(tool.Name, tool)) throw new ArgumentException($"duplicate tool name '{tool.Name}'", nameof(tools));
            _tools.Add(tool);
        }
        _options = options ?? new ToolDispatcherOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxResultChars, 1, nameof(options));
        Mode = _options.Mode;
        _logger = logger ?? NullLogger<ToolDispatcher>.Instance;
    }

    public IReadOnlyList<AIFunction> Tools => _tools;

    IReadOnlyList<AITool> IToolDispatcher.Tools => _tools;

    async Task<(string Content, bool IsError)> IToolDispatcher.DispatchAsync(string name, string argumentsJson, CancellationToken cancellationToken)
    {
        var outcome = await DispatchAsync(name, argumentsJson, cancellationToken).ConfigureAwait(false);
        return (outcome.Content, outcome.IsError);
    }

    /// <summary>The approval mode; may change between calls (e.g. the user leaves plan mode).</summary>
    public ApprovalMode Mode { get; set; }

    /// <summary>True when the user approved this tool for the rest of the session.</summary>
    public bool IsApprovedForSession(string toolName) => _approvedForSession.ContainsKey(toolName);

    public async Task<ToolOutcome> DispatchAsync(string toolName, string argumentsJson, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        toolName ??= "";
        argumentsJson ??= "";
        if (!_byName.TryGetValue(toolName, out AIFunction? tool))
        {
            string known = string.Join(", ", _tools.Select(t => t.Name));
            return Finish(Error(toolName, $"unknown tool '{Clip(toolName, 100)}' (known: {known})", ToolOutcomeKind.UnknownTool));
        }

        if (Parse(tool, argumentsJson, out AIFunctionArguments? arguments) is { } invalid) return Finish(invalid);
        string finalJson = string.IsNullOrWhiteSpace(argumentsJson) ? "{}" : argumentsJson;

        foreach (IToolHooks hook in _options.Hooks)
        {
            BeforeToolCallDecision decision;
            try
            {
                decision = await hook.BeforeToolCallAsync(new ToolCall(tool.Name, finalJson), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!IsCallerCancellation(e, cancellationToken))
            {
                _logger.LogWarning(e, "Before-call hook {Hook} failed for {Tool}; the call is vetoed", hook.GetType().Name, tool.Name);
                return Finish(Error(tool.Name, $"a hook failed, so the call was not run: {e.Message}", ToolOutcomeKind.Vetoed));
            }
            switch (decision)
            {
                case BeforeToolCallDecision.Vetoed veto:
                    return Finish(Error(tool.Name, "blocked by a hook: " + (veto.Reason.Length > 0 ? veto.Reason : "no reason given"), ToolOutcomeKind.Vetoed));
                case BeforeToolCallDecision.Rewritten rewrite:
                    if (Parse(tool, rewrite.ArgumentsJson, out arguments) is { } bad)
                        return Finish(bad with { Content = "error: a hook rewrote the arguments into invalid ones: " + bad.Content["error: ".Length..] });
                    finalJson = string.IsNullOrWhiteSpace(rewrite.ArgumentsJson) ? "{}" : rewrite.ArgumentsJson;
                    break;
            }
        }

        if (await AuthorizeAsync(tool, arguments!, finalJson, cancellationToken).ConfigureAwait(false) is { } refusal)
            return Finish(refusal with { ArgumentsJson = finalJson });

        ToolOutcome outcome = await InvokeAsync(tool, arguments!, cancellationToken).ConfigureAwait(false) with { ArgumentsJson = finalJson };
        foreach (IToolHooks hook in _options.Hooks)
        {
            try
            {
                outcome = await hook.AfterToolCallAsync(new ToolCall(tool.Name, finalJson), outcome, cancellationToken).ConfigureAwait(false)
                          ?? outcome;
            }
            catch (Exception e) when (!IsCallerCancellation(e, cancellationToken))
            {
                _logger.LogWarning(e, "After-call hook {Hook} failed for {Tool}; its change is skipped", hook.GetType().Name, tool.Name);
            }
        }
        return Finish(outcome);
    }

    /// <summary>The approval policy; null when the call may run, else the outcome that refuses it.</summary>
    private async Task<ToolOutcome?> AuthorizeAsync(AIFunction tool, AIFunctionArguments arguments, string argumentsJson, CancellationToken ct)
    {
        bool readOnly = ToolTraits.IsReadOnly(tool);
        switch (Mode)
        {
            case ApprovalMode.Yolo:
                return null;
            case ApprovalMode.Plan when !readOnly:
                return Error(tool.Name,
                    $"'{tool.Name}' was not run: you are in plan mode, where only read-only tools are allowed. "
                    + "Investigate with read-only tools and present your plan; the user will leave plan mode to carry it out.",
                    ToolOutcomeKind.Refused);
            case ApprovalMode.Plan:
                return null;
        }

        bool needsApproval = ToolTraits.NeedsApproval(tool) || tool is ApprovalRequiredAIFunction;
        if (readOnly || !needsApproval || _approvedForSession.ContainsKey(tool.Name)) return null;

        IApprover? approver = _options.Approver;
        if (approver is null)
            return Error(tool.Name,
                $"'{tool.Name}' needs the user's approval, and no one can approve it in this session (non-interactive); it was not run.",
                ToolOutcomeKind.Refused);

        ApprovalPreview preview;
        try
        {
            preview = Unwrap<IApprovalPreview>(tool) is { } previewer
                ? await previewer.PreviewAsync(arguments, ct).ConfigureAwait(false)
                : new ApprovalPreview($"{tool.Name} {Clip(argumentsJson.ReplaceLineEndings(" "), 200)}");
        }
        catch (Exception e) when (!IsCallerCancellation(e, ct))
        {
            // The change cannot be shown (e.g. edit_file's old_string is missing), so it would fail anyway: say why
            // instead of asking the user to approve a call that cannot work.
            return Error(tool.Name, e.Message, ToolOutcomeKind.Failed);
        }

        ApprovalDecision decision;
        try
        {
            decision = await approver.DecideAsync(new ApprovalRequest(tool.Name, preview.Summary, preview.Diff, argumentsJson), ct)
                .ConfigureAwait(false);
        }
        catch (Exception e) when (!IsCallerCancellation(e, ct))
        {
            _logger.LogWarning(e, "Approver failed for {Tool}; the call is refused", tool.Name);
            return Error(tool.Name, $"'{tool.Name}' was not run: asking for approval failed ({e.Message})", ToolOutcomeKind.Refused);
        }

        switch (decision)
        {
            case ApprovalDecision.ApprovedForSession:
                _approvedForSession[tool.Name] = true;
                return null;
            case ApprovalDecision.Rejected rejected:
                string feedback = rejected.Feedback.Trim();
                return new ToolOutcome(tool.Name,
                    $"The user rejected this {tool.Name} call; it was not run."
                    + (feedback.Length > 0 ? $" User feedback: {feedback}" : " Ask the user how to proceed."),
                    IsError: true, ToolOutcomeKind.Rejected, TimeSpan.Zero);
            default:
                return null;
        }
    }

    private async Task<ToolOutcome> InvokeAsync(AIFunction tool, AIFunctionArguments arguments, CancellationToken ct)
    {
        TimeSpan timeout = _options.Timeouts.TryGetValue(tool.Name, out TimeSpan limit) ? limit : _options.DefaultTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var clock = Stopwatch.StartNew();

        // Task.Run: a tool that blocks synchronously must not hold the caller past the timeout.
        Task<ToolResult> running = Task.Run(() => RunToolAsync(tool, arguments, deadline.Token).AsTask(), CancellationToken.None);
        try
        {
            ToolResult result = await running.WaitAsync(deadline.Token).ConfigureAwait(false);
            return new ToolOutcome(tool.Name, result.Content, result.IsError,
                result.IsError ? ToolOutcomeKind.Failed : ToolOutcomeKind.Completed, clock.Elapsed);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Abandon(running);
            throw;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            Abandon(running);
            _logger.LogWarning("Tool {Tool} timed out after {Timeout}", tool.Name, timeout);
            return Error(tool.Name, $"'{tool.Name}' did not finish within {timeout.TotalSeconds:0.###} s and was abandoned",
                ToolOutcomeKind.TimedOut) with { Duration = clock.Elapsed };
        }
        catch (Exception e)
        {
            _logger.LogDebug(e, "Tool {Tool} threw", tool.Name);
            return Error(tool.Name, e.Message, ToolOutcomeKind.Failed) with { Duration = clock.Elapsed };
        }
    }

    private static async ValueTask<ToolResult> RunToolAsync(AIFunction tool, AIFunctionArguments arguments, CancellationToken ct)
    {
        if (Unwrap<IToolResultFunction>(tool) is { } rich) return await rich.InvokeForResultAsync(arguments, ct).ConfigureAwait(false);
        object? value = await tool.InvokeAsync(arguments, ct).ConfigureAwait(false);
        return ToolResult.Ok(value switch
        {
            null => "",
            string text => text,
            JsonElement { ValueKind: JsonValueKind.String } element => element.GetString()!,
            JsonElement element => element.GetRawText(),
            _ => JsonSerializer.Serialize(value, CompactJson.GetTypeInfo(value.GetType())),
        });
    }

    /// <summary>Parses and validates arguments; null on success, else the error outcome.</summary>
    private static ToolOutcome? Parse(AIFunction tool, string argumentsJson, out AIFunctionArguments? arguments)
    {
        arguments = null;
        JsonElement root;
        try
        {
            using JsonDocument document = JsonDocument.Parse(string.IsNullOrWhiteSpace(argumentsJson) ? "{}" : argumentsJson);
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            return Error(tool.Name, "arguments are not a JSON object: " + ShortJsonReason(e.Message), ToolOutcomeKind.InvalidArguments);
        }
        if (root.ValueKind != JsonValueKind.Object)
            return Error(tool.Name, $"arguments are not a JSON object: got {root.ValueKind.ToString().ToLowerInvariant()}",
                ToolOutcomeKind.InvalidArguments);

        bool selfValidating = Unwrap<IToolResultFunction>(tool) is { ValidatesOwnArguments: true };
        if (!selfValidating)
        {
            IReadOnlyList<string> errors = ToolArgumentValidator.Validate(tool.JsonSchema, root);
            if (errors.Count > 0)
                return Error(tool.Name, string.Join("; ", errors), ToolOutcomeKind.InvalidArguments);
        }

        arguments = new AIFunctionArguments();
        foreach (JsonProperty property in root.EnumerateObject()) arguments[property.Name] = property.Value;
        return null;
    }

    /// <summary>
    /// The tool as <typeparamref name="T"/>, looking through <see cref="ApprovalRequiredAIFunction"/> (which only marks
    /// a function) but not through other wrappers, whose own behaviour must not be bypassed.
    /// </summary>
    private static T? Unwrap<T>(AIFunction tool) where T : class =>
        tool as T ?? (tool is ApprovalRequiredAIFunction marked ? marked.GetService<T>() : null);

    private ToolOutcome Finish(ToolOutcome outcome)
    {
        _logger.LogDebug("Tool {Tool}: {Kind} in {Duration} ms, {Length} characters",
            outcome.ToolName, outcome.Kind, (long)outcome.Duration.TotalMilliseconds, outcome.Content.Length);
        if (outcome.Content.Length <= _options.MaxResultChars) return outcome;
        string clipped = outcome.Content[.._options.MaxResultChars]
                         + $"\n[result clipped: {_options.MaxResultChars} of {outcome.Content.Length} characters shown]";
        return outcome with { Content = clipped, Clipped = true };
    }

    private static ToolOutcome Error(string toolName, string message, ToolOutcomeKind kind) =>
        new(toolName, ToolResult.Error(message).Content, IsError: true, kind, TimeSpan.Zero);

    private static bool IsCallerCancellation(Exception e, CancellationToken ct) => e is OperationCanceledException && ct.IsCancellationRequested;

    /// <summary>Observes a tool task the dispatcher gave up on, so its eventual exception is not reported as unobserved.</summary>
    private static void Abandon(Task task) =>
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

    private static string Clip(string text, int max) => text.Length > max ? text[..max] + "…" : text;

    private static string ShortJsonReason(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return Clip((cut >= 0 ? message[..cut] : message).Trim().TrimEnd('.'), 100);
    }
}
