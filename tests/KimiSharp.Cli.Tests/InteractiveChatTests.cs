using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Agent;

namespace KimiSharp.Cli.Tests;

/// <summary>A fact that needs util-linux's <c>script</c> (a pseudo-terminal); skipped, saying so, where it is missing.</summary>
public sealed class NeedsPseudoTerminalFactAttribute : FactAttribute
{
    public NeedsPseudoTerminalFactAttribute()
    {
        bool found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, "script")));
        if (!found) Skip = "util-linux 'script' is not on PATH, so no pseudo-terminal can drive kimi chat (apt-get install bsdutils)";
        else if (!OpensPseudoTerminal()) Skip = "'script' cannot open a pseudo-terminal here (no /dev/pts?), so kimi chat cannot be driven through one";
    }

    private static bool OpensPseudoTerminal()
    {
        try
        {
            using var probe = Process.Start(new ProcessStartInfo("script", ["-qec", "true", "/dev/null"])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            })!;
            probe.StandardInput.Close();
            if (!probe.WaitForExit(10_000)) { probe.Kill(); return false; }
            return probe.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}

/// <summary>
/// <c>kimi chat</c> as a person sees it in a terminal: their own lines stay on screen, the collapsed thinking says
/// how long it was (tokens and seconds), and each question is answered on its own terms.
/// </summary>
public class InteractiveChatTests
{
    private static string ShippedModel => Path.Combine(LogitsCommandTests.RepositoryRoot, "models", "k2-nano");

    private static async IAsyncEnumerable<AgentEvent> Events(IEnumerable<AgentEvent> events, [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var e in events) { await Task.Yield(); yield return e; }
    }

    [Theory]
    [InlineData("", 80, 1)]
    [InlineData("thinking: short", 80, 1)]
    [InlineData("thinking: a\nb\n", 80, 3)]
    [InlineData("0123456789", 10, 1)]   // exactly full: the cursor waits at the end of the row
    [InlineData("0123456789a", 10, 2)]
    [InlineData("0123456789012345678901\nx", 10, 4)]
    public void Counts_the_rows_text_takes_on_a_terminal(string text, int width, int rows) =>
        Assert.Equal(rows, ChatCommand.TerminalRows(text, width));

    [Fact]
    public void Summary_says_tokens_and_seconds()
    {
        Assert.Equal("thought for 23 tokens, 1.5 s", ChatCommand.ThinkingSummary(23, TimeSpan.FromMilliseconds(1520)));
        Assert.Equal("thought for 1 token, 0.0 s", ChatCommand.ThinkingSummary(1, TimeSpan.Zero));
        Assert.Equal("thought for 2.0 s", ChatCommand.ThinkingSummary(null, TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public async Task Collapsing_thinking_keeps_the_question_above_it_on_screen()
    {
        // One-row thinking (where ESC[0A used to climb onto the question) and thinking wrapped over several rows.
        string wrapped = string.Concat(Enumerable.Repeat("a long line of reasoning ", 12)) + "\nand a second line";
        var output = new StringWriter();
        output.Write("\u001b[36m> \u001b[0mwhat is 3 + 4?\r\n");
        var result = new AgentResult("7", [], 1, 0, 2, 30, AgentResult.Answer);
        await ChatCommand.RenderAgentTurn(Events(
        [
            new AgentEvent.ReasoningDelta("Use the calculator."),
            new AgentEvent.ToolCalled("functions.calculator:0", "calculator", """{"expression":"3+4"}"""),
            new AgentEvent.ToolReturned("functions.calculator:0", "calculator", "7", false),
            new AgentEvent.ReasoningDelta(wrapped),
            new AgentEvent.ContentDelta("3 + 4 is 7."),
            new AgentEvent.Finished(result),
        ]), output, color: true, collapse: true, tokenBudget: 1000, countTokens: text => text.Length / 4);
        var screen = TerminalScreen.Render(output.ToString(), 80); // the width the CLI assumes when not on a terminal
        Assert.Equal(
        [
            "> what is 3 + 4?",
            "▸ thought for 4 tokens, 0.0 s (/thinking to show)",
            """→ calculator({"expression":"3+4"})""",
            "← 7",
            $"▸ thought for {wrapped.Length / 4} tokens, 0.0 s (/thinking to show)",
            "3 + 4 is 7.",
        ], screen.Select(l => Regex.Replace(l, @"\d+\.\d s", "0.0 s")));
    }

    [Fact]
    public void Each_question_is_a_task_of_its_own_for_the_model()
    {
        var conversation = new JsonArray
        {
            new JsonObject { ["role"] = "system", ["content"] = "old system" },
            new JsonObject { ["role"] = "user", ["content"] = "Convert 12 miles to kilometers" },
            new JsonObject { ["role"] = "assistant", ["content"] = "12 miles is 19.312128 kilometers." },
            new JsonObject { ["role"] = "user", ["content"] = "what is 3 + 4?" },
        };
        var task = ChatCommand.TaskMessages(conversation, "be brief");
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""[{"role":"system","content":"be brief"},{"role":"user","content":"what is 3 + 4?"}]"""), task));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""[{"role":"user","content":"what is 3 + 4?"}]"""), ChatCommand.TaskMessages(conversation, null)));
        Assert.Throws<ArgumentException>(() => ChatCommand.TaskMessages([], null));
    }

    [NeedsPseudoTerminalFact]
    public async Task In_a_terminal_questions_stay_visible_thinking_is_summarised_and_the_second_question_stands_alone()
    {
        const int Columns = 100;
        string kimi = Path.Combine(AppContext.BaseDirectory, "kimi.dll");
        Assert.True(File.Exists(kimi), $"{kimi} is missing");
        string command = $"stty cols {Columns} rows 50; exec dotnet '{kimi}' chat --model '{ShippedModel}'"; // stderr too: Spectre treats a redirected one as no terminal
        var start = new ProcessStartInfo("script", ["-qfec", command, "/dev/null"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false,
        };
        // A person's terminal: not the test host's environment (CI markers and the like turn colours and the collapse off).
        var keep = new[] { "PATH", "HOME", "DOTNET_ROOT", "DOTNET_CLI_HOME", "DOTNET_NOLOGO", "NUGET_PACKAGES", "TMPDIR" };
        foreach (string name in start.Environment.Keys.ToList())
            if (!keep.Contains(name)) start.Environment.Remove(name);
        start.Environment["TERM"] = "xterm-256color";
        start.Environment["LANG"] = "C.UTF-8";
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var reader = Task.Run(async () =>
        {
            var buffer = new char[4096];
            int n;
            while ((n = await process.StandardOutput.ReadAsync(buffer)) > 0)
                lock (output) output.Append(buffer, 0, n);
        });
        async Task WaitForPrompts(int count)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                string text;
                lock (output) text = output.ToString();
                if (Regex.Matches(text, "> \u001b\\[0m").Count >= count) return;
                if (process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(120))
                    Assert.Fail($"waited for prompt {count}; the terminal shows:\n{text}");
                await Task.Delay(50);
            }
        }
        try
        {
            await WaitForPrompts(1);
            await process.StandardInput.WriteAsync("Convert 12 miles to kilometers\n");
            await process.StandardInput.FlushAsync();
            await WaitForPrompts(2);
            await process.StandardInput.WriteAsync("what is 3 + 4?\n");
            await process.StandardInput.FlushAsync();
            await WaitForPrompts(3);
            await process.StandardInput.WriteAsync("/exit\n");
            await process.StandardInput.FlushAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            await reader;
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }

        string raw;
        lock (output) raw = output.ToString();
        var screen = TerminalScreen.Render(raw, Columns).ToList();
        string shown = string.Join('\n', screen);
        int first = screen.IndexOf("> Convert 12 miles to kilometers");
        int second = screen.IndexOf("> what is 3 + 4?");
        Assert.True(first >= 0 && second > first, $"the typed questions are not on screen:\n{shown}");

        var summary = new Regex(@"^▸ thought for \d+ tokens?, \d+\.\d s \(/thinking to show\)$");
        Assert.Contains(screen.Skip(first + 1).Take(second - first - 1), l => summary.IsMatch(l));
        Assert.Contains(screen.Skip(second + 1), l => summary.IsMatch(l));
        Assert.DoesNotContain("characters", shown);
        Assert.DoesNotContain(screen, l => l.StartsWith("thinking:", StringComparison.Ordinal)); // all collapsed

        // The second answer is what the model says to that question asked alone (greedy decoding, same prompt).
        int next = screen.FindIndex(second + 1, l => l.StartsWith('>'));
        string answer = screen.Take(next < 0 ? screen.Count : next).Skip(second + 1)
            .Last(l => l.Length > 0 && !l.StartsWith('▸') && !l.StartsWith('→') && !l.StartsWith('←'));
        var (code, alone, err) = await Kimi.Run("chat", "--model", ShippedModel, "what is 3 + 4?");
        Assert.True(code == 0, err);
        string aloneAnswer = alone.TrimEnd().Split('\n')[^1].Trim();
        Assert.Equal(aloneAnswer, answer);
        Assert.DoesNotContain("mile", answer, StringComparison.OrdinalIgnoreCase);
    }
}
