namespace KimiSharp.Agent.Dispatch;

/// <summary>How a dispatched call ended.</summary>
public enum ToolOutcomeKind
{
    /// <summary>The tool ran and succeeded.</summary>
    Completed,

    /// <summary>The tool ran and reported a failure (or threw).</summary>
    Failed,

    /// <summary>The tool ran past its timeout and was abandoned.</summary>
    TimedOut,

    /// <summary>No tool has this name.</summary>
    UnknownTool,

    /// <summary>The arguments were not JSON or broke the tool's schema.</summary>
    InvalidArguments,

    /// <summary>The user rejected the call.</summary>
    Rejected,

    /// <summary>Policy refused it without asking: plan mode, or approval needed with no one to ask.</summary>
    Refused,

    /// <summary>A hook vetoed it.</summary>
    Vetoed,
}

/// <summary>The result of one tool call, ready to go back to the model as a tool message.</summary>
/// <param name="ToolName">The tool the model called.</param>
/// <param name="Content">The tool message text (already clipped to the dispatcher's limit).</param>
/// <param name="IsError">True when the text reports a failure rather than a result.</param>
/// <param name="Kind">How the call ended.</param>
/// <param name="Duration">Time spent in the tool itself (zero when it never ran).</param>
public sealed record ToolOutcome(string ToolName, string Content, bool IsError, ToolOutcomeKind Kind, TimeSpan Duration)
{
    /// <summary>True when the tool did not run because it was not allowed to (user, policy or hook).</summary>
    public bool Rejected => Kind is ToolOutcomeKind.Rejected or ToolOutcomeKind.Refused or ToolOutcomeKind.Vetoed;

    /// <summary>True when <see cref="Content"/> was cut to the dispatcher's limit.</summary>
    public bool Clipped { get; init; }

    /// <summary>The arguments the tool ran with, after any hook rewrote them.</summary>
    public string? ArgumentsJson { get; init; }
}
