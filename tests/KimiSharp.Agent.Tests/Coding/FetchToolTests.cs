using System.Net;
using System.Net.Sockets;
using System.Text;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Coding;

public sealed class FetchToolTests : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _serving;
    private readonly string _base;

    public FetchToolTests()
    {
        int port = FreePort();
        _base = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(_base);
        _listener.Start();
        _serving = Task.Run(ServeAsync);
    }

    [Fact]
    public async Task FetchesFromLoopback()
    {
        ToolResult result = await ToolCalls.CallAsync(Fetch(), $$"""{"url":"{{_base}}hello"}""");
        Assert.False(result.IsError, result.Content);
        Assert.Equal("HTTP 200 OK\ncontent-type: text/plain; charset=utf-8\n\nhello from loopback", result.Content);
    }

    [Fact]
    public async Task RefusesHostsOutsideTheAllowList()
    {
        ToolResult result = await ToolCalls.CallAsync(Fetch(), """{"url":"http://example.com/"}""");
        Assert.True(result.IsError);
        Assert.Equal("error: fetching from 'example.com' is not allowed; allowed hosts: localhost", result.Content);

        ToolResult notHttp = await ToolCalls.CallAsync(Fetch(), """{"url":"file:///etc/passwd"}""");
        Assert.Equal("error: 'file:///etc/passwd' is not an http:// or https:// URL", notHttp.Content);
    }

    [Fact]
    public async Task RedirectToADisallowedHostIsRefused()
    {
        ToolResult result = await ToolCalls.CallAsync(Fetch(), $$"""{"url":"{{_base}}redirect-out"}""");
        Assert.True(result.IsError);
        Assert.Contains("fetching from 'example.com' is not allowed", result.Content);

        ToolResult inside = await ToolCalls.CallAsync(Fetch(), $$"""{"url":"{{_base}}redirect-in"}""");
        Assert.EndsWith("hello from loopback", inside.Content);
    }

    [Fact]
    public void AllowListDecidesNonLoopbackHosts()
    {
        var options = new CodingToolOptions { FetchAllowedHosts = ["docs.example.org"] };
        Assert.True(FetchTool.IsAllowed(new Uri("https://DOCS.example.org/x"), options));
        Assert.False(FetchTool.IsAllowed(new Uri("https://evil.docs.example.org/x"), options));
        Assert.False(FetchTool.IsAllowed(new Uri("https://docs.example.org.evil.com/"), options));
        Assert.True(FetchTool.IsAllowed(new Uri("http://localhost:8080/"), options));
        Assert.True(FetchTool.IsAllowed(new Uri("http://[::1]/"), options));
        Assert.True(FetchTool.IsAllowed(new Uri("http://127.0.0.2/"), options));
        Assert.False(FetchTool.IsAllowed(new Uri("http://10.0.0.1/"), options));
        Assert.False(FetchTool.IsAllowed(new Uri("ftp://localhost/"), options));
    }

    [Fact]
    public async Task CapsTheBodyAndReportsHttpErrors()
    {
        ToolResult big = await ToolCalls.CallAsync(Fetch(new CodingToolOptions { FetchMaxBytes = 10 }), $$"""{"url":"{{_base}}big"}""");
        Assert.False(big.IsError);
        Assert.EndsWith("\n\naaaaaaaaaa\n[body clipped at 10 bytes]", big.Content);

        ToolResult missing = await ToolCalls.CallAsync(Fetch(), $$"""{"url":"{{_base}}missing"}""");
        Assert.True(missing.IsError);
        Assert.StartsWith("error: HTTP 404 Not Found", missing.Content);
    }

    [Fact]
    public async Task TimesOut()
    {
        ToolResult slow = await ToolCalls.CallAsync(Fetch(new CodingToolOptions { FetchTimeout = TimeSpan.FromMilliseconds(200) }),
            $$"""{"url":"{{_base}}slow"}""");
        Assert.Equal("error: no complete response within 0.2 s", slow.Content);
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }

    private static AIFunction Fetch(CodingToolOptions? options = null) => new FetchTool(options ?? new CodingToolOptions());

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = Task.Run(() => RespondAsync(context));
        }
    }

    private async Task RespondAsync(HttpListenerContext context)
    {
        HttpListenerResponse response = context.Response;
        try
        {
            switch (context.Request.Url!.AbsolutePath)
            {
                case "/hello":
                    await WriteAsync(response, "hello from loopback");
                    break;
                case "/big":
                    await WriteAsync(response, new string('a', 5000));
                    break;
                case "/redirect-out":
                    response.StatusCode = 302;
                    response.RedirectLocation = "http://example.com/";
                    response.Close();
                    break;
                case "/redirect-in":
                    response.StatusCode = 302;
                    response.RedirectLocation = "/hello";
                    response.Close();
                    break;
                case "/slow":
                    await Task.Delay(3000);
                    await WriteAsync(response, "late");
                    break;
                default:
                    response.StatusCode = 404;
                    await WriteAsync(response, "not here");
                    break;
            }
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
        {
            // The client gave up (timeout test) or the listener stopped.
        }
    }

    private static async Task WriteAsync(HttpListenerResponse response, string text)
    {
        byte[] body = Encoding.UTF8.GetBytes(text);
        response.ContentType = "text/plain; charset=utf-8";
        response.ContentLength64 = body.Length;
        await response.OutputStream.WriteAsync(body);
        response.Close();
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
