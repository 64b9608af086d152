using System.ComponentModel;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

// The test double for MCP client tests: well-behaved tools (echo, add, slow, fail) and misbehaving ones (crash exits
// the process mid-call, hang never answers even when cancelled). Everything else goes to stderr, never stdout, which
// belongs to the protocol.
Console.Error.WriteLine("kimi-mcp-test-server: starting");

if (args.Contains("--fail-on-start"))
{
    Console.Error.WriteLine("kimi-mcp-test-server: refusing to start (--fail-on-start)");
    return 4;
}

if (args.Contains("--no-answer"))
{
    // Started but never speaks MCP, for connect-timeout tests; it gives up on its own so a leaked one doesn't linger.
    Console.Error.WriteLine("kimi-mcp-test-server: not answering (--no-answer)");
    await Task.Delay(TimeSpan.FromSeconds(30));
    return 5;
}

var options = new McpServerOptions
{
    ServerInfo = new Implementation { Name = "kimi-mcp-test-server", Version = "1.0.0" },
    ToolCollection =
    [
        McpServerTool.Create(
            [Description("Returns the text unchanged.")] ([Description("The text to echo.")] string text) => text,
            new McpServerToolCreateOptions { Name = "echo", ReadOnly = true }),
        McpServerTool.Create(
            [Description("Adds two integers.")] (int a, int b) => (a + b).ToString(System.Globalization.CultureInfo.InvariantCulture),
            new McpServerToolCreateOptions { Name = "add", ReadOnly = true }),
        McpServerTool.Create(
            [Description("Waits the given number of milliseconds, then answers.")] async (int ms, CancellationToken cancellationToken) =>
            {
                await Task.Delay(ms, cancellationToken);
                return $"slept {ms} ms";
            },
            new McpServerToolCreateOptions { Name = "slow" }),
        McpServerTool.Create(
            [Description("Answers with an error result (isError).")] () => new CallToolResult
            {
                IsError = true,
                Content = [new TextContentBlock { Text = "the fail tool always fails" }],
            },
            new McpServerToolCreateOptions { Name = "fail" }),
        McpServerTool.Create(
            [Description("Answers with a text block and an image block.")] () => new CallToolResult
            {
                Content =
                [
                    new TextContentBlock { Text = "a picture:" },
                    ImageContentBlock.FromBytes(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, "image/png"),
                ],
            },
            new McpServerToolCreateOptions { Name = "picture" }),
        McpServerTool.Create(
            [Description("Exits the server process without answering.")] () =>
            {
                Console.Error.WriteLine("kimi-mcp-test-server: crashing on purpose");
                Environment.Exit(3);
                return "unreachable";
            },
            new McpServerToolCreateOptions { Name = "crash", Destructive = true }),
        McpServerTool.Create(
            [Description("Never answers, ignoring cancellation.")] async () =>
            {
                await Task.Delay(Timeout.Infinite, CancellationToken.None);
                return "unreachable";
            },
            new McpServerToolCreateOptions { Name = "hang" }),
    ],
};

// --only a,b: offer just those tools (to give two servers different tool sets).
int only = Array.IndexOf(args, "--only");
if (only >= 0 && only + 1 < args.Length)
{
    var keep = args[only + 1].Split(',');
    foreach (var tool in options.ToolCollection.Where(t => !keep.Contains(t.ProtocolTool.Name)).ToList())
        options.ToolCollection.Remove(tool);
}

await using var server = McpServer.Create(new StdioServerTransport(options), options);
await server.RunAsync();
return 0;
