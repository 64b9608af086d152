namespace KimiSharp.Agent.Approvals;

/// <summary>How the dispatcher treats tools that change things.</summary>
public enum ApprovalMode
{
    /// <summary>Tools marked needs-approval ask the <see cref="IApprover"/> first; without one they are refused.</summary>
    Ask = 0,

    /// <summary>Every tool runs without asking.</summary>
    Yolo,

    /// <summary>Only read-only tools run; the rest are refused with a message telling the model it is planning.</summary>
    Plan,
}
