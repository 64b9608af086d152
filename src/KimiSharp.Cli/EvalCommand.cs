using System.Globalization;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Synthesis;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi eval --suite tool-use</c>: held-out tool-use tasks by horizon run through the agent loop; prints a
/// markdown table and optionally writes the JSON report.
/// </summary>
internal static class EvalCommand
{
    public static readonly IReadOnlyList<string> Suites = ["tool-use"];

    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowOnly("model", "suite", "horizons", "tasks", "seed", "out", "transcripts", "name", "threads", "max-steps", "max-tokens");
        string suite = options.Require("suite");
        if (!Suites.Contains(suite))
            throw new UsageException($"unknown suite '{suite}' (known: {string.Join(", ", Suites)})");
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);

        var agent = new AgentOptions();
        if (options.Int("max-steps") is int maxSteps)
            agent = agent with { MaxSteps = maxSteps >= 1 ? maxSteps : throw new UsageException("--max-steps must be at least 1") };
        if (options.Int("max-tokens") is int maxTokens)
            agent = agent with { MaxTokensPerStep = maxTokens >= 1 ? maxTokens : throw new UsageException("--max-tokens must be at least 1") };
        var eval = new ToolUseEvalOptions { Agent = agent };
        if (options.Has("horizons")) eval = eval with { Horizons = ParseHorizons(options.Require("horizons")) };
        if (options.Int("tasks") is int tasks)
            eval = eval with { TasksPerHorizon = tasks >= 1 ? tasks : throw new UsageException("--tasks must be at least 1") };
        if (options.Int("seed") is int seed) eval = eval with { Seed = seed };
        string? outPath = options.Get("out");
        if (outPath is null && options.Has("out")) throw new UsageException("--out needs a value");
        string? transcriptsPath = options.Get("transcripts");
        if (transcriptsPath is null && options.Has("transcripts")) throw new UsageException("--transcripts needs a value");

        await using var service = ModelLocator.LoadChat(options, stderr);
        bool live = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
        using var transcripts = transcriptsPath is null ? null : new TranscriptWriter(transcriptsPath);
        var progress = new EvalProgress(stderr, live, transcripts);
        var report = await ToolUseEvaluation.RunAsync(service, eval, progress, cancellationToken);
        progress.Done();
        if (transcripts is not null) stdout.WriteLine($"transcripts written to {transcriptsPath}");
        stdout.WriteLine(report.ToMarkdown());
        if (outPath is not null)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
            if (dir is not null) Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(outPath, report.ToJson() + Environment.NewLine, cancellationToken);
            stdout.WriteLine($"report written to {outPath}");
        }
        return 0;
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

        public void Dispose() => _writer.Dispose();
    }

    /// <summary>A status line on a terminal (rewritten in place), one plain line per task otherwise; feeds the transcript.</summary>
    private sealed class EvalProgress(TextWriter writer, bool live, TranscriptWriter? transcripts) : IProgress<ToolUseEvalProgress>
    {
        private readonly object _gate = new();
        private int _width;

        public void Report(ToolUseEvalProgress p)
        {
            lock (_gate)
            {
                transcripts?.Write(p);
                if (p.Task == 0)
                {
                    if (!live) writer.WriteLine($"horizon {p.Horizon}: {p.Tasks} tasks");
                    else Draw($"horizon {p.Horizon}: task 1/{p.Tasks} …");
                    return;
                }
                string rate = (100.0 * p.Successes / p.Task).ToString("F0", CultureInfo.InvariantCulture) + "%";
                if (live)
                {
                    string line = p.Task < p.Tasks
                        ? $"horizon {p.Horizon}: task {p.Task + 1}/{p.Tasks} … success so far {p.Successes}/{p.Task} ({rate})"
                        : $"horizon {p.Horizon}: {p.Successes}/{p.Tasks} ({rate})";
                    Draw(line);
                    if (p.Task == p.Tasks) { writer.WriteLine(); _width = 0; }
                }
                else
                {
                    var r = p.LastResult;
                    writer.WriteLine($"horizon {p.Horizon} task {p.Task}/{p.Tasks}: {(p.LastSucceeded ? "ok" : "fail")}" +
                        (r is null ? "" : $" ({r.StopReason}, {r.ToolCalls} calls, {r.MalformedCalls} malformed, {r.GeneratedTokens} tokens)") +
                        $" — success {p.Successes}/{p.Task} ({rate})");
                }
            }
        }

        private void Draw(string line)
        {
            writer.Write("\r" + line + new string(' ', Math.Max(0, _width - line.Length)));
            _width = line.Length;
        }

        public void Done()
        {
            lock (_gate) { if (live && _width > 0) writer.WriteLine(); _width = 0; }
        }
    }
}
