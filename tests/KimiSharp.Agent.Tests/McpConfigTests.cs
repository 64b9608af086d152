using KimiSharp.Agent.Mcp;

namespace KimiSharp.Agent.Tests;

public sealed class McpConfigTests
{
    private static readonly Dictionary<string, string> Variables = new()
    {
        ["TOKEN"] = "s3cret",
        ["HOME_DIR"] = "/home/kimi",
        ["EMPTY"] = "",
    };

    private static McpConfig Parse(string json, string? baseDirectory = null) =>
        McpConfig.Parse(json, "test/mcp.json", baseDirectory, name => Variables.GetValueOrDefault(name));

    private static string ParseError(string json) =>
        Assert.Throws<McpConfigException>(() => Parse(json)).Message;

    [Fact]
    public void Reads_stdio_and_http_servers_in_file_order()
    {
        var config = Parse("""
            {
              "mcpServers": {
                "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                          "env": {"DEBUG": "1", "PORT": 8080}, "cwd": "/srv"},
                "context7": {"url": "https://mcp.context7.com/mcp", "headers": {"Authorization": "Bearer x"}},
                "legacy": {"url": "http://127.0.0.1:9000/sse", "transport": "sse"},
                "typed": {"type": "http", "url": "https://example.com/mcp"},
              }
            }
            """);

        Assert.Equal(["files", "context7", "legacy", "typed"], config.Servers.Keys);
        var files = Assert.IsType<McpStdioServerConfig>(config.Servers["files"]);
        Assert.Equal("npx", files.Command);
        Assert.Equal(["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], files.Arguments);
        Assert.Equal("1", files.Environment["DEBUG"]);
        Assert.Equal("8080", files.Environment["PORT"]);
        Assert.Equal("/srv", files.WorkingDirectory);

        var context7 = Assert.IsType<McpHttpServerConfig>(config.Servers["context7"]);
        Assert.Equal(new Uri("https://mcp.context7.com/mcp"), context7.Url);
        Assert.Equal("Bearer x", context7.Headers["Authorization"]);
        Assert.Equal(McpHttpTransport.Auto, context7.Transport);
        Assert.Equal(McpHttpTransport.Sse, Assert.IsType<McpHttpServerConfig>(config.Servers["legacy"]).Transport);
        Assert.Equal(McpHttpTransport.StreamableHttp, Assert.IsType<McpHttpServerConfig>(config.Servers["typed"]).Transport);
        Assert.Empty(config.Warnings);
    }

    [Fact]
    public void A_minimal_stdio_server_has_no_arguments_environment_or_directory()
    {
        var server = Assert.IsType<McpStdioServerConfig>(Parse("""{"mcpServers": {"s": {"command": "srv"}}}""").Servers["s"]);
        Assert.Empty(server.Arguments);
        Assert.Empty(server.Environment);
        Assert.Null(server.WorkingDirectory);
        Assert.Empty(Parse("""{"mcpServers": {}}""").Servers);
    }

    [Fact]
    public void Relative_cwd_is_taken_from_the_config_folder()
    {
        var baseDirectory = Path.Combine(Path.GetTempPath(), "project");
        var server = Assert.IsType<McpStdioServerConfig>(
            Parse("""{"mcpServers": {"s": {"command": "srv", "cwd": "tools/srv"}}}""", baseDirectory).Servers["s"]);
        Assert.Equal(Path.Combine(baseDirectory, "tools", "srv"), server.WorkingDirectory);
    }

    [Fact]
    public void Expands_environment_variables_with_defaults()
    {
        var config = Parse("""
            {"mcpServers": {
              "s": {"command": "${HOME_DIR}/bin/srv", "args": ["--token=${TOKEN}", "${MISSING:-fallback}", "${EMPTY:-dflt}", "x${EMPTY}y"],
                    "env": {"KEY": "${TOKEN}"}},
              "h": {"url": "https://example.com/${MISSING:-mcp}", "headers": {"Authorization": "Bearer ${TOKEN}"}}
            }}
            """);
        var stdio = Assert.IsType<McpStdioServerConfig>(config.Servers["s"]);
        Assert.Equal("/home/kimi/bin/srv", stdio.Command);
        Assert.Equal(["--token=s3cret", "fallback", "dflt", "xy"], stdio.Arguments);
        Assert.Equal("s3cret", stdio.Environment["KEY"]);
        var http = Assert.IsType<McpHttpServerConfig>(config.Servers["h"]);
        Assert.Equal("https://example.com/mcp", http.Url.ToString());
        Assert.Equal("Bearer s3cret", http.Headers["Authorization"]);
    }

    [Fact]
    public void Unknown_keys_are_warnings_naming_the_key()
    {
        var config = Parse("""
            {"mcpServers": {"s": {"command": "srv", "disabled": false, "autoApprove": []}}, "globalShortcut": "x"}
            """);
        Assert.Single(config.Servers);
        Assert.Equal(3, config.Warnings.Count);
        Assert.Contains(config.Warnings, w => w.Contains("mcpServers.s.disabled", StringComparison.Ordinal));
        Assert.Contains(config.Warnings, w => w.Contains("mcpServers.s.autoApprove", StringComparison.Ordinal));
        Assert.Contains(config.Warnings, w => w.Contains("globalShortcut", StringComparison.Ordinal));
        Assert.All(config.Warnings, w => Assert.StartsWith("test/mcp.json: ", w));
    }

    [Theory]
    [InlineData("""{"mcpServers": {"s": {"command": "srv",}""", "not valid JSON")]
    [InlineData("""[1, 2]""", "the top level must be an object")]
    [InlineData("""{"servers": {}}""", "has no \"mcpServers\" object")]
    [InlineData("""{"mcpServers": []}""", "mcpServers must be an object")]
    [InlineData("""{"mcpServers": {"s": "npx server"}}""", "mcpServers.s must be an object, not a string")]
    [InlineData("""{"mcpServers": {"s": {"args": ["x"]}}}""", "mcpServers.s has neither \"command\"")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "url": "https://x"}}}""", "mcpServers.s has both \"command\" and \"url\"")]
    [InlineData("""{"mcpServers": {"s": {"command": 5}}}""", "mcpServers.s.command must be a string, not the number 5")]
    [InlineData("""{"mcpServers": {"s": {"command": " "}}}""", "mcpServers.s.command is empty")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "args": "-v"}}}""", "mcpServers.s.args must be an array of strings, not a string")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "args": ["-v", 3]}}}""", "mcpServers.s.args[1] must be a string, not the number 3")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "env": ["A=1"]}}}""", "mcpServers.s.env must be an object of string values, not an array")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "env": {"A": {"b": 1}}}}}""", "mcpServers.s.env.A must be a string, not an object")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "cwd": true}}}""", "mcpServers.s.cwd must be a string, not the boolean true")]
    [InlineData("""{"mcpServers": {"s": {"command": "a", "transport": "sse"}}}""", "mcpServers.s.transport is \"sse\", but a server with \"command\" runs over stdio")]
    [InlineData("""{"mcpServers": {"s": {"url": "https://x", "transport": "websocket"}}}""", "mcpServers.s.transport is \"websocket\"; expected \"http\" or \"sse\"")]
    [InlineData("""{"mcpServers": {"s": {"url": "example.com/mcp"}}}""", "mcpServers.s.url is \"example.com/mcp\", not an absolute http:// or https:// address")]
    [InlineData("""{"mcpServers": {"s": {"url": "ftp://example.com/mcp"}}}""", "not an absolute http:// or https:// address")]
    [InlineData("""{"mcpServers": {"s": {"url": "https://x", "headers": {"A": null}}}}""", "mcpServers.s.headers.A must be a string, not null")]
    [InlineData("""{"mcpServers": {"s": {"command": "${NOT_SET}/srv"}}}""", "mcpServers.s.command uses the environment variable NOT_SET, which is not set")]
    [InlineData("""{"mcpServers": {"s": {"command": "srv", "args": ["${TOKEN"]}}}""", "mcpServers.s.args[0] has an unclosed \"${\"")]
    [InlineData("""{"mcpServers": {"s": {"command": "srv", "args": ["${A B}"]}}}""", "is not a variable name")]
    [InlineData("""{"mcpServers": {"s": {"command": "a"}, "s": {"command": "b"}}}""", "mcpServers.s is listed twice")]
    public void Malformed_configurations_are_errors_naming_the_problem(string json, string expected)
    {
        string message = ParseError(json);
        Assert.StartsWith("test/mcp.json: ", message);
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_json_reports_the_line()
    {
        string message = ParseError("{\n  \"mcpServers\": {\n    \"s\": {\"command\": \"a\" \"args\": []}\n  }\n}");
        Assert.Contains("LineNumber: 2", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Loading_a_missing_file_names_it()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kimi-mcp-{Guid.NewGuid():N}", "mcp.json");
        var error = await Assert.ThrowsAsync<McpConfigException>(() => McpConfig.LoadAsync(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Loading_a_file_resolves_cwd_against_its_folder()
    {
        string folder = Directory.CreateTempSubdirectory("kimi-mcp-").FullName;
        try
        {
            string path = Path.Combine(folder, "mcp.json");
            await File.WriteAllTextAsync(path, """{"mcpServers": {"s": {"command": "srv", "cwd": "sub"}}}""");
            var config = await McpConfig.LoadAsync(path);
            Assert.Equal(Path.Combine(folder, "sub"), Assert.IsType<McpStdioServerConfig>(config.Servers["s"]).WorkingDirectory);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
