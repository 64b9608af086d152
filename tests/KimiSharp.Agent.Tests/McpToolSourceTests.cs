using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Agent.Mcp;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

/// <summary>One well-behaved test server shared by the tests that only list and call.</summary>
public sealed class McpTestServerFixture : IAsyncLifetime
{
    public McpToolSource Source { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Source = await McpToolSource.ConnectAsync("test", McpTestServer.Config(), McpConnectOptions.Default);

    public async Task DisposeAsync() => await Source.DisposeAsync();
}

public sealed class McpToolSourceTests(McpTestServerFixture server) : IClassFixture<McpTestServerFixture>
{
    private static readonly McpConnectOptions FastOptions = McpConnectOptions.Default with
    {
        CallTimeout = TimeSpan.FromSeconds(1),
        ShutdownTimeout = TimeSpan.FromMilliseconds(500),
    };

    private McpTool Tool(string name) => server.Source.Tools.Single(t => t.Name == name);

    private static AIFunctionArguments Arguments(string json) =>
        new(JsonSerializer.Deserialize<Dictionary<string, object?>>(json)!);

    [Fact]
    public void Lists_the_servers_tools_with_descriptions_schemas_and_traits()
    {
        Assert.Equal(["echo", "add", "slow", "fail", "picture", "crash", "hang"], server.Source.Tools.Select(t => t.Name));

        var echo = Tool("echo");
        Assert.Equal("Returns the text unchanged.", echo.Description);
        var schema = echo.JsonSchema;
        Assert.Equal("object", schema.GetProperty("type").GetString());
        Assert.Equal("string", schema.GetProperty("properties").GetProperty("text").GetProperty("type").GetString());
        Assert.Equal("The text to echo.", schema.GetProperty("properties").GetProperty("text").GetProperty("description").GetString());
        Assert.Equal(["text"], schema.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("integer", Tool("add").JsonSchema.GetProperty("properties").GetProperty("b").GetProperty("type").GetString());

        // echo and add carry readOnlyHint; the rest ask first.
        Assert.All(server.Source.Tools, t => Assert.Equal("mcp:test", ToolTraits.Source(t)));
        Assert.True(ToolTraits.IsReadOnly(echo));
        Assert.False(ToolTraits.NeedsApproval(echo));
        Assert.False(ToolTraits.IsReadOnly(Tool("crash")));
        Assert.True(ToolTraits.NeedsApproval(Tool("crash")));
        Assert.True(ToolTraits.NeedsApproval(Tool("slow")));
        Assert.All(server.Source.Tools, t => Assert.Equal("test", t.ServerName));
    }

    [Fact]
    public async Task Calls_return_the_text_of_the_result()
    {
        Assert.Equal("héllo, wörld", await Tool("echo").InvokeAsync(Arguments("""{"text": "héllo, wörld"}""")));
        Assert.Equal("42", await Tool("add").InvokeAsync(Arguments("""{"a": 40, "b": 2}""")));
        Assert.Equal("-7", await Tool("add").InvokeAsync(new AIFunctionArguments { ["a"] = 3, ["b"] = -10 }));
        Assert.Equal("slept 10 ms", await Tool("slow").InvokeAsync(Arguments("""{"ms": 10}""")));
    }

    [Fact]
    public async Task Non_text_blocks_are_described()
    {
        Assert.Equal("a picture:\n[image: image/png, 4 bytes]", await Tool("picture").InvokeAsync(new AIFunctionArguments()));
    }

    [Fact]
    public async Task An_isError_result_is_a_tool_error_with_the_tools_text()
    {
        var error = await Assert.ThrowsAsync<McpToolCallException>(() => Tool("fail").InvokeAsync(new AIFunctionArguments()).AsTask());
        Assert.Equal(McpToolFailure.ToolError, error.Failure);
        Assert.Equal("the fail tool always fails", error.Message);
        Assert.Equal("test", error.ServerName);
        Assert.Equal("fail", error.ToolName);
    }

    [Fact]
    public async Task Cancelling_a_call_cancels_rather_than_reporting_a_timeout()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => Tool("slow").InvokeAsync(Arguments("""{"ms": 20000}"""), cancel.Token).AsTask());
    }

    [Fact]
    public async Task A_crashing_server_fails_the_call_and_later_calls_say_it_is_gone()
    {
        await using var source = await McpToolSource.ConnectAsync("crashy", McpTestServer.Config(),
            McpConnectOptions.Default with { CallTimeout = TimeSpan.FromSeconds(20) });
        var crash = source.Tools.Single(t => t.Name == "crash");
        var echo = source.Tools.Single(t => t.Name == "echo");
        Assert.True(source.IsConnected);

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<McpToolCallException>(() => crash.InvokeAsync(new AIFunctionArguments()).AsTask());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the crash took {clock.Elapsed} to notice");
        Assert.Equal(McpToolFailure.ServerGone, error.Failure);
        Assert.Contains("MCP server 'crashy' exited with code 3 during the call to 'crash'", error.Message, StringComparison.Ordinal);
        Assert.Contains("crashing on purpose", error.Message, StringComparison.Ordinal);
        Assert.False(source.IsConnected);

        var later = await Assert.ThrowsAsync<McpToolCallException>(
            () => echo.InvokeAsync(Arguments("""{"text": "anyone?"}""")).AsTask());
        Assert.Equal(McpToolFailure.ServerGone, later.Failure);
        Assert.Contains("MCP server 'crashy' exited with code 3 earlier; 'echo' was not called", later.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hanging_call_times_out_and_the_server_stays_usable()
    {
        var source = await McpToolSource.ConnectAsync("stuck", McpTestServer.Config(), FastOptions);
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<McpToolCallException>(
            () => source.Tools.Single(t => t.Name == "hang").InvokeAsync(new AIFunctionArguments()).AsTask());
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.Equal(McpToolFailure.Timeout, error.Failure);
        Assert.Equal("MCP server 'stuck' did not answer the call to 'hang' within 1 s; the call was abandoned", error.Message);

        Assert.Equal("still here", await source.Tools.Single(t => t.Name == "echo").InvokeAsync(Arguments("""{"text": "still here"}""")));

        // Closing does not wait for the hung handler: the process is stopped after the shutdown timeout at most.
        clock.Restart();
        await source.DisposeAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"closing took {clock.Elapsed}");
        Assert.False(source.IsConnected);
        var closed = await Assert.ThrowsAsync<McpToolCallException>(
            () => source.Tools.Single(t => t.Name == "echo").InvokeAsync(Arguments("""{"text": "x"}""")).AsTask());
        Assert.Contains("no longer connected", closed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_that_does_not_exist_is_named_in_the_failure()
    {
        var config = new McpStdioServerConfig("kimi-no-such-mcp-server", ["--flag"], new Dictionary<string, string>(), null);
        var error = await Assert.ThrowsAsync<McpServerException>(() => McpToolSource.ConnectAsync("ghost", config, FastOptions));
        Assert.Equal("ghost", error.ServerName);
        Assert.Contains("MCP server 'ghost' (command 'kimi-no-such-mcp-server')", error.Message, StringComparison.Ordinal);
        Assert.Contains("could not be started", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_exits_at_start_is_reported_with_its_stderr()
    {
        var error = await Assert.ThrowsAsync<McpServerException>(
            () => McpToolSource.ConnectAsync("quitter", McpTestServer.Config("--fail-on-start"), FastOptions));
        Assert.Contains("MCP server 'quitter' (command 'dotnet')", error.Message, StringComparison.Ordinal);
        Assert.Contains("refusing to start (--fail-on-start)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_never_answers_times_out_connecting()
    {
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<McpServerException>(() => McpToolSource.ConnectAsync("mute",
            McpTestServer.Config("--no-answer"), FastOptions with { ConnectTimeout = TimeSpan.FromSeconds(1.5) }));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"connecting took {clock.Elapsed}");
        Assert.Contains("MCP server 'mute' (command 'dotnet') did not finish starting within 1.5 s", error.Message, StringComparison.Ordinal);
    }
}
