using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Hooks;

namespace KimiSharp.Agent.Dispatch;

/// <summary>Settings of a <see cref="ToolDispatcher"/>.</summary>
public sealed record ToolDispatcherOptions
{
    public ApprovalMode Mode { get; init; } = ApprovalMode.Ask;

    /// <summary>Who approves calls in <see cref="ApprovalMode.Ask"/>; null (non-interactive) refuses them.</summary>
    public IApprover? Approver { get; init; }

    /// <summary>How long a tool may run when <see cref="Timeouts"/> names no limit for it.
    /// Longer than the shell tool's own ceiling so that its cleaner timeout message wins.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Per-tool time limits by tool name.</summary>
    public IReadOnlyDictionary<string, TimeSpan> Timeouts { get; init; } = new Dictionary<string, TimeSpan>();

    /// <summary>Results longer than this many characters are cut, with a note saying so.</summary>
    public int MaxResultChars { get; init; } = 50_000;

    public IReadOnlyList<IToolHooks> Hooks { get; init; } = [];
}
