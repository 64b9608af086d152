using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// One of the k2-nano tools as an <see cref="AIFunction"/>: same schema, same result text (the trained model reads
/// exactly what it was trained on). Invoking returns the <see cref="ToolResult"/>, so dispatchers keep its error flag.
/// </summary>
public sealed class AgentToolFunction : AIFunction
{
    private readonly IAgentTool _tool;
    private readonly JsonElement _schema;

    public AgentToolFunction(IAgentTool tool)
    {
        _tool = tool ?? throw new ArgumentNullException(nameof(tool));
        var function = tool.Declaration["function"] as JsonObject ?? throw new ArgumentException($"tool '{tool.Name}' has no function declaration");
        Description = function["description"]?.GetValue<string>() ?? "";
        _schema = JsonSerializer.SerializeToElement(function["parameters"] ?? new JsonObject { ["type"] = "object" });
        // memory changes state, but only the run's own scratchpad: nothing to approve.
        AdditionalProperties = ToolTraits.Create(readOnly: tool.Name != "memory", needsApproval: false, source: "builtin");
    }

    public IAgentTool Tool => _tool;

    public override string Name => _tool.Name;

    public override string Description { get; }

    public override JsonElement JsonSchema => _schema;

    public override IReadOnlyDictionary<string, object?> AdditionalProperties { get; }

    protected override ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        var json = new JsonObject();
        foreach (var (key, value) in arguments)
            json[key] = value switch
            {
                null => null,
                JsonElement e => JsonNode.Parse(e.GetRawText()),
                JsonNode n => n.DeepClone(),
                _ => JsonSerializer.SerializeToNode(value, AIJsonUtilities.DefaultOptions),
            };
        try
        {
            return ValueTask.FromResult<object?>(_tool.Invoke(json));
        }
        catch (Exception e)
        {
            return ValueTask.FromResult<object?>(ToolResult.Error(e.Message));
        }
    }
}
