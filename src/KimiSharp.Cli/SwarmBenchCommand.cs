using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Sessions;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.AI;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi bench-swarm</c>: the swarm's latency mechanism measured without a model's noise. An orchestrator spawns N
/// independent sub-agents; each calls a tool that takes a fixed delay and then reports. A scripted model decides every
/// step, so the only cost is the runtime's own and the tools' delay. The same sub-tasks are then run one after another
/// (the same runtime with one slot), and the ratio of wall-clock times is printed with the critical steps.
/// </summary>
internal static class SwarmBenchCommand
{
    public const double Target = 4.5;

    public static Command Create()
    {
        var agents = CliOptions.Int("--agents", "Independent sub-tasks", 100, min: 1);
        var delay = CliOptions.Int("--delay-ms", "How long each sub-task's tool call takes", 200, min: 0, helpName: "MS");
        var stepMs = CliOptions.Int("--step-ms", "How long each scripted model step takes (a stand-in for generation)", 0, min: 0, helpName: "MS");
        var concurrency = CliOptions.Int("--concurrency", "Sub-agents running at once at most", 100, min: 1);
        var sessions = CliOptions.Text("--sessions", "DIR", "Write the swarm run's sessions here (see them with kimi trace show)");
        var model = CliOptions.Text("--model", "DIR", "Run the sub-agents on this model in process instead (e.g. models/k2-nano): each looks up one city's population");
        var int8 = CliOptions.Flag("--int8", "With --model: int8 activations (already the serving default; kept for old scripts)");
        var command = new Command("bench-swarm", """
            Measures the agent swarm's wall-clock against running the same sub-tasks one after another: N sub-agents,
            each one tool call with a fixed delay then a report, driven by a scripted model (no model cost). Prints both
            times, their ratio (target ≥ 4.5×) and the critical steps. With --model the sub-agents run on a real model in
            process instead (the engine batches them), each answering one city's population with the lookup tool.
            """)
        {
            agents, delay, stepMs, concurrency, sessions, model, int8,
        };
        command.SetAction(async (r, ct) =>
        {
            var stdout = r.Out();
            int n = r.GetValue(agents);
            var toolDelay = TimeSpan.FromMilliseconds(r.GetValue(delay));
            var stepDelay = TimeSpan.FromMilliseconds(r.GetValue(stepMs));
            if (n > 100) throw new UsageException($"--agents {n}: one spawn_agents call takes at most 100 sub-tasks");
            Setup setup;
            KimiChatService? service = null;
            if (r.GetValue(model) is { } modelDir)
            {
                service = ModelLocator.LoadChat(modelDir, null, r.Err(), KernelOptions.Settings(int8: r.GetValue(int8)),
                    new EngineOptions { MaxBatchSize = Math.Min(n, r.GetValue(concurrency)) });
                var cities = KnowledgeBase.Default.Entities;
                var tasks = Enumerable.Range(0, n).Select(i => $"What is the population of {cities[i % cities.Count].Name}?").ToList();
                setup = new Setup(tasks, new KimiChatClient(service), () => Toolbox.CreateDefault().AsFunctions(), new AgentOptions(), 0, TimeSpan.Zero);
                stdout.WriteLine($"bench-swarm: {n} sub-agents on {service.ModelId} in process, each asked one city's population (lookup tool)");
            }
            else
            {
                var tasks = Enumerable.Range(1, n).Select(i => $"Job {i}: call sleep once (it waits {toolDelay.TotalMilliseconds:0} ms), then report job {i} done.").ToList();
                var sleep = AIFunctionFactory.Create(async (int ms, CancellationToken token) =>
                {
                    await Task.Delay(ms, token).ConfigureAwait(false);
                    return $"waited {ms} ms";
                }, "sleep", "Waits the given number of milliseconds (a stand-in for a slow tool: a search, a build, a browser).");
                setup = new Setup(tasks, null, () => [sleep], new AgentOptions { Window = ContextWindow.Unlimited }, (int)toolDelay.TotalMilliseconds, stepDelay);
                stdout.WriteLine($"bench-swarm: {n} sub-tasks, each one tool call of {toolDelay.TotalMilliseconds:0} ms then a report; scripted model steps of {stepDelay.TotalMilliseconds:0} ms");
            }
            await using var _ = service;

            // Warm up first (JIT, kernels, the engine's buffers), so neither measured run pays for it.
            await RunAsync(setup with { Tasks = setup.Tasks.Take(2).ToList() }, 2, null, ct);
            var swarm = await RunAsync(setup, r.GetValue(concurrency), r.GetValue(sessions), ct);
            stdout.WriteLine($"swarm (up to {r.GetValue(concurrency)} at once): {swarm.Report.WallClock.TotalSeconds:0.000} s — {swarm.Report}");
            if (swarm.SessionPath is { } path) stdout.WriteLine($"  sessions: {path} (kimi trace show {path})");
            var serial = await RunAsync(setup, 1, null, ct);
            stdout.WriteLine($"one after another:        {serial.Report.WallClock.TotalSeconds:0.000} s — {serial.Report}");

            int failed = swarm.Report.Failed + serial.Report.Failed;
            if (failed > 0) stdout.WriteLine($"warning: {failed} sub-agent(s) did not answer");
            if (service is not null)
                stdout.WriteLine($"correct answers: swarm {Correct(swarm.Report)}/{n}, one after another {Correct(serial.Report)}/{n}");
            double ratio = serial.Report.WallClock / swarm.Report.WallClock;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"speed-up: {ratio:0.0}× (target ≥ {Target}×: {(ratio >= Target ? "met" : "NOT met")}); critical steps {swarm.Report.CriticalSteps} vs {serial.Report.TotalSteps} steps in all"));
            return failed > 0 ? CliApp.BadInput : CliApp.Ok;
        });
        return command;
    }

    private sealed record Outcome(SwarmReport Report, string? SessionPath);

    /// <summary>The sub-tasks, the sub-agents' model (null: scripted) and tools, and the scripted delays.</summary>
    private sealed record Setup(IReadOnlyList<string> Tasks, IChatClient? SubAgentModel, Func<IReadOnlyList<AIFunction>> Tools,
        AgentOptions SubAgentOptions, int ToolDelayMs, TimeSpan StepDelay);

    /// <summary>Answers whose text holds the city's population (the real-model mode's tasks).</summary>
    private static int Correct(SwarmReport report) => report.SubAgents.Count(a =>
        a.Answer is { } answer && KnowledgeBase.Default.Find(a.Task["What is the population of ".Length..].TrimEnd('?')) is { } city
        && answer.Replace(",", "", StringComparison.Ordinal).Contains(city.Attribute("population"), StringComparison.Ordinal));

    private static async Task<Outcome> RunAsync(Setup setup, int concurrency, string? sessionsDir, CancellationToken ct)
    {
        int agents = setup.Tasks.Count;
        var model = new BenchModel(setup.Tasks, setup.ToolDelayMs, setup.StepDelay);
        await using var swarm = new AgentSwarm(new SwarmOptions
        {
            Model = setup.SubAgentModel ?? model, CreateTools = setup.Tools, MaxConcurrency = concurrency, AgentOptions = setup.SubAgentOptions,
        });
        AgentSession? session = sessionsDir is null ? null : AgentSession.Create(sessionsDir, new JsonObject { ["model"] = "bench-swarm (scripted)" }, PriceTable.Free);
        try
        {
            swarm.ParentSession = session;
            var conversation = new JsonArray(AgentMessages.User($"Run {agents} independent jobs. Report when all are done."));
            session?.AddMessage(conversation[0]!.AsObject());
            var runner = new AgentRunner(model, swarm.Tools, new AgentOptions { Window = ContextWindow.Unlimited, MaxSteps = 4 });
            var run = swarm.Observe(runner.RunAsync(conversation, ct), ct);
            if (session is not null) run = session.Record(run, ct);
            string? answer = null;
            await foreach (var e in run.ConfigureAwait(false))
                if (e is AgentEvent.Finished f) answer = f.Result.FinalAnswer;
            if (answer is null) throw new InvalidOperationException("the orchestrator stopped without an answer");
            return new Outcome(swarm.Report(), session?.Path);
        }
        finally
        {
            session?.Dispose();
        }
    }

    /// <summary>
    /// Decides every step: the orchestrator (the request with the sleep-job prompt) spawns the jobs, then sums up; a
    /// sub-agent (job N) calls sleep once, then reports.
    /// </summary>
    private sealed class BenchModel(IReadOnlyList<string> tasks, int toolDelayMs, TimeSpan stepDelay) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            string task = list.First(m => m.Role == ChatRole.User).Text;
            int steps = list.Count(m => m.Role == ChatRole.Assistant);
            if (stepDelay > TimeSpan.Zero) await Task.Delay(stepDelay, cancellationToken).ConfigureAwait(false);
            else await Task.Yield();
            bool orchestrator = task.StartsWith("Run ", StringComparison.Ordinal);
            AIContent content = (orchestrator, steps) switch
            {
                (true, 0) => Call(AgentSwarm.SpawnToolName, new JsonObject
                {
                    ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode)new JsonObject { ["task"] = t }).ToArray()),
                }),
                (true, _) => new TextContent($"All {tasks.Count} jobs reported."),
                (false, 0) => Call("sleep", new JsonObject { ["ms"] = toolDelayMs }),
                (false, _) => new TextContent(task.Split(':')[0] + " done."),
            };
            yield return new ChatResponseUpdate(ChatRole.Assistant, [content]);
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 100, OutputTokenCount = 20 })])
            {
                FinishReason = content is FunctionCallContent ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop,
            };
        }

        private static FunctionCallContent Call(string name, JsonObject arguments) =>
            new("", name) { AdditionalProperties = new() { [AgentMessages.RawArgumentsKey] = arguments.ToJsonString() } };

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }
}
