using System.Diagnostics;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Coding;

public class ShellToolTests
{
    private static AIFunction Shell(TempFolder temp, CodingToolOptions? options = null) =>
        CodingTools.Create(temp.Workspace, options ?? new CodingToolOptions()).Named("shell");

    [Fact]
    public async Task RunsInTheWorkspaceAndReportsExitCodeAndStreams()
    {
        using var temp = new TempFolder();
        temp.Write("here.txt", "");
        ToolResult ok = await ToolCalls.CallAsync(Shell(temp), """{"command":"ls; echo oops >&2"}""");
        Assert.False(ok.IsError);
        Assert.Equal("exit code 0\n[stdout]\nhere.txt\n[stderr]\noops", ok.Content);

        ToolResult failed = await ToolCalls.CallAsync(Shell(temp), """{"command":"echo partial; exit 3"}""");
        Assert.True(failed.IsError);
        Assert.Equal("error: exit code 3\n[stdout]\npartial", failed.Content);

        ToolResult quiet = await ToolCalls.CallAsync(Shell(temp), """{"command":"true"}""");
        Assert.Equal("exit code 0 (no output)", quiet.Content);
    }

    [Fact]
    public async Task CapsOutput()
    {
        using var temp = new TempFolder();
        ToolResult result = await ToolCalls.CallAsync(Shell(temp, new CodingToolOptions { MaxOutputChars = 100 }),
            """{"command":"head -c 5000 /dev/zero | tr '\\0' q"}""");
        Assert.False(result.IsError, result.Content);
        Assert.Contains("[stdout clipped: 4900 more characters]", result.Content);
        Assert.Equal(100, result.Content.Count(c => c == 'q'));
    }

    [Fact]
    public async Task TimeoutKillsTheWholeProcessTree()
    {
        using var temp = new TempFolder();
        var clock = Stopwatch.StartNew();
        ToolResult result = await ToolCalls.CallAsync(Shell(temp),
            """{"command":"sleep 60 & echo $! > child.pid; wait","timeout_seconds":1}""");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        Assert.True(result.IsError);
        Assert.StartsWith("error: command timed out after 1 s and was killed", result.Content);
        AssertProcessGone(int.Parse(File.ReadAllText(temp.InRoot("child.pid")).Trim()));
    }

    [Fact]
    public async Task CallerCancellationKillsTheCommandAndThrows()
    {
        using var temp = new TempFolder();
        using var cancel = new CancellationTokenSource();
        Task<ToolResult> running = ToolCalls.CallAsync(Shell(temp), """{"command":"sleep 60 & echo $! > child.pid; wait"}""", cancel.Token);
        string pidFile = temp.InRoot("child.pid");
        for (int i = 0; i < 200 && !(File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0); i++) await Task.Delay(25);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        AssertProcessGone(int.Parse(File.ReadAllText(pidFile).Trim()));
    }

    [Fact]
    public async Task PreviewIsTheCommandOnOneLine()
    {
        using var temp = new TempFolder();
        ApprovalPreview preview = await ((IApprovalPreview)Shell(temp)).PreviewAsync(
            new AIFunctionArguments { ["command"] = "cd src\nrm -rf build" }, CancellationToken.None);
        Assert.Equal("cd src ⏎ rm -rf build", preview.Summary);
        Assert.Null(preview.Diff);
    }

    private static void AssertProcessGone(int pid)
    {
        // Killing is asynchronous; give the kernel a moment to reap it.
        for (int i = 0; i < 100; i++)
        {
            try
            {
                using Process process = Process.GetProcessById(pid);
                if (process.HasExited) return;
            }
            catch (ArgumentException)
            {
                return;
            }
            Thread.Sleep(20);
        }
        Assert.Fail($"process {pid} is still running");
    }
}
