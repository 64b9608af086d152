using System.CommandLine;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Cli;

/// <summary><c>kimi generate</c>: raw completion of a prompt, streamed to stdout.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = ModelLocator.ModelOption();
        var prompt = CliOptions.Required("--prompt", "TEXT", "The text to continue (special tokens allowed)");
        var maxTokens = CliOptions.Int("--max-tokens", "Tokens to generate", 128, min: 1);
        var temperature = CliOptions.Number("--temperature", "Sampling temperature (0: greedy)", 0, min: 0, helpName: "T");
        var topP = CliOptions.Number("--top-p", "Nucleus sampling mass", 1, min: 0, max: 1, helpName: "P");
        var seed = CliOptions.OptionalInt("--seed", "Sampling seed");
        var name = ModelLocator.NameOption();
        var kernels = new KernelOptions();
        var images = ImageInputs.Option("An image at the prompt's next <|media_pad|> (without any, each image's K2.5 media block is put before the prompt). Repeatable");
        var command = new Command("generate", "Raw text completion, no chat template.")
        {
            model, prompt, maxTokens, temperature, topP, seed, name, images,
        };
        kernels.AddTo(command);
        command.SetAction(async (r, ct) =>
        {
            var generation = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                Temperature = (float)r.GetValue(temperature),
                TopP = (float)r.GetValue(topP),
                Seed = r.GetValue(seed),
            };
            await using var service = ModelLocator.LoadChat(r.GetValue(model), r.GetValue(name), r.Err(), kernels.Settings(r));
            string[] imageFiles = r.GetValue(images) ?? [];
            ImageInputs.RequireVision(service, imageFiles);
            var decoded = imageFiles.Select(f => ImageInputs.Decode(f, service.MediaOptions)).ToArray();
            return await RunAsync(service, r.GetValue(prompt)!, decoded, generation, r.Out(), r.Err(), ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(KimiChatService service, string prompt, KimiSharp.Vision.RgbImage[] images, GenerationOptions generation,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var tokens = service.Tokenizer.Encode(prompt, allowSpecial: true);
        if (images.Length > 0 && !tokens.Contains(service.Vision!.PlaceholderTokenId))
        {
            // K2.5's media block per image, as its chat template writes it, ahead of the text.
            const string block = "<|media_begin|>image<|media_content|><|media_pad|><|media_end|>";
            tokens = service.Tokenizer.Encode(string.Concat(Enumerable.Repeat(block, images.Length)) + prompt, allowSpecial: true);
        }
        ChatCompleted? done = null;
        // Decode speed: the generated tokens over the time from the prompt's end (its prefill done) to the last token.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TimeSpan? started = null;
        await foreach (var e in service.CompleteAsync(tokens, images, generation, [], cancellationToken))
        {
            if (e is ChatStarted) started = clock.Elapsed;
            else if (e is ChatOutput { Piece: ContentDelta d }) { stdout.Write(d.Text); stdout.Flush(); }
            else if (e is ChatCompleted c) done = c;
        }
        var elapsed = clock.Elapsed;
        stdout.WriteLine();
        if (done is not null)
        {
            var kernels = service.Model.Kernels;
            double decodeSeconds = (elapsed - (started ?? elapsed)).TotalSeconds;
            string speed = done.Usage.CompletionTokens > 1 && decodeSeconds > 0
                ? $", decode {done.Usage.CompletionTokens / decodeSeconds:F1} tokens/s" : "";
            stderr.WriteLine($"[{done.Usage.PromptTokens} prompt{(done.Usage.ImageTokens > 0 ? $" ({done.Usage.ImageTokens} image)" : "")} + {done.Usage.CompletionTokens} generated tokens, finish: {done.FinishReason}{speed}; " +
                $"{(kernels.Int8Activations ? "int8" : "float32")} activations, {kernels.MaxThreads} threads]");
        }
        return 0;
    }
}
