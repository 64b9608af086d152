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

    public static bool IsReadOnly(AITool tool) => Flag(tool, ReadOnlyKey);

    public static bool NeedsApproval(AITool tool) => Flag(tool, NeedsApprovalKey);

    public static string? Source(AITool tool) =>
        tool.AdditionalProperties.TryGetValue(SourceKey, out var value) ? value as string : null;

    /// <summary>The properties dictionary for a tool with these traits.</summary>
    public static AdditionalPropertiesDictionary Create(bool readOnly, bool needsApproval, string source) => new()
    {
        [ReadOnlyKey] = readOnly,
        [NeedsApprovalKey] = needsApproval,
        [SourceKey] = source,
    };

    private static bool Flag(AITool tool, string key) =>
        tool.AdditionalProperties.TryGetValue(key, out var value) && value is true;
}
