using System.Text;
using System.Text.Json;

namespace KimiSharp.Agent.Mcp;

/// <summary>How to reach one MCP server: a local process over stdio, or a remote endpoint over HTTP.</summary>
public abstract record McpServerConfig;

/// <summary>A server started as a child process that speaks MCP on its stdin/stdout.</summary>
/// <param name="Command">The program to run (looked up on PATH when it has no directory part).</param>
/// <param name="Arguments">Its arguments, passed as given (no shell).</param>
/// <param name="Environment">Variables set on top of this process's environment.</param>
/// <param name="WorkingDirectory">Where it runs; <c>null</c> for the current directory.</param>
public sealed record McpStdioServerConfig(
    string Command,
    IReadOnlyList<string> Arguments,
    IReadOnlyDictionary<string, string> Environment,
    string? WorkingDirectory) : McpServerConfig;

/// <summary>Which HTTP flavour of MCP a remote server speaks.</summary>
public enum McpHttpTransport
{
    /// <summary>Try streamable HTTP first, fall back to HTTP+SSE.</summary>
    Auto,

    /// <summary>Streamable HTTP only (<c>"transport": "http"</c>).</summary>
    StreamableHttp,

    /// <summary>The older HTTP+SSE transport only (<c>"transport": "sse"</c>).</summary>
    Sse,
}

/// <summary>A remote server reached over HTTP.</summary>
public sealed record McpHttpServerConfig(
    Uri Url,
    IReadOnlyDictionary<string, string> Headers,
    McpHttpTransport Transport) : McpServerConfig;

/// <summary>A malformed <c>mcp.json</c>; the message names the file, the key and what is wrong with it.</summary>
public sealed class McpConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The MCP servers the agent may use, read from an <c>mcp.json</c> in the format kimi-cli, Claude Desktop and Claude
/// Code share: <c>{"mcpServers": {"name": {"command", "args", "env", "cwd"} | {"url", "headers", "transport"}}}</c>.
/// Structural problems (bad JSON, wrong types, neither or both of command and url, an unset <c>${VAR}</c>) are errors;
/// keys this reader does not know are only warnings, because the same file is shared with other clients that add
/// their own (<c>disabled</c>, <c>autoApprove</c>, <c>timeout</c>, ...).
/// </summary>
public sealed class McpConfig
{
    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = true,
        CommentHandling = JsonCommentHandling.Skip,
    };

    private McpConfig(IReadOnlyDictionary<string, McpServerConfig> servers, IReadOnlyList<string> warnings)
    {
        Servers = servers;
        Warnings = warnings;
    }

    /// <summary>The servers by name, in the order the file lists them.</summary>
    public IReadOnlyDictionary<string, McpServerConfig> Servers { get; }

    /// <summary>Things that were ignored (unknown keys), each naming the file and key.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>A configuration with no servers.</summary>
    public static McpConfig Empty { get; } = new(new OrderedDictionary<string, McpServerConfig>(), []);

    /// <summary>Reads <paramref name="path"/>; a relative <c>cwd</c> in it is taken relative to the file's folder.</summary>
    /// <param name="environment">Looks up <c>${VAR}</c>; defaults to this process's environment.</param>
    public static async Task<McpConfig> LoadAsync(
        string path, Func<string, string?>? environment = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string json;
        try
        {
            json = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new McpConfigException($"{path}: cannot read the MCP configuration: {e.Message}", e);
        }
        return Parse(json, path, Path.GetDirectoryName(Path.GetFullPath(path)), environment);
    }

    /// <summary>Parses the text of an <c>mcp.json</c>.</summary>
    /// <param name="sourceName">Names the text in error messages (usually the file path).</param>
    /// <param name="baseDirectory">What a relative <c>cwd</c> is relative to; <c>null</c> keeps it as written.</param>
    /// <param name="environment">Looks up <c>${VAR}</c>; defaults to this process's environment.</param>
    public static McpConfig Parse(
        string json, string sourceName = "mcp.json", string? baseDirectory = null, Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        var reader = new Reader(sourceName, baseDirectory, environment ?? System.Environment.GetEnvironmentVariable);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new McpConfigException($"{sourceName}: not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            return reader.ReadRoot(document.RootElement);
        }
    }

    /// <summary>One parse: carries the file name for messages and collects warnings.</summary>
    private sealed class Reader(string sourceName, string? baseDirectory, Func<string, string?> environment)
    {
        private readonly List<string> _warnings = [];

        public McpConfig ReadRoot(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
                throw Error("the top level", $"must be an object with an \"mcpServers\" key, not {Describe(root)}");

            var servers = new OrderedDictionary<string, McpServerConfig>(StringComparer.Ordinal);
            bool sawServers = false;
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name != "mcpServers")
                {
                    Warn(property.Name, "is not a known key; ignored");
                    continue;
                }
                sawServers = true;
                if (property.Value.ValueKind != JsonValueKind.Object)
                    throw Error("mcpServers", $"must be an object mapping server names to their settings, not {Describe(property.Value)}");
                foreach (var server in property.Value.EnumerateObject())
                {
                    if (string.IsNullOrWhiteSpace(server.Name))
                        throw Error("mcpServers", "has a server with an empty name");
                    if (servers.ContainsKey(server.Name))
                        throw Error($"mcpServers.{server.Name}", "is listed twice");
                    servers.Add(server.Name, ReadServer(server.Name, server.Value));
                }
            }
            if (!sawServers)
                throw Error("the top level", "has no \"mcpServers\" object");
            return new McpConfig(servers, _warnings);
        }

        private McpServerConfig ReadServer(string name, JsonElement server)
        {
            string at = $"mcpServers.{name}";
            if (server.ValueKind != JsonValueKind.Object)
                throw Error(at, $"must be an object, not {Describe(server)}");

            bool hasCommand = server.TryGetProperty("command", out _);
            bool hasUrl = server.TryGetProperty("url", out _);
            if (hasCommand && hasUrl)
                throw Error(at, "has both \"command\" and \"url\"; give \"command\" for a local server or \"url\" for a remote one");
            if (!hasCommand && !hasUrl)
                throw Error(at, "has neither \"command\" (a local server) nor \"url\" (a remote server)");

            // kimi-cli and fastmcp call it "transport", Claude Code calls it "type"; both are read, "transport" wins.
            string? transport = OptionalString(server, at, "transport") ?? OptionalString(server, at, "type");
            return hasCommand ? ReadStdio(at, server, transport) : ReadHttp(at, server, transport);
        }

        private McpStdioServerConfig ReadStdio(string at, JsonElement server, string? transport)
        {
            if (transport is not null && transport != "stdio")
                throw Error($"{at}.transport", $"is \"{transport}\", but a server with \"command\" runs over stdio");
            WarnUnknown(at, server, "command", "args", "env", "cwd", "transport", "type");

            string command = Expand($"{at}.command", RequiredString(server, at, "command"));
            if (string.IsNullOrWhiteSpace(command))
                throw Error($"{at}.command", "is empty");

            var arguments = new List<string>();
            if (server.TryGetProperty("args", out var args))
            {
                if (args.ValueKind != JsonValueKind.Array)
                    throw Error($"{at}.args", $"must be an array of strings, not {Describe(args)}");
                int index = 0;
                foreach (var arg in args.EnumerateArray())
                {
                    if (arg.ValueKind != JsonValueKind.String)
                        throw Error($"{at}.args[{index}]", $"must be a string, not {Describe(arg)}");
                    arguments.Add(Expand($"{at}.args[{index}]", arg.GetString()!));
                    index++;
                }
            }

            string? cwd = OptionalString(server, at, "cwd");
            if (cwd is not null)
            {
                cwd = Expand($"{at}.cwd", cwd);
                if (baseDirectory is not null && !Path.IsPathRooted(cwd))
                    cwd = Path.GetFullPath(Path.Combine(baseDirectory, cwd));
            }
            return new McpStdioServerConfig(command, arguments, ReadStringMap(server, at, "env"), cwd);
        }

        private McpHttpServerConfig ReadHttp(string at, JsonElement server, string? transport)
        {
            var mode = transport switch
            {
                null => McpHttpTransport.Auto,
                "http" or "streamable-http" or "streamable_http" or "streamableHttp" => McpHttpTransport.StreamableHttp,
                "sse" => McpHttpTransport.Sse,
                "stdio" => throw Error($"{at}.transport", "is \"stdio\", but a server with \"url\" is remote; use \"http\" or \"sse\""),
                _ => throw Error($"{at}.transport", $"is \"{transport}\"; expected \"http\" or \"sse\""),
            };
            WarnUnknown(at, server, "url", "headers", "transport", "type");

            string url = Expand($"{at}.url", RequiredString(server, at, "url"));
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                throw Error($"{at}.url", $"is \"{url}\", not an absolute http:// or https:// address");
            return new McpHttpServerConfig(uri, ReadStringMap(server, at, "headers"), mode);
        }

        private Dictionary<string, string> ReadStringMap(JsonElement server, string at, string key)
        {
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            if (!server.TryGetProperty(key, out var value))
                return map;
            if (value.ValueKind != JsonValueKind.Object)
                throw Error($"{at}.{key}", $"must be an object of string values, not {Describe(value)}");
            foreach (var entry in value.EnumerateObject())
            {
                // Numbers and booleans are accepted as their JSON text: {"PORT": 8080} is a common way to write it.
                string text = entry.Value.ValueKind switch
                {
                    JsonValueKind.String => entry.Value.GetString()!,
                    JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => entry.Value.GetRawText(),
                    _ => throw Error($"{at}.{key}.{entry.Name}", $"must be a string, not {Describe(entry.Value)}"),
                };
                map[entry.Name] = Expand($"{at}.{key}.{entry.Name}", text);
            }
            return map;
        }

        private string RequiredString(JsonElement server, string at, string key)
        {
            var value = server.GetProperty(key);
            return value.ValueKind == JsonValueKind.String
                ? value.GetString()!
                : throw Error($"{at}.{key}", $"must be a string, not {Describe(value)}");
        }

        private string? OptionalString(JsonElement server, string at, string key)
        {
            if (!server.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
                return null;
            return value.ValueKind == JsonValueKind.String
                ? value.GetString()!
                : throw Error($"{at}.{key}", $"must be a string, not {Describe(value)}");
        }

        private void WarnUnknown(string at, JsonElement server, params string[] known)
        {
            foreach (var property in server.EnumerateObject())
            {
                if (Array.IndexOf(known, property.Name) < 0)
                    Warn($"{at}.{property.Name}", "is not a known key; ignored");
            }
        }

        /// <summary>Replaces <c>${NAME}</c> and <c>${NAME:-default}</c>; an unset variable without a default is an error.</summary>
        private string Expand(string at, string text)
        {
            int start = text.IndexOf("${", StringComparison.Ordinal);
            if (start < 0)
                return text;
            var result = new StringBuilder(text.Length);
            int position = 0;
            while (start >= 0)
            {
                int end = text.IndexOf('}', start + 2);
                if (end < 0)
                    throw Error(at, $"has an unclosed \"${{\" in \"{text}\"");
                string expression = text[(start + 2)..end];
                int dash = expression.IndexOf(":-", StringComparison.Ordinal);
                string variable = dash < 0 ? expression : expression[..dash];
                if (variable.Length == 0 || !variable.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                    throw Error(at, $"has \"${{{expression}}}\", which is not a variable name");
                // As in the shell: ${NAME:-default} takes the default when NAME is unset or empty.
                string? value = environment(variable);
                if (dash >= 0 && string.IsNullOrEmpty(value))
                    value = expression[(dash + 2)..];
                else if (value is null)
                    throw Error(at, $"uses the environment variable {variable}, which is not set");
                result.Append(text, position, start - position).Append(value);
                position = end + 1;
                start = text.IndexOf("${", position, StringComparison.Ordinal);
            }
            return result.Append(text, position, text.Length - position).ToString();
        }

        private void Warn(string at, string problem) => _warnings.Add($"{sourceName}: {at} {problem}");

        private McpConfigException Error(string at, string problem) => new($"{sourceName}: {at} {problem}");

        private static string Describe(JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "an array",
            JsonValueKind.String => "a string",
            JsonValueKind.Number => $"the number {value.GetRawText()}",
            JsonValueKind.True or JsonValueKind.False => $"the boolean {value.GetRawText()}",
            JsonValueKind.Null => "null",
            _ => value.ValueKind.ToString(),
        };
    }
}
