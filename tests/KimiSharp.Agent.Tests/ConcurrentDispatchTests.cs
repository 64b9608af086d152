using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

/// <summary>A step's calls to read-only (or concurrent) tools run side by side; other calls run one after another.</summary>
public sealed class ConcurrentDispatchTests
{
    private static JsonArray Task(string prompt) => [new JsonObject { ["role"] = "user", ["content"] = prompt }];

    private static AIFunction Tool(string name, Func<string, Task<string>> body, bool readOnly, bool concurrent = false) =>
        AIFunctionFactory.Create((string key) => body(key), new AIFunctionFactoryOptions
        {
            Name = name,
            AdditionalProperties = ToolTraits.Create(readOnly, needsApproval: false, source: "dotnet", concurrent),
        });

    [Fact]
    public async Task Read_only_calls_of_one_step_run_at_the_same_time_and_report_in_call_order()
    {
        // Each call waits until the other has started: run one after another, the first would time out.
        var started = new[] { new TaskCompletionSource(), new TaskCompletionSource() };
        async Task<string> Meet(string key)
        {
            int me = key == "a" ? 0 : 1;
            started[me].TrySetResult();
            var other = started[1 - me].Task;
            return await System.Threading.Tasks.Task.WhenAny(other, System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(10))) == other
                ? $"{key} met" : $"{key} waited alone";
        }
        var model = new ScriptedModel(
            new ScriptedStep("", "", [("meet", """{"key":"a"}""", null), ("meet", """{"key":"b"}""", null)]),
            new ScriptedStep("", "done", []));
        var events = new List<AgentEvent>();
        await foreach (var e in new AgentRunner(model, [Tool("meet", Meet, readOnly: true)]).RunAsync(Task("go"))) events.Add(e);

        var returned = events.OfType<AgentEvent.ToolReturned>().ToList();
        Assert.Equal(["a met", "b met"], returned.Select(r => r.Content));
        Assert.Equal(["functions.meet:0", "functions.meet:1"], returned.Select(r => r.Id));
        // Both calls are announced before either result, and the conversation keeps the call order.
        int lastCalled = events.FindLastIndex(e => e is AgentEvent.ToolCalled);
        Assert.True(lastCalled < events.FindIndex(e => e is AgentEvent.ToolReturned));
        var toolMessages = model.Requests[1].Messages.Where(m => m!["role"]!.GetValue<string>() == "tool").ToList();
        Assert.Equal(["functions.meet:0", "functions.meet:1"], toolMessages.Select(m => m!["tool_call_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Calls_that_change_things_run_in_order_and_split_the_concurrent_groups()
    {
        var log = new List<string>();
        var gate = new object();
        Func<string, Task<string>> Logged(string name) => async key =>
        {
            lock (gate) log.Add($"start {name} {key}");
            await System.Threading.Tasks.Task.Delay(50);
            lock (gate) log.Add($"end {name} {key}");
            return key;
        };
        var model = new ScriptedModel(
            new ScriptedStep("", "", [
                ("write", """{"key":"1"}""", null), ("write", """{"key":"2"}""", null),
                ("read", """{"key":"3"}""", null), ("read", """{"key":"4"}""", null),
                ("write", """{"key":"5"}""", null)]),
            new ScriptedStep("", "done", []));
        var runner = new AgentRunner(model, [Tool("write", Logged("write"), readOnly: false), Tool("read", Logged("read"), readOnly: true)]);
        var result = await runner.RunToEndAsync(Task("go"));

        Assert.Equal(AgentResult.Answer, result.StopReason);
        Assert.Equal(["start write 1", "end write 1", "start write 2", "end write 2"], log.Take(4));
        Assert.Equal(["start read 3", "start read 4"], log.Skip(4).Take(2).Order());
        Assert.Equal(["end read 3", "end read 4"], log.Skip(6).Take(2).Order());
        Assert.Equal(["start write 5", "end write 5"], log.Skip(8));
    }

    [Fact]
    public async Task A_tool_sees_the_id_of_its_own_call()
    {
        var seen = new List<string?>();
        var model = new ScriptedModel(
            new ScriptedStep("", "", [("who", """{"key":"x"}""", null), ("who", """{"key":"y"}""", null)]),
            new ScriptedStep("", "done", []));
        Task<string> Who(string key)
        {
            lock (seen) seen.Add(key + "=" + ToolCallContext.CurrentCallId);
            return System.Threading.Tasks.Task.FromResult(key);
        }
        await new AgentRunner(model, [Tool("who", Who, readOnly: false, concurrent: true)]).RunToEndAsync(Task("go"));
        Assert.Equal(["x=functions.who:0", "y=functions.who:1"], seen.Order());
        Assert.Null(ToolCallContext.CurrentCallId);
    }
}
