using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Mcp;
using KimiSharp.Agent.Sessions;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests;

/// <summary>
/// The loop with the real coding tools, approvals and MCP: a scripted model replays a K2-style trajectory (read, edit,
/// run the tests, fix) in a temporary git repository. The script only drives the loop; the tools do the work.
/// </summary>
public sealed class CodingRunTests : IDisposable
{
    private readonly string _repo = Directory.CreateTempSubdirectory("kimi-coding-run-").FullName;

    public void Dispose() => Directory.Delete(_repo, recursive: true);

    private static string Run(string directory, string file, params string[] args)
    {
        var start = new ProcessStartInfo(file, args) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return output;
    }

    /// <summary>Approves what the script says, in order, and records what it was shown.</summary>
    private sealed class ScriptedApprover(params ApprovalDecision[] decisions) : IApprover
    {
        private int _next;
        public List<ApprovalRequest> Asked { get; } = [];

        public ValueTask<ApprovalDecision> DecideAsync(ApprovalRequest request, CancellationToken cancellationToken)
        {
            Asked.Add(request);
            return ValueTask.FromResult(decisions[_next++]);
        }
    }

    private static ScriptedStep Call(string reasoning, string tool, JsonObject arguments) => new(reasoning, "", [(tool, arguments.ToJsonString(), null)]);

    [Fact]
    public async Task A_scripted_k2_trajectory_reads_edits_tests_and_fixes_a_bug_through_the_real_tools_and_approvals()
    {
        File.WriteAllText(Path.Combine(_repo, "add.sh"), "#!/bin/bash\n# adds two numbers\necho $(( $1 - $2 ))\n");
        File.WriteAllText(Path.Combine(_repo, "test.sh"), "#!/bin/bash\n[ \"$(bash add.sh 2 3)\" = 5 ] && echo PASS || { echo FAIL; exit 1; }\n");
        Run(_repo, "git", "init", "-q");
        Run(_repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", ".");
        Run(_repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start");

        var steps = new[]
        {
            Call("Let me look at the script.", "read_file", new JsonObject { ["path"] = "add.sh" }),
            Call("It subtracts. First run the tests.", "shell", new JsonObject { ["command"] = "bash test.sh" }),
            // The user rejects this edit and says how to do it instead.
            Call("Rewrite the whole file.", "write_file", new JsonObject { ["path"] = "add.sh", ["content"] = "echo 5\n" }),
            Call("Use an exact edit as asked.", "edit_file", new JsonObject { ["path"] = "add.sh", ["old_string"] = "$1 - $2", ["new_string"] = "$1 + $2" }),
            Call("Run the tests again.", "shell", new JsonObject { ["command"] = "bash test.sh" }),
            new ScriptedStep("They pass.", "Fixed add.sh: it subtracted; it now adds. test.sh passes.", []),
        };
        var model = new ScriptedModel((i, _) => steps[i]);
        var approver = new ScriptedApprover(
            ApprovalDecision.ApproveForSession,                       // shell, for the rest of the session
            ApprovalDecision.Reject("don't rewrite files, edit the line"),
            ApprovalDecision.ApproveOnce);                            // the edit
        var dispatcher = new ToolDispatcher(CodingTools.Create(new Workspace(_repo)), new ToolDispatcherOptions { Approver = approver });
        var sessions = Path.Combine(_repo, ".sessions");
        using var session = AgentSession.Create(sessions, new JsonObject { ["workspace"] = _repo });
        session.AddMessage(AgentMessages.User("test.sh fails; fix add.sh"));
        var events = new List<AgentEvent>();
        await foreach (var e in session.Record(new AgentRunner(model, dispatcher, new AgentOptions { Window = ContextWindow.Unlimited }).RunAsync(session.Messages)))
            events.Add(e);
        var result = Assert.IsType<AgentEvent.Finished>(events[^1]).Result;

        Assert.Equal(AgentResult.Answer, result.StopReason);
        var returned = events.OfType<AgentEvent.ToolReturned>().ToArray();
        Assert.Contains("$1 - $2", returned[0].Content);                       // read_file
        Assert.Contains("FAIL", returned[1].Content);                          // the tests fail
        Assert.True(returned[2].IsError);                                      // the rejected rewrite
        Assert.Contains("don't rewrite files, edit the line", returned[2].Content);
        Assert.False(returned[3].IsError, returned[3].Content);                // the edit
        Assert.Contains("PASS", returned[4].Content);                          // shell approved for the session: not asked again

        // Asked three times: shell once (then for the session), the rejected write, the edit with its diff.
        Assert.Equal(new[] { "shell", "write_file", "edit_file" }, approver.Asked.Select(a => a.ToolName));
        Assert.Contains("-echo $(( $1 - $2 ))", approver.Asked[2].Diff);
        Assert.Contains("+echo $(( $1 + $2 ))", approver.Asked[2].Diff);

        Assert.Equal("PASS\n", Run(_repo, "bash", "test.sh"));
        string diff = Run(_repo, "git", "diff", "--stat");
        Assert.Contains("add.sh | 2 +-", diff);
        // The model saw the rejection feedback in its next step.
        Assert.Contains(model.Requests[3].Messages, m => AgentMessages.Text(m!["content"]).Contains("don't rewrite files"));
    }

    [Fact]
    public async Task Without_an_approver_shell_and_writes_are_refused_and_the_model_is_told()
    {
        File.WriteAllText(Path.Combine(_repo, "a.txt"), "keep\n");
        var model = new ScriptedModel(
            Call("", "write_file", new JsonObject { ["path"] = "a.txt", ["content"] = "gone" }),
            Call("", "shell", new JsonObject { ["command"] = "rm a.txt" }),
            Call("", "read_file", new JsonObject { ["path"] = "../outside.txt" }),
            new ScriptedStep("", "I could not change anything.", []));
        var dispatcher = new ToolDispatcher(CodingTools.Create(new Workspace(_repo)));
        var result = await new AgentRunner(model, dispatcher).RunToEndAsync([AgentMessages.User("delete a.txt")]);
        var tools = result.Messages.Where(m => AgentMessages.Role(m) == "tool").Select(m => AgentMessages.Text(m!["content"])).ToArray();
        Assert.All(tools.Take(2), t => Assert.Contains("needs the user's approval", t));
        Assert.Contains("outside", tools[2]);
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(_repo, "a.txt")));
    }

    [Fact]
    public async Task An_mcp_server_that_crashes_or_hangs_does_not_hang_the_agent()
    {
        var options = McpConnectOptions.Default with { CallTimeout = TimeSpan.FromSeconds(1), ShutdownTimeout = TimeSpan.FromMilliseconds(500) };
        await using var hanging = await McpToolSource.ConnectAsync("slowpoke", McpTestServer.Config(), options);
        await using var crashing = await McpToolSource.ConnectAsync("crashy", McpTestServer.Config("--only", "crash"), options);
        var model = new ScriptedModel(
            new ScriptedStep("", "", [("echo", """{"text":"hello"}""", null)]),
            new ScriptedStep("", "", [("hang", "{}", null)]),
            new ScriptedStep("", "", [("crash", "{}", null)]),
            new ScriptedStep("", "", [("echo", """{"text":"still here"}""", null)]),
            new ScriptedStep("", "done", []));
        var dispatcher = new ToolDispatcher([.. hanging.Tools.Where(t => t.Name != "crash"), .. crashing.Tools],
            new ToolDispatcherOptions { Mode = ApprovalMode.Yolo });
        var clock = Stopwatch.StartNew();
        var result = await new AgentRunner(model, dispatcher).RunToEndAsync([AgentMessages.User("use the server")]);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), clock.Elapsed.ToString());
        var tools = result.Messages.Where(m => AgentMessages.Role(m) == "tool").Select(m => AgentMessages.Text(m!["content"])).ToArray();
        Assert.Equal("hello", tools[0]);
        Assert.StartsWith("error:", tools[1]);
        Assert.Contains("slowpoke", tools[1]);
        Assert.StartsWith("error:", tools[2]);
        Assert.Contains("crashy", tools[2]);
        Assert.Equal("still here", tools[3]);
        Assert.Equal("done", result.FinalAnswer);
    }
}
