using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi chat</c>: a terminal chat that streams the answer, shows the model's thinking dimmed (collapsed to one
/// line once the answer starts; /thinking shows it again), and keeps the conversation until /reset. With a question
/// argument it answers once and exits. By default the built-in tools are offered and run by the agent loop
/// (<see cref="AgentRunner"/>): each call is shown as <c>→ name(args)</c> and its result as <c>← result</c>;
/// <c>--no-tools</c> gives plain chat.
/// </summary>
internal static class ChatCommand
{
    private const string Dim = "\u001b[2m", Reset = "\u001b[0m", Cyan = "\u001b[36m", Red = "\u001b[31m";

    public static Command Create()
    {
        var model = ModelLocator.ModelOption();
        var question = new Argument<string[]>("question")
        {
            Description = "Answer this one question and exit (words are joined); without it, chat interactively",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var noTools = CliOptions.Flag("--no-tools", "Plain chat: no built-in tools, temperature 0.6 and 1024 tokens by default");
        var maxTokens = CliOptions.OptionalInt("--max-tokens", "Tokens per answer (per agent step with tools) [default: 384 with tools, 1024 without]", min: 1);
        var temperature = CliOptions.OptionalNumber("--temperature", "Sampling temperature [default: 0 (greedy) with tools, 0.6 without]", min: 0, helpName: "T");
        var system = CliOptions.Text("--system", "TEXT", "A system prompt");
        var seed = CliOptions.OptionalInt("--seed", "Sampling seed");
        var maxSteps = CliOptions.OptionalInt("--max-steps", "Agent steps per question before it stops [default: 400]", min: 1);
        var name = ModelLocator.NameOption();
        var kernels = new KernelOptions();
        var images = ImageInputs.Option("An image for the question (the first message when interactive; /image FILE adds one later). Repeatable; needs a K2.5 model with its vision tower");
        var videos = ImageInputs.Option("A video for the question (mp4, webm, … through ffmpeg, or an animated GIF/WebP; /video FILE adds one later). Repeatable; needs a K2.5 model with its vision tower", "--video");
        var command = new Command("chat", """
            Chat in the terminal (thinking shown dimmed; /reset, /thinking, /image FILE, /video FILE, /exit), or answer one question.
            By default the model may call the built-in tools (calculator, convert_units, calendar, lookup, memory), run by the
            agent loop: calls show as → name(args), results as ← result.
            """)
        {
            model, question, noTools, maxTokens, temperature, system, seed, maxSteps, name, images, videos,
        };
        kernels.AddTo(command);
        command.Exclusive(noTools, maxSteps, "--max-steps needs tools (drop --no-tools)");
        command.SetAction(async (r, ct) =>
        {
            bool tools = !r.GetValue(noTools);
            var generation = new GenerationOptions
            {
                // Agent steps are short and greedy by default (as in evaluation); plain chat keeps its sampling defaults.
                MaxTokens = r.GetValue(maxTokens) ?? (tools ? 384 : 1024),
                Temperature = (float)(r.GetValue(temperature) ?? (tools ? 0 : 0.6)),
                Seed = r.GetValue(seed),
            };
            var agentOptions = new AgentOptions
            {
                Sampling = new Microsoft.Extensions.AI.ChatOptions { Temperature = generation.Temperature, TopP = generation.TopP, Seed = generation.Seed },
                MaxTokensPerStep = generation.MaxTokens,
            };
            if (r.GetValue(maxSteps) is int steps) agentOptions = agentOptions with { MaxSteps = steps };
            await using var service = ModelLocator.LoadChat(r.GetValue(model), r.GetValue(name), r.Err(), kernels.Settings(r));
            string[] imageFiles = r.GetValue(images) ?? [], videoFiles = r.GetValue(videos) ?? [];
            ImageInputs.RequireVision(service, imageFiles);
            ImageInputs.RequireVision(service, videoFiles, "--video");
            var media = imageFiles.Select(f => ImageInputs.ImagePart(f, service.MediaOptions)).ToList();
            foreach (string f in videoFiles) media.Add(await ImageInputs.VideoPart(f, service, ct));
            return await RunAsync(service, r.GetValue(question) ?? [], media, r.GetValue(system), tools, generation, agentOptions, r.Out(), ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(KimiChatService service, string[] question, List<JsonObject> pendingMedia, string? system, bool tools,
        GenerationOptions generation, AgentOptions agentOptions, TextWriter stdout, CancellationToken cancellationToken)
    {
        bool color = Terminal.Colors(stdout); // a terminal that takes colours (not NO_COLOR, not redirected)
        var conversation = new JsonArray();
        if (system is not null) conversation.Add(new JsonObject { ["role"] = "system", ["content"] = system });

        // One toolbox per session, so notes saved by one question can be read by a later one.
        var toolbox = Toolbox.CreateDefault();
        Func<string, int> countTokens = text => service.Tokenizer.Encode(text, allowSpecial: false).Count;
        if (question.Length > 0)
        {
            conversation.Add(new JsonObject { ["role"] = "user", ["content"] = ImageInputs.UserContent(pendingMedia, string.Join(' ', question)) });
            if (tools) await AgentTurn(service, toolbox, conversation, system, agentOptions, stdout, color, collapse: false, countTokens, cancellationToken);
            else await Turn(service, conversation, generation, stdout, color, collapse: false, countTokens, cancellationToken);
            return 0;
        }

        stdout.WriteLine($"kimi chat — {service.ModelId}{(tools ? " with tools (calculator, convert_units, calendar, lookup, memory)" : "")}. " +
            "/reset clears the conversation, /thinking shows the last reasoning, /image FILE and /video FILE attach media to the next message, /exit quits.");
        if (pendingMedia.Count > 0) stdout.WriteLine($"({pendingMedia.Count} image(s) or video(s) attached to your first message)");
        string lastReasoning = "";
        while (!cancellationToken.IsCancellationRequested)
        {
            stdout.Write(color ? $"{Cyan}> {Reset}" : "> ");
            string? line = Console.In.ReadLine();
            if (line is null || line.Trim() is "/exit" or "/quit") break;
            switch (line.Trim())
            {
                case "": continue;
                case "/reset":
                    conversation.Clear();
                    if (system is not null) conversation.Add(new JsonObject { ["role"] = "system", ["content"] = system });
                    toolbox = Toolbox.CreateDefault();
                    stdout.WriteLine("(conversation cleared)");
                    continue;
                case "/thinking":
                    stdout.WriteLine(lastReasoning.Length == 0 ? "(no reasoning in the last answer)" : color ? Dim + lastReasoning + Reset : lastReasoning);
                    continue;
            }
            if (line.TrimStart().StartsWith("/image", StringComparison.Ordinal) || line.TrimStart().StartsWith("/video", StringComparison.Ordinal))
            {
                string kind = line.TrimStart()[1..6], file = line.TrimStart()[6..].Trim();
                try
                {
                    if (file.Length == 0) throw new ArgumentException($"/{kind} needs a file: /{kind} FILE");
                    if (kind == "image")
                    {
                        ImageInputs.RequireVision(service, [file]);
                        pendingMedia.Add(ImageInputs.ImagePart(file, service.MediaOptions));
                    }
                    else pendingMedia.Add(await ImageInputs.VideoPart(file, service, cancellationToken));
                    stdout.WriteLine($"({kind} {file} attached to your next message)");
                }
                catch (Exception e) when (e is ArgumentException or UsageException or KimiSharp.Vision.ImageDecodeException or IOException)
                {
                    stdout.WriteLine($"({kind} not attached: {e.Message})");
                }
                continue;
            }
            conversation.Add(new JsonObject { ["role"] = "user", ["content"] = ImageInputs.UserContent(pendingMedia, line) });
            pendingMedia.Clear();
            lastReasoning = tools
                ? await AgentTurn(service, toolbox, conversation, system, agentOptions, stdout, color, collapse: color, countTokens, cancellationToken)
                : await Turn(service, conversation, generation, stdout, color, collapse: color, countTokens, cancellationToken);
        }
        return 0;
    }

    /// <summary>Streams one assistant turn, appends it to the conversation, and returns its reasoning.</summary>
    private static async Task<string> Turn(KimiChatService service, JsonArray conversation, GenerationOptions generation,
        TextWriter stdout, bool color, bool collapse, Func<string, int> countTokens, CancellationToken cancellationToken)
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        bool inReasoning = false;
        var thinkingClock = new System.Diagnostics.Stopwatch();
        ChatCompleted? done = null;
        var request = new ChatRequest { Messages = (JsonArray)conversation.DeepClone(), Generation = generation };
        await foreach (var e in service.ChatAsync(request, cancellationToken))
        {
            switch (e)
            {
                case ChatOutput { Piece: ReasoningDelta r }:
                    if (!inReasoning) { stdout.Write(color ? Dim + ThinkingLabel : ThinkingLabel); inReasoning = true; thinkingClock.Start(); }
                    reasoning.Append(r.Text);
                    stdout.Write(r.Text);
                    break;
                case ChatOutput { Piece: ContentDelta c }:
                    if (inReasoning)
                    {
                        inReasoning = false;
                        // Collapse the streamed thinking into one line now that the answer starts.
                        if (collapse) Collapse(stdout, reasoning.ToString(), countTokens(reasoning.ToString()), thinkingClock.Elapsed);
                        else stdout.WriteLine(color ? Reset : "");
                    }
                    content.Append(c.Text);
                    stdout.Write(c.Text);
                    break;
                case ChatOutput { Piece: ToolCallStart t }:
                    stdout.Write($"{(color ? Dim : "")}\n[tool call {t.Name}] ");
                    break;
                case ChatOutput { Piece: ToolCallArgumentsDelta a }:
                    stdout.Write(a.Text);
                    break;
                case ChatOutput { Piece: ToolCallEnd }:
                    stdout.Write(color ? Reset : "");
                    break;
                case ChatCompleted c:
                    done = c;
                    break;
            }
        }
        if (inReasoning) stdout.Write(color ? Reset : "");
        stdout.WriteLine();
        if (done?.FinishReason == FinishReason.Length) stdout.WriteLine(color ? $"{Dim}(stopped at the token limit){Reset}" : "(stopped at the token limit)");
        var message = new JsonObject { ["role"] = "assistant", ["content"] = content.ToString() };
        if (reasoning.Length > 0) message["reasoning_content"] = reasoning.ToString();
        conversation.Add(message);
        return reasoning.ToString();
    }

    /// <summary>
    /// Runs one user turn through the agent loop, showing thinking, tool calls and results, then the answer, and appends
    /// every step of the turn to <paramref name="conversation"/> (the session's transcript). The model sees only the
    /// system prompt and this question: it was trained on one task per conversation (the context window keeps
    /// everything before the last user message, so earlier tasks' steps would sit in its prompt and be copied from —
    /// "what is 3 + 4?" after a miles question was answered "12 miles is 3 miles."). Notes persist through
    /// <paramref name="toolbox"/>. Returns the turn's reasoning.
    /// </summary>
    private static async Task<string> AgentTurn(KimiChatService service, Toolbox toolbox, JsonArray conversation, string? system,
        AgentOptions agentOptions, TextWriter stdout, bool color, bool collapse, Func<string, int> countTokens, CancellationToken cancellationToken)
    {
        var runner = new AgentRunner(new KimiChatClient(service), toolbox.AsFunctions(), agentOptions);
        var task = TaskMessages(conversation, system);
        var (reasoning, result) = await RenderAgentTurn(runner.RunAsync(task, cancellationToken), stdout, color, collapse, agentOptions.TokenBudget, countTokens);
        if (result is not null)
            foreach (var m in result.Messages.Skip(task.Count)) conversation.Add(m!.DeepClone());
        return reasoning;
    }

    /// <summary>What the model sees for the question <paramref name="conversation"/> ends with: the system prompt, if any, and that question.</summary>
    internal static JsonArray TaskMessages(JsonArray conversation, string? system)
    {
        var task = new JsonArray();
        if (system is not null) task.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        var question = conversation.LastOrDefault(m => m?["role"]?.GetValue<string>() == "user")
            ?? throw new ArgumentException("the conversation has no user message", nameof(conversation));
        task.Add(question.DeepClone());
        return task;
    }

    private const string ThinkingLabel = "thinking: ";

    /// <summary>
    /// Replaces the thinking just streamed (the label and <paramref name="reasoning"/>, the cursor at its end) by one
    /// dimmed summary line. It erases exactly the rows the text took on the terminal — wrapped lines count as several,
    /// and a one-row text moves the cursor up not at all (ESC[0A moves up one row on most terminals, which erased the
    /// user's question line) — so everything above it, the question included, stays on screen.
    /// </summary>
    private static void Collapse(TextWriter stdout, string reasoning, int? tokens, TimeSpan elapsed)
    {
        int rows = TerminalRows(ThinkingLabel + reasoning, Terminal.Width());
        stdout.Write(Reset + "\r" + (rows > 1 ? $"\u001b[{rows - 1}A" : "") + "\u001b[J");
        stdout.WriteLine($"{Dim}▸ {ThinkingSummary(tokens, elapsed)} (/thinking to show){Reset}");
    }

    /// <summary>"thought for 23 tokens, 0.4 s" (the seconds alone when no tokenizer counts): what a person can judge the thinking by.</summary>
    internal static string ThinkingSummary(int? tokens, TimeSpan elapsed)
    {
        string seconds = elapsed.TotalSeconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " s";
        return tokens is int n ? $"thought for {n} {(n == 1 ? "token" : "tokens")}, {seconds}" : $"thought for {seconds}";
    }

    /// <summary>Rows <paramref name="text"/> occupies when written from the start of a row on a terminal <paramref name="width"/> columns wide.</summary>
    internal static int TerminalRows(string text, int width)
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), "a terminal has at least one column");
        int rows = 0;
        foreach (string line in text.Split('\n'))
        {
            int columns = new System.Globalization.StringInfo(line.TrimEnd('\r')).LengthInTextElements;
            rows += Math.Max(1, (columns + width - 1) / width);
        }
        return rows;
    }


    /// <summary>
    /// Shows an agent run: thinking dimmed (collapsed per step when <paramref name="collapse"/>), each call as
    /// <c>→ name(args)</c>, each result as <c>← result</c> (errors in red), the answer, and why the run stopped when it did
    /// not answer. Returns the reasoning of all steps and the result.
    /// </summary>
    internal static async Task<(string Reasoning, AgentResult? Result)> RenderAgentTurn(IAsyncEnumerable<AgentEvent> run,
        TextWriter stdout, bool color, bool collapse, long tokenBudget, Func<string, int>? countTokens = null)
    {
        var allReasoning = new StringBuilder();
        var stepReasoning = new StringBuilder();
        var thinkingClock = new System.Diagnostics.Stopwatch();
        bool inReasoning = false, lineOpen = false;
        AgentResult? result = null;

        void EndReasoning()
        {
            if (!inReasoning) return;
            inReasoning = false;
            if (collapse) Collapse(stdout, stepReasoning.ToString(), countTokens?.Invoke(stepReasoning.ToString()), thinkingClock.Elapsed);
            else stdout.WriteLine(color ? Reset : "");
            lineOpen = false;
        }

        await foreach (var e in run)
        {
            switch (e)
            {
                case AgentEvent.ReasoningDelta r:
                    if (!inReasoning)
                    {
                        if (lineOpen) { stdout.WriteLine(); lineOpen = false; }
                        stdout.Write(color ? Dim + ThinkingLabel : ThinkingLabel);
                        inReasoning = true;
                        stepReasoning.Clear();
                        thinkingClock.Restart();
                        if (allReasoning.Length > 0) allReasoning.Append("\n\n");
                    }
                    stepReasoning.Append(r.Text);
                    allReasoning.Append(r.Text);
                    stdout.Write(r.Text);
                    break;
                case AgentEvent.ContentDelta c:
                    EndReasoning();
                    stdout.Write(c.Text);
                    if (c.Text.Length > 0) lineOpen = !c.Text.EndsWith('\n');
                    break;
                case AgentEvent.ToolCalled call:
                    EndReasoning();
                    if (lineOpen) { stdout.WriteLine(); lineOpen = false; }
                    stdout.WriteLine(color ? $"{Cyan}→ {call.Name}({OneLine(call.Arguments)}){Reset}" : $"→ {call.Name}({OneLine(call.Arguments)})");
                    break;
                case AgentEvent.ToolReturned ret:
                    string text = "← " + OneLine(ret.Content);
                    stdout.WriteLine(!color ? text : ret.IsError ? Red + text + Reset : Dim + text + Reset);
                    break;
                case AgentEvent.Finished f:
                    EndReasoning();
                    result = f.Result;
                    break;
            }
        }
        if (lineOpen) stdout.WriteLine();
        if (result is not null)
        {
            string? note = result.StopReason switch
            {
                AgentResult.Length => "(stopped at the token limit of a step)",
                AgentResult.MaxSteps => $"(stopped after {result.Steps} steps without an answer)",
                AgentResult.TokenBudget => $"(stopped: token budget of {tokenBudget} spent)",
                _ => null,
            };
            if (note is not null) stdout.WriteLine(color ? Dim + note + Reset : note);
        }
        return (allReasoning.ToString(), result);
    }

    /// <summary>Text on one line for the tool call/result display, clipped.</summary>
    private static string OneLine(string text)
    {
        string flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= 300 ? flat : flat[..297] + "...";
    }
}
