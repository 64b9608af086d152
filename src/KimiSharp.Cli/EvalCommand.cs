using KimiSharp.Kernels;
using Spectre.Console;
using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Synthesis;
using KimiSharp.Synthesis.Evaluation;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi eval --suite tool-use</c>: held-out tool-use tasks by horizon run through the agent loop;
/// <c>kimi eval --suite natural</c>: held-out questions as people type them, accuracy by category. Each prints a
/// markdown table and optionally writes the JSON report and one transcript line per task.
/// </summary>
internal static class EvalCommand
{
    public static readonly IReadOnlyList<string> Suites = ["tool-use", "natural", "wide"];

    public static Command Create()
    {
        var model = ModelLocator.ModelOption();
        var suite = new Option<string>("--suite")
        {
            Description = "The task suite", HelpName = string.Join('|', Suites), Required = true,
            CustomParser = r => r.Tokens.Count == 0 ? "" : Suites.Contains(r.Tokens[^1].Value) ? r.Tokens[^1].Value
                : Fail(r, $"unknown suite '{r.Tokens[^1].Value}' (known: {string.Join(", ", Suites)})"),
        };
        suite.CompletionSources.Add([.. Suites]);
        var horizons = CliOptions.Parsed("--horizons", "1,3,10,50,100,300", "Horizons (planned tool calls) to run, comma-separated [default: 1,3,10,50,100,300]", ParseHorizons);
        var tasks = CliOptions.OptionalInt("--tasks", "Tasks per horizon [default: 50 (h ≤ 3), 20 (≤ 10), 30 (≤ 50), 10 (≤ 100), 5 beyond]; with --suite natural, the first N questions of each category [default: all]", min: 1);
        var categories = CliOptions.Text("--category", "LIST", $"--suite natural only: categories to run, comma-separated ({string.Join(", ", NaturalSuite.Categories)}) [default: all]");
        var seed = CliOptions.OptionalInt("--seed", "Seed of the held-out task generator [default: 777]");
        var output = CliOptions.Text("--out", "report.json", "Also write the report as JSON");
        var transcripts = CliOptions.Text("--transcripts", "runs.jsonl", "Write one JSON line per task (prompt, expected, outcome, answer, conversation)");
        var name = ModelLocator.NameOption();
        var kernels = new KernelOptions();
        var maxSteps = CliOptions.OptionalInt("--max-steps", "Agent steps per task before it stops [default: 400]", min: 1);
        var maxTokens = CliOptions.OptionalInt("--max-tokens", "Tokens per agent step [default: 384]", min: 1);
        var items = CliOptions.Parsed("--items", "10,40,100", "--suite wide only: cities per task, comma-separated (5 to 100) [default: 10,40,100]", t => ParseItems(t, "--items"));
        var subModel = CliOptions.Text("--sub-model", "DIR", "--suite wide only: run the sub-agents on this model [default: the same model]");
        var command = new Command("eval", """
            Run held-out tasks through the agent loop and print a markdown table. --suite tool-use: tasks by horizon
            (success rate, tool calls, malformed-call rate, tokens). --suite natural: 300+ questions written as people
            type them, apart from the training generator (accuracy by category). --suite wide: held-out wide tasks
            (--items cities each) run by the single agent and by the swarm orchestrator side by side (success, critical
            and total steps, wall-clock, serial collapse, spurious spawns).
            """)
        {
            model, suite, horizons, tasks, categories, seed, output, transcripts, name, maxSteps, maxTokens, items, subModel,
        };
        kernels.AddTo(command);
        command.SetAction(async (r, ct) =>
        {
            var agent = new AgentOptions();
            if (r.GetValue(maxSteps) is int steps) agent = agent with { MaxSteps = steps };
            if (r.GetValue(maxTokens) is int perStep) agent = agent with { MaxTokensPerStep = perStep };
            if (r.GetValue(suite) != "wide" && (r.GetValue(items) is not null || r.GetValue(subModel) is not null))
                throw new UsageException("--items and --sub-model belong to --suite wide");
            if (r.GetValue(suite) == "wide")
            {
                if (r.GetValue(categories) is not null) throw new UsageException("--category belongs to --suite natural");
                var wide = new WideEvalOptions { Agent = agent };
                if (r.GetValue(items) is { } sizes) wide = wide with { Items = sizes };
                if (r.GetValue(tasks) is int perSize) wide = wide with { TasksPerSize = perSize };
                if (r.GetValue(seed) is int wideSeed) wide = wide with { Seed = wideSeed };
                return await RunWideAsync(r.GetValue(model), r.GetValue(name), kernels.Settings(r), wide, r.GetValue(subModel),
                    r.GetValue(output), r.GetValue(transcripts), r.Out(), r.Err(), ct);
            }
            if (r.GetValue(suite) == "natural")
            {
                var chosen = r.GetValue(categories)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                foreach (string c in chosen ?? [])
                    if (!NaturalSuite.Categories.Contains(c))
                        throw new UsageException($"unknown category '{c}' (known: {string.Join(", ", NaturalSuite.Categories)})");
                var natural = new NaturalEvalOptions { Agent = agent, Items = NaturalEvalOptions.Select(chosen, r.GetValue(tasks)) };
                return await RunNaturalAsync(r.GetValue(model), r.GetValue(name), kernels.Settings(r), natural,
                    r.GetValue(output), r.GetValue(transcripts), r.Out(), r.Err(), ct);
            }
            if (r.GetValue(categories) is not null) throw new UsageException("--category belongs to --suite natural");
            var eval = new ToolUseEvalOptions { Agent = agent };
            if (r.GetValue(horizons) is { } list) eval = eval with { Horizons = list };
            if (r.GetValue(tasks) is int perHorizon) eval = eval with { TasksPerHorizon = perHorizon };
            if (r.GetValue(seed) is int s) eval = eval with { Seed = s };
            return await RunAsync(r.GetValue(model), r.GetValue(name), kernels.Settings(r), eval, r.GetValue(output), r.GetValue(transcripts), r.Out(), r.Err(), ct);
        });
        return command;
    }

    private static string Fail(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return "";
    }

    private static Task<int> RunAsync(string? modelDir, string? name, KernelSettings kernels, ToolUseEvalOptions eval, string? outPath, string? transcriptsPath,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken) =>
        RunSuiteAsync(modelDir, name, kernels, outPath, transcriptsPath, stdout, stderr,
            (service, context, transcripts) => ToolUseEvaluation.RunAsync(service, eval, new EvalProgress(stderr, context, transcripts), cancellationToken),
            report => (report.ToMarkdown(), report.ToJson()), cancellationToken);

    private static Task<int> RunNaturalAsync(string? modelDir, string? name, KernelSettings kernels, NaturalEvalOptions eval,
        string? outPath, string? transcriptsPath, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken) =>
        RunSuiteAsync(modelDir, name, kernels, outPath, transcriptsPath, stdout, stderr,
            (service, context, transcripts) => NaturalEvaluation.RunAsync(service, eval, new NaturalProgress(stderr, context, transcripts), cancellationToken),
            report => (report.ToMarkdown(), report.ToJson()), cancellationToken);

    /// <summary>
    /// The wide suite: the model loaded with a batch wide enough for its sub-agents, every held-out task run by the
    /// single agent and by the orchestrator with the swarm, side by side.
    /// </summary>
    private static async Task<int> RunWideAsync(string? modelDir, string? name, KernelSettings kernels, WideEvalOptions eval, string? subModelDir,
        string? outPath, string? transcriptsPath, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        try { eval.Validate(); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        var engine = new KimiSharp.Engine.EngineOptions { MaxBatchSize = 32, MaxQueueLength = 256 };
        await using var subService = subModelDir is null ? null : ModelLocator.LoadChat(subModelDir, null, stderr, kernels, engine);
        return await RunSuiteAsync(modelDir, name, kernels, outPath, transcriptsPath, stdout, stderr,
            (service, _, transcripts) => WideEvaluation.RunAsync(new KimiSharp.Engine.Chat.KimiChatClient(service), service.ModelId, eval,
                subService is null ? null : new KimiSharp.Engine.Chat.KimiChatClient(subService), new WideProgress(stderr, transcripts), cancellationToken),
            report => (report.ToMarkdown(), report.ToJson()), cancellationToken, engine);
    }

    /// <summary>--items: task sizes in cities, comma-separated, each 5 to 100.</summary>
    internal static IReadOnlyList<int> ParseItems(string text, string option)
    {
        var list = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < WideTasks.MinItems || n > WideTasks.MaxItems)
                throw new UsageException($"{option} takes task sizes from {WideTasks.MinItems} to {WideTasks.MaxItems} cities separated by commas, got '{text}'");
            list.Add(n);
        }
        return list.Count > 0 ? list : throw new UsageException($"{option} needs at least one size");
    }

    /// <summary>One plain line per run on stderr (each is slow enough to watch); feeds the transcript.</summary>
    private sealed class WideProgress(TextWriter writer, TranscriptWriter? transcripts) : IProgress<WideRun>
    {
        private readonly Lock _gate = new();

        public void Report(WideRun run)
        {
            lock (_gate)
            {
                transcripts?.Write(run);
                writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{run.Items} cities, {run.Mode}: {(run.Success ? "ok" : "fail")} ({run.Result.StopReason}, {run.CriticalSteps} critical / {run.TotalSteps} total steps, " +
                    $"{run.SubAgents} sub-agents, {run.UnusedReports} unused, {run.WallClock.TotalSeconds:F1} s)"));
            }
        }
    }

    /// <summary>Loads the model, runs a suite under a progress bar (plain lines when not on a terminal), prints its table and writes its JSON.</summary>
    private static async Task<int> RunSuiteAsync<TReport>(string? modelDir, string? name, KernelSettings kernels, string? outPath,
        string? transcriptsPath, TextWriter stdout, TextWriter stderr, Func<KimiSharp.Engine.Chat.KimiChatService, ProgressContext?, TranscriptWriter?, Task<TReport>> run,
        Func<TReport, (string Markdown, string Json)> render, CancellationToken cancellationToken, KimiSharp.Engine.EngineOptions? engine = null)
    {
        await using var service = ModelLocator.LoadChat(modelDir, name, stderr, kernels, engine);
        using var transcripts = transcriptsPath is null ? null : new TranscriptWriter(transcriptsPath);
        var report = Terminal.Live(stderr) is { } console
            ? await Terminal.Bars(console).StartAsync(context => run(service, context, transcripts))
            : await run(service, null, transcripts);
        var (markdown, json) = render(report);
        if (transcripts is not null) stdout.WriteLine($"transcripts written to {transcriptsPath}");
        stdout.WriteLine(markdown);
        if (outPath is not null)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
            if (dir is not null) Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(outPath, json + Environment.NewLine, cancellationToken);
            stdout.WriteLine($"report written to {outPath}");
        }
        return 0;
    }

    /// <summary>One bar for the whole suite on a terminal, one plain line per question otherwise; feeds the transcript.</summary>
    private sealed class NaturalProgress(TextWriter writer, ProgressContext? bars, TranscriptWriter? transcripts) : IProgress<NaturalEvalProgress>
    {
        private readonly Lock _gate = new();
        private ProgressTask? _bar;

        public void Report(NaturalEvalProgress p)
        {
            lock (_gate)
            {
                if (p.Last is not { } last)
                {
                    if (bars is null) writer.WriteLine($"natural: {p.Total} questions");
                    else _bar = bars.AddTask("natural", maxValue: p.Total);
                    return;
                }
                transcripts?.Write(last);
                string rate = (100.0 * p.Passes / p.Index).ToString("F0", CultureInfo.InvariantCulture) + "%";
                if (_bar is not null)
                {
                    _bar.Value = p.Index;
                    _bar.Description = Terminal.Plain($"natural: {p.Passes}/{p.Index} correct ({rate})");
                    return;
                }
                writer.WriteLine($"{last.Item.Id} {p.Index}/{p.Total}: {(last.Passed ? "ok" : "fail (" + last.Failure + ")")} — correct {p.Passes}/{p.Index} ({rate})");
            }
        }
    }

    internal static IReadOnlyList<int> ParseHorizons(string text)
    {
        var list = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int h) || h < 1)
                throw new UsageException($"--horizons takes positive integers separated by commas, got '{text}'");
            list.Add(h);
        }
        return list.Count > 0 ? list : throw new UsageException("--horizons needs at least one horizon");
    }

    /// <summary>
    /// One JSON line per finished task (horizon, kind, prompt, expected values, outcome, answer and the whole
    /// conversation), flushed as it goes so an interrupted run keeps what it did.
    /// </summary>
    internal sealed class TranscriptWriter : IDisposable
    {
        private readonly StreamWriter _writer;

        public TranscriptWriter(string path)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            _writer = new StreamWriter(path, append: false) { NewLine = "\n" };
        }

        public void Write(ToolUseEvalProgress p)
        {
            if (p.LastResult is not { } r || p.LastTask is not { } task) return;
            var expected = new JsonArray();
            foreach (string e in task.Expected) expected.Add(e);
            var line = new JsonObject
            {
                ["horizon"] = p.Horizon, ["task"] = p.Task, ["kind"] = task.Kind, ["success"] = p.LastSucceeded,
                ["stop_reason"] = r.StopReason, ["tool_calls"] = r.ToolCalls, ["malformed_calls"] = r.MalformedCalls,
                ["generated_tokens"] = r.GeneratedTokens, ["prompt"] = task.Prompt, ["expected"] = expected,
                ["answer"] = r.FinalAnswer, ["messages"] = r.Messages.DeepClone(),
            };
            _writer.WriteLine(line.ToJsonString());
            _writer.Flush();
        }

        /// <summary>A natural-suite line: id, category, prompt, the rule, pass or why not, answer and conversation.</summary>
        public void Write(NaturalOutcome o)
        {
            var line = new JsonObject
            {
                ["id"] = o.Item.Id, ["category"] = o.Item.Category, ["success"] = o.Passed, ["failure"] = o.Failure,
                ["prompt"] = o.Item.Prompt, ["expected"] = System.Text.Json.JsonSerializer.SerializeToNode(o.Item.Expect, RuleJson),
                ["stop_reason"] = o.Result.StopReason, ["tool_calls"] = o.Result.ToolCalls, ["malformed_calls"] = o.Result.MalformedCalls,
                ["generated_tokens"] = o.Result.GeneratedTokens, ["answer"] = o.Result.FinalAnswer, ["messages"] = o.Result.Messages.DeepClone(),
            };
            _writer.WriteLine(line.ToJsonString());
            _writer.Flush();
        }

        /// <summary>A wide-suite line: size, mode, prompt, expected, outcome, the measurements and the (orchestrator's) conversation.</summary>
        public void Write(WideRun run)
        {
            var line = new JsonObject
            {
                ["items"] = run.Items, ["mode"] = run.Mode, ["kind"] = run.Task.Kind, ["success"] = run.Success, ["stop_reason"] = run.Result.StopReason,
                ["critical_steps"] = run.CriticalSteps, ["total_steps"] = run.TotalSteps, ["seconds"] = run.WallClock.TotalSeconds,
                ["sub_agents"] = run.SubAgents, ["unused_reports"] = run.UnusedReports, ["serial_collapse"] = run.SerialCollapse,
                ["prompt"] = run.Task.Prompt, ["expected"] = run.Task.Expected, ["answer"] = run.Result.FinalAnswer, ["messages"] = run.Result.Messages.DeepClone(),
            };
            _writer.WriteLine(line.ToJsonString());
            _writer.Flush();
        }

        private static readonly System.Text.Json.JsonSerializerOptions RuleJson = new()
        {
            PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
            DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault,
        };

        public void Dispose() => _writer.Dispose();
    }

    /// <summary>A progress bar per horizon on a terminal, one plain line per task otherwise; feeds the transcript.</summary>
    private sealed class EvalProgress(TextWriter writer, ProgressContext? bars, TranscriptWriter? transcripts) : IProgress<ToolUseEvalProgress>
    {
        private readonly Lock _gate = new();
        private ProgressTask? _horizon;

        public void Report(ToolUseEvalProgress p)
        {
            lock (_gate)
            {
                transcripts?.Write(p);
                if (p.Task == 0)
                {
                    if (bars is null) writer.WriteLine($"horizon {p.Horizon}: {p.Tasks} tasks");
                    else _horizon = bars.AddTask($"horizon {p.Horizon}", maxValue: p.Tasks);
                    return;
                }
                string rate = (100.0 * p.Successes / p.Task).ToString("F0", CultureInfo.InvariantCulture) + "%";
                if (_horizon is not null)
                {
                    _horizon.Value = p.Task;
                    _horizon.Description = Terminal.Plain($"horizon {p.Horizon}: {p.Successes}/{p.Task} succeeded ({rate})");
                    return;
                }
                var r = p.LastResult;
                writer.WriteLine($"horizon {p.Horizon} task {p.Task}/{p.Tasks}: {(p.LastSucceeded ? "ok" : "fail")}" +
                    (r is null ? "" : $" ({r.StopReason}, {r.ToolCalls} calls, {r.MalformedCalls} malformed, {r.GeneratedTokens} tokens)") +
                    $" — success {p.Successes}/{p.Task} ({rate})");
            }
        }
    }
}
