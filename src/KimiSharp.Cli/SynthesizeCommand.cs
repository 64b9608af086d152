using KimiSharp.Agent;
using KimiSharp.Synthesis;

namespace KimiSharp.Cli;

/// <summary><c>kimi synthesize --out DIR [--count N] [--seed S]</c>: agentic training data through the rubric filter.</summary>
internal static class SynthesizeCommand
{
    public static int Run(CommandLine options, TextWriter stdout, CancellationToken cancellationToken)
    {
        options.AllowOnly("out", "count", "seed", "window", "max-chunks", "flaw-rate", "max-cities", "template", "long-share", "recall");
        string output = options.Require("out");
        int count = options.Int("count") ?? 20000;
        if (count < 1) throw new UsageException("--count must be at least 1");
        double flawRate = options.Double("flaw-rate") ?? 0.08;
        if (flawRate is < 0 or > 1) throw new UsageException("--flaw-rate must be between 0 and 1");
        int recall = options.Int("recall") ?? 0;
        if (recall < 0) throw new UsageException("--recall must be 0 or more");
        int window = options.Int("window") ?? 4;
        if (window < 1) throw new UsageException("--window must be at least 1");
        bool live = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        var progress = new SyncProgress<(int Done, int Total)>(p =>
        {
            if (live && (p.Done % 200 == 0 || p.Done == p.Total))
            {
                int width = 24, filled = (int)((long)width * p.Done / p.Total);
                stdout.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {p.Done}/{p.Total} trajectories   ");
            }
        });
        var report = SynthesisPipeline.Run(output, count, options.Int("seed") ?? 1, new ContextWindow(window),
            options.Int("max-chunks") ?? 3, new SynthesisOptions { FlawRate = flawRate, MaxCities = Math.Max(2, options.Int("max-cities") ?? 150), LongShare = options.Double("long-share") ?? 0.30 }, progress, cancellationToken,
            options.Get("template") is { } template ? Tokens.Templates.ChatTemplate.FromFile(template) : null);
        if (live) stdout.WriteLine();
        stdout.Write(report.ToMarkdown());
        if (recall > 0)
        {
            string recallPath = Path.Combine(output, "recall.txt");
            long characters = RecallCorpus.Write(recallPath, recall, options.Int("seed") ?? 1, cancellationToken: cancellationToken);
            stdout.WriteLine($"wrote {recallPath}: {recall} copy/recall warm-up documents, {characters:N0} characters");
        }
        stdout.WriteLine($"wrote {Path.Combine(output, "train.jsonl")}, trajectories.jsonl, knowledge_base.json and report.md");
        return 0;
    }
}
