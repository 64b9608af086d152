using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// What the runtime needs to know about a tool before it runs it, carried in <see cref="AITool.AdditionalProperties"/>
/// so that tools from any source (.NET methods, MCP servers, the built-ins) describe themselves the same way.
/// </summary>
public static class ToolTraits
{
    /// <summary><c>true</c>: the tool only reads (allowed in plan mode, never asks for approval).</summary>
    public const string ReadOnlyKey = "kimi.read_only";

    /// <summary><c>true</c>: the tool changes the world (shell, writes, MCP tools) and asks first unless approvals are off.</summary>
    public const string NeedsApprovalKey = "kimi.needs_approval";

    /// <summary>Where the tool comes from, e.g. <c>builtin</c>, <c>mcp:servername</c>, <c>dotnet</c>.</summary>
    public const string SourceKey = "kimi.source";

    /// <summary>
    /// <c>true</c>: calls to the tool may run at the same time as other such calls of the same step although the tool is
    /// not read-only (e.g. <c>spawn_agents</c>: its sub-agents are independent by construction).
    /// </summary>
    public const string ConcurrentKey = "kimi.concurrent";

    public static bool IsReadOnly(AITool tool) => Flag(tool, ReadOnlyKey);

    /// <summary>Whether a call may run beside the step's other such calls: read-only tools and those marked concurrent.</summary>
    public static bool RunsConcurrently(AITool tool) => IsReadOnly(tool) || Flag(tool, ConcurrentKey);

    public static bool NeedsApproval(AITool tool) => Flag(tool, NeedsApprovalKey);

    public static string? Source(AITool tool) =>
        tool.AdditionalProperties.TryGetValue(SourceKey, out var value) ? value as string : null;

    /// <summary>The properties dictionary for a tool with these traits.</summary>
    public static AdditionalPropertiesDictionary Create(bool readOnly, bool needsApproval, string source, bool concurrent = false) => new()
    {
        [ReadOnlyKey] = readOnly,
        [NeedsApprovalKey] = needsApproval,
        [SourceKey] = source,
        [ConcurrentKey] = concurrent,
    };

    private static bool Flag(AITool tool, string key) =>
        tool.AdditionalProperties.TryGetValue(key, out var value) && value is true;
}
