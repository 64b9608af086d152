using KimiSharp.Training.Runs;

namespace KimiSharp.Cli;

/// <summary><c>kimi train --config FILE [--resume]</c>: trains a K2-architecture model with a live status line.</summary>
internal static class TrainCommand
{
    /// <summary><c>--experiment qk-clip</c>: Muon without clip, MuonClip and AdamW on the copy task; CSV, PNG and a summary.</summary>
    private static int RunQkClip(CommandLine options, TextWriter stdout, CancellationToken cancellationToken)
    {
        string output = options.Get("out") ?? "docs/qk-clip";
        int steps = options.Int("steps") ?? 800;
        float tau = (float)(options.Double("tau") ?? 100);
        float lr = (float)(options.Double("lr") ?? 1e-2);
        var progress = new SyncProgress<ExperimentPoint>(p =>
        {
            if (p.Step % 50 == 0 || p.Step == steps - 1)
                stdout.WriteLine($"{p.Arm,-16} step {p.Step + 1,4}/{steps}  loss {p.Loss:F4}  max attention logit {p.MaxLogit,7:F1}{(p.HeadsClipped > 0 ? $"  ({p.HeadsClipped} heads clipped)" : "")}");
        });
        if (options.Has("replot"))
        {
            Training.Charts.ExperimentCharts.FromCsv(Path.Combine(output, "qk-clip.csv"), Path.Combine(output, "qk-clip.png"), tau);
            stdout.WriteLine($"redrew {Path.Combine(output, "qk-clip.png")}");
            return 0;
        }
        Training.Charts.ExperimentCharts.Register();
        var outcomes = QkClipExperiment.Run(output, QkClipExperiment.DefaultArms(tau), steps, lr, options.Int("seed") ?? 1, progress, cancellationToken);
        stdout.WriteLine();
        stdout.Write(File.ReadAllText(Path.Combine(output, "qk-clip.md")));
        stdout.WriteLine($"wrote {Path.Combine(output, "qk-clip.csv")}, qk-clip.png and qk-clip.md");
        return outcomes.Count == 0 ? 1 : 0;
    }

    public static int Run(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowOnly("config", "resume", "threads", "experiment", "out", "steps", "tau", "lr", "seed", "replot", "export-state");
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);
        if (options.Get("experiment") is { } experiment)
        {
            if (experiment != "qk-clip") throw new UsageException($"unknown experiment '{experiment}' (qk-clip)");
            return RunQkClip(options, stdout, cancellationToken);
        }
        TrainConfig config;
        try { config = TrainConfig.Load(options.Require("config")); }
        catch (FormatException e) { throw new UsageException(e.Message); }
        bool live = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        var progress = new SyncProgress<StepMetrics>(m =>
        {
            string line = $"step {m.Step + 1}/{config.Steps}  loss {m.Loss:F4}  lr {m.LearningRate:G3}  {m.TokensPerSecond:F0} tok/s  " +
                          $"max logit {m.MaxAttentionLogit:F1}{(m.HeadsClipped > 0 ? $" ({m.HeadsClipped} heads clipped)" : "")}  expert load max/mean−1 {m.ExpertMaxViolation:F2}";
            if (live)
            {
                int width = 24, filled = (int)((long)width * (m.Step + 1) / config.Steps);
                stdout.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {line}   ");
            }
            else stdout.WriteLine(line);
        });
        if (options.Get("export-state") is { } exportTo)
        {
            int step = Trainer.ExportState(config, exportTo);
            stdout.WriteLine($"exported the state after step {step + 1} to {exportTo}");
            return 0;
        }
        var trainer = new Trainer(config, progress);
        int last = trainer.Run(options.Has("resume"), cancellationToken);
        if (live) stdout.WriteLine();
        stdout.WriteLine(last == config.Steps - 1
            ? $"done: {config.Steps} steps; model in {trainer.FinalDirectory}, metrics in {trainer.MetricsPath}"
            : $"stopped after step {last + 1}; resume with --resume (state in {trainer.StateDirectory})");
        return 0;
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
