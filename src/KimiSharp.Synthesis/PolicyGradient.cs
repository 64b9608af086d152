using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Templates;
using KimiSharp.Training.Runs;

namespace KimiSharp.Synthesis;

/// <summary>Settings of the reinforcement stage after SFT.</summary>
public sealed record PolicyGradientOptions
{
    public int Iterations { get; init; } = 2;
    /// <summary>Tasks sampled per iteration (held apart from the SFT and evaluation seeds).</summary>
    public int TasksPerIteration { get; init; } = 24;
    /// <summary>Trajectories sampled per task; the group's mean reward is the baseline.</summary>
    public int SamplesPerTask { get; init; } = 4;
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Horizons (tool calls) of the sampled tasks.</summary>
    public IReadOnlyList<int> Horizons { get; init; } = [1, 2, 3];
    /// <summary>Tokens a sampled run may generate; past it the run fails (reward 0).</summary>
    public long TokenBudget { get; init; } = 3000;
    public int StepsPerIteration { get; init; } = 4;
    public float LearningRate { get; init; } = 0.0005f;
    public float AdamLearningRate { get; init; } = 0.0002f;
    public int Seed { get; init; } = 4242;
    /// <summary>Greedy held-out tasks per horizon measured before and after, to report the gain over SFT alone.</summary>
    public int EvalTasksPerHorizon { get; init; } = 12;
    /// <summary>How the policy models are loaded for sampling and evaluation (kernel settings: threads, activations).</summary>
    public KimiSharp.Model.KimiModelLoadOptions ModelLoadOptions { get; init; } = new();
    /// <summary>
    /// Share of sampled tasks that are wide swarm tasks (training-split cities): the policy runs as the orchestrator with
    /// <c>spawn_agents</c>, its sub-agents run on the frozen starting checkpoint, and the reward is PARL's (<see cref="Parl"/>).
    /// 0, the default, samples exactly the tasks it sampled before.
    /// </summary>
    public double WideShare { get; init; }
    /// <summary>Cities per sampled wide task, cycled.</summary>
    public IReadOnlyList<int> WideItems { get; init; } = [5, 10, 20];
    /// <summary>PARL's shaping weights and their annealing (wide tasks only; other tasks are rewarded by outcome alone).</summary>
    public ParlRewardOptions Parl { get; init; } = new();

    public void Validate()
    {
        if (WideShare is < 0 or > 1 || double.IsNaN(WideShare)) throw new ArgumentException($"the wide share must be between 0 and 1, got {WideShare}");
        if (WideItems.Count == 0) throw new ArgumentException("at least one wide task size");
        foreach (int n in WideItems)
            if (n < WideTasks.MinItems || n > WideTasks.MaxItems) throw new ArgumentException($"wide task sizes are {WideTasks.MinItems} to {WideTasks.MaxItems} cities, got {n}");
        Parl.Validate();
    }
}

/// <summary>One iteration's numbers.</summary>
public sealed record PolicyGradientIteration(int Iteration, int Samples, double MeanReward, int TrainedGroups, int Examples, double Seconds)
{
    /// <summary>The wide swarm samples of the iteration and their PARL terms (zero when none were sampled).</summary>
    public ParlIterationStats Parl { get; init; } = ParlIterationStats.Empty;
}

/// <summary>PARL's terms over one iteration's wide samples, and the weights they were paid with.</summary>
public sealed record ParlIterationStats(int Samples, double LambdaParallel, double LambdaFinish, double MeanParallel, double MeanFinish,
    double MeanPerformance, int SerialCollapses, int SubAgents, int UnusedReports)
{
    public static readonly ParlIterationStats Empty = new(0, 0, 0, 0, 0, 0, 0, 0, 0);

    public static ParlIterationStats From(double lambdaParallel, double lambdaFinish, IReadOnlyList<ParlTerms> terms) => terms.Count == 0
        ? Empty with { LambdaParallel = lambdaParallel, LambdaFinish = lambdaFinish }
        : new(terms.Count, lambdaParallel, lambdaFinish, terms.Average(t => t.Parallel), terms.Average(t => t.Finish), terms.Average(t => t.Performance),
            terms.Count(t => t.SerialCollapse), terms.Sum(t => t.SubAgents), terms.Sum(t => t.UnusedReports));
}

/// <summary>What the stage did, and the success rate before and after it.</summary>
public sealed record PolicyGradientReport(ToolUseEvalReport Before, ToolUseEvalReport After, IReadOnlyList<PolicyGradientIteration> Iterations, string FinalRun)
{
    public static double Success(ToolUseEvalReport r) =>
        r.Horizons.Sum(h => h.Successes) / (double)Math.Max(1, r.Horizons.Sum(h => h.Tasks));

    /// <summary>With wide sampling: the orchestrator on held-out wide tasks (greedy, frozen sub-agents) before and after.</summary>
    public Evaluation.WideEvalReport? WideBefore { get; init; }

    public Evaluation.WideEvalReport? WideAfter { get; init; }

    private static int WideSuccesses(Evaluation.WideEvalReport? r) => r?.Rows.Sum(row => row.Successes) ?? 0;

    /// <summary>
    /// True when RL measurably helped (strictly more greedy successes, the wide orchestrator's counted too); otherwise
    /// the SFT policy is kept.
    /// </summary>
    public bool RlImproved => After.Horizons.Sum(h => h.Successes) + WideSuccesses(WideAfter) > Before.Horizons.Sum(h => h.Successes) + WideSuccesses(WideBefore);

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Greedy success on held-out tasks: SFT {Success(Before) * 100:F1}% → after RL {Success(After) * 100:F1}%.");
        sb.AppendLine();
        sb.AppendLine(RlImproved ? "Kept: the RL policy (it beat SFT)." : "Kept: the SFT policy (RL did not beat it, so policy.txt names the SFT model).");
        sb.AppendLine();
        sb.AppendLine("| horizon | SFT | SFT + RL |");
        sb.AppendLine("| ---: | ---: | ---: |");
        for (int i = 0; i < Before.Horizons.Count; i++)
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {Before.Horizons[i].Horizon} | {Before.Horizons[i].Successes}/{Before.Horizons[i].Tasks} | {After.Horizons[i].Successes}/{After.Horizons[i].Tasks} |");
        if (WideBefore is not null && WideAfter is not null)
        {
            sb.AppendLine();
            sb.AppendLine("Orchestrator on held-out wide tasks (greedy, sub-agents on the frozen starting checkpoint):");
            sb.AppendLine();
            sb.AppendLine("| items | policy | success | avg critical steps | serial collapse | sub-agents | spurious spawns |");
            sb.AppendLine("| ---: | :--- | ---: | ---: | ---: | ---: | ---: |");
            foreach (var (label, report) in new[] { ("SFT", WideBefore), ("SFT + RL", WideAfter) })
                foreach (var r in report.Rows)
                    sb.AppendLine(CultureInfo.InvariantCulture,
                        $"| {r.Items} | {label} | {r.Successes}/{r.Tasks} | {r.AvgCriticalSteps:F1} | {r.SerialCollapses}/{r.Tasks} | {r.SubAgents} | {r.UnusedReports}/{r.SubAgents} |");
        }
        sb.AppendLine();
        sb.AppendLine("| iteration | samples | mean reward | groups with signal | examples | seconds |");
        sb.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var it in Iterations)
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {it.Iteration} | {it.Samples} | {it.MeanReward:F3} | {it.TrainedGroups} | {it.Examples} | {it.Seconds:F0} |");
        if (Iterations.Any(it => it.Parl.Samples > 0))
        {
            sb.AppendLine();
            sb.AppendLine("PARL on wide swarm tasks (reward = λ1·r_parallel + λ2·r_finish + r_perf; sub-agents on the frozen starting checkpoint):");
            sb.AppendLine();
            sb.AppendLine("| iteration | wide samples | λ1 | λ2 | mean r_parallel | mean r_finish | mean r_perf | serial collapse | sub-agents | unused reports |");
            sb.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var it in Iterations)
            {
                var p = it.Parl;
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {it.Iteration} | {p.Samples} | {p.LambdaParallel:F3} | {p.LambdaFinish:F3} | {p.MeanParallel:F3} | {p.MeanFinish:F3} | {p.MeanPerformance:F3} | {p.SerialCollapses}/{p.Samples} | {p.SubAgents} | {p.UnusedReports} |");
            }
        }
        return sb.ToString();
    }
}

/// <summary>
/// Reinforcement with verifiable rewards after SFT: each iteration samples several trajectories per task from the
/// current policy through the real agent loop and tools, rewards 1 for a correct final answer within the token
/// budget and 0 otherwise, and takes policy-gradient steps on the sampled tokens weighted by the advantage
/// (reward minus the task's mean reward, so groups where every sample agrees carry no signal). The trained tokens are
/// exactly what the policy generated, rendered with the same context window it generated them in.
/// </summary>
public static class PolicyGradientStage
{
    public static async Task<PolicyGradientReport> RunAsync(TrainConfig sftConfig, string sftRun, string outputDirectory,
        PolicyGradientOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        Directory.CreateDirectory(outputDirectory);
        // Sub-agents are frozen: they run on the starting checkpoint for the whole run, and only the orchestrator's
        // turns are rendered into the samples the policy is trained on.
        await using var frozen = options.WideShare > 0
            ? KimiChatService.Load(Path.Combine(sftRun, "final"), new EngineOptions { MaxBatchSize = 16 }, loadOptions: options.ModelLoadOptions) : null;
        var evalOptions = new ToolUseEvalOptions
        {
            Horizons = options.Horizons, TasksPerHorizon = options.EvalTasksPerHorizon, Seed = options.Seed + 500_000,
            Agent = new AgentOptions { TokenBudget = options.TokenBudget },
        };
        var before = await EvaluateAsync(Path.Combine(sftRun, "final"), options.ModelLoadOptions, evalOptions, progress, "SFT", cancellationToken);
        var wideEval = new Evaluation.WideEvalOptions
        {
            Items = [options.WideItems.Max()], TasksPerSize = options.EvalTasksPerHorizon, Seed = options.Seed + 600_000, SingleAgent = false,
            Agent = new AgentOptions { TokenBudget = options.TokenBudget },
        };
        var wideBefore = frozen is null ? null : await EvaluateWideAsync(Path.Combine(sftRun, "final"), options.ModelLoadOptions, frozen, wideEval, progress, "SFT", cancellationToken);
        string current = sftRun;
        var iterations = new List<PolicyGradientIteration>();
        for (int iteration = 0; iteration < options.Iterations; iteration++)
        {
            var clock = Stopwatch.StartNew();
            string runDirectory = Path.Combine(outputDirectory, $"iter-{iteration + 1}");
            Directory.CreateDirectory(runDirectory);
            string dataPath = Path.Combine(runDirectory, "samples.jsonl");
            var (samples, meanReward, groups, examples, parl) = await SampleAsync(Path.Combine(current, "final"), dataPath, options, iteration, frozen, progress, cancellationToken);
            if (examples == 0)
            {
                progress?.Report($"iteration {iteration + 1}: every group agreed (mean reward {meanReward:F2}); no gradient signal, stopping");
                iterations.Add(new PolicyGradientIteration(iteration + 1, samples, meanReward, 0, 0, clock.Elapsed.TotalSeconds) { Parl = parl });
                break;
            }
            var config = IterationConfig(sftConfig, dataPath, current, runDirectory, options, iteration);
            var trainer = new Trainer(config, new Progress<StepMetrics>(m => progress?.Report($"iteration {iteration + 1} step {m.Step + 1}/{config.Steps}: loss {m.Loss:F4}")));
            trainer.Run(resume: false, cancellationToken);
            current = runDirectory;
            iterations.Add(new PolicyGradientIteration(iteration + 1, samples, meanReward, groups, examples, clock.Elapsed.TotalSeconds) { Parl = parl });
        }
        var after = await EvaluateAsync(Path.Combine(current, "final"), options.ModelLoadOptions, evalOptions, progress, "RL", cancellationToken);
        var wideAfter = frozen is null ? null : await EvaluateWideAsync(Path.Combine(current, "final"), options.ModelLoadOptions, frozen, wideEval, progress, "RL", cancellationToken);
        var report = new PolicyGradientReport(before, after, iterations, current) { WideBefore = wideBefore, WideAfter = wideAfter };
        File.WriteAllText(Path.Combine(outputDirectory, "report.md"), report.ToMarkdown());
        // Where the policy to ship is, for scripts: RL's only when it measurably beat SFT, else the SFT model.
        string kept = report.RlImproved ? current : sftRun;
        File.WriteAllText(Path.Combine(outputDirectory, "policy.txt"), Path.GetFullPath(Path.Combine(kept, "final")) + "\n");
        return report;
    }

    /// <summary>
    /// The training run of one RL iteration: the SFT config's model and batch size, the iteration's samples as
    /// pre-rendered records (one per row from position 0, length-bucketed, as in SFT: packing would let samples
    /// attend to each other), a constant learning rate, initialised from the current policy.
    /// </summary>
    public static TrainConfig IterationConfig(TrainConfig sftConfig, string samplesPath, string currentRun, string runDirectory,
        PolicyGradientOptions options, int iteration)
    {
        var config = sftConfig with
        {
            ConversationFiles = [samplesPath], TextFiles = [], InitFrom = currentRun, TokenizerDirectory = Path.Combine(currentRun, "tokenizer"),
            Steps = options.StepsPerIteration, Schedule = "constant", WarmupSteps = 0, LearningRate = options.LearningRate,
            AdamLearningRate = options.AdamLearningRate, OutputDirectory = runDirectory, CheckpointEvery = options.StepsPerIteration,
            Seed = options.Seed + iteration, Pack = false, Bucket = true,
        };
        config.Validate("RL iteration");
        return config;
    }

    private static async Task<Evaluation.WideEvalReport> EvaluateWideAsync(string model, KimiSharp.Model.KimiModelLoadOptions loadOptions,
        KimiChatService frozen, Evaluation.WideEvalOptions options, IProgress<string>? progress, string label, CancellationToken cancellationToken)
    {
        await using var service = KimiChatService.Load(model, loadOptions: loadOptions);
        var report = await Evaluation.WideEvaluation.RunAsync(new KimiChatClient(service), service.ModelId, options, new KimiChatClient(frozen),
            cancellationToken: cancellationToken);
        foreach (var row in report.Rows)
            progress?.Report(string.Create(CultureInfo.InvariantCulture,
                $"{label} wide eval, {row.Items} cities: {row.Successes}/{row.Tasks}, {row.AvgCriticalSteps:F1} critical steps, {row.SerialCollapses} serial collapses"));
        return report;
    }

    private static async Task<ToolUseEvalReport> EvaluateAsync(string model, KimiSharp.Model.KimiModelLoadOptions loadOptions, ToolUseEvalOptions options,
        IProgress<string>? progress, string label, CancellationToken cancellationToken)
    {
        await using var service = KimiChatService.Load(model, loadOptions: loadOptions);
        var report = await ToolUseEvaluation.RunAsync(service, options,
            new Progress<ToolUseEvalProgress>(p => { if (p.Task == p.Tasks) progress?.Report($"{label} eval, horizon {p.Horizon}: {p.Successes}/{p.Tasks}"); }),
            cancellationToken);
        return report;
    }

    /// <summary>Whether sampled task <paramref name="task"/> of an iteration is a wide swarm task (a pure function of the seed).</summary>
    public static bool IsWideSample(PolicyGradientOptions options, int iteration, int task) =>
        options.WideShare > 0 && new Random(options.Seed ^ (iteration * 7919 + task * 104_729 + 1)).NextDouble() < options.WideShare;

    private static async Task<(int Samples, double MeanReward, int Groups, int Examples, ParlIterationStats Parl)> SampleAsync(string model, string dataPath,
        PolicyGradientOptions options, int iteration, KimiChatService? frozen, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        await using var service = KimiChatService.Load(model, loadOptions: options.ModelLoadOptions);
        var tools = Toolbox.CreateDefault().Declarations();
        var window = new AgentOptions().Window;
        // Rendered with the policy's own template: the tokens it was prompted with are the tokens trained.
        var renderer = new TrainingExampleRenderer(service.Template, tools, window);
        // Orchestrator samples are rendered with the tools the orchestrator saw, spawn_agents included.
        var orchestratorRenderer = new TrainingExampleRenderer(service.Template, WideTasks.OrchestratorDeclarations(), window);
        var (lambdaParallel, lambdaFinish) = options.Parl.At(iteration, options.Iterations);
        var parlTerms = new List<ParlTerms>();
        int samples = 0, groups = 0, examples = 0, wideTasks = 0;
        double rewardSum = 0;
        using var writer = new StreamWriter(dataPath, false, new UTF8Encoding(false));
        for (int t = 0; t < options.TasksPerIteration; t++)
        {
            if (IsWideSample(options, iteration, t))
            {
                int items = options.WideItems[wideTasks++ % options.WideItems.Count];
                var wide = new WideTaskGenerator(options.Seed + iteration * 10_007 + t).NextTask(items);
                var wideRuns = new List<(JsonArray Messages, double Reward)>();
                for (int s = 0; s < options.SamplesPerTask; s++)
                {
                    var orchestrator = WideSwarmRunner.OrchestratorOptions(items, new AgentOptions
                    {
                        TokenBudget = options.TokenBudget,
                        Sampling = new Microsoft.Extensions.AI.ChatOptions { Temperature = options.Temperature, Seed = options.Seed * 31L + iteration * 1_000_003L + t * 101L + s },
                    });
                    // Frozen sub-agents answer greedily: the variance a group compares is the orchestrator's.
                    var subAgentOptions = new AgentOptions { Sampling = new Microsoft.Extensions.AI.ChatOptions { Temperature = 0 } };
                    var rollout = await WideSwarmRunner.RunAsync(wide, new KimiChatClient(service), new KimiChatClient(frozen!), orchestrator, subAgentOptions,
                        cancellationToken: cancellationToken);
                    double reward = rollout.Terms.Reward(lambdaParallel, lambdaFinish);
                    parlTerms.Add(rollout.Terms);
                    wideRuns.Add((rollout.Result.Messages, reward));
                    samples++;
                    rewardSum += reward;
                }
                progress?.Report(string.Create(CultureInfo.InvariantCulture,
                    $"iteration {iteration + 1}, task {t + 1}/{options.TasksPerIteration} (wide, {items} cities): rewards {string.Join(" ", wideRuns.Select(r => r.Reward.ToString("F2", CultureInfo.InvariantCulture)))}"));
                double wideMean = wideRuns.Average(r => r.Reward);
                if (wideRuns.All(r => r.Reward == wideMean)) continue;
                groups++;
                examples += Write(writer, orchestratorRenderer, wideRuns, wideMean);
                continue;
            }
            int horizon = options.Horizons[t % options.Horizons.Count];
            var task = new TaskGenerator(options.Seed + iteration * 10_007 + t).WithHorizon(horizon).Task;
            var runs = new List<(JsonArray Messages, double Reward)>();
            for (int s = 0; s < options.SamplesPerTask; s++)
            {
                var agent = new AgentRunner(new KimiChatClient(service), Toolbox.CreateDefault().AsFunctions(), new AgentOptions
                {
                    TokenBudget = options.TokenBudget,
                    Sampling = new Microsoft.Extensions.AI.ChatOptions { Temperature = options.Temperature, Seed = options.Seed * 31L + iteration * 1_000_003L + t * 101L + s },
                });
                var result = await agent.RunToEndAsync(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = task.Prompt }), cancellationToken);
                double reward = result.StopReason == AgentResult.Answer && task.IsAnsweredBy(result.FinalAnswer) ? 1 : 0;
                runs.Add((result.Messages, reward));
                samples++;
                rewardSum += reward;
            }
            double mean = runs.Average(r => r.Reward);
            progress?.Report($"iteration {iteration + 1}, task {t + 1}/{options.TasksPerIteration} (horizon {horizon}): rewards {string.Join("", runs.Select(r => r.Reward > 0 ? '1' : '0'))}");
            if (runs.All(r => r.Reward == mean)) continue;
            groups++;
            examples += Write(writer, renderer, runs, mean);
        }
        return (samples, rewardSum / Math.Max(1, samples), groups, examples, ParlIterationStats.From(lambdaParallel, lambdaFinish, parlTerms));
    }

    /// <summary>Writes every chunk of every run, weighted by its advantage; returns the examples written.</summary>
    internal static int Write(TextWriter writer, TrainingExampleRenderer renderer, List<(JsonArray Messages, double Reward)> runs, double mean)
    {
        int examples = 0;
        foreach (var (messages, reward) in runs)
        {
            var (_, steps) = ContextWindow.Split(messages);
            if (steps.Count == 0) continue;
            for (int c = 0; c < renderer.ChunkCount(messages); c++)
            {
                writer.WriteLine(renderer.Render(messages, c, reward - mean).ToJson().ToJsonString());
                examples++;
            }
        }
        return examples;
    }
}
