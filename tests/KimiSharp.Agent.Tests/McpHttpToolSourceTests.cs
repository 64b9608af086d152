using System.ComponentModel;
using System.Net;
using System.Net.Sockets;
using KimiSharp.Agent.Mcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Server;

namespace KimiSharp.Agent.Tests;

/// <summary>The streamable HTTP transport, against an ASP.NET Core MCP server on a loopback port.</summary>
public sealed class McpHttpToolSourceTests
{
    private static readonly McpConnectOptions Options = McpConnectOptions.Default with
    {
        ConnectTimeout = TimeSpan.FromSeconds(10),
        CallTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>A running server and the X-Test-Token header values its requests carried.</summary>
    private sealed class WebServer(WebApplication app, List<string> tokens) : IAsyncDisposable
    {
        public Uri Url { get; } = new(app.Urls.Single() + "/mcp");

        public IReadOnlyList<string> Tokens
        {
            get
            {
                lock (tokens)
                    return [.. tokens];
            }
        }

        public Task StopAsync() => app.StopAsync();

        public ValueTask DisposeAsync() => app.DisposeAsync();

        public static async Task<WebServer> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Services.AddMcpServer().WithHttpTransport().WithTools(
            [
                McpServerTool.Create(
                    [Description("Returns the text unchanged.")] (string text) => text,
                    new McpServerToolCreateOptions { Name = "echo", ReadOnly = true }),
                McpServerTool.Create(
                    [Description("Adds two integers.")] (int a, int b) => a + b,
                    new McpServerToolCreateOptions { Name = "add" }),
            ]);
            var app = builder.Build();
            var tokens = new List<string>();
            app.Use((context, next) =>
            {
                lock (tokens)
                    tokens.Add(context.Request.Headers["X-Test-Token"].ToString());
                return next(context);
            });
            app.MapMcp("/mcp");
            await app.StartAsync();
            return new WebServer(app, tokens);
        }
    }

    [Fact]
    public async Task Lists_and_calls_tools_over_streamable_http_sending_the_configured_headers()
    {
        await using var server = await WebServer.StartAsync();
        var config = new McpHttpServerConfig(server.Url, new Dictionary<string, string> { ["X-Test-Token"] = "t0k3n" },
            McpHttpTransport.StreamableHttp);

        await using var source = await McpToolSource.ConnectAsync("web", config, Options);

        Assert.Equal(["echo", "add"], source.Tools.Select(t => t.Name));
        Assert.Equal("Adds two integers.", source.Tools[1].Description);
        Assert.Equal("5", await source.Tools[1].InvokeAsync(new AIFunctionArguments { ["a"] = 2, ["b"] = 3 }));
        Assert.Equal("over http", await source.Tools[0].InvokeAsync(new AIFunctionArguments { ["text"] = "over http" }));
        Assert.NotEmpty(server.Tokens);
        Assert.All(server.Tokens, token => Assert.Equal("t0k3n", token));
    }

    [Fact]
    public async Task A_server_that_goes_away_fails_calls_naming_it()
    {
        var server = await WebServer.StartAsync();
        var config = new McpHttpServerConfig(server.Url, new Dictionary<string, string>(), McpHttpTransport.Auto);
        await using var source = await McpToolSource.ConnectAsync("web", config, Options);
        await server.StopAsync();
        await server.DisposeAsync();

        var error = await Assert.ThrowsAsync<McpToolCallException>(
            () => source.Tools[0].InvokeAsync(new AIFunctionArguments { ["text"] = "hello?" }).AsTask());
        Assert.Equal(McpToolFailure.ServerGone, error.Failure);
        Assert.Contains("MCP server 'web'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'echo'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_url_is_named_in_the_failure()
    {
        // A port that was free a moment ago: nothing listens there.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var url = new Uri($"http://127.0.0.1:{port}/mcp");

        var error = await Assert.ThrowsAsync<McpServerException>(() => McpToolSource.ConnectAsync("offline",
            new McpHttpServerConfig(url, new Dictionary<string, string>(), McpHttpTransport.StreamableHttp), Options));
        Assert.Contains($"MCP server 'offline' (url {url}) could not be reached", error.Message, StringComparison.Ordinal);
    }
}
