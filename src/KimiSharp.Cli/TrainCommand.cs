using System.CommandLine;
using Spectre.Console;
using KimiSharp.Model.Configuration;
using KimiSharp.Training.Runs;

namespace KimiSharp.Cli;

/// <summary><c>kimi train --config FILE [--resume]</c>: trains a K2-architecture model with a live status line.</summary>
internal static class TrainCommand
{
    /// <summary><c>--experiment qk-clip</c>: Muon without clip, MuonClip and AdamW on the copy task; CSV, PNG and a summary.</summary>
    private static int RunQkClip(string output, int steps, float tau, float lr, int seed, bool replot, TextWriter stdout, CancellationToken cancellationToken)
    {
        var progress = new SyncProgress<ExperimentPoint>(p =>
        {
            if (p.Step % 50 == 0 || p.Step == steps - 1)
                stdout.WriteLine($"{p.Arm,-16} step {p.Step + 1,4}/{steps}  loss {p.Loss:F4}  max attention logit {p.MaxLogit,7:F1}{(p.HeadsClipped > 0 ? $"  ({p.HeadsClipped} heads clipped)" : "")}");
        });
        if (replot)
        {
            Training.Charts.ExperimentCharts.FromCsv(Path.Combine(output, "qk-clip.csv"), Path.Combine(output, "qk-clip.png"), tau);
            stdout.WriteLine($"redrew {Path.Combine(output, "qk-clip.png")}");
            return 0;
        }
        Training.Charts.ExperimentCharts.Register();
        var outcomes = QkClipExperiment.Run(output, QkClipExperiment.DefaultArms(tau), steps, lr, seed, progress, cancellationToken);
        stdout.WriteLine();
        stdout.Write(File.ReadAllText(Path.Combine(output, "qk-clip.md")));
        stdout.WriteLine($"wrote {Path.Combine(output, "qk-clip.csv")}, qk-clip.png and qk-clip.md");
        return outcomes.Count == 0 ? 1 : 0;
    }

    public static Command Create()
    {
        var config = CliOptions.Text("--config", "FILE", "The training config (JSON: model, data, optimizer, steps, out, …; see README)");
        var resume = CliOptions.Flag("--resume", "Continue the run from its saved state");
        var exportState = CliOptions.Text("--export-state", "DIR", "Export the run's latest saved state as a Hugging Face model folder (also while it trains) and stop");
        var experiment = CliOptions.Parsed("--experiment", "qk-clip", "Run a built-in experiment instead: qk-clip (Muon without clip, MuonClip and AdamW on the copy task)",
            text => text == "qk-clip" ? text : throw new UsageException($"unknown experiment '{text}' (qk-clip)"));
        experiment.CompletionSources.Add("qk-clip");
        var output = CliOptions.Text("--out", "DIR", "Where the experiment writes its CSV, PNG and summary", "docs/qk-clip");
        var steps = CliOptions.Int("--steps", "Steps per arm of the experiment", 800, min: 1);
        var tau = CliOptions.Number("--tau", "The experiment's QK-clip threshold", 100, min: 0, helpName: "TAU");
        var lr = CliOptions.Number("--lr", "The experiment's learning rate", 1e-2, min: 0, helpName: "LR");
        var seed = CliOptions.Int("--seed", "The experiment's seed", 1);
        var replot = CliOptions.Flag("--replot", "Redraw the experiment's chart from its CSV");
        var command = new Command("train", "Train a K2-architecture model (MuonClip, Muon or AdamW) from text/JSONL; Hugging Face checkpoints out.")
        {
            config, resume, exportState, experiment, output, steps, tau, lr, seed, replot,
        };
        command.Exclusive(resume, exportState, "give --resume or --export-state, not both");
        command.Validators.Add(r =>
        {
            if (r.GetResult(config) is null && r.GetResult(experiment) is null) r.AddError("missing --config");
        });
        command.SetAction((r, ct) =>
        {
            if (r.GetValue(experiment) is not null)
                return Task.FromResult(RunQkClip(r.GetValue(output)!, r.GetValue(steps), (float)r.GetValue(tau), (float)r.GetValue(lr), r.GetValue(seed),
                    r.GetValue(replot), r.Out(), ct));
            return Task.FromResult(Run(r.GetValue(config)!, r.GetValue(resume), r.GetValue(exportState), r.Out(), ct));
        });
        return command;
    }

    /// <summary>
    /// Reads a training config. Its problems name the user's file: a bad inline <c>model</c> object is reported as
    /// "FILE: model: …", not as the "config.json: …" the model config parser says about a model folder's own file.
    /// </summary>
    public static TrainConfig LoadConfig(string path)
    {
        try { return TrainConfig.Load(path); }
        catch (FormatException e) { throw new UsageException(e.Message); }
        catch (ModelConfigException e)
        {
            // The model config parser speaks of "config.json", a model folder's file; here the model is part of the user's file.
            string message = e.Message.StartsWith(ModelFilePrefix, StringComparison.Ordinal) ? e.Message[ModelFilePrefix.Length..] : e.Message;
            string where = ReferencedModelConfig(path) is { } referenced ? $"model_config {referenced}" : "model";
            throw new ModelConfigException($"{path}: {where}: {message}", e);
        }
    }

    private const string ModelFilePrefix = "config.json: ";

    /// <summary>The <c>model_config</c> path a training config names, when it names one instead of an inline model.</summary>
    private static string? ReferencedModelConfig(string path)
    {
        try
        {
            return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) is System.Text.Json.Nodes.JsonObject root
                && root["model"] is null && root["model_config"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? referenced)
                ? referenced : null;
        }
        catch (System.Text.Json.JsonException) { return null; }
    }

    public static int Run(string configPath, bool resume, string? exportTo, TextWriter stdout, CancellationToken cancellationToken)
    {
        var config = LoadConfig(configPath);
        // On a terminal a progress bar shows the latest step's metrics (the last line stays); elsewhere one line per step.
        var console = Terminal.Live(stdout);
        ProgressTask? bar = null;
        string lastLine = "";
        var progress = new SyncProgress<StepMetrics>(m =>
        {
            lastLine = $"step {m.Step + 1}/{config.Steps}  loss {m.Loss:F4}  lr {m.LearningRate:G3}  {m.TokensPerSecond:F0} tok/s  " +
                       $"max logit {m.MaxAttentionLogit:F1}{(m.HeadsClipped > 0 ? $" ({m.HeadsClipped} heads clipped)" : "")}  expert load max/mean−1 {m.ExpertMaxViolation:F2}";
            if (bar is null) { stdout.WriteLine(lastLine); return; }
            bar.Value = m.Step + 1;
            bar.Description = Terminal.Plain($"loss {m.Loss:F4}  {m.TokensPerSecond:F0} tok/s  max logit {m.MaxAttentionLogit:F1}");
        });
        if (exportTo is not null)
        {
            int step = Trainer.ExportState(config, exportTo);
            stdout.WriteLine($"exported the state after step {step + 1} to {exportTo}");
            return 0;
        }
        var trainer = new Trainer(config, progress);
        int last = console is null ? trainer.Run(resume, cancellationToken) : Terminal.Bars(console).Start(context =>
        {
            bar = context.AddTask("training", maxValue: config.Steps);
            return trainer.Run(resume, cancellationToken);
        });
        if (console is not null && lastLine.Length > 0) stdout.WriteLine(lastLine);
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
