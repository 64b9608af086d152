using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>The tools of one episode, by name; dispatches calls and never throws from <see cref="Invoke"/>.</summary>
public sealed class Toolbox
{
    private readonly Dictionary<string, IAgentTool> _byName = new(StringComparer.Ordinal);
    private readonly List<IAgentTool> _tools = [];

    public Toolbox(IEnumerable<IAgentTool> tools)
    {
        ArgumentNullException.ThrowIfNull(tools);
        foreach (IAgentTool tool in tools)
        {
            if (!_byName.TryAdd(tool.Name, tool)) throw new ArgumentException($"duplicate tool name '{tool.Name}'", nameof(tools));
            _tools.Add(tool);
        }
    }

    /// <summary>calculator, convert_units, calendar, lookup, memory (a fresh scratchpad each call).</summary>
    public static Toolbox CreateDefault(KnowledgeBase? kb = null) => new(
    [
        new CalculatorTool(),
        new UnitConverterTool(),
        new CalendarTool(),
        new LookupTool(kb ?? KnowledgeBase.Default),
        new MemoryTool(),
    ]);

    public IReadOnlyList<IAgentTool> Tools => _tools;

    /// <summary>The tool with this name, or null.</summary>
    public IAgentTool? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>
    /// The tools as <see cref="Microsoft.Extensions.AI.AIFunction"/>s, in order, sharing these instances (so a memory
    /// tool keeps its notes across both views). calculator, convert_units, calendar and lookup are read-only; any
    /// other tool (memory, custom ones) is not, and none needs approval.
    /// </summary>
    public IReadOnlyList<AgentToolFunction> AsFunctions() =>
        _tools.Select(tool => new AgentToolFunction(tool, readOnly: tool is CalculatorTool or UnitConverterTool or CalendarTool or LookupTool))
            .ToList();

    /// <summary>Deep copies of the tools' declarations, in order.</summary>
    public JsonArray Declarations()
    {
        var array = new JsonArray();
        foreach (IAgentTool tool in _tools) array.Add(tool.Declaration.DeepClone());
        return array;
    }

    /// <summary>Calls a tool with JSON arguments; every failure comes back as an error result.
    /// Empty or whitespace-only arguments count as <c>{}</c>.</summary>
    public ToolResult Invoke(string name, string argumentsJson)
    {
        try
        {
            if (name is null || !_byName.TryGetValue(name, out IAgentTool? tool))
                return ToolResult.Error($"unknown tool '{ToolArgs.Clip(name ?? "")}' (known: {string.Join(", ", _tools.Select(t => t.Name))})");

            JsonObject arguments;
            if (string.IsNullOrWhiteSpace(argumentsJson))
                arguments = [];
            else
            {
                JsonNode? node;
                try
                {
                    node = JsonNode.Parse(argumentsJson);
                }
                catch (JsonException e)
                {
                    return ToolResult.Error("arguments are not a JSON object: " + ShortReason(e.Message));
                }
                if (node is not JsonObject obj)
                    return ToolResult.Error("arguments are not a JSON object: got " + (node is null ? "null" : node.GetValueKind().ToString().ToLowerInvariant()));
                arguments = obj;
            }
            return tool.Invoke(arguments);
        }
        catch (Exception e)
        {
            return ToolResult.Error(e.Message);
        }
    }

    private static string ShortReason(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        string reason = (cut >= 0 ? message[..cut] : message).Trim().TrimEnd('.');
        return ToolArgs.Clip(reason);
    }
}
