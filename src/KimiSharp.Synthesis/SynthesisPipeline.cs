using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Synthesis;

/// <summary>What a synthesis run produced.</summary>
public sealed record SynthesisReport(int Generated, int Kept, IReadOnlyDictionary<string, int> Rejections,
    IReadOnlyDictionary<string, int> KeptByKind, int Examples, long Characters, TimeSpan Elapsed)
{
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Generated {Generated} trajectories, kept {Kept} ({100.0 * Kept / Math.Max(Generated, 1):F1}%), rendered {Examples} training examples ({Characters:N0} characters) in {Elapsed.TotalSeconds:F1} s.");
        sb.AppendLine();
        sb.AppendLine("| rejected because | trajectories |");
        sb.AppendLine("| --- | ---: |");
        foreach (var (reason, n) in Rejections.OrderByDescending(r => r.Value)) sb.AppendLine($"| {reason} | {n} |");
        sb.AppendLine();
        sb.AppendLine("| kept, by task family | trajectories |");
        sb.AppendLine("| --- | ---: |");
        foreach (var (kind, n) in KeptByKind.OrderBy(k => k.Key, StringComparer.Ordinal)) sb.AppendLine($"| {kind} | {n} |");
        return sb.ToString();
    }
}

/// <summary>
/// Synthesize → judge → render: generates teacher trajectories, keeps those the rubric accepts, and writes
/// <c>trajectories.jsonl</c> (the kept conversations with their tasks), <c>train.jsonl</c> (rendered examples for
/// <c>kimi train</c>), <c>knowledge_base.json</c> and <c>report.md</c>; with <c>openAiJsonlPath</c>, also every kept
/// conversation as an OpenAI-format chat record (<see cref="OpenAiChatExport"/>).
/// </summary>
public static class SynthesisPipeline
{
    public static SynthesisReport Run(string outputDirectory, int trajectories, int seed, ContextWindow window,
        int maxChunksPerTrajectory = 3, SynthesisOptions? options = null, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default, ChatTemplate? template = null, string? openAiJsonlPath = null)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(outputDirectory);
        var kb = KnowledgeBase.Default;
        var tools = Toolbox.CreateDefault(kb).Declarations();
        var generator = new TaskGenerator(seed, kb, options);
        var filter = new RubricFilter(tools);
        var renderer = new TrainingExampleRenderer(template ?? ChatTemplate.BuiltInKimiK2Thinking(), tools, window);
        var random = new Random(seed ^ 0x5eed);
        // Wide swarm tasks: their own generator and draws, so a mix without them is the older mix seed for seed.
        options ??= new SynthesisOptions();
        if (options.WideShare is < 0 or > 1 || double.IsNaN(options.WideShare))
            throw new ArgumentOutOfRangeException(nameof(options), $"WideShare must be between 0 and 1, got {options.WideShare}");
        if (options.WideMaxItems is < WideTasks.MinItems or > WideTasks.MaxItems)
            throw new ArgumentOutOfRangeException(nameof(options), $"WideMaxItems must be {WideTasks.MinItems} to {WideTasks.MaxItems}, got {options.WideMaxItems}");
        if (options.WideSubAgentsPerTask < 0) throw new ArgumentOutOfRangeException(nameof(options), "WideSubAgentsPerTask must be ≥ 0");
        var wideRandom = new Random(seed ^ 0x3a1de);
        WideTaskGenerator? wide = options.WideShare > 0 ? new WideTaskGenerator(seed ^ 0x71de, kb) : null;
        var orchestratorTools = wide is null ? null : WideTasks.OrchestratorDeclarations(kb);
        var orchestratorFilter = orchestratorTools is null ? null : new RubricFilter(orchestratorTools);
        var orchestratorRenderer = orchestratorTools is null ? null : new TrainingExampleRenderer(template ?? ChatTemplate.BuiltInKimiK2Thinking(), orchestratorTools, window);
        var keptByKind = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int examples = 0;
        long characters = 0;

        string trajectoriesPath = Path.Combine(outputDirectory, "trajectories.jsonl"), trainPath = Path.Combine(outputDirectory, "train.jsonl");
        if (openAiJsonlPath is not null && Path.GetDirectoryName(Path.GetFullPath(openAiJsonlPath)) is { } openAiDirectory)
            Directory.CreateDirectory(openAiDirectory);
        using (var trajectoryWriter = new StreamWriter(trajectoriesPath + ".partial", false, new UTF8Encoding(false)))
        using (var trainWriter = new StreamWriter(trainPath + ".partial", false, new UTF8Encoding(false)))
        using (var openAiWriter = openAiJsonlPath is null ? null : new StreamWriter(openAiJsonlPath + ".partial", false, new UTF8Encoding(false)))
        {
            for (int i = 0; i < trajectories; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (wide is not null && wideRandom.NextDouble() < options.WideShare)
                {
                    var w = wide.Next(maxItems: options.WideMaxItems);
                    // The orchestrator is judged against its own tools (spawn_agents included); its sub-agents like any other run.
                    var parts = new List<(Trajectory Trajectory, RubricFilter Filter, TrainingExampleRenderer Renderer, JsonArray Tools)>
                    {
                        (w.Orchestrator, orchestratorFilter!, orchestratorRenderer!, orchestratorTools!),
                    };
                    parts.AddRange(w.SubAgents.OrderBy(_ => wideRandom.Next()).Take(options.WideSubAgentsPerTask).Select(s => (s, filter, renderer, tools)));
                    foreach (var (part, judge, partRenderer, partTools) in parts)
                    {
                        if (!judge.Judge(part).Keep) continue;
                        keptByKind[part.Task.Kind] = keptByKind.GetValueOrDefault(part.Task.Kind) + 1;
                        trajectoryWriter.WriteLine(new JsonObject
                        {
                            ["kind"] = part.Task.Kind, ["horizon"] = part.Task.Horizon, ["expected"] = new JsonArray(part.Task.Expected.Select(e => (JsonNode)e!).ToArray()),
                            ["messages"] = part.Messages.DeepClone(),
                        }.ToJsonString());
                        openAiWriter?.WriteLine(OpenAiChatExport.ToRecord(part, partTools).ToJsonString());
                        foreach (var example in partRenderer.Examples(part.Messages, maxChunksPerTrajectory, random))
                        {
                            trainWriter.WriteLine(example.ToJson().ToJsonString());
                            examples++;
                            characters += example.Text.Length;
                        }
                    }
                    progress?.Report((i + 1, trajectories));
                    continue;
                }
                var t = generator.Next();
                if (!filter.Judge(t).Keep) { progress?.Report((i + 1, trajectories)); continue; }
                keptByKind[t.Task.Kind] = keptByKind.GetValueOrDefault(t.Task.Kind) + 1;
                trajectoryWriter.WriteLine(new JsonObject
                {
                    ["kind"] = t.Task.Kind, ["horizon"] = t.Task.Horizon, ["expected"] = new JsonArray(t.Task.Expected.Select(e => (JsonNode)e!).ToArray()),
                    ["messages"] = t.Messages.DeepClone(),
                }.ToJsonString());
                openAiWriter?.WriteLine(OpenAiChatExport.ToRecord(t, tools).ToJsonString());
                foreach (var example in renderer.Examples(t.Messages, maxChunksPerTrajectory, random))
                {
                    trainWriter.WriteLine(example.ToJson().ToJsonString());
                    examples++;
                    characters += example.Text.Length;
                }
                progress?.Report((i + 1, trajectories));
            }
        }
        File.Move(trajectoriesPath + ".partial", trajectoriesPath, overwrite: true);
        File.Move(trainPath + ".partial", trainPath, overwrite: true);
        if (openAiJsonlPath is not null) File.Move(openAiJsonlPath + ".partial", openAiJsonlPath, overwrite: true);
        File.WriteAllText(Path.Combine(outputDirectory, "knowledge_base.json"), kb.ToJson());
        var rejections = new Dictionary<string, int>(filter.Rejections);
        foreach (var (reason, n) in orchestratorFilter?.Rejections ?? new Dictionary<string, int>())
            rejections[reason] = rejections.GetValueOrDefault(reason) + n;
        int kept = filter.Kept + (orchestratorFilter?.Kept ?? 0);
        // Every conversation is judged once, so the judges count them: a wide task adds its orchestrator's and the sub-agents' taken.
        int generated = filter.Kept + filter.Rejected + (orchestratorFilter is null ? 0 : orchestratorFilter.Kept + orchestratorFilter.Rejected);
        var report = new SynthesisReport(generated, kept, rejections, keptByKind, examples, characters, clock.Elapsed);
        File.WriteAllText(Path.Combine(outputDirectory, "report.md"), report.ToMarkdown());
        return report;
    }
}
