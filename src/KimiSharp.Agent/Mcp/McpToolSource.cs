using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace KimiSharp.Agent.Mcp;

/// <summary>
/// A connection to one MCP server and the tools it offers, as <see cref="AIFunction"/>s (<see cref="McpTool"/>).
/// Disposing it closes the connection (and stops a stdio server's process).
/// </summary>
public sealed class McpToolSource : IAsyncDisposable
{
    private readonly McpClient _client;
    private readonly McpConnectOptions _options;
    private readonly StderrTail _stderr;
    private readonly ILogger _logger;
    private int _disposed;

    private McpToolSource(string name, McpClient client, McpConnectOptions options, StderrTail stderr, ILogger logger)
    {
        Name = name;
        _client = client;
        _options = options;
        _stderr = stderr;
        _logger = logger;
    }

    /// <summary>The server's name in the configuration.</summary>
    public string Name { get; }

    /// <summary>The server's tools, named as the server names them.</summary>
    public IReadOnlyList<McpTool> Tools { get; private set; } = [];

    /// <summary>What the server says about how to use it (worth adding to the system prompt), if anything.</summary>
    public string? ServerInstructions => _client.ServerInstructions;

    /// <summary><c>false</c> once the server has exited or the connection has closed.</summary>
    public bool IsConnected => !_client.Completion.IsCompleted && Volatile.Read(ref _disposed) == 0;

    /// <summary>
    /// Starts (stdio) or connects to (HTTP) the server, runs the initialize handshake and lists its tools, each step
    /// bounded by <paramref name="options"/>. Failure is an <see cref="McpServerException"/> naming the server, what
    /// went wrong and, for a stdio server, the tail of its stderr.
    /// </summary>
    public static async Task<McpToolSource> ConnectAsync(
        string name,
        McpServerConfig config,
        McpConnectOptions options,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        logger ??= NullLogger.Instance;

        var stderr = new StderrTail(options.StderrTailLines);
        var transport = CreateTransport(name, config, options, stderr, logger);
        var clientOptions = new McpClientOptions
        {
            ClientInfo = new Implementation { Name = options.ClientName, Version = options.ClientVersion },
            // Our own token bounds the whole connect; the SDK's timer is only a backstop, set later so that a timeout
            // is always reported as one.
            InitializationTimeout = options.ConnectTimeout * 2,
        };

        McpClient client;
        using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            connectTimeout.CancelAfter(options.ConnectTimeout);
            try
            {
                // The SDK's own logging is protocol-level chatter; this class logs what matters to the agent.
                client = await McpClient.CreateAsync(transport, clientOptions, NullLoggerFactory.Instance, connectTimeout.Token)
                    .ConfigureAwait(false);
            }
            catch (Exception e) when (connectTimeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new McpServerException(name,
                    $"MCP server '{name}' ({Describe(config)}) did not finish starting within {Seconds(options.ConnectTimeout)}{stderr.Suffix()}", e);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new McpServerException(name, StartFailure(name, config, e, stderr), e);
            }
        }

        var source = new McpToolSource(name, client, options, stderr, logger);
        try
        {
            await source.ListToolsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await source.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        logger.LogInformation("MCP server {Server} connected: {Count} tools ({Tools})",
            name, source.Tools.Count, string.Join(", ", source.Tools.Select(t => t.Name)));
        return source;
    }

    private async Task ListToolsAsync(CancellationToken cancellationToken)
    {
        IList<McpClientTool> listed;
        using (var listTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            listTimeout.CancelAfter(_options.ListTimeout);
            try
            {
                // This overload follows nextCursor through every page.
                listed = await _client.ListToolsAsync(cancellationToken: listTimeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (listTimeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new McpServerException(Name,
                    $"MCP server '{Name}' did not list its tools within {Seconds(_options.ListTimeout)}{_stderr.Suffix()}", e);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new McpServerException(Name, $"MCP server '{Name}' failed to list its tools: {e.Message}{_stderr.Suffix()}", e);
            }
        }

        var tools = new List<McpTool>(listed.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tool in listed)
        {
            if (!seen.Add(tool.Name))
            {
                _logger.LogWarning("MCP server {Server} lists the tool {Tool} twice; the first one is used", Name, tool.Name);
                continue;
            }
            bool readOnly = _options.TrustReadOnlyHints && tool.ProtocolTool.Annotations?.ReadOnlyHint == true;
            var traits = ToolTraits.Create(readOnly, needsApproval: !readOnly, source: $"mcp:{Name}");
            tools.Add(new McpTool(this, tool, tool.Name, traits));
        }
        Tools = tools;
    }

    /// <summary>Calls one tool with the call timeout; the text of its result, or an <see cref="McpToolCallException"/>.</summary>
    internal async Task<string> CallToolAsync(McpClientTool tool, AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) != 0)
            throw new McpToolCallException(Name, tool.Name, McpToolFailure.ServerGone,
                $"MCP server '{Name}' is no longer connected (the agent closed it); '{tool.Name}' was not called");
        if (_client.Completion.IsCompleted)
            throw await GoneAsync(tool.Name, during: false).ConfigureAwait(false);

        CallToolResult result;
        using (var callTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            callTimeout.CancelAfter(_options.CallTimeout);
            var call = tool.CallAsync(arguments, progress: null, options: null, callTimeout.Token).AsTask();

            // A server that dies mid-call ends the session; don't rely on the pending request noticing.
            if (await Task.WhenAny(call, _client.Completion).ConfigureAwait(false) != call)
            {
                await callTimeout.CancelAsync().ConfigureAwait(false);
                _ = call.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                throw await GoneAsync(tool.Name, during: true).ConfigureAwait(false);
            }

            try
            {
                result = await call.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception e) when (callTimeout.IsCancellationRequested)
            {
                _logger.LogWarning("MCP server {Server}: {Tool} timed out after {Timeout}", Name, tool.Name, _options.CallTimeout);
                throw new McpToolCallException(Name, tool.Name, McpToolFailure.Timeout,
                    $"MCP server '{Name}' did not answer the call to '{tool.Name}' within {Seconds(_options.CallTimeout)}; the call was abandoned", e);
            }
            catch (McpProtocolException e)
            {
                throw new McpToolCallException(Name, tool.Name, McpToolFailure.Rejected,
                    $"MCP server '{Name}' rejected the call to '{tool.Name}': {e.Message}", e);
            }
            catch (Exception e)
            {
                // A transport error usually means the server is going away; give the session a moment to say so.
                await Task.WhenAny(_client.Completion, Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None)).ConfigureAwait(false);
                if (_client.Completion.IsCompleted)
                    throw await GoneAsync(tool.Name, during: true).ConfigureAwait(false);
                throw new McpToolCallException(Name, tool.Name, McpToolFailure.ServerGone,
                    $"calling '{tool.Name}' on MCP server '{Name}' failed: {e.Message}", e);
            }
        }

        string text = McpResultText.Format(result);
        if (result.IsError == true)
            throw new McpToolCallException(Name, tool.Name, McpToolFailure.ToolError, text);
        return text;
    }

    private async Task<McpToolCallException> GoneAsync(string toolName, bool during)
    {
        var details = await _client.Completion.ConfigureAwait(false);
        string how = details switch
        {
            StdioClientCompletionDetails { ExitCode: { } code } => $"exited with code {code}",
            StdioClientCompletionDetails => "exited",
            _ when details.Exception is { } e => $"closed the connection ({e.Message})",
            _ => "closed the connection",
        };
        string when = during ? $"during the call to '{toolName}'" : $"earlier; '{toolName}' was not called";
        _logger.LogWarning("MCP server {Server} {How} {When}", Name, how, when);
        return new McpToolCallException(Name, toolName, McpToolFailure.ServerGone,
            $"MCP server '{Name}' {how} {when}{_stderr.Suffix(details)}", details.Exception);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Closing a connection that already broke is not worth failing the agent's shutdown over.
            _logger.LogDebug(e, "MCP server {Server}: error while closing", Name);
        }
    }

    private static IClientTransport CreateTransport(
        string name, McpServerConfig config, McpConnectOptions options, StderrTail stderr, ILogger logger) => config switch
    {
        McpStdioServerConfig stdio => new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = name,
            Command = stdio.Command,
            Arguments = [.. stdio.Arguments],
            WorkingDirectory = stdio.WorkingDirectory,
            EnvironmentVariables = stdio.Environment.ToDictionary(e => e.Key, e => (string?)e.Value),
            ShutdownTimeout = options.ShutdownTimeout,
            StandardErrorLines = line =>
            {
                stderr.Add(line);
                logger.LogDebug("MCP server {Server} stderr: {Line}", name, line);
            },
        }, NullLoggerFactory.Instance),
        McpHttpServerConfig http => new HttpClientTransport(new HttpClientTransportOptions
        {
            Name = name,
            Endpoint = http.Url,
            TransportMode = http.Transport switch
            {
                McpHttpTransport.StreamableHttp => HttpTransportMode.StreamableHttp,
                McpHttpTransport.Sse => HttpTransportMode.Sse,
                _ => HttpTransportMode.AutoDetect,
            },
            AdditionalHeaders = http.Headers.ToDictionary(),
            ConnectionTimeout = options.ConnectTimeout,
        }, NullLoggerFactory.Instance),
        _ => throw new ArgumentException($"unsupported MCP server configuration {config.GetType().Name}", nameof(config)),
    };

    private static string StartFailure(string name, McpServerConfig config, Exception e, StderrTail stderr)
    {
        var details = (e as ClientTransportClosedException)?.Details;
        string how = details is StdioClientCompletionDetails { ExitCode: { } code }
            ? $"exited with code {code}"
            : config is McpStdioServerConfig ? $"failed to start: {e.Message}" : $"could not be reached: {e.Message}";
        // Process start failures arrive wrapped; the innermost message is the one that says "No such file or directory".
        if (config is McpStdioServerConfig && e.GetBaseException() is System.ComponentModel.Win32Exception start)
            how = $"could not be started: {start.Message}";
        return $"MCP server '{name}' ({Describe(config)}) {how}{stderr.Suffix(details)}";
    }

    private static string Describe(McpServerConfig config) => config switch
    {
        McpStdioServerConfig stdio => $"command '{stdio.Command}'",
        McpHttpServerConfig http => $"url {http.Url}",
        _ => config.GetType().Name,
    };

    private static string Seconds(TimeSpan time) => $"{time.TotalSeconds:0.###} s";

    /// <summary>The last lines a stdio server wrote to stderr: the usual explanation of why it failed.</summary>
    private sealed class StderrTail(int capacity)
    {
        private readonly Queue<string> _lines = new();

        public void Add(string line)
        {
            if (capacity == 0)
                return;
            lock (_lines)
            {
                if (_lines.Count == capacity)
                    _lines.Dequeue();
                _lines.Enqueue(line);
            }
        }

        /// <summary>"; stderr: ..." for a message, or nothing when the server wrote nothing.</summary>
        public string Suffix(ClientCompletionDetails? details = null)
        {
            string[] lines;
            lock (_lines)
                lines = [.. _lines];
            // The SDK keeps its own tail too; it may hold lines that arrived after ours was read.
            if (lines.Length == 0 && details is StdioClientCompletionDetails { StandardErrorTail: { Count: > 0 } sdkTail })
                lines = [.. sdkTail.TakeLast(Math.Max(capacity, 1))];
            return lines.Length == 0 ? "" : $"; its stderr ended with:\n{string.Join('\n', lines)}";
        }
    }
}
