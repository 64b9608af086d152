using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Swarm;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis.Tests;

/// <summary>Scripted orchestrators: conversations whose assistant turns a <see cref="TeacherReplayClient"/> replays.</summary>
internal static class Scripted
{
    public static JsonObject Call(string reasoning, params (string Name, JsonNode Arguments)[] calls) => new()
    {
        ["role"] = "assistant", ["reasoning_content"] = reasoning, ["content"] = "",
        ["tool_calls"] = new JsonArray(calls.Select((c, i) => (JsonNode)new JsonObject
        {
            ["id"] = $"call_{i}", ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments.ToJsonString() },
        }).ToArray()),
    };

    public static JsonObject Spawn(params string[] tasks) =>
        Call("split", (AgentSwarm.SpawnToolName, new JsonObject { ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode)new JsonObject { ["task"] = t }).ToArray()) }));

    public static JsonObject Answer(string reasoning, string content) => new() { ["role"] = "assistant", ["reasoning_content"] = reasoning, ["content"] = content };

    public static JsonArray Conversation(string prompt, params JsonObject[] assistant) => new([AgentMessages.User(prompt), .. assistant]);

    /// <summary>A sub-agent's reported number, from its teacher trajectory.</summary>
    public static string Reported(Trajectory subAgent) => WideTasks.ReportedNumber(subAgent.FinalAnswer)!;
}

/// <summary>PARL's terms, their annealing, and the rollout that keeps sub-agents frozen and out of the policy's samples.</summary>
public sealed class ParlRewardTests
{
    [Theory]
    [InlineData(0, 5, 1.0, 0.3)]
    [InlineData(1, 5, 1.0, 0.225)]
    [InlineData(2, 5, 1.0, 0.15)]
    [InlineData(4, 5, 1.0, 0.0)]
    [InlineData(0, 1, 1.0, 0.3)]
    [InlineData(1, 5, 0.5, 0.15)]
    [InlineData(2, 5, 0.5, 0.0)]
    [InlineData(4, 5, 0.5, 0.0)]
    public void Weights_fall_linearly_to_zero_over_the_run(int iteration, int iterations, double fraction, double expected) =>
        Assert.Equal(expected, ParlReward.Anneal(0.3, iteration, iterations, fraction), 10);

    [Fact]
    public void Annealing_refuses_impossible_iterations()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Anneal(1, 5, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Anneal(1, -1, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Anneal(1, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Anneal(1, 0, 3, 0));
        Assert.Throws<ArgumentException>(() => new ParlRewardOptions { LambdaParallel = -1 }.Validate());
        Assert.Throws<ArgumentException>(() => new ParlRewardOptions { AnnealFraction = 1.5 }.Validate());
        var (l1, l2) = new ParlRewardOptions { LambdaParallel = 0.4, LambdaFinish = 0.2 }.At(1, 3);
        Assert.Equal(0.2, l1, 10);
        Assert.Equal(0.1, l2, 10);
    }

    [Theory]
    [InlineData(0, 4, 0.0)]
    [InlineData(1, 4, 0.0)]
    [InlineData(2, 4, 1.0 / 3)]
    [InlineData(4, 4, 1.0)]
    [InlineData(9, 4, 1.0)]
    [InlineData(2, 2, 1.0)]
    public void Parallel_pays_for_splitting_up_to_the_teachers_chunks(int spawned, int chunks, double expected) =>
        Assert.Equal(expected, ParlReward.Parallel(spawned, chunks), 10);

    [Fact]
    public void Finish_is_the_share_of_used_reports()
    {
        Assert.Equal(0, ParlReward.Finish(0, 0));
        Assert.Equal(0.75, ParlReward.Finish(4, 3));
        Assert.Equal(1, ParlReward.Finish(2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Finish(2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParlReward.Parallel(2, 1));
        Assert.Equal(0.3 * 0.5 + 0.2 * 0.25 + 1, new ParlTerms(0.5, 0.25, 1, 4, 1, true).Reward(0.3, 0.2), 10);
    }

    private static SubAgentReport Report(int id, string? answer, SubAgentStatus status = SubAgentStatus.Completed) =>
        new($"agent-{id}", "t", status, answer, null, 3, 2, default, 0, TimeSpan.Zero, null, 0, false, null);

    [Fact]
    public void A_report_is_used_when_its_number_appears_after_it_arrived()
    {
        var spawnResult = new JsonObject
        {
            ["reports"] = new JsonArray(
                new JsonObject { ["id"] = "agent-1", ["answer"] = "Total: 1,250." },
                new JsonObject { ["id"] = "agent-2", ["answer"] = "Total: 300." },
                new JsonObject { ["id"] = "agent-10", ["answer"] = "Total: 77." }),
        }.ToJsonString();
        var messages = new JsonArray(
            AgentMessages.User("What is the total of 300 things?"),
            // Before the report arrived: does not count, even though 77 is written here.
            Scripted.Call("guess 77", ("spawn_agents", new JsonObject())),
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_0", ["content"] = spawnResult },
            Scripted.Call("add", ("calculator", new JsonObject { ["expression"] = "1250+3000" })),
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_0", ["content"] = "4250" },
            Scripted.Answer("The calculator returned 4250.", "The total is 4250."));
        var used = ParlReward.ReportsUsed(messages, [Report(1, "Total: 1,250."), Report(2, "Total: 300."), Report(10, "Total: 77."),
            Report(3, "Total: 4250."), Report(4, null, SubAgentStatus.Failed)]);
        // 1250 is in the calculator call (separators ignored); 300 only inside 3000 (not a whole number) and in the user's
        // message; 77 only before its report arrived; agent-3's report never reached the orchestrator; agent-4 failed.
        Assert.Equal([true, false, false, false, false], used);
    }

    [Fact]
    public void A_report_quoted_in_the_final_reasoning_is_used()
    {
        var messages = new JsonArray(
            AgentMessages.User("Which is highest?"),
            Scripted.Call("split", ("spawn_agents", new JsonObject())),
            new JsonObject { ["role"] = "tool", ["content"] = """{"reports":[{"id":"agent-1","answer":"Highest: A with 12."},{"id":"agent-2","answer":"Highest: B with 30."}]}""" },
            Scripted.Answer("Reports: A 12, B 30. A 12 vs B 30: B.", "B has the highest elevation: 30 m."));
        Assert.Equal([true, true], ParlReward.ReportsUsed(messages, [Report(1, "Highest: A with 12."), Report(2, "Highest: B with 30.")]));
    }

    [Fact]
    public async Task The_teachers_rollout_scores_full_marks_with_sub_agents_on_their_own_client()
    {
        var task = new WideTaskGenerator(8).NextTask(12, WideAggregate.Sum);
        var teacher = WideTaskGenerator.Teach(task);
        var policy = new TeacherReplayClient();
        policy.Add(teacher.Orchestrator.Messages);
        var frozen = new TeacherReplayClient();
        foreach (var s in teacher.SubAgents) frozen.Add(s.Messages);

        var rollout = await WideSwarmRunner.RunAsync(task, policy, frozen);

        Assert.Equal(AgentResult.Answer, rollout.Result.StopReason);
        Assert.Equal(new ParlTerms(1, 1, 1, 3, 3, true), rollout.Terms);
        Assert.False(rollout.Terms.SerialCollapse);
        // Critical steps: 3 orchestrator steps + the slowest sub-agent's 3; total: 3 + 3·3.
        Assert.Equal(6, rollout.Swarm.CriticalSteps);
        Assert.Equal(12, rollout.Swarm.TotalSteps);
        // Frozen sub-agents: the policy only ever saw the orchestrator's prompt, the frozen client only the sub-tasks,
        // and the conversation RL renders for the gradient holds no sub-agent turn.
        Assert.All(policy.Requests, p => Assert.Equal(task.Prompt, p));
        Assert.Equal(3, policy.Requests.Count);
        Assert.Equal(teacher.SubAgents.Select(s => s.Task.Prompt).Order(), frozen.Requests.Distinct().Order());
        var users = rollout.Result.Messages.OfType<JsonObject>().Where(m => AgentMessages.Role(m) == "user").ToList();
        Assert.Equal(task.Prompt, AgentMessages.Text(Assert.Single(users)["content"]));
        Assert.DoesNotContain(rollout.Result.Messages.OfType<JsonObject>(), m => m["tool_calls"] is JsonArray calls
            && calls.Any(c => c!["function"]!["name"]!.GetValue<string>() == "lookup"));
    }

    [Fact]
    public async Task Rendered_orchestrator_samples_train_only_the_orchestrators_turns()
    {
        var task = new WideTaskGenerator(12).NextTask(10, WideAggregate.Max);
        var teacher = WideTaskGenerator.Teach(task);
        var policy = new TeacherReplayClient();
        policy.Add(teacher.Orchestrator.Messages);
        var frozen = new TeacherReplayClient();
        foreach (var s in teacher.SubAgents) frozen.Add(s.Messages);
        var rollout = await WideSwarmRunner.RunAsync(task, policy, frozen);
        var lazy = Scripted.Conversation(task.Prompt, Scripted.Answer("guess", "I don't know."));

        var template = KimiSharp.Tokens.Templates.ChatTemplate.BuiltInKimiK2Thinking();
        var renderer = new TrainingExampleRenderer(template, WideTasks.OrchestratorDeclarations(), new AgentOptions().Window);
        var writer = new StringWriter();
        int examples = PolicyGradientStage.Write(writer, renderer, [(rollout.Result.Messages, 1.0), (lazy, 0.0)], 0.5);

        Assert.Equal(2, examples);
        var records = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([0.5, -0.5], records.Select(r => r["weight"]!.GetValue<double>()));
        string text = records[0]["text"]!.GetValue<string>();
        int trainFrom = records[0]["train_from"]!.GetValue<int>();
        // The orchestrator's tools are declared, its spawn call and answer are in the trained part...
        Assert.Contains("spawn_agents", text[..trainFrom]);
        Assert.Contains("\"tasks\"", text[trainFrom..]);
        Assert.Contains(task.Expected, text[trainFrom..]);
        // ...and of the sub-agents only their reports, inside the spawn result: none of their own lookups or reasoning.
        Assert.DoesNotContain("Look up the", text);
        Assert.DoesNotContain("\"entity\"", text[trainFrom..]);
        Assert.Contains(teacher.SubAgents[0].FinalAnswer!, text);
    }

    [Fact]
    public async Task Serial_collapse_and_spurious_spawns_cost_reward()
    {
        var task = new WideTaskGenerator(9).NextTask(10, WideAggregate.Sum);
        var frozen = new TeacherReplayClient();
        var whole = WideTaskGenerator.SubAgent(task.Aggregate, task.Attribute, task.Cities);
        frozen.Add(whole.Messages);
        var collapsed = new TeacherReplayClient();
        collapsed.Add(Scripted.Conversation(task.Prompt,
            Scripted.Spawn(whole.Task.Prompt),
            Scripted.Answer("One report.", $"The total is {Scripted.Reported(whole)}.")));
        var serial = await WideSwarmRunner.RunAsync(task, collapsed, frozen);
        Assert.True(serial.Terms.SerialCollapse);
        Assert.Equal(new ParlTerms(0, 1, 1, 1, 1, true), serial.Terms);

        // Three sub-agents where two would do, and the third's report ignored.
        var chunks = task.Chunks.Select(c => WideTaskGenerator.SubAgent(task.Aggregate, task.Attribute, c)).ToList();
        var extra = WideTaskGenerator.SubAgent(task.Aggregate, task.Attribute, [task.Cities[0], task.Cities[1]]);
        foreach (var s in chunks.Append(extra)) frozen.Add(s.Messages);
        var wasteful = new TeacherReplayClient();
        wasteful.Add(Scripted.Conversation(task.Prompt,
            Scripted.Spawn(chunks[0].Task.Prompt, chunks[1].Task.Prompt, extra.Task.Prompt),
            Scripted.Call("add two", ("calculator", new JsonObject { ["expression"] = $"{Scripted.Reported(chunks[0])}+{Scripted.Reported(chunks[1])}" })),
            Scripted.Answer("done", $"The total is {task.Expected}.")));
        var spurious = await WideSwarmRunner.RunAsync(task, wasteful, frozen);
        Assert.Equal(3, spurious.Terms.SubAgents);
        Assert.Equal(2, spurious.Terms.UsedReports);
        Assert.Equal(1, spurious.Terms.UnusedReports);
        Assert.Equal(1, spurious.Terms.Parallel);
        Assert.Equal(2.0 / 3, spurious.Terms.Finish, 10);
        Assert.Equal(1, spurious.Terms.Performance);
        Assert.True(spurious.Terms.Reward(0.3, 0.2) < new ParlTerms(1, 1, 1, 2, 2, true).Reward(0.3, 0.2));
    }

    [Fact]
    public void Wide_rl_samples_are_drawn_by_the_seed_and_bad_options_are_refused()
    {
        var options = new PolicyGradientOptions { WideShare = 0.5, Seed = 11 };
        var draws = Enumerable.Range(0, 200).Select(t => PolicyGradientStage.IsWideSample(options, 0, t)).ToList();
        Assert.Equal(draws, Enumerable.Range(0, 200).Select(t => PolicyGradientStage.IsWideSample(options, 0, t)));
        Assert.InRange(draws.Count(d => d), 70, 130);
        Assert.DoesNotContain(Enumerable.Range(0, 50), t => PolicyGradientStage.IsWideSample(new PolicyGradientOptions(), 0, t));
        Assert.Throws<ArgumentException>(() => new PolicyGradientOptions { WideItems = [3] }.Validate());
        Assert.Throws<ArgumentException>(() => new PolicyGradientOptions { WideShare = 2 }.Validate());
    }
}
