namespace KimiSharp.Agent.Mcp;

/// <summary>Limits and identity for talking to MCP servers; every wait has a bound so a stuck server never stalls the agent.</summary>
public sealed record McpConnectOptions
{
    public static McpConnectOptions Default { get; } = new();

    /// <summary>Starting the process (or opening the HTTP session) and the initialize handshake together.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Listing the server's tools (all pages).</summary>
    public TimeSpan ListTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>One tool call; past it the call is cancelled and reported as a timeout.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a stdio server gets to exit after its stdin closes before it is killed.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many of a stdio server's last stderr lines go into failure messages.</summary>
    public int StderrTailLines { get; init; } = 20;

    /// <summary>
    /// <c>true</c>: a tool whose server marks it <c>readOnlyHint</c> is treated as read-only and runs without approval.
    /// The hint comes from a server the user chose to configure (and, for stdio, already runs with their rights), so
    /// trusting it costs little; set <c>false</c> to make every MCP tool ask first regardless.
    /// </summary>
    public bool TrustReadOnlyHints { get; init; } = true;

    /// <summary>Names an MCP tool may not take (the built-in tools); a clashing MCP tool is renamed <c>server__tool</c>.</summary>
    public IReadOnlyCollection<string> ReservedToolNames { get; init; } = [];

    /// <summary>How this client introduces itself in the initialize handshake.</summary>
    public string ClientName { get; init; } = "kimi-sharp";

    public string ClientVersion { get; init; } = "1.0.0";

    internal void Validate()
    {
        if (ConnectTimeout <= TimeSpan.Zero) throw new ArgumentException("ConnectTimeout must be positive", nameof(ConnectTimeout));
        if (ListTimeout <= TimeSpan.Zero) throw new ArgumentException("ListTimeout must be positive", nameof(ListTimeout));
        if (CallTimeout <= TimeSpan.Zero) throw new ArgumentException("CallTimeout must be positive", nameof(CallTimeout));
        if (ShutdownTimeout < TimeSpan.Zero) throw new ArgumentException("ShutdownTimeout must not be negative", nameof(ShutdownTimeout));
        if (StderrTailLines < 0) throw new ArgumentException("StderrTailLines must not be negative", nameof(StderrTailLines));
    }
}
