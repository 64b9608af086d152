using System.CommandLine;
using KimiSharp.Synthesis;
using KimiSharp.Training.Runs;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi rl --config SFT.json --from RUN --out DIR</c>: the policy-gradient stage (verifiable rewards from the tool
/// environments) on top of a finished <c>kimi train</c> run.
/// </summary>
internal static class RlCommand
{
    public static Command Create()
    {
        var d = new PolicyGradientOptions();
        var config = CliOptions.Required("--config", "SFT.json", "The kimi train config of the SFT run");
        var from = CliOptions.Required("--from", "RUN", "The finished kimi train run (its final/ and state/)");
        var output = CliOptions.Required("--out", "DIR", "Where the RL runs and report.md go");
        var iterations = CliOptions.Int("--iterations", "Sample-then-train iterations", d.Iterations, min: 1);
        var tasks = CliOptions.Int("--tasks", "Tasks sampled per iteration", d.TasksPerIteration, min: 1);
        var samples = CliOptions.Int("--samples", "Trajectories per task (their mean reward is the baseline)", d.SamplesPerTask, min: 2);
        var steps = CliOptions.Int("--steps", "Optimizer steps per iteration", d.StepsPerIteration, min: 1);
        var lr = CliOptions.Number("--lr", "Muon learning rate", d.LearningRate, min: 0, helpName: "LR");
        var adamLr = CliOptions.Number("--adam-lr", "AdamW learning rate (embeddings, norms, head)", d.AdamLearningRate, min: 0, helpName: "LR");
        var temperature = CliOptions.Number("--temperature", "Sampling temperature of the trajectories", d.Temperature, min: 0, helpName: "T");
        var budget = CliOptions.Int("--budget", "Tokens one sampled run may generate (past it: reward 0)", (int)d.TokenBudget, min: 1);
        var evalTasks = CliOptions.Int("--eval-tasks", "Greedy held-out tasks per horizon, before and after", d.EvalTasksPerHorizon, min: 1);
        var seed = CliOptions.Int("--seed", "Seed of the sampled tasks", d.Seed);
        var threads = CliOptions.Threads();
        var horizons = CliOptions.Parsed("--horizons", "1,2,3", $"Horizons (tool calls) of the sampled tasks [default: {string.Join(',', d.Horizons)}]", EvalCommand.ParseHorizons);
        var wideShare = CliOptions.Number("--wide-share", "Share of sampled tasks that are wide swarm tasks: the policy orchestrates with spawn_agents, sub-agents run on the frozen --from checkpoint, reward is PARL's", d.WideShare, min: 0, max: 1, helpName: "P");
        var wideItems = CliOptions.Parsed("--wide-items", "5,10,20", $"Cities per sampled wide task, cycled [default: {string.Join(',', d.WideItems)}]", ParseWideItems);
        var lambdaParallel = CliOptions.Number("--parl-lambda-parallel", "λ1, the weight of r_parallel (more than one sub-agent on a wide task) at the first iteration; annealed linearly to 0", d.Parl.LambdaParallel, min: 0, helpName: "W");
        var lambdaFinish = CliOptions.Number("--parl-lambda-finish", "λ2, the weight of r_finish (share of sub-agents whose reports were used) at the first iteration; annealed linearly to 0", d.Parl.LambdaFinish, min: 0, helpName: "W");
        var anneal = CliOptions.Number("--parl-anneal", "Fraction of the iterations over which λ1 and λ2 fall to 0 (1: they reach 0 at the last iteration)", d.Parl.AnnealFraction, min: 0.01, max: 1, helpName: "F");
        var command = new Command("rl", """
            Policy-gradient stage on a finished kimi train run: sampled tool-use trajectories, reward = task success,
            advantage = reward − the task's mean; reports greedy success before and after, by horizon. With --wide-share,
            some tasks are wide swarm tasks rewarded by PARL (λ1·r_parallel + λ2·r_finish + r_perf, λ annealed to 0).
            """)
        {
            config, from, output, iterations, tasks, samples, steps, lr, adamLr, temperature, budget, evalTasks, seed, threads, horizons,
            wideShare, wideItems, lambdaParallel, lambdaFinish, anneal,
        };
        command.SetAction(async (r, ct) =>
        {
            var rl = new PolicyGradientOptions
            {
                Iterations = r.GetValue(iterations),
                TasksPerIteration = r.GetValue(tasks),
                SamplesPerTask = r.GetValue(samples),
                StepsPerIteration = r.GetValue(steps),
                LearningRate = (float)r.GetValue(lr),
                AdamLearningRate = (float)r.GetValue(adamLr),
                Temperature = (float)r.GetValue(temperature),
                TokenBudget = r.GetValue(budget),
                EvalTasksPerHorizon = r.GetValue(evalTasks),
                Seed = r.GetValue(seed),
                Horizons = r.GetValue(horizons) ?? d.Horizons,
                // Exact float32 sampling and evaluation, as the policies were measured before and after.
                ModelLoadOptions = new KimiSharp.Model.KimiModelLoadOptions
                {
                    Kernels = r.GetValue(threads) is int count ? new Kernels.KernelSettings { MaxThreads = count } : Kernels.KernelSettings.Default,
                },
                WideShare = r.GetValue(wideShare),
                WideItems = r.GetValue(wideItems) ?? d.WideItems,
                Parl = new ParlRewardOptions
                {
                    LambdaParallel = r.GetValue(lambdaParallel), LambdaFinish = r.GetValue(lambdaFinish), AnnealFraction = r.GetValue(anneal),
                },
            };
            return await RunAsync(r.GetValue(config)!, r.GetValue(from)!, r.GetValue(output)!, rl, r.Out(), ct);
        });
        return command;
    }

    private static IReadOnlyList<int> ParseWideItems(string text) => EvalCommand.ParseItems(text, "--wide-items");

    private static async Task<int> RunAsync(string configPath, string from, string output, PolicyGradientOptions rl, TextWriter stdout,
        CancellationToken cancellationToken)
    {
        var config = TrainCommand.LoadConfig(configPath);
        if (!File.Exists(Path.Combine(from, "final", "config.json")) || !Directory.Exists(Path.Combine(from, "state")))
            throw new UsageException($"'{from}' is not a finished kimi train run (needs final/ and state/)");
        var report = await PolicyGradientStage.RunAsync(config, from, output, rl, new SyncProgress<string>(stdout.WriteLine), cancellationToken);
        stdout.WriteLine();
        stdout.Write(report.ToMarkdown());
        stdout.WriteLine($"policy after RL: {Path.Combine(report.FinalRun, "final")}; report in {Path.Combine(output, "report.md")}");
        return 0;
    }
}
