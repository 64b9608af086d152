using System.Text.Json.Nodes;
using KimiSharp.Synthesis;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Agent.Tests;

public sealed class ToolUseEvaluationTests
{
    [Fact]
    public void Default_tasks_per_horizon()
    {
        var options = new ToolUseEvalOptions();
        Assert.Equal(new[] { 1, 3, 10, 50, 100, 300 }, options.Horizons);
        Assert.Equal(new[] { 50, 50, 20, 30, 10, 5 }, options.Horizons.Select(options.TasksFor));
        Assert.Equal(777, options.Seed);
        Assert.Equal(7, (options with { TasksPerHorizon = 7 }).TasksFor(300));
        Assert.Equal(2, (options with { TasksPerHorizon = 7, TasksByHorizon = new Dictionary<int, int> { [3] = 2 } }).TasksFor(3));
    }

    [Fact]
    public async Task Scores_answers_against_the_held_out_tasks()
    {
        // The same tasks the suite draws: TaskGenerator(seed + horizon).WithHorizon(horizon).
        var options = new ToolUseEvalOptions { Horizons = [1, 3], TasksPerHorizon = 4, Seed = 5 };
        var expected = new Dictionary<string, IReadOnlyList<string>>();
        foreach (int h in options.Horizons)
        {
            var generator = new TaskGenerator(options.Seed + h);
            for (int i = 0; i < 4; i++) { var task = generator.WithHorizon(h).Task; expected[task.Prompt] = task.Expected; }
        }
        // A model that calls the calculator once, then (every other task) makes a malformed call, then states the
        // expected values.
        int answered = 0;
        var model = new ScriptedModel((_, request) =>
        {
            var messages = request.Messages;
            string prompt = messages[0]!["content"]!.GetValue<string>();
            int steps = messages.Count(m => m!["role"]!.GetValue<string>() == "assistant");
            if (steps == 0) return new ScriptedStep("calc", "", [("calculator", """{"expression":"1+1"}""", null)]);
            if (steps == 1 && expected[prompt].Count > 0 && answered++ % 2 == 1)
                return new ScriptedStep("", "", [("calculator", "{", "arguments are not valid JSON")]);
            return new ScriptedStep("", "The answer: " + string.Join(", ", expected[prompt]), []);
        });
        var progress = new List<ToolUseEvalProgress>();
        var report = await ToolUseEvaluation.RunAsync(model, "scripted", options, new SyncProgress(progress.Add));

        Assert.Equal(2, report.Horizons.Count);
        foreach (var h in report.Horizons)
        {
            Assert.Equal(4, h.Tasks);
            Assert.Equal(4, h.Successes);
            Assert.Equal(1.0, h.SuccessRate);
            Assert.Equal(4, h.StopReasons["answer"]);
        }
        Assert.Equal(report.Horizons.Sum(h => h.MalformedCalls), report.MalformedCalls);
        Assert.Equal(4, report.MalformedCalls);
        Assert.Equal(12, report.ToolCalls);
        Assert.Equal(4.0 / 12, report.MalformedCallRate, 6);
        Assert.Equal(10, progress.Count); // a start and 4 tasks per horizon
        Assert.Equal((3, 4, 4, 4), (progress[^1].Horizon, progress[^1].Task, progress[^1].Tasks, progress[^1].Successes));

        string markdown = report.ToMarkdown();
        Assert.Contains("| 1 | 4 | 4 | 100.0% |", markdown);
        Assert.Contains("Malformed-call rate: 4/12", markdown);
        var json = JsonNode.Parse(report.ToJson())!;
        Assert.Equal("tool-use", json["suite"]!.GetValue<string>());
        Assert.Equal(2, json["horizons"]!.AsArray().Count);
        Assert.Equal(4, json["malformed_calls"]!.GetValue<int>());
    }

    [Fact]
    public async Task Wrong_or_missing_answers_fail()
    {
        var options = new ToolUseEvalOptions { Horizons = [1], TasksPerHorizon = 3 };
        var model = new ScriptedModel((_, _) => new ScriptedStep("", "I do not know.", [], Finish: Microsoft.Extensions.AI.ChatFinishReason.Stop));
        var report = await ToolUseEvaluation.RunAsync(model, "m", options);
        Assert.Equal(0, report.Horizons[0].Successes);
        Assert.Equal(0, report.MalformedCallRate);

        var cut = new ScriptedModel((_, _) => new ScriptedStep("", "", [], Finish: Microsoft.Extensions.AI.ChatFinishReason.Length));
        var report2 = await ToolUseEvaluation.RunAsync(cut, "m", options);
        Assert.Equal(3, report2.Horizons[0].StopReasons["length"]);
    }

    private sealed class SyncProgress(Action<ToolUseEvalProgress> action) : IProgress<ToolUseEvalProgress>
    {
        public void Report(ToolUseEvalProgress value) => action(value);
    }
}
