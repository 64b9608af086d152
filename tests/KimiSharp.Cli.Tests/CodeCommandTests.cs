using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Synthesis;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi code</c> with the shipped k2-nano in process: print mode, stream-json, sessions, a 300-call session, kill and resume.</summary>
public sealed class CodeCommandTests : IDisposable
{
    private readonly string _workspace = Directory.CreateTempSubdirectory("kimi-code-ws-").FullName;
    private readonly string _sessions = Directory.CreateTempSubdirectory("kimi-code-sessions-").FullName;

    public void Dispose()
    {
        Directory.Delete(_workspace, recursive: true);
        Directory.Delete(_sessions, recursive: true);
    }

    private Task<(int Code, string Out, string Err)> Code(params string[] args) =>
        Kimi.Run(["code", "--workspace", _workspace, "--sessions-dir", _sessions, .. args]);

    private static List<JsonObject> JsonLines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    private List<JsonObject> SessionRecords() =>
        File.ReadAllLines(Assert.Single(Directory.GetFiles(_sessions, "*.jsonl"))).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    /// <summary>Held-out 100-call tasks from the tool-use suite (the evaluation's seed), which k2-nano solves.</summary>
    private static string[] HundredCallTasks()
    {
        var generator = new TaskGenerator(777 + 100);
        return Enumerable.Range(0, 4).Select(_ => generator.WithHorizon(100).Task.Prompt).ToArray();
    }

    [Fact]
    public async Task Print_mode_streams_json_events_and_records_the_session()
    {
        var (code, output, err) = await Code("-p", "What is 17.5% of 2,340 plus 99?", "--output", "stream-json");
        Assert.True(code == 0, err + output);
        var events = JsonLines(output);
        Assert.Equal("session", events[0]["type"]!.GetValue<string>());
        var call = events.First(e => e["type"]!.GetValue<string>() == "tool_call");
        Assert.Equal("calculator", call["name"]!.GetValue<string>());
        var result = events.First(e => e["type"]!.GetValue<string>() == "tool_result");
        Assert.Equal("508.5", result["content"]!.GetValue<string>());
        Assert.Contains(events, e => e["type"]!.GetValue<string>() == "reasoning");
        var final = events.Last(e => e["type"]!.GetValue<string>() == "result");
        Assert.Equal("answer", final["stop_reason"]!.GetValue<string>());
        Assert.Contains("508.5", final["answer"]!.GetValue<string>());

        var records = SessionRecords();
        Assert.Equal(events[0]["text"]!.GetValue<string>(), Assert.Single(Directory.GetFiles(_sessions, "*.jsonl")));
        Assert.Equal(_workspace, records[0]["workspace"]!.GetValue<string>());
        Assert.Single(records, r => r["type"]!.GetValue<string>() == "tool_result");

        var (traceCode, trace, _) = await Kimi.Run("trace", "show", events[0]["text"]!.GetValue<string>());
        Assert.Equal(0, traceCode);
        Assert.Contains("→ calculator(", trace);
        Assert.Contains("← 508.5", trace);
    }

    [Fact]
    public async Task Three_hundred_calls_in_one_session_never_run_out_of_context()
    {
        // Three 100-call tasks, each continuing the same session: earlier tasks stay in the conversation, which must
        // still fit k2-nano's 8K context on the third.
        var tasks = HundredCallTasks();
        int calls = 0;
        foreach (var (task, i) in new[] { tasks[0], tasks[1], tasks[3] }.Select((t, i) => (t, i)))
        {
            string[] args = i == 0 ? ["-p", task, "--output", "stream-json"] : ["--continue", "-p", task, "--output", "stream-json"];
            var (code, output, err) = await Code(args);
            var final = JsonLines(output).LastOrDefault(e => e["type"]!.GetValue<string>() == "result");
            Assert.True(final is not null, $"task {i}: {err}\n{output[^Math.Min(2000, output.Length)..]}");
            Assert.Equal("answer", final["stop_reason"]!.GetValue<string>());
            Assert.Equal(0, code);
            calls += final["tool_calls"]!.GetValue<int>();
        }
        Assert.True(calls >= 300, $"{calls} tool calls");
        var records = SessionRecords();
        Assert.Equal(calls, records.Count(r => r["type"]!.GetValue<string>() == "tool_result"));
        Assert.Equal(3, records.Count(r => r["type"]!.GetValue<string>() == "run_end"));
        Assert.True(records.Where(r => r["type"]!.GetValue<string>() == "step").All(r => r["input_tokens"]!.GetValue<long>() < 8192));
    }

    [Fact]
    public async Task A_run_killed_after_some_tool_calls_resumes_and_runs_each_call_once()
    {
        string task = HundredCallTasks()[0];
        var start = new ProcessStartInfo("bash",
            [Path.Combine(LogitsCommandTests.RepositoryRoot, "kimi"), "code", "--workspace", _workspace, "--sessions-dir", _sessions, "-p", task])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = LogitsCommandTests.RepositoryRoot,
        };
        using (var process = Process.Start(start)!)
        {
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var deadline = Stopwatch.StartNew();
            while (ToolResults() < 20)
            {
                Assert.False(process.HasExited, "kimi code ended before it was killed");
                Assert.True(deadline.Elapsed < TimeSpan.FromMinutes(8), "no tool results appeared");
                await Task.Delay(20);
            }
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        int before = ToolResults();
        Assert.InRange(before, 20, 95);

        // No new task: --continue finishes the interrupted one (stdin is empty, so the prompt loop ends right after).
        var (code, output, err) = await Code("--continue", "-p", "Thanks. What is 2+3?");
        Assert.True(code == 0, err + output);
        var records = SessionRecords();
        var results = records.Where(r => r["type"]!.GetValue<string>() == "tool_result").Select(r => r["id"]!.GetValue<string>()).ToList();
        Assert.True(results.Count > 100, $"{results.Count} results");
        Assert.Equal(results.Count, results.Distinct().Count()); // no call ran twice
        // Every call the model made has exactly one result.
        var calls = records.Where(r => r["type"]!.GetValue<string>() == "message" && r["message"]!["tool_calls"] is JsonArray)
            .SelectMany(r => r["message"]!["tool_calls"]!.AsArray().Select(c => c!["id"]!.GetValue<string>())).ToList();
        Assert.Equal(calls.Order(), results.Order());
        Assert.Equal(2, records.Count(r => r["type"]!.GetValue<string>() == "run_end" && r["stop_reason"]!.GetValue<string>() == "answer"));

        int ToolResults() => Directory.GetFiles(_sessions, "*.jsonl").Sum(f =>
        {
            using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().Split('\n').Count(l => l.Contains("\"type\":\"tool_result\"", StringComparison.Ordinal));
        });
    }

    [Fact]
    public async Task Shell_hooks_veto_tool_calls_and_a_stop_hook_sends_the_agent_back()
    {
        var (code, output, err) = await Code("-p", "What is 17.5% of 2,340 plus 99?", "--output", "stream-json",
            "--hook", "grep -q calculator && { echo 'no calculator today' >&2; exit 2; }; exit 0",
            "--stop-hook", "if [ ! -f checked ]; then touch checked; echo 'Check it once more.' >&2; exit 2; fi");
        Assert.True(code is 0 or 1, err + output);
        var events = JsonLines(output);
        var first = events.First(e => e["type"]!.GetValue<string>() == "tool_result");
        Assert.Contains("blocked by a hook: no calculator today", first["content"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(_workspace, "checked")));
        var users = SessionRecords().Where(r => r["type"]!.GetValue<string>() == "message" && r["message"]!["role"]!.GetValue<string>() == "user")
            .Select(r => r["message"]!["content"]!.GetValue<string>()).ToArray();
        Assert.Equal("Check it once more.", users[^1]);
    }

    [Fact]
    public async Task The_interactive_session_answers_runs_slash_commands_and_keeps_going_after_a_bad_one()
    {
        var start = new ProcessStartInfo("bash",
            [Path.Combine(LogitsCommandTests.RepositoryRoot, "kimi"), "code", "--workspace", _workspace, "--sessions-dir", _sessions])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = LogitsCommandTests.RepositoryRoot,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync("What is 17.5% of 2,340 plus 99?\n/bogus\n/usage\n/plan\n/help\n/exit\n");
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout;
        Assert.True(process.ExitCode == 0, output + await stderr);
        Assert.Contains("→ calculator(", output);
        Assert.Contains("508.5", output);
        Assert.Contains("[k2-nano · context", output);                    // the status line after the turn
        Assert.Contains("error: unknown command /bogus (/help lists them)", output);
        Assert.Contains("2 steps", output);                                // /usage
        Assert.Contains("plan mode: only read-only tools run", output);
        Assert.Contains("/compact", output);                               // /help
        Assert.Single(Directory.GetFiles(_sessions, "*.jsonl"));
    }

    [Fact]
    public async Task Bad_invocations_name_the_problem()
    {
        var (code, _, err) = await Code("--output", "stream-json");
        Assert.Equal(2, code);
        Assert.Contains("--output stream-json needs -p", err);

        (code, _, err) = await Kimi.Run("code", "--workspace", Path.Combine(_workspace, "missing"), "-p", "hi");
        Assert.Equal(2, code);
        Assert.Contains("does not exist", err);

        (code, _, err) = await Code("--session", "nope", "-p", "hi");
        Assert.Equal(2, code);
        Assert.Contains("no session 'nope'", err);

        string mcp = Path.Combine(_workspace, "mcp.json");
        File.WriteAllText(mcp, """{"mcpServers": {"broken": {"args": []}}}""");
        (code, _, err) = await Code("--endpoint", "http://127.0.0.1:9/v1", "--model", "k2", "--mcp", mcp, "-p", "hi");
        Assert.Equal(2, code);
        Assert.Contains("broken", err);

        (code, _, err) = await Kimi.Run("trace", "show", Path.Combine(_workspace, "none.jsonl"));
        Assert.Equal(2, code);
        Assert.Contains("no session file", err);
    }
}
