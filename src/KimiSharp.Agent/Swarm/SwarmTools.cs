using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Swarm;

/// <summary>Shared plumbing of the two swarm tools: arguments as JSON, results as compact JSON text.</summary>
internal abstract class SwarmFunction(AgentSwarm swarm) : AIFunction, IToolResultFunction
{
    private static readonly IReadOnlyDictionary<string, object?> Traits = ToolTraits.Create(readOnly: false, needsApproval: false, source: "swarm", concurrent: true);

    protected AgentSwarm Swarm { get; } = swarm;

    public override IReadOnlyDictionary<string, object?> AdditionalProperties => Traits;

    public bool ValidatesOwnArguments => false;

    public async ValueTask<ToolResult> InvokeForResultAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var json = new JsonObject();
        foreach (var (key, value) in arguments)
            json[key] = value switch
            {
                null => null,
                JsonNode node => node.DeepClone(),
                JsonElement element => JsonNode.Parse(element.GetRawText()),
                _ => JsonSerializer.SerializeToNode(value, AIJsonUtilities.DefaultOptions),
            };
        try
        {
            return await InvokeAsync(json, cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            return ToolResult.Error(e.Message);
        }
    }

    protected abstract Task<ToolResult> InvokeAsync(JsonObject arguments, CancellationToken cancellationToken);

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken) =>
        (await InvokeForResultAsync(arguments, cancellationToken).ConfigureAwait(false)).Content;

    protected static JsonElement Schema(JsonObject schema) => JsonSerializer.SerializeToElement(schema);

    protected static JsonArray Reports(IEnumerable<SubAgentReport> reports) => new(reports.Select(r => (JsonNode)r.ToJson()).ToArray());

    protected static void Reject(JsonObject arguments, params string[] known)
    {
        foreach (var (key, _) in arguments)
            if (!known.Contains(key)) throw new ArgumentException($"unknown argument '{key}' (expected: {string.Join(", ", known)})");
    }
}

/// <summary><c>spawn_agents</c>: runs sub-tasks as parallel sub-agents and returns their reports in order.</summary>
internal sealed class SpawnAgentsFunction : SwarmFunction
{
    private readonly JsonElement _schema;

    public SpawnAgentsFunction(AgentSwarm swarm) : base(swarm)
    {
        var options = swarm.Options;
        var item = new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                [SubAgentTask.TaskKey] = new JsonObject
                {
                    ["type"] = "string", ["minLength"] = 1,
                    ["description"] = "The sub-task, complete in itself: the sub-agent sees nothing else (not this conversation, not its siblings).",
                },
                [SubAgentTask.InstructionsKey] = new JsonObject { ["type"] = "string", ["description"] = "System instructions for the sub-agent (its role, the form of its report)." },
                [SubAgentTask.ToolsKey] = new JsonObject
                {
                    ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string", ["enum"] = Names(swarm.SubAgentToolNames) },
                    ["description"] = "The tools it may use (default: all).",
                },
                [SubAgentTask.MaxStepsKey] = new JsonObject { ["type"] = "integer", ["minimum"] = 1, ["description"] = $"Model steps at most (default {options.DefaultMaxSteps}, at most {options.MaxStepsCeiling})." },
                [SubAgentTask.MaxTokensKey] = new JsonObject { ["type"] = "integer", ["minimum"] = 1, ["description"] = $"Generated tokens at most (default {options.DefaultMaxTokens})." },
                [SubAgentTask.TimeoutKey] = new JsonObject { ["type"] = "number", ["exclusiveMinimum"] = 0, ["description"] = $"Seconds it may run (default {options.DefaultTimeout.TotalSeconds:0}, at most {options.MaxTimeout.TotalSeconds:0})." },
                [SubAgentTask.BackgroundKey] = new JsonObject { ["type"] = "boolean", ["description"] = "Start it and return its id at once; get its report later with collect_agents." },
            },
            ["required"] = new JsonArray("task"),
            ["additionalProperties"] = false,
        };
        if (options.Models.Count > 0)
            item["properties"]![SubAgentTask.ModelKey] = new JsonObject
            {
                ["type"] = "string", ["enum"] = Names(options.Models.Keys.Order(StringComparer.Ordinal)), ["description"] = "Another model to run it on (default: the same model as you).",
            };
        _schema = Schema(new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["tasks"] = new JsonObject { ["type"] = "array", ["minItems"] = 1, ["maxItems"] = options.MaxTasksPerCall, ["items"] = item },
            },
            ["required"] = new JsonArray("tasks"),
            ["additionalProperties"] = false,
        });
    }

    public override string Name => AgentSwarm.SpawnToolName;

    public override string Description =>
        $"Split work into independent sub-tasks and run each as its own sub-agent, in parallel (up to {Swarm.Options.MaxConcurrency} at once). " +
        "Each sub-agent sees only its own task and instructions and has its own tools and budget; you get back only each one's final " +
        "report (or why it failed), in the order given. Use it when parts of a task can be done independently.";

    public override JsonElement JsonSchema => _schema;

    protected override async Task<ToolResult> InvokeAsync(JsonObject arguments, CancellationToken cancellationToken)
    {
        Reject(arguments, "tasks");
        if (arguments["tasks"] is not JsonArray items || items.Count == 0)
            throw new ArgumentException("'tasks' must be a non-empty array of {\"task\": ...} objects");
        if (items.Count > Swarm.Options.MaxTasksPerCall)
            throw new ArgumentException($"{items.Count} sub-tasks in one call; at most {Swarm.Options.MaxTasksPerCall} are allowed");
        var errors = new List<string>();
        var tasks = new List<SubAgentTask>();
        var models = Swarm.Options.Models.Keys.ToList();
        for (int i = 0; i < items.Count; i++)
            if (SubAgentTask.Parse(items[i], $"tasks[{i}]", Swarm.SubAgentToolNames, models, errors) is { } task) tasks.Add(task);
        if (errors.Count > 0) throw new ArgumentException(string.Join("; ", errors));

        var result = await Swarm.SpawnAsync(tasks, cancellationToken).ConfigureAwait(false);
        var json = new JsonObject();
        if (result.Reports.Count > 0)
        {
            int failed = result.Reports.Count(r => r.Status != SubAgentStatus.Completed);
            json["summary"] = $"{result.Reports.Count - failed} of {result.Reports.Count} sub-agents answered" + (failed > 0 ? $"; {failed} did not" : "");
            json["reports"] = Reports(result.Reports);
        }
        if (result.Background.Count > 0)
        {
            json["background"] = new JsonArray(result.Background.Select(b => (JsonNode)new JsonObject { ["id"] = b.Id, ["task"] = b.Task }).ToArray());
            json["note"] = $"{result.Background.Count} sub-agent(s) run in the background; call {AgentSwarm.CollectToolName} for their reports";
        }
        // One failed sub-agent does not make the call an error: the orchestrator reads each report's status.
        return ToolResult.Ok(json.ToJsonString());
    }

    private static JsonArray Names(IEnumerable<string> names) => new(names.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray());
}

/// <summary><c>collect_agents</c>: the reports of background sub-agents.</summary>
internal sealed class CollectAgentsFunction(AgentSwarm swarm) : SwarmFunction(swarm)
{
    private static readonly JsonElement SchemaElement = Schema(new JsonObject
    {
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["ids"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string" }, ["description"] = "Which sub-agents (default: every one not collected yet)." },
            ["wait"] = new JsonObject { ["type"] = "boolean", ["description"] = "Wait for them to finish (default true); false returns the finished ones and lists the rest as running." },
        },
        ["additionalProperties"] = false,
    });

    public override string Name => AgentSwarm.CollectToolName;

    public override string Description => $"Get the reports of sub-agents started with {AgentSwarm.SpawnToolName} and run_in_background.";

    public override JsonElement JsonSchema => SchemaElement;

    protected override async Task<ToolResult> InvokeAsync(JsonObject arguments, CancellationToken cancellationToken)
    {
        Reject(arguments, "ids", "wait");
        List<string>? ids = null;
        if (arguments["ids"] is JsonNode idsNode)
        {
            if (idsNode is not JsonArray array || array.Any(i => i is not JsonValue v || !v.TryGetValue(out string? _)))
                throw new ArgumentException("'ids' must be an array of sub-agent ids (strings)");
            ids = array.Select(i => i!.GetValue<string>()).ToList();
        }
        bool wait = true;
        if (arguments["wait"] is JsonNode waitNode)
            wait = waitNode is JsonValue v && v.TryGetValue(out bool b) ? b : throw new ArgumentException("'wait' must be true or false");

        var result = await Swarm.CollectAsync(ids, wait, cancellationToken).ConfigureAwait(false);
        var json = new JsonObject { ["reports"] = Reports(result.Reports) };
        if (result.Running.Count > 0) json["running"] = new JsonArray(result.Running.Select(id => (JsonNode)JsonValue.Create(id)!).ToArray());
        if (result.Reports.Count == 0 && result.Running.Count == 0) json["note"] = "no background sub-agents to collect";
        return ToolResult.Ok(json.ToJsonString());
    }
}
