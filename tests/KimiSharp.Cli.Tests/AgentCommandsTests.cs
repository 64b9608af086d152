using KimiSharp.Testing;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi eval</c> and the agentic <c>kimi chat</c>, on a random byte-level chat model.</summary>
public sealed class AgentCommandsTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-agent-cli-").FullName;
    private string Model => Path.Combine(_scratch, "model");

    public AgentCommandsTests() =>
        RandomChatModel.Write(Model, new RandomCheckpointOptions { HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 8192, Format = CheckpointFormat.Int4, Seed = 2 });

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static async Task<(int Code, string Out, string Err)> Kimi(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Eval_rejects_an_unknown_suite()
    {
        var (code, _, err) = await Kimi("eval", "--model", Model, "--suite", "math");
        Assert.Equal(2, code);
        Assert.Contains("unknown suite 'math' (known: tool-use, natural, wide)", err);
        Assert.Equal(2, (await Kimi("eval", "--model", Model, "--suite", "tool-use", "--horizons", "1,x")).Code);
    }

    [Fact]
    public async Task Eval_runs_the_natural_suite_by_category_and_writes_report_and_transcripts()
    {
        string report = Path.Combine(_scratch, "nat", "report.json"), runs = Path.Combine(_scratch, "nat", "runs.jsonl");
        var (code, stdout, stderr) = await Kimi("eval", "--model", Model, "--suite", "natural", "--category", "units, chat,dates",
            "--tasks", "2", "--max-tokens", "8", "--out", report, "--transcripts", runs);
        Assert.True(code == 0, stderr);
        Assert.Contains("| category | questions | correct | accuracy |", stdout);
        Assert.Contains("units-002 2/6:", stderr);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal("natural", json["suite"]!.GetValue<string>());
        Assert.Equal(new[] { "units", "dates", "chat" }, json["categories"]!.AsArray().Select(c => c!["category"]!.GetValue<string>()));
        Assert.Equal(6, json["questions"]!.GetValue<int>());
        var lines = File.ReadAllLines(runs).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(new[] { "units-001", "units-002", "dates-001", "dates-002", "chat-001", "chat-002" }, lines.Select(l => l["id"]!.GetValue<string>()));
        Assert.Equal(json["correct"]!.GetValue<int>(), lines.Count(l => l["success"]!.GetValue<bool>()));
        Assert.All(lines, l => Assert.Equal(l["success"]!.GetValue<bool>(), l["failure"] is null));
        Assert.Equal("Convert 5 km to miles", lines[0]["prompt"]!.GetValue<string>());
        Assert.Equal("3.106856", lines[0]["expected"]!["number"]!.GetValue<string>());
        Assert.Equal("user", lines[0]["messages"]![0]!["role"]!.GetValue<string>());

        var (bad, _, err) = await Kimi("eval", "--model", Model, "--suite", "natural", "--category", "poetry");
        Assert.Equal(2, bad);
        Assert.Contains("unknown category 'poetry' (known: arithmetic,", err);
        (bad, _, err) = await Kimi("eval", "--model", Model, "--suite", "tool-use", "--category", "units");
        Assert.Equal(2, bad);
        Assert.Contains("--category belongs to --suite natural", err);
    }

    [Fact]
    public async Task Eval_runs_the_wide_suite_single_agent_and_swarm_side_by_side()
    {
        string report = Path.Combine(_scratch, "wide", "report.json"), runs = Path.Combine(_scratch, "wide", "runs.jsonl");
        var (code, stdout, stderr) = await Kimi("eval", "--model", Model, "--suite", "wide", "--items", "5", "--tasks", "1", "--max-tokens", "8",
            "--out", report, "--transcripts", runs);
        Assert.True(code == 0, stderr);
        Assert.Contains("| items | mode | tasks | success | avg critical steps |", stdout);
        Assert.Contains("| 5 | single | 1 |", stdout);
        Assert.Contains("| 5 | swarm | 1 |", stdout);
        Assert.Contains("5 cities, swarm:", stderr);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(["single", "swarm"], json["rows"]!.AsArray().Select(r => r!["mode"]!.GetValue<string>()));
        var lines = File.ReadAllLines(runs).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(["single", "swarm"], lines.Select(l => l["mode"]!.GetValue<string>()));
        // The same held-out task both ways.
        Assert.Equal(lines[0]["prompt"]!.GetValue<string>(), lines[1]["prompt"]!.GetValue<string>());
        Assert.Equal(json["rows"]![0]!["avg_critical_steps"]!.GetValue<double>(), lines[0]["critical_steps"]!.GetValue<int>());

        var (bad, _, err) = await Kimi("eval", "--model", Model, "--suite", "tool-use", "--items", "10");
        Assert.Equal(2, bad);
        Assert.Contains("--items and --sub-model belong to --suite wide", err);
    }

    [Fact]
    public async Task Synthesize_also_writes_openai_chat_jsonl_when_asked()
    {
        string output = Path.Combine(_scratch, "synth"), openAi = Path.Combine(_scratch, "synth-openai.jsonl");
        var (code, stdout, stderr) = await Kimi("synthesize", "--out", output, "--count", "40", "--max-cities", "4", "--openai-jsonl", openAi);
        Assert.True(code == 0, stderr);
        int kept = File.ReadLines(Path.Combine(output, "trajectories.jsonl")).Count();
        Assert.Equal(kept, File.ReadLines(openAi).Count());
        Assert.Contains($"wrote {openAi}: {kept} conversations in OpenAI chat format", stdout);
        var first = JsonNode.Parse(File.ReadLines(openAi).First())!;
        Assert.Equal("user", first["messages"]![0]!["role"]!.GetValue<string>());
        Assert.Equal(5, first["tools"]!.AsArray().Count);
    }

    [Fact]
    public async Task Eval_runs_the_tool_use_suite_and_writes_the_report()
    {
        string report = Path.Combine(_scratch, "out", "report.json");
        var (code, stdout, stderr) = await Kimi("eval", "--model", Model, "--suite", "tool-use", "--horizons", "1,3", "--tasks", "2",
            "--max-tokens", "8", "--seed", "9", "--out", report, "--transcripts", Path.Combine(_scratch, "out", "runs.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("| horizon | tasks | success |", stdout);
        Assert.Contains("horizon 3 task 2/2:", stderr); // plain progress lines when not on a terminal
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(9, json["seed"]!.GetValue<int>());
        Assert.Equal(new[] { 1, 3 }, json["horizons"]!.AsArray().Select(h => h!["horizon"]!.GetValue<int>()));
        Assert.All(json["horizons"]!.AsArray(), h => Assert.Equal(2, h!["tasks"]!.GetValue<int>()));

        // One transcript line per task, agreeing with the report's counts.
        var lines = File.ReadAllLines(Path.Combine(_scratch, "out", "runs.jsonl")).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(new[] { 1, 1, 3, 3 }, lines.Select(l => l["horizon"]!.GetValue<int>()));
        foreach (var h in json["horizons"]!.AsArray())
        {
            int horizon = h!["horizon"]!.GetValue<int>();
            Assert.Equal(h["successes"]!.GetValue<int>(), lines.Count(l => l["horizon"]!.GetValue<int>() == horizon && l["success"]!.GetValue<bool>()));
        }
        Assert.All(lines, l =>
        {
            Assert.False(string.IsNullOrEmpty(l["prompt"]!.GetValue<string>()));
            Assert.IsType<JsonArray>(l["expected"]);
            Assert.Equal("user", l["messages"]![0]!["role"]!.GetValue<string>());
        });
        Assert.Contains("transcripts written to", stdout);
    }

    [Fact]
    public async Task Chat_answers_one_question_with_and_without_tools()
    {
        var (code, stdout, stderr) = await Kimi("chat", "--model", Model, "What is 2+2?", "--max-tokens", "12", "--max-steps", "2");
        Assert.True(code == 0, stderr);
        Assert.NotEmpty(stdout);
        (code, _, stderr) = await Kimi("chat", "--model", Model, "--no-tools", "hi", "--max-tokens", "6");
        Assert.True(code == 0, stderr);
        Assert.Equal(2, (await Kimi("chat", "--model", Model, "--no-tools", "--max-steps", "2", "hi")).Code);
    }

    private static async IAsyncEnumerable<AgentEvent> Events(IEnumerable<AgentEvent> events, [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var e in events) { await Task.Yield(); yield return e; }
    }

    [Fact]
    public async Task Chat_shows_thinking_tool_calls_results_and_the_answer()
    {
        var result = new AgentResult("It is 508.5.", [], 2, 1, 3, 42, AgentResult.Answer);
        var stdout = new StringWriter();
        var (reasoning, got) = await ChatCommand.RenderAgentTurn(Events(
        [
            new AgentEvent.ReasoningDelta("Use the "), new AgentEvent.ReasoningDelta("calculator."),
            new AgentEvent.ToolCalled("functions.calculator:0", "calculator", """{"expression":"2340*17.5%+99"}"""),
            new AgentEvent.ToolReturned("functions.calculator:0", "calculator", "508.5", false),
            new AgentEvent.ReasoningDelta("Check."),
            new AgentEvent.ToolCalled("functions.lookup:1", "lookup", "{\"entity\":"),
            new AgentEvent.ToolReturned("functions.lookup:1", "lookup", "error: malformed call to 'lookup': bad JSON", true),
            new AgentEvent.ContentDelta("It is "), new AgentEvent.ContentDelta("508.5."),
            new AgentEvent.Finished(result),
        ]), stdout, color: false, collapse: false, tokenBudget: 1000);
        Assert.Same(result, got);
        Assert.Equal("Use the calculator.\n\nCheck.", reasoning);
        Assert.Equal("""
            thinking: Use the calculator.
            → calculator({"expression":"2340*17.5%+99"})
            ← 508.5
            thinking: Check.
            → lookup({"entity":)
            ← error: malformed call to 'lookup': bad JSON
            It is 508.5.

            """.ReplaceLineEndings("\n"), stdout.ToString().ReplaceLineEndings("\n"));

        var colored = new StringWriter();
        await ChatCommand.RenderAgentTurn(Events(
        [
            new AgentEvent.ToolCalled("functions.x:0", "x", "{}"),
            new AgentEvent.ToolReturned("functions.x:0", "x", "error: unknown tool 'x'", true),
            new AgentEvent.Finished(result with { StopReason = AgentResult.MaxSteps, FinalAnswer = null }),
        ]), colored, color: true, collapse: false, tokenBudget: 1000);
        Assert.Contains("\u001b[31m← error: unknown tool 'x'\u001b[0m", colored.ToString());
        Assert.Contains("(stopped after 3 steps without an answer)", colored.ToString());
    }
}
