using KimiSharp.Synthesis;
using KimiSharp.Training.Runs;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi rl --config SFT.json --from RUN --out DIR</c>: the policy-gradient stage (verifiable rewards from the tool
/// environments) on top of a finished <c>kimi train</c> run.
/// </summary>
internal static class RlCommand
{
    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, CancellationToken cancellationToken)
    {
        options.AllowOnly("config", "from", "out", "iterations", "tasks", "samples", "steps", "lr", "adam-lr", "temperature", "budget", "eval-tasks", "seed", "threads", "horizons");
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);
        TrainConfig config;
        try { config = TrainConfig.Load(options.Require("config")); }
        catch (FormatException e) { throw new UsageException(e.Message); }
        string from = options.Require("from");
        if (!File.Exists(Path.Combine(from, "final", "config.json")) || !Directory.Exists(Path.Combine(from, "state")))
            throw new UsageException($"'{from}' is not a finished kimi train run (needs final/ and state/)");
        var defaults = new PolicyGradientOptions();
        var rl = new PolicyGradientOptions
        {
            Iterations = options.Int("iterations") ?? defaults.Iterations,
            TasksPerIteration = options.Int("tasks") ?? defaults.TasksPerIteration,
            SamplesPerTask = options.Int("samples") ?? defaults.SamplesPerTask,
            StepsPerIteration = options.Int("steps") ?? defaults.StepsPerIteration,
            LearningRate = (float)(options.Double("lr") ?? defaults.LearningRate),
            AdamLearningRate = (float)(options.Double("adam-lr") ?? defaults.AdamLearningRate),
            Temperature = (float)(options.Double("temperature") ?? defaults.Temperature),
            TokenBudget = options.Int("budget") ?? defaults.TokenBudget,
            EvalTasksPerHorizon = options.Int("eval-tasks") ?? defaults.EvalTasksPerHorizon,
            Seed = options.Int("seed") ?? defaults.Seed,
            Horizons = options.Has("horizons") ? EvalCommand.ParseHorizons(options.Require("horizons")) : defaults.Horizons,
        };
        if (rl.Iterations < 1 || rl.TasksPerIteration < 1 || rl.SamplesPerTask < 2 || rl.StepsPerIteration < 1)
            throw new UsageException("--iterations, --tasks and --steps must be at least 1 and --samples at least 2 (the group mean is the baseline)");
        string output = options.Require("out");
        var report = await PolicyGradientStage.RunAsync(config, from, output, rl, new SyncProgress<string>(stdout.WriteLine), cancellationToken);
        stdout.WriteLine();
        stdout.Write(report.ToMarkdown());
        stdout.WriteLine($"policy after RL: {Path.Combine(report.FinalRun, "final")}; report in {Path.Combine(output, "report.md")}");
        return 0;
    }
}
