using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Agent.Mcp;

/// <summary>A server of the configuration that could not be used, and why.</summary>
public sealed record McpServerFailure(string ServerName, string Message, Exception Exception);

/// <summary>
/// All servers of an <see cref="McpConfig"/>, connected at once. A server that fails to start is logged and listed in
/// <see cref="Failures"/>; the others are used. Tool names that clash (between servers, or with
/// <see cref="McpConnectOptions.ReservedToolNames"/>) are renamed <c>server__tool</c> on every MCP side of the clash, so
/// the result does not depend on which server answered first.
/// </summary>
public sealed class McpToolset : IAsyncDisposable
{
    private McpToolset(IReadOnlyList<McpToolSource> sources, IReadOnlyList<McpServerFailure> failures, IReadOnlyList<McpTool> tools)
    {
        Sources = sources;
        Failures = failures;
        Tools = tools;
    }

    /// <summary>The connected servers, in configuration order.</summary>
    public IReadOnlyList<McpToolSource> Sources { get; }

    /// <summary>The servers that could not be connected, in configuration order.</summary>
    public IReadOnlyList<McpServerFailure> Failures { get; }

    /// <summary>Every connected server's tools under unique names, ready to hand to the model.</summary>
    public IReadOnlyList<McpTool> Tools { get; }

    /// <summary>The tools as the <see cref="AITool"/>s a chat client takes.</summary>
    public IEnumerable<AITool> AsAITools() => Tools;

    public static async Task<McpToolset> ConnectAsync(
        McpConfig config, McpConnectOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        logger ??= NullLogger.Instance;
        foreach (var warning in config.Warnings)
            logger.LogWarning("{Warning}", warning);

        var servers = config.Servers.ToList();
        var attempts = servers
            .Select(server => McpToolSource.ConnectAsync(server.Key, server.Value, options, logger, cancellationToken))
            .ToList();
        try
        {
            await Task.WhenAll(attempts).ConfigureAwait(false);
        }
        catch
        {
            // Each failure is read from its own task below.
        }
        if (cancellationToken.IsCancellationRequested)
        {
            await DisposeConnectedAsync(attempts).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }

        var sources = new List<McpToolSource>();
        var failures = new List<McpServerFailure>();
        for (int i = 0; i < servers.Count; i++)
        {
            var attempt = attempts[i];
            if (attempt.IsCompletedSuccessfully)
            {
                sources.Add(attempt.Result);
                continue;
            }
            var error = attempt.Exception?.GetBaseException() ?? new OperationCanceledException();
            logger.LogError("MCP server {Server} is not available: {Message}", servers[i].Key, error.Message);
            failures.Add(new McpServerFailure(servers[i].Key, error.Message, error));
        }
        return new McpToolset(sources, failures, ResolveNames(sources, options.ReservedToolNames, logger));
    }

    /// <summary>Every tool under a name no other tool has; clashing ones become <c>server__tool</c>.</summary>
    internal static IReadOnlyList<McpTool> ResolveNames(
        IReadOnlyList<McpToolSource> sources, IReadOnlyCollection<string> reserved, ILogger logger)
    {
        var owners = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var tool in sources.SelectMany(s => s.Tools))
            owners[tool.Name] = owners.GetValueOrDefault(tool.Name) + 1;
        var reservedSet = reserved.ToHashSet(StringComparer.Ordinal);

        var tools = new List<McpTool>();
        foreach (var tool in sources.SelectMany(s => s.Tools))
        {
            if (owners[tool.Name] == 1 && !reservedSet.Contains(tool.Name))
            {
                tools.Add(tool);
                continue;
            }
            string renamed = $"{SafeName(tool.ServerName)}__{tool.Name}";
            logger.LogInformation("MCP tool {Tool} of server {Server} is offered as {Renamed} (its name is taken)",
                tool.Name, tool.ServerName, renamed);
            tools.Add(tool.WithName(renamed));
        }
        return tools;
    }

    /// <summary>The server name with characters function names may not hold replaced by '_'.</summary>
    private static string SafeName(string serverName) =>
        string.Concat(serverName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_'));

    private static async Task DisposeConnectedAsync(IEnumerable<Task<McpToolSource>> attempts)
    {
        foreach (var attempt in attempts)
        {
            try
            {
                await (await attempt.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                // It never connected; nothing to close.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Closing a stdio server can take up to its shutdown timeout; close them all at once.
        await Task.WhenAll(Sources.Select(s => s.DisposeAsync().AsTask())).ConfigureAwait(false);
    }
}
