namespace KimiSharp.Agent.Mcp;

/// <summary>An MCP server could not be started, connected to or listed; the message names it and says why.</summary>
public sealed class McpServerException(string serverName, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string ServerName { get; } = serverName;
}

/// <summary>Why an MCP tool call produced no normal result.</summary>
public enum McpToolFailure
{
    /// <summary>The tool ran and answered with <c>isError</c>; the message is the tool's own text.</summary>
    ToolError,

    /// <summary>The server rejected the request (unknown tool, invalid arguments, an internal error).</summary>
    Rejected,

    /// <summary>No answer within <see cref="McpConnectOptions.CallTimeout"/>.</summary>
    Timeout,

    /// <summary>The server process exited or the connection closed (before or during the call).</summary>
    ServerGone,
}

/// <summary>
/// An MCP tool call that failed. Thrown from the tool's <c>InvokeAsync</c>; the message is written for the model
/// (it names the server, the tool and what happened), so the dispatcher should send it back as an error tool result.
/// </summary>
public sealed class McpToolCallException(
    string serverName, string toolName, McpToolFailure failure, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string ServerName { get; } = serverName;

    /// <summary>The tool's name on its server (which may differ from the name the model sees).</summary>
    public string ToolName { get; } = toolName;

    public McpToolFailure Failure { get; } = failure;
}
