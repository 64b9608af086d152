using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi chat</c>: a terminal chat that streams the answer, shows the model's thinking dimmed (collapsed to one
/// line once the answer starts; /thinking shows it again), and keeps the conversation until /reset. With a question
/// argument it answers once and exits.
/// </summary>
internal static class ChatCommand
{
    private const string Dim = "\u001b[2m", Reset = "\u001b[0m", Cyan = "\u001b[36m";

    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowPositional().AllowOnly("model", "max-tokens", "temperature", "system", "seed", "name", "threads");
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);
        var generation = new GenerationOptions
        {
            MaxTokens = options.Int("max-tokens") ?? 1024,
            Temperature = (float)(options.Double("temperature") ?? 0.6),
            Seed = options.Int("seed"),
        };
        await using var service = ModelLocator.LoadChat(options, stderr);
        bool color = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        var conversation = new JsonArray();
        if (options.Get("system") is { } system) conversation.Add(new JsonObject { ["role"] = "system", ["content"] = system });

        if (options.Positional.Count > 0)
        {
            conversation.Add(new JsonObject { ["role"] = "user", ["content"] = string.Join(' ', options.Positional) });
            await Turn(service, conversation, generation, stdout, color, collapse: false, cancellationToken);
            return 0;
        }

        stdout.WriteLine($"kimi chat — {service.ModelId}. /reset clears the conversation, /thinking shows the last reasoning, /exit quits.");
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
                    if (options.Get("system") is { } s) conversation.Add(new JsonObject { ["role"] = "system", ["content"] = s });
                    stdout.WriteLine("(conversation cleared)");
                    continue;
                case "/thinking":
                    stdout.WriteLine(lastReasoning.Length == 0 ? "(no reasoning in the last answer)" : color ? Dim + lastReasoning + Reset : lastReasoning);
                    continue;
            }
            conversation.Add(new JsonObject { ["role"] = "user", ["content"] = line });
            lastReasoning = await Turn(service, conversation, generation, stdout, color, collapse: color, cancellationToken);
        }
        return 0;
    }

    /// <summary>Streams one assistant turn, appends it to the conversation, and returns its reasoning.</summary>
    private static async Task<string> Turn(KimiChatService service, JsonArray conversation, GenerationOptions generation,
        TextWriter stdout, bool color, bool collapse, CancellationToken cancellationToken)
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        var pieces = new List<ParserEvent>();
        bool inReasoning = false;
        int reasoningLines = 0;
        ChatCompleted? done = null;
        var request = new ChatRequest { Messages = (JsonArray)conversation.DeepClone(), Generation = generation };
        await foreach (var e in service.ChatAsync(request, cancellationToken))
        {
            switch (e)
            {
                case ChatOutput { Piece: ReasoningDelta r }:
                    if (!inReasoning) { stdout.Write(color ? Dim + "thinking: " : "thinking: "); inReasoning = true; }
                    reasoning.Append(r.Text);
                    reasoningLines += r.Text.Count(c => c == '\n');
                    stdout.Write(r.Text);
                    break;
                case ChatOutput { Piece: ContentDelta c }:
                    if (inReasoning)
                    {
                        inReasoning = false;
                        if (collapse)
                        {
                            // Collapse the streamed thinking into one line now that the answer starts.
                            stdout.Write($"{Reset}\r\u001b[{reasoningLines}A\u001b[J");
                            stdout.WriteLine($"{Dim}▸ thought for {reasoning.Length} characters (/thinking to show){Reset}");
                        }
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
        if (done?.FinishReason == "length") stdout.WriteLine(color ? $"{Dim}(stopped at the token limit){Reset}" : "(stopped at the token limit)");
        var message = new JsonObject { ["role"] = "assistant", ["content"] = content.ToString() };
        if (reasoning.Length > 0) message["reasoning_content"] = reasoning.ToString();
        conversation.Add(message);
        return reasoning.ToString();
    }
}
