namespace KimiSharp.Agent;

/// <summary>
/// The id of the tool call whose tool is running, as seen from inside that tool. Calls of one step may run at the same
/// time, so a tool that links its work to its call (the swarm's sub-agent sessions) reads it here rather than guessing
/// from the order of events.
/// </summary>
public static class ToolCallContext
{
    private static readonly AsyncLocal<string?> s_callId = new();

    /// <summary>The running call's id; null outside a call made by <see cref="AgentRunner"/>.</summary>
    public static string? CurrentCallId => s_callId.Value;

    internal static void Enter(string callId) => s_callId.Value = callId;
}
