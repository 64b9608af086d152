using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Synthesis;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Synthesis.Tests;

public class SynthesisTests
{
    private static readonly JsonArray Tools = Toolbox.CreateDefault().Declarations();

    [Fact]
    public void CleanTeacherTrajectoriesPassTheRubricAndReplayExactly()
    {
        var generator = new TaskGenerator(11, options: new SynthesisOptions { FlawRate = 0, MaxCities = 12 });
        var filter = new RubricFilter(Tools);
        var kinds = new HashSet<string>();
        for (int i = 0; i < 600; i++)
        {
            var t = generator.Next();
            kinds.Add(t.Task.Kind);
            var verdict = filter.Judge(t);
            Assert.True(verdict.Keep, $"{t.Task.Kind}: {verdict.Reason} {verdict.Detail}");
            Assert.True(t.Task.IsAnsweredBy(t.FinalAnswer));
            // Every tool message is what the environment answers for that call (no invented results).
            var replay = Toolbox.CreateDefault();
            var results = t.Messages.OfType<JsonObject>().Where(m => m["role"]!.GetValue<string>() == "tool").Select(m => m["content"]!.GetValue<string>()).ToList();
            var calls = t.Calls().ToList();
            Assert.Equal(calls.Count, results.Count);
            for (int c = 0; c < calls.Count; c++) Assert.Equal(replay.Invoke(calls[c].Name, calls[c].Arguments).Content, results[c]);
            if (t.Task.Kind != "long") Assert.True(calls.Count <= 3);
        }
        Assert.Equal(600, filter.Kept);
        foreach (var kind in TaskGenerator.ShortKinds.Append("long")) Assert.Contains(kind, kinds);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(10)]
    [InlineData(50)]
    public void HorizonsMeanCalls(int horizon)
    {
        var generator = new TaskGenerator(5, options: new SynthesisOptions { FlawRate = 0 });
        for (int i = 0; i < 20; i++)
        {
            var t = generator.WithHorizon(horizon);
            int calls = t.Calls().Count();
            // Short families hit the horizon exactly; a long task takes 3 calls per city, so it may need up to 2 more.
            Assert.InRange(calls, horizon, horizon < 4 ? horizon : horizon + 2);
            Assert.Equal(calls, t.Task.Horizon);
        }
    }

    [Fact]
    public void LongTaskQueuesTheCitiesAndCarriesTheRunningTotalInItsReasoning()
    {
        var t = new TaskGenerator(3, options: new SynthesisOptions { FlawRate = 0 }).Long(6);
        Assert.Equal(TaskGenerator.LongCalls(6), t.Calls().Count());
        var calculatorResults = t.Messages.OfType<JsonObject>().Where(m => m["name"]?.GetValue<string>() == "calculator").Select(m => m["content"]!.GetValue<string>()).ToList();
        Assert.Equal(5, calculatorResults.Count);
        // The step after each addition restates its result, so dropping older steps loses nothing.
        var reasoning = t.Messages.OfType<JsonObject>().Where(m => m["role"]!.GetValue<string>() == "assistant").Select(m => m["reasoning_content"]!.GetValue<string>()).ToList();
        foreach (var total in calculatorResults) Assert.Contains(reasoning, r => r.Contains($"Total so far {total} after", StringComparison.Ordinal));
        Assert.Equal(calculatorResults[^1], t.Task.Expected.Single());

        // Replaying the calls through a fresh toolbox: the first call queues the question's cities, and each lookup is of
        // the city the pop before it handed out, in the question's order; the lookup's reasoning names it and the count left.
        var box = Toolbox.CreateDefault(KnowledgeBase.Default);
        var assistant = t.Messages.OfType<JsonObject>().Where(m => m["tool_calls"] is JsonArray).ToList();
        string Arg(JsonObject m, string name) => JsonNode.Parse(m["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>())![name]!.GetValue<string>();
        string Tool(JsonObject m) => m["tool_calls"]![0]!["function"]!["name"]!.GetValue<string>();
        Assert.Equal("write", Arg(assistant[0], "action"));
        string[] cities = Arg(assistant[0], "value").Split(", ");
        Assert.Equal(6, cities.Length);
        Assert.Contains(string.Join(", ", cities), t.Task.Prompt, StringComparison.Ordinal);
        box.Invoke("memory", assistant[0]["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>());
        var lookups = assistant.Where(m => Tool(m) == "lookup").ToList();
        var pops = assistant.Where(m => Tool(m) == "memory" && Arg(m, "action") == "pop").ToList();
        Assert.Equal(6, lookups.Count);
        Assert.Equal(7, pops.Count);
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(assistant.IndexOf(pops[i]) + 1, assistant.IndexOf(lookups[i]));
            string popped = box.Invoke("memory", pops[i]["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>()).Content;
            Assert.Equal($"{cities[i]} ({5 - i} left)", popped);
            Assert.Equal(cities[i], Arg(lookups[i], "entity"));
            Assert.StartsWith($"Next city {popped}.", lookups[i]["reasoning_content"]!.GetValue<string>(), StringComparison.Ordinal);
        }
        // A last pop finds the list empty, and only then is the total saved.
        Assert.Equal("todo is empty", box.Invoke("memory", pops[6]["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>()).Content);
        Assert.Equal(assistant.IndexOf(pops[6]) + 1, assistant.Count - 1);
        Assert.Equal("write", Arg(assistant[^1], "action"));
        Assert.Equal(t.Task.Expected.Single(), Arg(assistant[^1], "value"));
        Assert.Equal(1, reasoning.Count(r => r.Contains("Save it.", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("wrong-answer", "lookup", "wrong-answer")]
    [InlineData("hallucinated-result", "lookup", "hallucinated-result")]
    [InlineData("redundant-call", "sum-two", "redundant-call")]
    [InlineData("malformed-call", "arithmetic", "malformed-call")]
    [InlineData("skipped-tool", "no-tool", "unnecessary-call")]
    public void EachInjectedFlawIsRejectedForItsReason(string flaw, string kind, string reason)
    {
        var generator = new TaskGenerator(21, options: new SynthesisOptions { FlawRate = 0 });
        Trajectory t;
        do t = generator.Next(); while (t.Task.Kind != kind || (kind == "no-tool" && t.Task.Expected.Count == 0 && flaw != "skipped-tool"));
        var filter = new RubricFilter(Tools);
        Assert.True(filter.Evaluate(t).Keep);
        var verdict = filter.Judge(TaskGenerator.InjectFlaw(t, flaw));
        Assert.False(verdict.Keep);
        Assert.Equal(reason, verdict.Reason);
        Assert.Equal(1, filter.Rejections[reason]);
    }

    [Fact]
    public void RetryingAFailedCallUnchangedIsRejected()
    {
        var b = new TrajectoryBuilder(Toolbox.CreateDefault());
        b.User("What is 5 divided by 0?");
        b.Step("compute", ("calculator", new JsonObject { ["expression"] = "5/0" }));
        b.Step("again", ("calculator", new JsonObject { ["expression"] = "5/0" }));
        b.Final("error", "5 divided by 0 is undefined.");
        var verdict = new RubricFilter(Tools).Evaluate(new Trajectory(new AgentTask("division-by-zero", 1, "q", ["undefined"]), b.Messages));
        Assert.Equal("repeated-failed-call", verdict.Reason);
    }

    [Fact]
    public void MalformedCallsAreNamed()
    {
        var filter = new RubricFilter(Tools);
        Assert.Null(filter.Malformed("calculator", """{"expression":"1+1"}"""));
        Assert.Contains("unknown tool", filter.Malformed("search", "{}"));
        Assert.Contains("not a JSON object", filter.Malformed("calculator", """{"expression":"1+1" """));
        Assert.Contains("missing required argument 'entity'", filter.Malformed("lookup", """{"attribute":"area"}"""));
        Assert.Contains("must be a string", filter.Malformed("lookup", """{"entity":3,"attribute":"area"}"""));
        Assert.Contains("must be one of", filter.Malformed("lookup", """{"entity":"X","attribute":"mayor"}"""));
    }

    [Theory]
    [InlineData("The answer is 508.5.", "508.5", true)]
    [InlineData("It is 1,508.5 in total", "1508.5", true)]
    [InlineData("It is 1508.5", "508.5", false)]
    [InlineData("It is 508.57", "508.5", false)]
    [InlineData("It is -12 degrees", "12", false)]
    [InlineData("It is -12 degrees", "-12", true)]
    [InlineData("Varnholt is in OSMERIA.", "Osmeria", true)]
    public void AnswersMentionWholeNumbers(string answer, string expected, bool mentions) =>
        Assert.Equal(mentions, AnswerText.Mentions(answer, expected));

    [Fact]
    public void TrainingChunksShowExactlyTheContextTheAgentLoopShows()
    {
        var template = ChatTemplate.BuiltInKimiK2Thinking();
        var window = new ContextWindow(4);
        var renderer = new TrainingExampleRenderer(template, Tools, window);
        var t = new TaskGenerator(8, options: new SynthesisOptions { FlawRate = 0 }).Long(5); // 17 calls + final = 18 steps
        var (prefix, steps) = ContextWindow.Split(t.Messages);
        Assert.Equal(18, steps.Count);
        Assert.Equal(5, renderer.ChunkCount(t.Messages));
        for (int chunk = 0; chunk < 5; chunk++)
        {
            var example = renderer.Render(t.Messages, chunk);
            for (int step = chunk * 4; step < Math.Min(chunk * 4 + 4, steps.Count); step++)
            {
                // What the loop renders before generating this step, from the messages so far.
                var soFar = new JsonArray(prefix.Select(m => m.DeepClone()).ToArray());
                for (int s = 0; s < step; s++) foreach (var m in steps[s]) soFar.Add(m.DeepClone());
                string prompt = template.Render(window.Visible(soFar), Tools, addGenerationPrompt: true);
                Assert.StartsWith(prompt, example.Text, StringComparison.Ordinal);
                // ... and that step is trained: it starts at or after train_from.
                Assert.True(prompt.Length >= example.TrainFrom);
            }
            Assert.EndsWith("<|im_assistant|>assistant<|im_middle|>", example.Text[..example.TrainFrom] + "<|im_assistant|>assistant<|im_middle|>");
        }
        // The last chunk ends with the final answer and its reasoning.
        Assert.EndsWith(t.FinalAnswer + "<|im_end|>", renderer.Render(t.Messages, 4).Text);
    }

    [Fact]
    public void PipelineWritesDataAndAReport()
    {
        string dir = Path.Combine(Path.GetTempPath(), "kimi-synth-" + Guid.NewGuid().ToString("N"));
        try
        {
            var report = SynthesisPipeline.Run(dir, 300, 4, new ContextWindow(4), options: new SynthesisOptions { FlawRate = 0.3, MaxCities = 8 });
            Assert.Equal(300, report.Generated);
            Assert.True(report.Rejections.Values.Sum() > 30, "a 30% flaw rate must show up as rejections");
            Assert.Equal(report.Kept, File.ReadLines(Path.Combine(dir, "trajectories.jsonl")).Count());
            Assert.Equal(report.Examples, File.ReadLines(Path.Combine(dir, "train.jsonl")).Count());
            var first = JsonNode.Parse(File.ReadLines(Path.Combine(dir, "train.jsonl")).First())!;
            Assert.StartsWith("<|im_system|>tool_declare<|im_middle|>", first["text"]!.GetValue<string>());
            Assert.Contains("| rejected because |", File.ReadAllText(Path.Combine(dir, "report.md")));
            Assert.Equal(KnowledgeBase.Default.ToJson(), File.ReadAllText(Path.Combine(dir, "knowledge_base.json")));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    /// <summary>
    /// The OpenAI-format export: one record per kept trajectory, in the order of trajectories.jsonl, each a whole
    /// conversation whose every tool call is answered by a tool message with its id, with the declared tools.
    /// </summary>
    [Fact]
    public void PipelineAlsoWritesOpenAiChatRecords()
    {
        string dir = Path.Combine(Path.GetTempPath(), "kimi-synth-" + Guid.NewGuid().ToString("N"));
        try
        {
            string openAi = Path.Combine(dir, "export", "chat.jsonl");
            var report = SynthesisPipeline.Run(dir, 120, 6, new ContextWindow(4), options: new SynthesisOptions { MaxCities = 6 }, openAiJsonlPath: openAi);
            var records = File.ReadLines(openAi).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
            var trajectories = File.ReadLines(Path.Combine(dir, "trajectories.jsonl")).Select(l => JsonNode.Parse(l)!).ToArray();
            Assert.Equal(report.Kept, records.Length);
            Assert.False(File.Exists(openAi + ".partial"));
            for (int i = 0; i < records.Length; i++)
            {
                var record = records[i];
                Assert.Equal(["messages", "tools"], record.Select(p => p.Key).ToArray());
                Assert.True(JsonNode.DeepEquals(Tools, record["tools"]));
                var messages = record["messages"]!.AsArray();
                var source = trajectories[i]["messages"]!.AsArray();
                Assert.Equal(source.Select(m => m!["role"]!.GetValue<string>()), messages.Select(m => m!["role"]!.GetValue<string>()));
                Assert.Equal("user", messages[0]!["role"]!.GetValue<string>());
                var last = messages[^1]!.AsObject();
                Assert.Equal("assistant", last["role"]!.GetValue<string>());
                Assert.Null(last["tool_calls"]);
                var open = new List<string>();
                foreach (var m in messages.Select(m => m!.AsObject()))
                {
                    switch (m["role"]!.GetValue<string>())
                    {
                        case "assistant":
                            Assert.Empty(open); // every earlier call answered before the next step
                            Assert.False(string.IsNullOrEmpty(m["reasoning_content"]?.GetValue<string>()));
                            Assert.NotNull(m["content"]);
                            foreach (var call in m["tool_calls"]?.AsArray() ?? [])
                            {
                                Assert.Equal("function", call!["type"]!.GetValue<string>());
                                Assert.IsType<JsonObject>(JsonNode.Parse(call["function"]!["arguments"]!.GetValue<string>()));
                                Assert.Contains(call["function"]!["name"]!.GetValue<string>(), Tools.Select(t => t!["function"]!["name"]!.GetValue<string>()));
                                open.Add(call["id"]!.GetValue<string>());
                            }
                            break;
                        case "tool":
                            Assert.True(open.Remove(m["tool_call_id"]!.GetValue<string>()), "a tool message answers a call that was made");
                            Assert.NotNull(m["content"]);
                            break;
                    }
                }
                Assert.Empty(open);
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}

public sealed class RecallCorpusTests
{
    [Fact]
    public void Copy_documents_repeat_their_list_verbatim()
    {
        var random = new Random(4);
        for (int i = 0; i < 200; i++)
        {
            string doc = RecallCorpus.Document(random, KimiSharp.Agent.Tools.KnowledgeBase.Default, "copy");
            Assert.StartsWith("list: ", doc);
            var halves = doc["list: ".Length..].Split(" again: ");
            Assert.Equal(2, halves.Length);
            Assert.Equal(halves[0], halves[1]);
            Assert.InRange(halves[0].Split(' ').Length, 2, 8);
        }
    }

    [Fact]
    public void Record_queries_answer_with_the_value_stored_under_their_key()
    {
        var random = new Random(5);
        for (int i = 0; i < 200; i++)
        {
            string doc = RecallCorpus.Document(random, KimiSharp.Agent.Tools.KnowledgeBase.Default, "records");
            int firstQuery = doc.IndexOf(" get ", StringComparison.Ordinal);
            var store = doc["records: ".Length..firstQuery].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => p.Split('=')).ToDictionary(p => p[0], p => p[1]);
            foreach (string query in doc[firstQuery..].Split(" get ", StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = query.TrimEnd('.').Split(" → ");
                Assert.Equal(store[parts[0]], parts[1]);
            }
        }
    }

    [Fact]
    public void Fact_answers_come_from_the_paragraph_not_the_knowledge_base()
    {
        var random = new Random(6);
        var kb = KimiSharp.Agent.Tools.KnowledgeBase.Default;
        int differs = 0;
        for (int i = 0; i < 200; i++)
        {
            string doc = RecallCorpus.Document(random, kb, "facts");
            var match = System.Text.RegularExpressions.Regex.Match(doc, @"Q: (\w+) of (\w+)\? A: ([\d.]+)$");
            Assert.True(match.Success, doc);
            string attribute = match.Groups[1].Value, city = match.Groups[2].Value, answer = match.Groups[3].Value;
            var sentence = System.Text.RegularExpressions.Regex.Match(doc, $@"{city} has (.*?)\. ");
            Assert.True(sentence.Success, doc);
            Assert.Contains($"{attribute} {answer}", sentence.Groups[1].Value.Split(" and "));
            if (kb.Find(city)!.Attribute(attribute) != answer) differs++;
        }
        Assert.True(differs > 190, $"only {differs}/200 answers differ from the knowledge base");
    }

    [Fact]
    public void Write_is_deterministic_by_seed_and_writes_one_document_per_line()
    {
        string dir = Directory.CreateTempSubdirectory("recall").FullName;
        try
        {
            string a = Path.Combine(dir, "a.txt"), b = Path.Combine(dir, "b.txt"), c = Path.Combine(dir, "c.txt");
            RecallCorpus.Write(a, 30, seed: 9);
            RecallCorpus.Write(b, 30, seed: 9);
            RecallCorpus.Write(c, 30, seed: 10);
            Assert.Equal(File.ReadAllText(a), File.ReadAllText(b));
            Assert.NotEqual(File.ReadAllText(a), File.ReadAllText(c));
            Assert.Equal(30, File.ReadAllLines(a).Length);
            Assert.False(File.Exists(a + ".partial"));
            Assert.Throws<ArgumentException>(() => RecallCorpus.Document(new Random(1), KimiSharp.Agent.Tools.KnowledgeBase.Default, "poem"));
        }
        finally { Directory.Delete(dir, true); }
    }
}

public sealed class PolicyGradientConfigTests
{
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void Rl_iterations_train_one_sample_per_row_whatever_the_sft_batching(bool bucket, bool pack)
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "KimiSharp.slnx"))) root = Path.GetDirectoryName(root)!;
        string dir = Directory.CreateTempSubdirectory("rl-config").FullName;
        try
        {
            string samples = Path.Combine(dir, "samples.jsonl");
            File.WriteAllText(samples, "{\"text\":\"x\"}\n");
            var recipe = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(root, "recipes", "k2-nano", "sft.json")))!;
            recipe.Remove("init_from");
            recipe.Remove("tokenizer_dir");
            recipe["conversation_files"] = new JsonArray(samples);
            recipe["chat_template"] = Path.Combine(root, "recipes", "k2-nano", "chat_template.jinja");
            recipe["out"] = Path.Combine(dir, "sft");
            recipe["bucket"] = bucket;
            recipe["pack"] = pack;
            string configPath = Path.Combine(dir, "sft.json");
            File.WriteAllText(configPath, recipe.ToJsonString());
            var sft = KimiSharp.Training.Runs.TrainConfig.Load(configPath);

            var options = new PolicyGradientOptions();
            var iteration = PolicyGradientStage.IterationConfig(sft, samples, Path.Combine(dir, "sft"), Path.Combine(dir, "rl", "iter-2"), options, 1);

            Assert.True(iteration.Bucket);
            Assert.False(iteration.Pack);
            Assert.Equal([samples], iteration.ConversationFiles);
            Assert.Empty(iteration.TextFiles);
            Assert.Equal(Path.Combine(dir, "sft"), iteration.InitFrom);
            Assert.Equal(Path.Combine(dir, "sft", "tokenizer"), iteration.TokenizerDirectory);
            Assert.Equal(options.StepsPerIteration, iteration.Steps);
            Assert.Equal("constant", iteration.Schedule);
            Assert.Equal(options.Seed + 1, iteration.Seed);
            Assert.Equal(sft.Model.HiddenSize, iteration.Model.HiddenSize);
        }
        finally { Directory.Delete(dir, true); }
    }
}

public sealed class PolicyGradientReportTests
{
    private static ToolUseEvalReport Report(params int[] successes) => new("m", 1,
        successes.Select((s, i) => new HorizonResult(i + 1, 12, s, 1, 12, 0, 50, 1, new Dictionary<string, int>())).ToArray());

    [Theory]
    [InlineData(new[] { 8, 7, 7 }, new[] { 0, 0, 0 }, false)]
    [InlineData(new[] { 8, 7, 7 }, new[] { 9, 7, 6 }, false)]
    [InlineData(new[] { 8, 7, 7 }, new[] { 9, 7, 7 }, true)]
    public void The_rl_policy_is_kept_only_when_it_beats_sft(int[] sft, int[] rl, bool kept)
    {
        var report = new PolicyGradientReport(Report(sft), Report(rl), [], "runs/rl/iter-2");
        Assert.Equal(kept, report.RlImproved);
        Assert.Contains(kept ? "Kept: the RL policy" : "Kept: the SFT policy", report.ToMarkdown());
    }
}
