using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Synthesis;

/// <summary>How a wide task combines its items' values.</summary>
public enum WideAggregate
{
    /// <summary>"What is the total X of these N cities": the answer is the sum.</summary>
    Sum,
    /// <summary>"Which of these N cities has the highest X": the answer is the city.</summary>
    Max,
}

/// <summary>
/// A wide task: one attribute of N independent cities, summed or maximised. Its teacher splits the cities into
/// <see cref="Chunks"/> and gives each chunk to one sub-agent.
/// </summary>
public sealed record WideTask(WideAggregate Aggregate, string Attribute, IReadOnlyList<string> Cities, string Prompt, string Expected)
{
    public string Kind => Aggregate == WideAggregate.Sum ? "wide-sum" : "wide-max";

    /// <summary>The cities as the teacher splits them (see <see cref="WideTasks.Chunk"/>).</summary>
    public IReadOnlyList<IReadOnlyList<string>> Chunks => WideTasks.Chunk(Cities);

    /// <summary>The task as the answer check sees it: the answer must state the total, or name the city.</summary>
    public AgentTask ToAgentTask() => new(Kind, Cities.Count, Prompt, [Expected]);
}

/// <summary>A wide task solved by its teacher: the orchestrator's conversation and one conversation per sub-agent, in spawn order.</summary>
public sealed record WideTrajectory(WideTask Task, Trajectory Orchestrator, IReadOnlyList<Trajectory> SubAgents);

/// <summary>
/// Wide tasks for the agent swarm ("total population of these 40 cities", "which of these 30 cities is highest"):
/// the held-out split of the cities, the chunking rule, the sub-task wording, the swarm settings shared by synthesis,
/// RL and evaluation (the orchestrator must see the same <c>spawn_agents</c> declaration in all three), and the tools
/// an orchestrator is given.
/// </summary>
public static class WideTasks
{
    public const int MinItems = 5, MaxItems = 100, ChunkSize = 5;

    /// <summary>Attributes a wide task sums or maximises (numbers in the knowledge base).</summary>
    public static readonly IReadOnlyList<string> Attributes = ["population", "elevation", "area"];

    /// <summary>
    /// Whether a city belongs to the held-out set that only evaluation uses: a fixed quarter of the knowledge base,
    /// chosen by a stable hash of the name (FNV-1a, so it never depends on the runtime's string hashing).
    /// Wide training tasks never contain one; wide evaluation tasks contain nothing else.
    /// </summary>
    public static bool IsHeldOut(string city)
    {
        ArgumentNullException.ThrowIfNull(city);
        uint hash = 2166136261;
        foreach (byte b in Encoding.UTF8.GetBytes(city.ToLowerInvariant()))
            hash = (hash ^ b) * 16777619;
        return hash % 4 == 0;
    }

    /// <summary>
    /// The teacher's split: groups of <see cref="ChunkSize"/> in order, a single leftover city joining the last group;
    /// fewer than 10 cities are split in two halves (the first one larger), so a wide task always has at least two sub-agents.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<string>> Chunk(IReadOnlyList<string> cities)
    {
        ArgumentNullException.ThrowIfNull(cities);
        if (cities.Count < 2) throw new ArgumentException("a wide task needs at least 2 cities", nameof(cities));
        if (cities.Count < 2 * ChunkSize)
        {
            int first = (cities.Count + 1) / 2;
            return [cities.Take(first).ToList(), cities.Skip(first).ToList()];
        }
        var chunks = new List<IReadOnlyList<string>>();
        for (int at = 0; at < cities.Count; at += ChunkSize)
        {
            int take = cities.Count - at == ChunkSize + 1 ? ChunkSize + 1 : ChunkSize;
            chunks.Add(cities.Skip(at).Take(take).ToList());
            if (take > ChunkSize) break;
        }
        return chunks;
    }

    /// <summary>The sub-agent's whole task for one chunk: "Total population of: A, B, C." or "Highest elevation among: A, B, C."</summary>
    public static string SubTask(WideAggregate aggregate, string attribute, IReadOnlyList<string> chunk) => aggregate == WideAggregate.Sum
        ? $"Total {attribute} of: {string.Join(", ", chunk)}."
        : $"Highest {attribute} among: {string.Join(", ", chunk)}.";

    /// <summary>
    /// The swarm every wide-task run uses (synthesis, RL, evaluation): its settings shape the <c>spawn_agents</c>
    /// declaration, which must read the same in training and at inference. Sub-agents get the default toolbox.
    /// </summary>
    public static SwarmOptions SwarmOptions(IChatClient subAgentModel, KnowledgeBase? knowledgeBase = null, AgentOptions? subAgentOptions = null,
        int maxConcurrency = 100) => new()
    {
        Model = subAgentModel,
        CreateTools = () => Toolbox.CreateDefault(knowledgeBase).AsFunctions(),
        AgentOptions = subAgentOptions ?? new AgentOptions(),
        MaxConcurrency = maxConcurrency,
        DefaultMaxSteps = 6,
        DefaultMaxTokens = 4000,
        DefaultTimeout = TimeSpan.FromMinutes(5),
    };

    /// <summary>The orchestrator's tools: the default toolbox, then <c>spawn_agents</c> (no <c>collect_agents</c>: wide tasks wait for their reports).</summary>
    public static IReadOnlyList<AIFunction> OrchestratorTools(AgentSwarm swarm, Toolbox toolbox)
    {
        ArgumentNullException.ThrowIfNull(swarm);
        ArgumentNullException.ThrowIfNull(toolbox);
        return [.. toolbox.AsFunctions(), swarm.SpawnTool];
    }

    /// <summary>The orchestrator's tool declarations as the chat template renders them (the same JSON the in-process client builds).</summary>
    public static JsonArray OrchestratorDeclarations(KnowledgeBase? knowledgeBase = null)
    {
        using var client = new TeacherReplayClient();
        var swarm = new AgentSwarm(SwarmOptions(client, knowledgeBase));
        var declarations = Toolbox.CreateDefault(knowledgeBase).Declarations();
        var spawn = swarm.SpawnTool;
        declarations.Add(new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = spawn.Name, ["description"] = spawn.Description, ["parameters"] = JsonNode.Parse(spawn.JsonSchema.GetRawText()) },
        });
        swarm.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return declarations;
    }

    /// <summary>The last number of a text (thousands separators removed), or null: what a sub-agent's report states.</summary>
    public static string? ReportedNumber(string? text) => text is null ? null : AnswerText.Numbers(text).LastOrDefault();

    internal static string Unit(string attribute) => attribute switch { "elevation" => " m", "area" => " km²", _ => "" };
}

/// <summary>
/// Wide tasks and their teacher trajectories. Training generators draw cities from the training split only,
/// evaluation generators (<c>heldOut: true</c>) from the held-out split only (<see cref="WideTasks.IsHeldOut"/>).
/// Everything is a pure function of the seed.
/// </summary>
public sealed class WideTaskGenerator
{
    private readonly Random _random;
    private readonly KnowledgeBase _kb;
    private readonly IReadOnlyList<KnowledgeEntity> _pool;

    public WideTaskGenerator(int seed, KnowledgeBase? knowledgeBase = null, bool heldOut = false)
    {
        _random = new Random(seed);
        _kb = knowledgeBase ?? KnowledgeBase.Default;
        _pool = _kb.Entities.Where(e => WideTasks.IsHeldOut(e.Name) == heldOut).ToList();
        if (_pool.Count < WideTasks.MinItems)
            throw new InvalidOperationException($"the knowledge base has only {_pool.Count} {(heldOut ? "held-out" : "training")} cities");
    }

    /// <summary>Cities this generator draws from.</summary>
    public IReadOnlyList<KnowledgeEntity> Pool => _pool;

    /// <summary>The largest task it can write (distinct cities).</summary>
    public int MaxItems => Math.Min(WideTasks.MaxItems, _pool.Count);

    /// <summary>A task over <paramref name="items"/> distinct cities; the aggregate alternates at random unless given.</summary>
    public WideTask NextTask(int items, WideAggregate? aggregate = null)
    {
        if (items < WideTasks.MinItems || items > MaxItems)
            throw new ArgumentOutOfRangeException(nameof(items), $"a wide task has {WideTasks.MinItems} to {MaxItems} cities, got {items}");
        var kind = aggregate ?? (_random.Next(2) == 0 ? WideAggregate.Sum : WideAggregate.Max);
        string attribute = WideTasks.Attributes[_random.Next(WideTasks.Attributes.Count)];
        for (int attempt = 0; ; attempt++)
        {
            var chosen = _pool.OrderBy(_ => _random.Next()).Take(items).ToList();
            string list = string.Join(", ", chosen.Select(c => c.Name));
            if (kind == WideAggregate.Sum)
            {
                decimal total = chosen.Sum(c => decimal.Parse(c.Attribute(attribute), CultureInfo.InvariantCulture));
                string prompt = _random.Next(2) == 0
                    ? $"What is the total {attribute} of these {items} cities: {list}?"
                    : $"Add up the {attribute} of these {items} cities: {list}.";
                return new WideTask(kind, attribute, chosen.Select(c => c.Name).ToList(), prompt, total.ToString("0.##########", CultureInfo.InvariantCulture));
            }
            var values = chosen.Select(c => decimal.Parse(c.Attribute(attribute), CultureInfo.InvariantCulture)).ToList();
            decimal best = values.Max();
            // The answer must be one city: draw again when two share the highest value.
            if (values.Count(v => v == best) > 1 && attempt < 100) continue;
            string question = _random.Next(2) == 0
                ? $"Which of these {items} cities has the highest {attribute}: {list}?"
                : $"Of these {items} cities, which has the highest {attribute}? {list}.";
            return new WideTask(kind, attribute, chosen.Select(c => c.Name).ToList(), question, chosen[values.IndexOf(best)].Name);
        }
    }

    /// <summary>A task over a random number of cities in [<paramref name="minItems"/>, <paramref name="maxItems"/>] and its teacher trajectories.</summary>
    public WideTrajectory Next(int minItems = WideTasks.MinItems, int maxItems = WideTasks.MaxItems)
    {
        int hi = Math.Min(maxItems, MaxItems), lo = Math.Max(WideTasks.MinItems, Math.Min(minItems, hi));
        // Mostly small tasks (cheap to train on), a tail out to the largest.
        int items = _random.NextDouble() < 0.6 ? _random.Next(lo, Math.Min(hi, Math.Max(lo, 20)) + 1) : _random.Next(lo, hi + 1);
        return Teach(NextTask(items), _kb);
    }

    /// <summary>
    /// The teacher's solution: the orchestrator spawns one sub-agent per chunk (through the real swarm runtime,
    /// replaying each sub-agent's teacher trajectory, so the reports are the runtime's own JSON), then adds the reports
    /// with the calculator (sum) or compares them two at a time in its reasoning (max).
    /// </summary>
    public static WideTrajectory Teach(WideTask task, KnowledgeBase? knowledgeBase = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        var kb = knowledgeBase ?? KnowledgeBase.Default;
        var chunks = task.Chunks;
        var subAgents = chunks.Select(chunk => SubAgent(task.Aggregate, task.Attribute, chunk, kb)).ToList();
        var replay = new TeacherReplayClient();
        foreach (var s in subAgents) replay.Add(s.Messages);

        var swarm = new AgentSwarm(WideTasks.SwarmOptions(replay, kb));
        try
        {
            var b = new TrajectoryBuilder(Toolbox.CreateDefault(kb), (name, arguments) =>
            {
                if (name != AgentSwarm.SpawnToolName) return ToolResult.Error($"unknown tool '{name}'");
                var args = new AIFunctionArguments { ["tasks"] = arguments["tasks"]!.DeepClone() };
                return ((IToolResultFunction)swarm.SpawnTool).InvokeForResultAsync(args, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            });
            b.User(task.Prompt);
            var spawnTasks = new JsonArray(chunks.Select(c => (JsonNode)new JsonObject { ["task"] = WideTasks.SubTask(task.Aggregate, task.Attribute, c) }).ToArray());
            string split = chunks.Count == 2 && task.Cities.Count < 2 * WideTasks.ChunkSize
                ? $"{task.Cities.Count} cities: 2 halves, one sub-agent each."
                : $"{task.Cities.Count} cities: {chunks.Count} groups, {WideTasks.ChunkSize} cities each in order, one sub-agent each.";
            var spawn = b.Step(split, (AgentSwarm.SpawnToolName, new JsonObject { ["tasks"] = spawnTasks }))[0];
            if (spawn.IsError) throw new InvalidOperationException($"the teacher's spawn failed: {spawn.Content}");
            var reports = JsonNode.Parse(spawn.Content)!["reports"]!.AsArray()
                .Select(r => r!["answer"]?.GetValue<string>() ?? throw new InvalidOperationException("a teacher sub-agent did not answer")).ToList();

            if (task.Aggregate == WideAggregate.Sum)
            {
                var numbers = reports.Select(r => WideTasks.ReportedNumber(r)!).ToList();
                string total = b.Step($"Reports: {string.Join(", ", numbers)}. Add them.",
                    ("calculator", new JsonObject { ["expression"] = string.Join("+", numbers) }))[0].Content;
                b.Final($"The calculator returned {total}.", $"The total {task.Attribute} of the {task.Cities.Count} cities is {total}{WideTasks.Unit(task.Attribute)}.");
            }
            else
            {
                // Each report reads "Highest: NAME with VALUE."; compare them two at a time, keeping the first on a tie.
                var entries = reports.Select(r => (Name: r["Highest: ".Length..r.LastIndexOf(" with ", StringComparison.Ordinal)], Value: WideTasks.ReportedNumber(r)!)).ToList();
                var (name, value, tournament) = Tournament(entries);
                b.Final($"Reports: {string.Join(", ", entries.Select(e => $"{e.Name} {e.Value}"))}. {tournament}",
                    $"{name} has the highest {task.Attribute}: {value}{WideTasks.Unit(task.Attribute)}.");
            }
            return new WideTrajectory(task, new Trajectory(task.ToAgentTask(), b.Messages), subAgents);
        }
        finally
        {
            swarm.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>A sub-agent's teacher trajectory: every lookup in one parallel step, then the sum with the calculator, or the highest by comparison.</summary>
    public static Trajectory SubAgent(WideAggregate aggregate, string attribute, IReadOnlyList<string> chunk, KnowledgeBase? knowledgeBase = null)
    {
        var b = new TrajectoryBuilder(Toolbox.CreateDefault(knowledgeBase));
        string task = WideTasks.SubTask(aggregate, attribute, chunk);
        b.User(task);
        var values = b.Step($"Look up the {attribute} of each of the {chunk.Count} cities.",
            chunk.Select(c => ("lookup", new JsonObject { ["entity"] = c, ["attribute"] = attribute })).ToArray()).Select(r => r.Content).ToList();
        if (values.FirstOrDefault(v => v.StartsWith("error", StringComparison.Ordinal)) is { } failed)
            throw new InvalidOperationException($"a lookup failed while writing the teacher: {failed}");
        string listed = string.Join(", ", chunk.Select((c, i) => $"{c} {values[i]}"));
        if (aggregate == WideAggregate.Sum)
        {
            string total = b.Step($"{listed}. Add them.", ("calculator", new JsonObject { ["expression"] = string.Join("+", values) }))[0].Content;
            b.Final($"The calculator returned {total}.", $"Total: {total}.");
            return new Trajectory(new AgentTask("wide-sub-sum", chunk.Count + 1, task, [total]), b.Messages);
        }
        var (name, value, tournament) = Tournament(chunk.Select((c, i) => (c, values[i])).ToList());
        b.Final($"{listed}. {tournament}", $"Highest: {name} with {value}.");
        return new Trajectory(new AgentTask("wide-sub-max", chunk.Count, task, [name, value]), b.Messages);
    }

    /// <summary>"A 12 vs B 30: B. B 30 vs C 7: B." — the running winner against each next entry.</summary>
    private static (string Name, string Value, string Text) Tournament(IReadOnlyList<(string Name, string Value)> entries)
    {
        var (name, value) = entries[0];
        var text = new StringBuilder();
        for (int i = 1; i < entries.Count; i++)
        {
            var next = entries[i];
            bool nextWins = decimal.Parse(next.Value, CultureInfo.InvariantCulture) > decimal.Parse(value, CultureInfo.InvariantCulture);
            string winner = nextWins ? next.Name : name;
            if (text.Length > 0) text.Append(' ');
            text.Append(CultureInfo.InvariantCulture, $"{name} {value} vs {next.Name} {next.Value}: {winner}.");
            if (nextWins) (name, value) = next;
        }
        return (name, value, text.ToString());
    }
}
