using KimiSharp.Agent.Mcp;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

public sealed class McpToolsetTests
{
    [Fact]
    public async Task Bad_servers_are_reported_and_the_good_ones_used_with_clashing_names_prefixed()
    {
        string dll = McpTestServer.Dll.Replace("\\", "\\\\", StringComparison.Ordinal);
        var config = McpConfig.Parse($$$"""
            {"mcpServers": {
              "full": {"command": "dotnet", "args": ["{{{dll}}}"]},
              "missing": {"command": "kimi-no-such-mcp-server"},
              "quitter": {"command": "dotnet", "args": ["{{{dll}}}", "--fail-on-start"]},
              "small.one": {"command": "dotnet", "args": ["{{{dll}}}", "--only", "echo,slow"]}
            }}
            """);
        var options = McpConnectOptions.Default with { ReservedToolNames = ["add"], ShutdownTimeout = TimeSpan.FromMilliseconds(500) };

        await using var toolset = await McpToolset.ConnectAsync(config, options);

        Assert.Equal(["full", "small.one"], toolset.Sources.Select(s => s.Name));
        Assert.Equal(["missing", "quitter"], toolset.Failures.Select(f => f.ServerName));
        Assert.Contains("kimi-no-such-mcp-server", toolset.Failures[0].Message, StringComparison.Ordinal);
        Assert.Contains("refusing to start", toolset.Failures[1].Message, StringComparison.Ordinal);

        // echo and slow are offered by both servers, add is reserved for a built-in; the rest keep their names.
        Assert.Equal(
            ["full__echo", "full__add", "full__slow", "fail", "picture", "crash", "hang", "small_one__echo", "small_one__slow"],
            toolset.Tools.Select(t => t.Name));
        Assert.Equal(toolset.Tools.Count, toolset.AsAITools().OfType<AIFunction>().Select(t => t.Name).Distinct().Count());

        var renamed = toolset.Tools.Single(t => t.Name == "small_one__echo");
        Assert.Equal("echo", renamed.ToolName);
        Assert.Equal("mcp:small.one", ToolTraits.Source(renamed));
        Assert.True(ToolTraits.IsReadOnly(renamed));
        Assert.Equal("via the small one", await renamed.InvokeAsync(new AIFunctionArguments { ["text"] = "via the small one" }));
        Assert.Equal("3", await toolset.Tools.Single(t => t.Name == "full__add").InvokeAsync(new AIFunctionArguments { ["a"] = 1, ["b"] = 2 }));
    }

    [Fact]
    public async Task An_empty_configuration_connects_nothing()
    {
        await using var toolset = await McpToolset.ConnectAsync(McpConfig.Empty, McpConnectOptions.Default);
        Assert.Empty(toolset.Sources);
        Assert.Empty(toolset.Failures);
        Assert.Empty(toolset.Tools);
    }
}
