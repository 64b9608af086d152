using KimiSharp.Agent.Dispatch;

namespace KimiSharp.Agent.Hooks;

/// <summary>A tool call as hooks see it.</summary>
public sealed record ToolCall(string ToolName, string ArgumentsJson);

/// <summary>What a before-call hook decides: let the call go on, stop it, or change its arguments.</summary>
public abstract record BeforeToolCallDecision
{
    private BeforeToolCallDecision()
    {
    }

    public static BeforeToolCallDecision Allow { get; } = new Allowed();

    /// <param name="reason">Told to the model as the tool result.</param>
    public static BeforeToolCallDecision Veto(string reason) => new Vetoed(reason ?? "");

    /// <param name="argumentsJson">The arguments to run with instead; they are validated again.</param>
    public static BeforeToolCallDecision Rewrite(string argumentsJson) => new Rewritten(argumentsJson ?? "");

    public sealed record Allowed : BeforeToolCallDecision;

    public sealed record Vetoed(string Reason) : BeforeToolCallDecision;

    public sealed record Rewritten(string ArgumentsJson) : BeforeToolCallDecision;
}

/// <summary>
/// Code that runs around every tool call, in registration order. Before runs after argument validation and before
/// approval (so the user approves what will really run); after runs only when the tool ran, and may replace its outcome.
/// A hook that throws vetoes the call (before) or is skipped with a warning (after).
/// </summary>
public interface IToolHooks
{
    ValueTask<BeforeToolCallDecision> BeforeToolCallAsync(ToolCall call, CancellationToken cancellationToken) =>
        ValueTask.FromResult(BeforeToolCallDecision.Allow);

    ValueTask<ToolOutcome> AfterToolCallAsync(ToolCall call, ToolOutcome outcome, CancellationToken cancellationToken) =>
        ValueTask.FromResult(outcome);
}

/// <summary>Hooks from delegates, for callers who need only one side.</summary>
public sealed class DelegateToolHooks(
    Func<ToolCall, CancellationToken, ValueTask<BeforeToolCallDecision>>? before = null,
    Func<ToolCall, ToolOutcome, CancellationToken, ValueTask<ToolOutcome>>? after = null) : IToolHooks
{
    public ValueTask<BeforeToolCallDecision> BeforeToolCallAsync(ToolCall call, CancellationToken cancellationToken) =>
        before?.Invoke(call, cancellationToken) ?? ValueTask.FromResult(BeforeToolCallDecision.Allow);

    public ValueTask<ToolOutcome> AfterToolCallAsync(ToolCall call, ToolOutcome outcome, CancellationToken cancellationToken) =>
        after?.Invoke(call, outcome, cancellationToken) ?? ValueTask.FromResult(outcome);
}
