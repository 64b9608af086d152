using System.CommandLine;
using KimiSharp.Agent;
using KimiSharp.Synthesis;

namespace KimiSharp.Cli;

/// <summary><c>kimi synthesize --out DIR [--count N] [--seed S]</c>: agentic training data through the rubric filter.</summary>
internal static class SynthesizeCommand
{
    public static Command Create()
    {
        var output = CliOptions.Required("--out", "DIR", "Where train.jsonl, trajectories.jsonl, knowledge_base.json and report.md go");
        var count = CliOptions.Int("--count", "Teacher trajectories to generate", 20000, min: 1);
        var seed = CliOptions.Int("--seed", "Seed of the task generator", 1);
        var window = CliOptions.Int("--window", "Agent steps per context chunk: older steps are dropped W at a time (as the agent loop does)", 4, min: 1);
        var maxChunks = CliOptions.Int("--max-chunks", "Training examples (context chunks) taken from one trajectory at most", 3, min: 1);
        var flawRate = CliOptions.Number("--flaw-rate", "Probability that a teacher trajectory gets one injected flaw, for the rubric filter to catch", 0.08, min: 0, max: 1, helpName: "P");
        var maxCities = CliOptions.Int("--max-cities", "Largest number of cities in a long-horizon aggregation (2 calls per city)", 150, min: 2);
        var template = CliOptions.Text("--template", "chat_template.jinja", "Render the examples with this chat template [default: the built-in Kimi K2 Thinking template]");
        var longShare = CliOptions.Number("--long-share", "Share of long-horizon aggregations among the trajectories", 0.30, min: 0, max: 1, helpName: "P");
        var naturalShare = CliOptions.Number("--natural-share", "Share of the short trajectories written by the natural-phrasing grammars (everyday requests in many phrasings, plain chat); 0 keeps the older mix exactly", 0, min: 0, max: 1, helpName: "P");
        var openAi = CliOptions.Text("--openai-jsonl", "FILE", "Also write every accepted conversation as OpenAI-format chat JSONL (messages with reasoning_content and tool_calls, plus tools), for other trainers");
        var wideShare = CliOptions.Number("--wide-share", "Share of trajectories that are wide swarm tasks (an orchestrator spawns one sub-agent per chunk of 5 cities, then aggregates); each also adds sub-agent conversations; 0 keeps the older mix exactly", 0, min: 0, max: 1, helpName: "P");
        var wideMaxItems = CliOptions.Int("--wide-max-items", "Largest number of cities in a wide task (5 to 100)", WideTasks.MaxItems, min: WideTasks.MinItems);
        var wideSubAgents = CliOptions.Int("--wide-sub-agents", "Sub-agent conversations kept per wide task at most", 2, min: 0);
        var recall = CliOptions.Int("--recall", "Also write recall.txt: this many plain-text copy/recall warm-up documents (text_files for kimi train)", 0, min: 0);
        var command = new Command("synthesize", """
            Agentic training data: tool-use tasks with verifiable answers, teacher trajectories through the real tools,
            a rubric filter (report.md says what it rejected), rendered examples for kimi train.
            """)
        {
            output, count, seed, window, maxChunks, flawRate, maxCities, template, longShare, recall, openAi, naturalShare, wideShare, wideMaxItems, wideSubAgents,
        };
        command.SetAction((r, ct) => Task.FromResult(Run(r.GetValue(output)!, r.GetValue(count), r.GetValue(seed), r.GetValue(window),
            r.GetValue(maxChunks), new SynthesisOptions { FlawRate = r.GetValue(flawRate), MaxCities = r.GetValue(maxCities), LongShare = r.GetValue(longShare), NaturalShare = r.GetValue(naturalShare),
                WideShare = r.GetValue(wideShare), WideMaxItems = WideMax(r.GetValue(wideMaxItems)), WideSubAgentsPerTask = r.GetValue(wideSubAgents) },
            r.GetValue(template), r.GetValue(recall), r.Out(), ct, r.GetValue(openAi))));
        return command;
    }

    private static int WideMax(int items) => items <= WideTasks.MaxItems ? items
        : throw new UsageException($"--wide-max-items {items}: a wide task has at most {WideTasks.MaxItems} cities");

    public static int Run(string output, int count, int seed, int window, int maxChunks, SynthesisOptions synthesis, string? templatePath,
        int recall, TextWriter stdout, CancellationToken cancellationToken, string? openAiJsonl = null)
    {
        var template = templatePath is not null ? Tokens.Templates.ChatTemplate.FromFile(templatePath) : null;
        SynthesisReport Synthesize(IProgress<(int Done, int Total)>? progress) =>
            SynthesisPipeline.Run(output, count, seed, new ContextWindow(window), maxChunks, synthesis, progress, cancellationToken, template, openAiJsonl);
        var report = Terminal.Live(stdout) is { } console
            ? Terminal.Bars(console).Start(context =>
            {
                var task = context.AddTask("trajectories", maxValue: count);
                return Synthesize(new SyncProgress<(int Done, int Total)>(p => { task.MaxValue = p.Total; task.Value = p.Done; }));
            })
            : Synthesize(null);
        stdout.Write(report.ToMarkdown());
        if (recall > 0)
        {
            string recallPath = Path.Combine(output, "recall.txt");
            long characters = RecallCorpus.Write(recallPath, recall, seed, cancellationToken: cancellationToken);
            stdout.WriteLine($"wrote {recallPath}: {recall} copy/recall warm-up documents, {characters:N0} characters");
        }
        stdout.WriteLine($"wrote {Path.Combine(output, "train.jsonl")}, trajectories.jsonl, knowledge_base.json and report.md");
        if (openAiJsonl is not null) stdout.WriteLine($"wrote {openAiJsonl}: {report.Kept} conversations in OpenAI chat format");
        return 0;
    }
}
