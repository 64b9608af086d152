using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis.Tests;

/// <summary>Wide swarm tasks: the split, the chunking rule, the teacher's trajectories and the held-out cities.</summary>
public sealed class WideTaskTests
{
    private static List<string> Names(int n) => Enumerable.Range(1, n).Select(i => $"C{i}").ToList();

    [Theory]
    [InlineData(5, new[] { 3, 2 })]
    [InlineData(6, new[] { 3, 3 })]
    [InlineData(9, new[] { 5, 4 })]
    [InlineData(10, new[] { 5, 5 })]
    [InlineData(11, new[] { 5, 6 })]
    [InlineData(13, new[] { 5, 5, 3 })]
    [InlineData(16, new[] { 5, 5, 6 })]
    [InlineData(100, new[] { 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5 })]
    public void Chunks_are_groups_of_five_in_order_with_a_lone_leftover_joining_the_last(int n, int[] sizes)
    {
        var cities = Names(n);
        var chunks = WideTasks.Chunk(cities);
        Assert.Equal(sizes, chunks.Select(c => c.Count));
        Assert.Equal(cities, chunks.SelectMany(c => c));
    }

    [Fact]
    public void A_single_city_is_not_a_wide_task() => Assert.Throws<ArgumentException>(() => WideTasks.Chunk(["A"]));

    [Fact]
    public void The_held_out_split_is_a_quarter_of_the_cities_and_large_enough_for_the_biggest_task()
    {
        var kb = KnowledgeBase.Default;
        int heldOut = kb.Entities.Count(e => WideTasks.IsHeldOut(e.Name));
        Assert.InRange(heldOut, WideTasks.MaxItems, kb.Entities.Count / 2);
        // Stable: the split depends on the name only, not on case or the process.
        Assert.Equal(WideTasks.IsHeldOut(kb.Entities[0].Name), WideTasks.IsHeldOut(kb.Entities[0].Name.ToUpperInvariant()));
        Assert.Equal(WideTasks.MaxItems, new WideTaskGenerator(1, heldOut: true).MaxItems);
    }

    [Fact]
    public void Training_tasks_never_name_a_held_out_city_and_evaluation_tasks_name_nothing_else()
    {
        var kb = KnowledgeBase.Default;
        var heldOutNames = kb.Entities.Where(e => WideTasks.IsHeldOut(e.Name)).Select(e => e.Name).ToHashSet();
        var training = new WideTaskGenerator(3);
        for (int i = 0; i < 200; i++)
        {
            var task = training.NextTask(5 + i % 96);
            Assert.DoesNotContain(task.Cities, heldOutNames.Contains);
            Assert.DoesNotContain(heldOutNames, c => task.Prompt.Contains(c + ",", StringComparison.Ordinal) || task.Prompt.Contains(c + "?", StringComparison.Ordinal) || task.Prompt.Contains(c + ".", StringComparison.Ordinal));
        }
        var eval = new WideTaskGenerator(9100 + 40, heldOut: true);
        for (int i = 0; i < 50; i++) Assert.All(eval.NextTask(40).Cities, c => Assert.Contains(c, heldOutNames));
    }

    [Fact]
    public void Synthesized_wide_data_holds_no_held_out_city()
    {
        string dir = Directory.CreateTempSubdirectory("kimi-wide-syn-").FullName;
        try
        {
            var report = SynthesisPipeline.Run(dir, 40, 7, new ContextWindow(4), options: new SynthesisOptions { WideShare = 1, WideMaxItems = 30, FlawRate = 0 });
            Assert.True(report.KeptByKind.GetValueOrDefault("wide-sum") + report.KeptByKind.GetValueOrDefault("wide-max") == 40, report.ToMarkdown());
            Assert.True(report.KeptByKind.GetValueOrDefault("wide-sub-sum") + report.KeptByKind.GetValueOrDefault("wide-sub-max") > 0);
            string text = File.ReadAllText(Path.Combine(dir, "trajectories.jsonl")) + File.ReadAllText(Path.Combine(dir, "train.jsonl"));
            var words = System.Text.RegularExpressions.Regex.Matches(text, "[A-Z][a-z]+").Select(m => m.Value).ToHashSet();
            var leaked = KnowledgeBase.Default.Entities.Where(e => WideTasks.IsHeldOut(e.Name) && words.Contains(e.Name)).Select(e => e.Name).ToList();
            Assert.Empty(leaked);
            // The orchestrator's examples declare spawn_agents; the sub-agents' do not.
            var examples = File.ReadLines(Path.Combine(dir, "train.jsonl")).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();
            Assert.Contains(examples, e => e.Contains("spawn_agents(tasks)", StringComparison.Ordinal) || e.Contains("\"spawn_agents\"", StringComparison.Ordinal));
            Assert.Contains(examples, e => e.Contains("Total ", StringComparison.Ordinal) && !e.Contains("spawn_agents", StringComparison.Ordinal)
                || e.Contains("Highest ", StringComparison.Ordinal) && !e.Contains("spawn_agents", StringComparison.Ordinal));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData(WideAggregate.Sum, 12)]
    [InlineData(WideAggregate.Max, 12)]
    [InlineData(WideAggregate.Sum, 100)]
    [InlineData(WideAggregate.Max, 7)]
    public void The_teacher_spawns_one_sub_agent_per_chunk_and_aggregates_their_reports(WideAggregate aggregate, int n)
    {
        var task = new WideTaskGenerator(21).NextTask(n, aggregate);
        var w = WideTaskGenerator.Teach(task);
        var filter = new RubricFilter(WideTasks.OrchestratorDeclarations());
        var verdict = filter.Judge(w.Orchestrator);
        Assert.True(verdict.Keep, $"{verdict.Reason}: {verdict.Detail}");
        Assert.True(task.ToAgentTask().IsAnsweredBy(w.Orchestrator.FinalAnswer), w.Orchestrator.FinalAnswer);

        // The answer is right by the knowledge base, not only by the teacher's own arithmetic.
        var kb = KnowledgeBase.Default;
        var values = task.Cities.Select(c => decimal.Parse(kb.Find(c)!.Attribute(task.Attribute), System.Globalization.CultureInfo.InvariantCulture)).ToList();
        string expected = aggregate == WideAggregate.Sum ? values.Sum().ToString("0.##########", System.Globalization.CultureInfo.InvariantCulture) : task.Cities[values.IndexOf(values.Max())];
        Assert.Equal(expected, task.Expected);

        var calls = w.Orchestrator.Calls().ToList();
        Assert.Equal(AgentSwarm.SpawnToolName, calls[0].Name);
        var spawned = JsonNode.Parse(calls[0].Arguments)!["tasks"]!.AsArray().Select(t => t!["task"]!.GetValue<string>()).ToList();
        Assert.Equal(task.Chunks.Select(c => WideTasks.SubTask(aggregate, task.Attribute, c)), spawned);
        Assert.Equal(w.SubAgents.Select(s => s.Task.Prompt), spawned);
        if (aggregate == WideAggregate.Sum) Assert.Equal("calculator", calls[1].Name);
        Assert.Equal(aggregate == WideAggregate.Sum ? 2 : 1, calls.Count);

        var subFilter = new RubricFilter(Toolbox.CreateDefault().Declarations());
        foreach (var s in w.SubAgents)
        {
            var v = subFilter.Judge(s);
            Assert.True(v.Keep, $"{s.Task.Prompt}: {v.Reason} {v.Detail}");
        }
        // The spawn result is the runtime's own: every report completed, in order, with its sub-agent's answer.
        var result = JsonNode.Parse(w.Orchestrator.Messages.OfType<JsonObject>().First(m => AgentMessages.Role(m) == "tool")["content"]!.GetValue<string>())!;
        var reports = result["reports"]!.AsArray();
        Assert.Equal(w.SubAgents.Select(s => s.FinalAnswer), reports.Select(r => r!["answer"]!.GetValue<string>()));
        Assert.All(reports, r => Assert.Equal("completed", r!["status"]!.GetValue<string>()));
    }

    [Fact]
    public void The_teacher_is_deterministic_in_the_seed()
    {
        string A() => WideTaskGenerator.Teach(new WideTaskGenerator(5).NextTask(20)).Orchestrator.Messages.ToJsonString();
        Assert.Equal(A(), A());
        Assert.NotEqual(A(), WideTaskGenerator.Teach(new WideTaskGenerator(6).NextTask(20)).Orchestrator.Messages.ToJsonString());
    }

    [Fact]
    public void Bad_sizes_are_refused_with_the_range()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new WideTaskGenerator(1).NextTask(101));
        Assert.Contains("5 to 100", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new WideTaskGenerator(1).NextTask(4));
        Assert.Throws<ArgumentOutOfRangeException>(() => SynthesisPipeline.Run(Path.GetTempPath(), 1, 1, new ContextWindow(4), options: new SynthesisOptions { WideShare = 1.5 }));
    }
}
