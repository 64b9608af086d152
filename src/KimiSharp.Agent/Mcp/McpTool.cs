using System.Text.Json;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;
using ModelContextProtocol.Client;

namespace KimiSharp.Agent.Mcp;

/// <summary>
/// One tool of an MCP server as an <see cref="AIFunction"/>. Invoking it returns the result's text; any failure (an
/// <c>isError</c> result, a timeout, a crashed server) is an <see cref="McpToolCallException"/> whose message is meant
/// for the model.
/// </summary>
public sealed class McpTool : AIFunction
{
    private readonly McpToolSource _source;
    private readonly McpClientTool _tool;
    private readonly AdditionalPropertiesDictionary _traits;

    internal McpTool(McpToolSource source, McpClientTool tool, string name, AdditionalPropertiesDictionary traits)
    {
        _source = source;
        _tool = tool;
        _traits = traits;
        Name = name;
    }

    /// <summary>The name the model sees: the server's name for it, or <c>server__tool</c> after a clash.</summary>
    public override string Name { get; }

    public override string Description => _tool.Description;

    public override JsonElement JsonSchema => _tool.JsonSchema;

    public override JsonSerializerOptions JsonSerializerOptions => _tool.JsonSerializerOptions;

    /// <summary>The <see cref="ToolTraits"/> (read-only, needs-approval, source <c>mcp:server</c>).</summary>
    public override IReadOnlyDictionary<string, object?> AdditionalProperties => _traits;

    /// <summary>The configured name of the server this tool belongs to.</summary>
    public string ServerName => _source.Name;

    /// <summary>The tool's name on its server.</summary>
    public string ToolName => _tool.Name;

    /// <summary>The same tool under another name (to resolve a clash); it shares the connection.</summary>
    public McpTool WithName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new McpTool(_source, _tool, name, _traits);
    }

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken) =>
        await _source.CallToolAsync(_tool, arguments, cancellationToken).ConfigureAwait(false);
}
