using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Server;

namespace KimiSharp.Client.Tests;

/// <summary>The swarm against a remote endpoint: sub-agents on k2-nano behind a real <c>kimi serve</c>, over HTTP, at the same time.</summary>
public sealed class SwarmOverHttpTests
{
    private static string K2Nano()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) return Path.Combine(dir.FullName, "models", "k2-nano");
        throw new DirectoryNotFoundException("repository root not found");
    }

    [Fact]
    public async Task Sub_agents_on_kimi_serve_answer_their_questions_concurrently_over_http()
    {
        string[] cities = ["Fengard", "Belmark", "Ostdor"];
        await using var service = KimiChatService.Load(K2Nano(), new EngineOptions { MaxBatchSize = 4 }, modelId: "k2-nano");
        await using var server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = "swarm-key", ServeUi = false });
        await server.StartAsync();
        using var client = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions
        {
            BaseUrl = server.Urls.First().Replace("[::]", "127.0.0.1") + "/v1", ApiKey = "swarm-key", Model = "k2-nano",
            MaxRetries = 1, RequestTimeout = TimeSpan.FromMinutes(2),
        });
        int running = 0, peak = 0;
        await using var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = client, CreateTools = () => Toolbox.CreateDefault().AsFunctions(), DefaultMaxSteps = 4,
            OnEvent = e =>
            {
                if (e is SwarmEvent.Started) peak = Math.Max(peak, ++running);
                if (e is SwarmEvent.Ended) running--;
            },
        });

        var result = await swarm.SpawnAsync(cities.Select(c => new SubAgentTask($"What is the population of {c}?")).ToList());

        Assert.Equal(cities.Length, result.Reports.Count);
        for (int i = 0; i < cities.Length; i++)
        {
            var report = result.Reports[i];
            Assert.True(report.Status == SubAgentStatus.Completed, report.Error);
            Assert.True(report.ToolCalls >= 1);
            Assert.Contains(KnowledgeBase.Default.Find(cities[i])!.Attribute("population"), report.Answer!.Replace(",", ""));
            Assert.True(report.Usage.InputTokens > 0, "the endpoint's usage reaches the report");
        }
        Assert.Equal(cities.Length, peak);
    }
}
