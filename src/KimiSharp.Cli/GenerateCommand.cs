using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Cli;

/// <summary><c>kimi generate</c>: raw completion of a prompt, streamed to stdout.</summary>
internal static class GenerateCommand
{
    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowOnly("model", "prompt", "max-tokens", "temperature", "top-p", "seed", "name", "threads", "int8");
        using var activations = ModelLocator.ActivationMode(options);
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);
        string prompt = options.Require("prompt");
        var generation = new GenerationOptions
        {
            MaxTokens = options.Int("max-tokens") ?? 128,
            Temperature = (float)(options.Double("temperature") ?? 0),
            TopP = (float)(options.Double("top-p") ?? 1),
            Seed = options.Int("seed"),
        };
        await using var service = ModelLocator.LoadChat(options, stderr);
        var tokens = service.Tokenizer.Encode(prompt, allowSpecial: true);
        ChatCompleted? done = null;
        await foreach (var e in service.CompleteAsync(tokens, generation, [], cancellationToken))
        {
            if (e is ChatOutput { Piece: ContentDelta d }) { stdout.Write(d.Text); stdout.Flush(); }
            else if (e is ChatCompleted c) done = c;
        }
        stdout.WriteLine();
        if (done is not null)
            stderr.WriteLine($"[{done.Usage.PromptTokens} prompt + {done.Usage.CompletionTokens} generated tokens, finish: {done.FinishReason}]");
        return 0;
    }
}
