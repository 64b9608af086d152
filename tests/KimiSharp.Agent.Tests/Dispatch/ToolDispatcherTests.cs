using System.Diagnostics;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Hooks;
using KimiSharp.Agent.Tests.Coding;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Dispatch;

public class ToolDispatcherTests
{
    private static ToolDispatcher Coding(TempFolder temp, ToolDispatcherOptions? options = null) =>
        new(CodingTools.Create(temp.Workspace), options);

    [Fact]
    public async Task ShellAndWritesAreRefusedWithoutAnApproverInTheDefaultMode()
    {
        using var temp = new TempFolder();
        ToolDispatcher dispatcher = Coding(temp);
        Assert.Equal(ApprovalMode.Ask, dispatcher.Mode);

        ToolOutcome shell = await dispatcher.DispatchAsync("shell", """{"command":"touch ran.txt"}""", CancellationToken.None);
        Assert.True(shell.IsError);
        Assert.True(shell.Rejected);
        Assert.Equal(ToolOutcomeKind.Refused, shell.Kind);
        Assert.Equal("error: 'shell' needs the user's approval, and no one can approve it in this session (non-interactive); it was not run.",
            shell.Content);
        Assert.False(File.Exists(temp.InRoot("ran.txt")));

        ToolOutcome write = await dispatcher.DispatchAsync("write_file", """{"path":"w.txt","content":"x"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Refused, write.Kind);
        Assert.False(File.Exists(temp.InRoot("w.txt")));

        temp.Write("e.txt", "old");
        ToolOutcome edit = await dispatcher.DispatchAsync("edit_file", """{"path":"e.txt","old_string":"old","new_string":"new"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Refused, edit.Kind);
        Assert.Equal("old", File.ReadAllText(temp.InRoot("e.txt")));

        ToolOutcome read = await dispatcher.DispatchAsync("read_file", """{"path":"e.txt"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Completed, read.Kind);
        Assert.Equal("     1\told\n", read.Content);
    }

    [Fact]
    public async Task ApproveOnceAsksEveryTime()
    {
        using var temp = new TempFolder();
        var approver = new ScriptedApprover(ApprovalDecision.ApproveOnce, ApprovalDecision.ApproveOnce);
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Approver = approver });

        ToolOutcome first = await dispatcher.DispatchAsync("shell", """{"command":"echo one >> log.txt"}""", CancellationToken.None);
        ToolOutcome second = await dispatcher.DispatchAsync("shell", """{"command":"echo two >> log.txt"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Completed, first.Kind);
        Assert.Equal(ToolOutcomeKind.Completed, second.Kind);
        Assert.Equal("one\ntwo\n", File.ReadAllText(temp.InRoot("log.txt")));
        Assert.Equal(["echo one >> log.txt", "echo two >> log.txt"], approver.Requests.Select(r => r.Summary));
        Assert.All(approver.Requests, r => Assert.Equal("shell", r.ToolName));
        Assert.False(dispatcher.IsApprovedForSession("shell"));
    }

    [Fact]
    public async Task ApproveForSessionIsRememberedPerTool()
    {
        using var temp = new TempFolder();
        var approver = new ScriptedApprover(ApprovalDecision.ApproveForSession, ApprovalDecision.ApproveOnce);
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Approver = approver });

        await dispatcher.DispatchAsync("shell", """{"command":"echo a > a.txt"}""", CancellationToken.None);
        await dispatcher.DispatchAsync("shell", """{"command":"echo b > b.txt"}""", CancellationToken.None);
        await dispatcher.DispatchAsync("shell", """{"command":"echo c > c.txt"}""", CancellationToken.None);
        Assert.Single(approver.Requests);
        Assert.True(dispatcher.IsApprovedForSession("shell"));
        Assert.True(File.Exists(temp.InRoot("c.txt")));

        // Approval for the shell does not extend to writes.
        ToolOutcome write = await dispatcher.DispatchAsync("write_file", """{"path":"w.txt","content":"hi\n"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Completed, write.Kind);
        Assert.Equal(2, approver.Requests.Count);
        Assert.Equal("write_file", approver.Requests[1].ToolName);
        Assert.Equal("create w.txt", approver.Requests[1].Summary);
        Assert.Contains("+hi", approver.Requests[1].Diff);

        // A second dispatcher (a new session) starts with nothing approved.
        Assert.False(Coding(temp).IsApprovedForSession("shell"));
    }

    [Fact]
    public async Task RejectionReturnsTheFeedbackToTheModel()
    {
        using var temp = new TempFolder();
        temp.Write("e.txt", "alpha\nbeta\n");
        var approver = new ScriptedApprover(ApprovalDecision.Reject("use gamma, not delta"), ApprovalDecision.Reject(""));
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Approver = approver });

        ToolOutcome outcome = await dispatcher.DispatchAsync("edit_file",
            """{"path":"e.txt","old_string":"beta","new_string":"delta"}""", CancellationToken.None);
        Assert.True(outcome.Rejected);
        Assert.True(outcome.IsError);
        Assert.Equal(ToolOutcomeKind.Rejected, outcome.Kind);
        Assert.Equal("The user rejected this edit_file call; it was not run. User feedback: use gamma, not delta", outcome.Content);
        Assert.Equal("alpha\nbeta\n", File.ReadAllText(temp.InRoot("e.txt")));
        Assert.Equal("edit e.txt", approver.Requests[0].Summary);
        Assert.Contains("-beta", approver.Requests[0].Diff);
        Assert.Contains("+delta", approver.Requests[0].Diff);

        ToolOutcome silent = await dispatcher.DispatchAsync("shell", """{"command":"true"}""", CancellationToken.None);
        Assert.Equal("The user rejected this shell call; it was not run. Ask the user how to proceed.", silent.Content);
        Assert.False(dispatcher.IsApprovedForSession("edit_file"));
    }

    [Fact]
    public async Task AnEditThatCannotApplyFailsWithoutAskingTheUser()
    {
        using var temp = new TempFolder();
        temp.Write("e.txt", "alpha\n");
        var approver = new ScriptedApprover();
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Approver = approver });
        ToolOutcome outcome = await dispatcher.DispatchAsync("edit_file",
            """{"path":"e.txt","old_string":"zeta","new_string":"eta"}""", CancellationToken.None);
        Assert.Equal("error: old_string not found in e.txt", outcome.Content);
        Assert.Equal(ToolOutcomeKind.Failed, outcome.Kind);
        Assert.Empty(approver.Requests);
    }

    [Fact]
    public async Task PlanModeRunsOnlyReadOnlyTools()
    {
        using var temp = new TempFolder();
        temp.Write("a.txt", "content\n");
        var approver = new ScriptedApprover();
        var memory = FakeFunction.Echo("notes", readOnly: false, needsApproval: false);
        var tools = CodingTools.Create(temp.Workspace).Append(memory);
        var dispatcher = new ToolDispatcher(tools, new ToolDispatcherOptions { Mode = ApprovalMode.Plan, Approver = approver });

        Assert.Equal(ToolOutcomeKind.Completed, (await dispatcher.DispatchAsync("read_file", """{"path":"a.txt"}""", CancellationToken.None)).Kind);
        Assert.Equal(ToolOutcomeKind.Completed, (await dispatcher.DispatchAsync("grep", """{"pattern":"content"}""", CancellationToken.None)).Kind);

        ToolOutcome write = await dispatcher.DispatchAsync("write_file", """{"path":"b.txt","content":"x"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Refused, write.Kind);
        Assert.Contains("you are in plan mode", write.Content);
        Assert.False(File.Exists(temp.InRoot("b.txt")));
        Assert.Equal(ToolOutcomeKind.Refused, (await dispatcher.DispatchAsync("notes", "{}", CancellationToken.None)).Kind);
        Assert.Equal(0, memory.Calls);
        Assert.Empty(approver.Requests);

        // Switching to yolo lets the same call run.
        dispatcher.Mode = ApprovalMode.Yolo;
        Assert.Equal(ToolOutcomeKind.Completed, (await dispatcher.DispatchAsync("write_file", """{"path":"b.txt","content":"x"}""", CancellationToken.None)).Kind);
        Assert.True(File.Exists(temp.InRoot("b.txt")));
    }

    [Fact]
    public async Task YoloRunsEverythingWithoutAsking()
    {
        using var temp = new TempFolder();
        var approver = new ScriptedApprover();
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Mode = ApprovalMode.Yolo, Approver = approver });
        ToolOutcome shell = await dispatcher.DispatchAsync("shell", """{"command":"echo hi > y.txt"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Completed, shell.Kind);
        Assert.Equal("hi\n", File.ReadAllText(temp.InRoot("y.txt")));
        Assert.Empty(approver.Requests);
    }

    [Fact]
    public async Task NoApprovalNeededToolsRunInAskModeWithoutAnApprover()
    {
        var tool = FakeFunction.Echo("scratch", readOnly: false, needsApproval: false);
        var dispatcher = new ToolDispatcher([tool]);
        ToolOutcome outcome = await dispatcher.DispatchAsync("scratch", """{"text":"x"}""", CancellationToken.None);
        Assert.Equal("echo:x", outcome.Content);
        Assert.False(outcome.IsError);
    }

    [Fact]
    public async Task UnknownToolsAndBadArgumentsAreRecoverableErrors()
    {
        var tool = FakeFunction.Echo("echo", readOnly: true);
        var dispatcher = new ToolDispatcher([tool, FakeFunction.Echo("other", readOnly: true)]);

        ToolOutcome unknown = await dispatcher.DispatchAsync("ehco", "{}", CancellationToken.None);
        Assert.Equal("error: unknown tool 'ehco' (known: echo, other)", unknown.Content);
        Assert.Equal(ToolOutcomeKind.UnknownTool, unknown.Kind);

        ToolOutcome malformed = await dispatcher.DispatchAsync("echo", """{"text":""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.InvalidArguments, malformed.Kind);
        Assert.StartsWith("error: arguments are not a JSON object: ", malformed.Content);

        ToolOutcome array = await dispatcher.DispatchAsync("echo", "[]", CancellationToken.None);
        Assert.Equal("error: arguments are not a JSON object: got array", array.Content);

        ToolOutcome schema = await dispatcher.DispatchAsync("echo", """{"text":5,"more":1}""", CancellationToken.None);
        Assert.Equal("error: argument 'text' must be a string; unknown argument 'more' (expected: text)", schema.Content);
        Assert.Equal(0, tool.Calls);

        ToolOutcome empty = await dispatcher.DispatchAsync("echo", "  ", CancellationToken.None);
        Assert.Equal("echo:", empty.Content);
    }

    [Fact]
    public async Task ExceptionsBecomeErrorOutcomes()
    {
        var tool = new FakeFunction("boom", (_, _) => throw new InvalidOperationException("disk on fire"), readOnly: true);
        ToolOutcome outcome = await new ToolDispatcher([tool]).DispatchAsync("boom", "{}", CancellationToken.None);
        Assert.Equal("error: disk on fire", outcome.Content);
        Assert.Equal(ToolOutcomeKind.Failed, outcome.Kind);
    }

    [Fact]
    public async Task HangingToolsTimeOutWhetherOrNotTheyHonourCancellation()
    {
        var cooperative = new FakeFunction("waits", async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        }, readOnly: true);
        var stubborn = new FakeFunction("blocks", (_, _) =>
        {
            Thread.Sleep(3000);
            return ValueTask.FromResult<object?>("too late");
        }, readOnly: true);
        var dispatcher = new ToolDispatcher([cooperative, stubborn], new ToolDispatcherOptions
        {
            DefaultTimeout = TimeSpan.FromMilliseconds(150),
            Timeouts = new Dictionary<string, TimeSpan> { ["blocks"] = TimeSpan.FromMilliseconds(100) },
        });

        var clock = Stopwatch.StartNew();
        ToolOutcome waits = await dispatcher.DispatchAsync("waits", "{}", CancellationToken.None);
        ToolOutcome blocks = await dispatcher.DispatchAsync("blocks", "{}", CancellationToken.None);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), $"took {clock.Elapsed}");
        Assert.Equal(ToolOutcomeKind.TimedOut, waits.Kind);
        Assert.Equal("error: 'waits' did not finish within 0.15 s and was abandoned", waits.Content);
        Assert.Equal("error: 'blocks' did not finish within 0.1 s and was abandoned", blocks.Content);
        Assert.True(waits.Duration >= TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task CallerCancellationPropagates()
    {
        var tool = new FakeFunction("waits", async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        }, readOnly: true);
        var dispatcher = new ToolDispatcher([tool]);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => dispatcher.DispatchAsync("waits", "{}", cancel.Token));
    }

    [Fact]
    public async Task LongResultsAreClippedWithANote()
    {
        var tool = new FakeFunction("big", (_, _) => ValueTask.FromResult<object?>(new string('z', 100)), readOnly: true);
        ToolOutcome outcome = await new ToolDispatcher([tool], new ToolDispatcherOptions { MaxResultChars = 10 })
            .DispatchAsync("big", "{}", CancellationToken.None);
        Assert.Equal("zzzzzzzzzz\n[result clipped: 10 of 100 characters shown]", outcome.Content);
        Assert.True(outcome.Clipped);
    }

    [Fact]
    public async Task NonStringResultsAreSerialisedAsJson()
    {
        var tool = new FakeFunction("obj", (_, _) => ValueTask.FromResult<object?>(new Dictionary<string, int> { ["n"] = 3 }), readOnly: true);
        ToolOutcome outcome = await new ToolDispatcher([tool]).DispatchAsync("obj", "{}", CancellationToken.None);
        Assert.Equal("""{"n":3}""", outcome.Content);
    }

    [Fact]
    public async Task BeforeHookVetoStopsTheCall()
    {
        var tool = FakeFunction.Echo("echo", readOnly: true);
        var hook = new DelegateToolHooks(before: (call, _) => ValueTask.FromResult(
            call.ArgumentsJson.Contains("secret") ? BeforeToolCallDecision.Veto("no secrets") : BeforeToolCallDecision.Allow));
        var dispatcher = new ToolDispatcher([tool], new ToolDispatcherOptions { Hooks = [hook] });

        ToolOutcome vetoed = await dispatcher.DispatchAsync("echo", """{"text":"secret"}""", CancellationToken.None);
        Assert.Equal("error: blocked by a hook: no secrets", vetoed.Content);
        Assert.Equal(ToolOutcomeKind.Vetoed, vetoed.Kind);
        Assert.True(vetoed.Rejected);
        Assert.Equal(0, tool.Calls);

        Assert.Equal("echo:fine", (await dispatcher.DispatchAsync("echo", """{"text":"fine"}""", CancellationToken.None)).Content);
    }

    [Fact]
    public async Task BeforeHookRewritesArgumentsWhichAreValidatedAgainAndApproved()
    {
        using var temp = new TempFolder();
        var approver = new ScriptedApprover(ApprovalDecision.ApproveOnce);
        var rewrite = new DelegateToolHooks(before: (call, _) => ValueTask.FromResult(call.ToolName == "shell"
            ? BeforeToolCallDecision.Rewrite("""{"command":"echo rewritten > out.txt"}""")
            : BeforeToolCallDecision.Allow));
        ToolDispatcher dispatcher = Coding(temp, new ToolDispatcherOptions { Approver = approver, Hooks = [rewrite] });

        ToolOutcome outcome = await dispatcher.DispatchAsync("shell", """{"command":"echo original > out.txt"}""", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Completed, outcome.Kind);
        Assert.Equal("rewritten\n", File.ReadAllText(temp.InRoot("out.txt")));
        Assert.Equal("echo rewritten > out.txt", approver.Requests.Single().Summary);
        Assert.Equal("""{"command":"echo rewritten > out.txt"}""", outcome.ArgumentsJson);

        var broken = new DelegateToolHooks(before: (_, _) => ValueTask.FromResult(BeforeToolCallDecision.Rewrite("""{"command":42}""")));
        ToolOutcome invalid = await Coding(temp, new ToolDispatcherOptions { Mode = ApprovalMode.Yolo, Hooks = [broken] })
            .DispatchAsync("shell", """{"command":"true"}""", CancellationToken.None);
        Assert.Equal("error: a hook rewrote the arguments into invalid ones: argument 'command' must be a string", invalid.Content);
    }

    [Fact]
    public async Task AfterHookRewritesTheResultAndHooksRunInOrder()
    {
        var tool = FakeFunction.Echo("echo", readOnly: true);
        var order = new List<string>();
        var first = new DelegateToolHooks(
            before: (_, _) => { order.Add("before1"); return ValueTask.FromResult(BeforeToolCallDecision.Allow); },
            after: (_, outcome, _) => { order.Add("after1"); return ValueTask.FromResult(outcome with { Content = outcome.Content + " [1]" }); });
        var second = new DelegateToolHooks(
            before: (_, _) => { order.Add("before2"); return ValueTask.FromResult(BeforeToolCallDecision.Allow); },
            after: (_, outcome, _) => { order.Add("after2"); return ValueTask.FromResult(outcome with { Content = outcome.Content.ToUpperInvariant() }); });
        var dispatcher = new ToolDispatcher([tool], new ToolDispatcherOptions { Hooks = [first, second] });

        ToolOutcome outcome = await dispatcher.DispatchAsync("echo", """{"text":"hi"}""", CancellationToken.None);
        Assert.Equal("ECHO:HI [1]", outcome.Content);
        Assert.Equal(["before1", "before2", "after1", "after2"], order);
    }

    [Fact]
    public async Task AThrowingBeforeHookVetoes()
    {
        var tool = FakeFunction.Echo("echo", readOnly: true);
        var hook = new DelegateToolHooks(before: (_, _) => throw new InvalidOperationException("hook crashed"));
        ToolOutcome outcome = await new ToolDispatcher([tool], new ToolDispatcherOptions { Hooks = [hook] })
            .DispatchAsync("echo", "{}", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Vetoed, outcome.Kind);
        Assert.Contains("hook crashed", outcome.Content);
        Assert.Equal(0, tool.Calls);
    }

    [Fact]
    public async Task ApprovalRequiredAIFunctionNeedsApprovalAndKeepsThePreview()
    {
        using var temp = new TempFolder();
        var plain = FakeFunction.Echo("plain");
        var marked = new ApprovalRequiredAIFunction(plain);
        AIFunction write = new ApprovalRequiredAIFunction(CodingTools.Create(temp.Workspace).Named("write_file"));

        ToolOutcome refused = await new ToolDispatcher([marked]).DispatchAsync("plain", "{}", CancellationToken.None);
        Assert.Equal(ToolOutcomeKind.Refused, refused.Kind);
        Assert.Equal(0, plain.Calls);

        var approver = new ScriptedApprover(ApprovalDecision.ApproveOnce, ApprovalDecision.ApproveOnce);
        var dispatcher = new ToolDispatcher([marked, write], new ToolDispatcherOptions { Approver = approver });
        Assert.Equal("echo:", (await dispatcher.DispatchAsync("plain", "{}", CancellationToken.None)).Content);
        ToolOutcome created = await dispatcher.DispatchAsync("write_file", """{"path":"n.txt","content":"new"}""", CancellationToken.None);
        Assert.Equal("created n.txt (1 lines)", created.Content);
        Assert.Equal("plain {}", approver.Requests[0].Summary);
        Assert.Equal("create n.txt", approver.Requests[1].Summary);
        Assert.Contains("+new", approver.Requests[1].Diff);
    }

    [Fact]
    public void DuplicateToolNamesAreRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new ToolDispatcher([FakeFunction.Echo("a"), FakeFunction.Echo("a")]));
        Assert.Contains("duplicate tool name 'a'", e.Message);
    }
}
