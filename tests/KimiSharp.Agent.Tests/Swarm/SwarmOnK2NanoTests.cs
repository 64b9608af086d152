using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using Xunit.Abstractions;

namespace KimiSharp.Agent.Tests.Swarm;

/// <summary>The swarm on the real model: k2-nano in process answers each sub-agent's question with its own tools, batched by the engine.</summary>
public sealed class SwarmOnK2NanoTests(ITestOutputHelper log)
{
    private static string ModelDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) return Path.Combine(dir.FullName, "models", "k2-nano");
        throw new DirectoryNotFoundException("repository root not found");
    }

    internal static readonly string[] Cities = ["Fengard", "Belmark", "Ostdor", "Dunbrook"];

    [Fact]
    public async Task K2_nano_sub_agents_each_answer_their_own_question_in_parallel()
    {
        await using var service = KimiChatService.Load(ModelDirectory());
        var kb = KnowledgeBase.Default;
        var cities = Cities;
        Assert.All(cities, c => Assert.NotNull(kb.Find(c)));
        var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = new KimiChatClient(service), CreateTools = () => Toolbox.CreateDefault().AsFunctions(), DefaultMaxSteps = 4,
        });
        await using var _ = swarm;
        var tasks = new JsonArray(cities.Select(c => (JsonNode)new JsonObject { ["task"] = $"What is the population of {c}?" }).ToArray());
        var orchestratorModel = new SwarmTestModel(r => r.Step == 0
            ? SwarmTestModel.Call(AgentSwarm.SpawnToolName, new JsonObject { ["tasks"] = tasks }.ToJsonString())
            : SwarmTestModel.Answer("gathered"));
        var orchestrator = new AgentRunner(orchestratorModel, swarm.Tools, new AgentOptions { Window = ContextWindow.Unlimited });
        var clock = Stopwatch.StartNew();
        await foreach (var e in swarm.Observe(orchestrator.RunAsync(new JsonArray(AgentMessages.User("Populations, please."))))) { }
        clock.Stop();

        var report = swarm.Report();
        log.WriteLine(report.ToString());
        foreach (var a in report.SubAgents) log.WriteLine($"{a.Id} {a.Status} {a.Steps} steps: {a.Answer ?? a.Error}");
        Assert.Equal(cities.Length, report.SubAgents.Count);
        for (int i = 0; i < cities.Length; i++)
        {
            var agent = report.SubAgents[i];
            Assert.Equal(SubAgentStatus.Completed, agent.Status);
            Assert.True(agent.ToolCalls >= 1);
            string population = kb.Find(cities[i])!.Attribute("population");
            Assert.Contains(population, agent.Answer!.Replace(",", ""));
        }
        // The reports reached the orchestrator, in order.
        var spawnResult = JsonNode.Parse(orchestratorModel.Requests.Single(r => r.Step == 1).LastToolResult)!;
        Assert.Equal(report.SubAgents.Select(a => a.Answer), spawnResult["reports"]!.AsArray().Select(r => r!["answer"]!.GetValue<string>()));
        Assert.Equal(2 + report.SubAgents.Max(a => a.Steps), report.CriticalSteps);
    }
}
