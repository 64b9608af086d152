using System.Text.Json;
using KimiSharp.Agent.Hooks;
using KimiSharp.Agent.Tests.Coding;

namespace KimiSharp.Agent.Tests.Dispatch;

public class ShellCommandHookTests
{
    [Fact]
    public async Task ExitZeroAllowsAndTheCallArrivesOnStdin()
    {
        using var temp = new TempFolder();
        var hook = new ShellCommandHook(new ShellCommandHookOptions("cat > stdin.json") { WorkingDirectory = temp.Root });
        BeforeToolCallDecision decision = await hook.BeforeToolCallAsync(new ToolCall("shell", """{"command":"ls"}"""), CancellationToken.None);
        Assert.Same(BeforeToolCallDecision.Allow, decision);
        using JsonDocument payload = JsonDocument.Parse(File.ReadAllText(temp.InRoot("stdin.json")));
        Assert.Equal("before_tool_call", payload.RootElement.GetProperty("event").GetString());
        Assert.Equal("shell", payload.RootElement.GetProperty("tool_name").GetString());
        Assert.Equal("ls", payload.RootElement.GetProperty("arguments").GetProperty("command").GetString());
    }

    [Fact]
    public async Task ExitTwoVetoesWithStderr()
    {
        var hook = new ShellCommandHook(new ShellCommandHookOptions("""grep -q 'rm -rf' && { echo "destructive command" >&2; exit 2; }; exit 0"""));
        var veto = Assert.IsType<BeforeToolCallDecision.Vetoed>(
            await hook.BeforeToolCallAsync(new ToolCall("shell", """{"command":"rm -rf /"}"""), CancellationToken.None));
        Assert.Equal("destructive command", veto.Reason);
        Assert.Same(BeforeToolCallDecision.Allow,
            await hook.BeforeToolCallAsync(new ToolCall("shell", """{"command":"ls"}"""), CancellationToken.None));
    }

    [Fact]
    public async Task OtherExitCodesAllowAndTimeoutsVeto()
    {
        var failing = new ShellCommandHook(new ShellCommandHookOptions("exit 1"));
        Assert.Same(BeforeToolCallDecision.Allow, await failing.BeforeToolCallAsync(new ToolCall("x", "{}"), CancellationToken.None));

        var slow = new ShellCommandHook(new ShellCommandHookOptions("sleep 30") { Timeout = TimeSpan.FromMilliseconds(300) });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var veto = Assert.IsType<BeforeToolCallDecision.Vetoed>(await slow.BeforeToolCallAsync(new ToolCall("x", "{}"), CancellationToken.None));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Contains("did not answer within 0.3 s", veto.Reason);
    }

    [Fact]
    public async Task ToolNamePatternSelectsTheCalls()
    {
        var hook = new ShellCommandHook(new ShellCommandHookOptions("exit 2") { ToolNamePattern = "shell|write_file" });
        Assert.IsType<BeforeToolCallDecision.Vetoed>(await hook.BeforeToolCallAsync(new ToolCall("write_file", "{}"), CancellationToken.None));
        Assert.Same(BeforeToolCallDecision.Allow, await hook.BeforeToolCallAsync(new ToolCall("read_file", "{}"), CancellationToken.None));
        Assert.Same(BeforeToolCallDecision.Allow, await hook.BeforeToolCallAsync(new ToolCall("shell_extra", "{}"), CancellationToken.None));
    }
}
