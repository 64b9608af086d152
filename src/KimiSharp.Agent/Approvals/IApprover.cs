namespace KimiSharp.Agent.Approvals;

/// <summary>What the user is asked to approve.</summary>
/// <param name="ToolName">The tool about to run.</param>
/// <param name="Summary">One line for a human: the shell command, the file path…</param>
/// <param name="Diff">A unified diff of the change a write would make, when the tool can tell.</param>
/// <param name="ArgumentsJson">The call's arguments as the tool will receive them.</param>
public sealed record ApprovalRequest(string ToolName, string Summary, string? Diff, string ArgumentsJson);

/// <summary>The user's answer: run it this once, run this tool without asking again, or refuse with feedback.</summary>
public abstract record ApprovalDecision
{
    private ApprovalDecision()
    {
    }

    public static ApprovalDecision ApproveOnce { get; } = new ApprovedOnce();

    public static ApprovalDecision ApproveForSession { get; } = new ApprovedForSession();

    /// <param name="feedback">Told to the model, e.g. what to do instead; may be empty.</param>
    public static ApprovalDecision Reject(string feedback) => new Rejected(feedback ?? "");

    public sealed record ApprovedOnce : ApprovalDecision;

    public sealed record ApprovedForSession : ApprovalDecision;

    public sealed record Rejected(string Feedback) : ApprovalDecision;
}

/// <summary>Asks the user (a terminal prompt, a web dialog…) whether a tool call may run.</summary>
public interface IApprover
{
    ValueTask<ApprovalDecision> DecideAsync(ApprovalRequest request, CancellationToken cancellationToken);
}

/// <summary>What a tool shows before it runs so the user can judge it: a summary line and, for writes, the diff.</summary>
public sealed record ApprovalPreview(string Summary, string? Diff = null);

/// <summary>
/// Implemented by tools that can describe a call before running it (the diff write_file or edit_file would make).
/// Throwing here (e.g. edit_file's old_string is missing) fails the call without bothering the user.
/// </summary>
public interface IApprovalPreview
{
    ValueTask<ApprovalPreview> PreviewAsync(Microsoft.Extensions.AI.AIFunctionArguments arguments, CancellationToken cancellationToken);
}
