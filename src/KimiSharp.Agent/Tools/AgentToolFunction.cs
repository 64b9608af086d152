using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// An <see cref="IAgentTool"/> as an <see cref="AIFunction"/>. The result is exactly the text
/// <see cref="IAgentTool.Invoke"/> returns, so a model trained on the k2-nano tools sees the same tool messages.
/// </summary>
public sealed class AgentToolFunction : AIFunction, IToolResultFunction
{
    private readonly JsonElement _schema;
    private readonly string _description;
    private readonly IReadOnlyDictionary<string, object?> _traits;

    /// <param name="tool">The wrapped tool.</param>
    /// <param name="readOnly">Whether the tool only reads; none of these tools asks for approval.</param>
    public AgentToolFunction(IAgentTool tool, bool readOnly)
    {
        ArgumentNullException.ThrowIfNull(tool);
        Tool = tool;
        JsonObject declaration = tool.Declaration;
        JsonNode? function = declaration["function"];
        _description = function?["description"]?.GetValue<string>() ?? "";
        JsonNode parameters = function?["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" };
        _schema = JsonSerializer.SerializeToElement(parameters);
        _traits = ToolTraits.Create(readOnly, needsApproval: false, source: "builtin");
    }

    public IAgentTool Tool { get; }

    public override string Name => Tool.Name;

    public override string Description => _description;

    public override JsonElement JsonSchema => _schema;

    public override IReadOnlyDictionary<string, object?> AdditionalProperties => _traits;

    /// <summary>These tools answer bad arguments with their own messages, which the model was trained on.</summary>
    public bool ValidatesOwnArguments => true;

    public ValueTask<ToolResult> InvokeForResultAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        cancellationToken.ThrowIfCancellationRequested();
        JsonObject json;
        try
        {
            json = ToJsonObject(arguments);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException)
        {
            return ValueTask.FromResult(ToolResult.Error("arguments are not a JSON object: " + ToolArgs.Clip(e.Message)));
        }
        try
        {
            return ValueTask.FromResult(Tool.Invoke(json));
        }
        catch (Exception e)
        {
            // Same as Toolbox.Invoke: a tool that throws still answers with an error result.
            return ValueTask.FromResult(ToolResult.Error(e.Message));
        }
    }

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken) =>
        (await InvokeForResultAsync(arguments, cancellationToken).ConfigureAwait(false)).Content;

    private static JsonObject ToJsonObject(AIFunctionArguments arguments)
    {
        var json = new JsonObject();
        foreach ((string key, object? value) in arguments)
        {
            json[key] = value switch
            {
                null => null,
                JsonNode node => node.DeepClone(),
                JsonElement element => JsonNode.Parse(element.GetRawText()),
                _ => JsonSerializer.SerializeToNode(value, AIJsonUtilities.DefaultOptions),
            };
        }
        return json;
    }
}
