using KimiSharp.Kernels;
using System.CommandLine;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Cli;

/// <summary><c>kimi quantize</c> (post-training INT4 / FP8) and <c>kimi perplexity</c> (to measure what it cost).</summary>
internal static class QuantizeCommand
{
    public static Command CreateQuantize()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder to quantize");
        var output = CliOptions.Required("--out", "DIR", "Where to write the quantized model folder");
        var quant = CliOptions.Choice("--quant", "int4: routed experts as K2 Thinking's INT4 (group 32); fp8: DeepSeek-V3's 128×128 block FP8; bf16",
            "int4", "int4", "fp8", "bf16");
        var command = new Command("quantize",
            "Post-training quantization to K2 Thinking's INT4 (routed experts) or DeepSeek-V3's FP8 block format.") { model, output, quant };
        command.SetAction(r => Quantize(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(quant) switch
        {
            "fp8" => QuantizationTarget.Fp8Block,
            "bf16" => QuantizationTarget.Bf16,
            _ => QuantizationTarget.Int4Experts,
        }, r.Out(), r.Err()));
        return command;
    }

    public static Command CreatePerplexity()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder");
        var text = CliOptions.Text("--text", "FILE", "A UTF-8 text file to score");
        var special = CliOptions.Flag("--special", "Read special tokens written in the text (<|im_end|>, …) as themselves, as in a rendered chat");
        var sampled = CliOptions.OptionalInt("--sampled", "Instead of a text: score N tokens the model samples from itself on the exact path (temperature 1), e.g. for a checkpoint without a tokenizer", min: 2);
        var seed = CliOptions.Int("--seed", "Seed of --sampled", 1);
        var window = CliOptions.Int("--window", "Tokens per evaluation window", 512, min: 2);
        var int8 = CliOptions.Flag("--int8", "Int8 activations on repacked INT4 weights (the fast mode), to measure what it costs");
        var threads = CliOptions.Threads();
        var command = new Command("perplexity", "Mean loss and perplexity of a model on a text file (or on tokens it samples itself).")
        {
            model, text, special, sampled, seed, window, int8, threads,
        };
        command.Exclusive(text, sampled, "give --text or --sampled, not both");
        command.Validators.Add(r =>
        {
            if (r.GetResult(text) is null && r.GetResult(sampled) is null) r.AddError("missing --text (or --sampled N)");
        });
        command.SetAction((r, ct) =>
        {
            var kernels = new KernelSettings { Activations = r.GetValue(int8) ? ActivationPrecision.Int8 : ActivationPrecision.Float32 };
            if (r.GetValue(threads) is int count) kernels = kernels with { MaxThreads = count };
            string dir = r.GetValue(model)!;
            var source = r.GetValue(sampled) is int n
                ? new PerplexitySource(null, false, n, r.GetValue(seed))
                : new PerplexitySource(r.GetValue(text), r.GetValue(special), 0, 0);
            return Perplexity(dir, source, r.GetValue(window), kernels, r.Out(), ct);
        });
        return command;
    }

    /// <summary>What <c>kimi perplexity</c> scores: a text file, or <paramref name="Sampled"/> tokens the model samples itself.</summary>
    public sealed record PerplexitySource(string? TextPath, bool Special, int Sampled, int Seed);

    public static Task<int> Perplexity(string dir, PerplexitySource source, int window, KernelSettings kernels, TextWriter stdout, CancellationToken cancellationToken)
    {
        int[] tokens;
        string what;
        if (source.TextPath is { } path)
        {
            var tokenizer = KimiTokenizer.FromModelDirectory(dir);
            tokens = tokenizer.Encode(File.ReadAllText(path), allowSpecial: source.Special).ToArray();
            what = "tokens";
        }
        else
        {
            // Sampled on the exact path whatever is being scored, so float32 and int8 score the same stream.
            using var reference = KimiModel.Load(dir, new KimiModelLoadOptions { Kernels = kernels with { Activations = ActivationPrecision.Float32 } });
            tokens = Sample(reference, source.Sampled, source.Seed, cancellationToken);
            what = $"tokens sampled from the model (seed {source.Seed})";
        }
        using var model = KimiModel.Load(dir, new KimiModelLoadOptions { Kernels = kernels });
        double nll = Evaluation.MeanNegativeLogLikelihood(model, tokens, window, cancellationToken);
        stdout.WriteLine($"{tokens.Length} {what}: loss {nll:F4} nats/token, perplexity {Math.Exp(nll):F3} ({(kernels.Int8Activations ? "int8" : "float32")} activations)");
        return Task.FromResult(0);
    }

    /// <summary><paramref name="count"/> tokens drawn one by one from the model's own distribution (temperature 1).</summary>
    private static int[] Sample(KimiModel model, int count, int seed, CancellationToken cancellationToken)
    {
        int vocab = model.Config.VocabSize;
        count = Math.Min(count, model.Config.MaxPositionEmbeddings);
        var random = new Random(seed);
        var tokens = new int[count];
        tokens[0] = random.Next(vocab);
        var cache = model.CreateCache(count);
        var logits = new float[vocab];
        for (int i = 1; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.Forward(tokens.AsSpan(i - 1, 1), cache, logits);
            float max = float.NegativeInfinity;
            foreach (float v in logits) max = Math.Max(max, v);
            double total = 0;
            foreach (float v in logits) total += Math.Exp(v - max);
            double target = random.NextDouble() * total, running = 0;
            int chosen = vocab - 1;
            for (int t = 0; t < vocab; t++)
            {
                running += Math.Exp(logits[t] - max);
                if (running >= target) { chosen = t; break; }
            }
            tokens[i] = chosen;
        }
        return tokens;
    }

    public static int Quantize(string modelDir, string output, QuantizationTarget target, TextWriter stdout, TextWriter stderr)
    {
        int count = Terminal.Spin(stderr, $"quantizing {modelDir} into {output}", () => PostTrainingQuantizer.Quantize(modelDir, output, target));
        stdout.WriteLine($"quantized {count} weights to {target switch { QuantizationTarget.Int4Experts => "INT4 (routed experts, group 32)", QuantizationTarget.Fp8Block => "FP8 (128×128 blocks)", _ => "BF16" }} in {output}");
        return 0;
    }

    public static Task<int> Perplexity(string dir, string textPath, int window, ActivationPrecision activations, TextWriter stdout, CancellationToken cancellationToken)
    {
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);
        var tokens = tokenizer.Encode(File.ReadAllText(textPath), allowSpecial: false).ToArray();
        using var model = KimiModel.Load(dir, new KimiModelLoadOptions { Kernels = new KernelSettings { Activations = activations } });
        double nll = Evaluation.MeanNegativeLogLikelihood(model, tokens, window, cancellationToken);
        stdout.WriteLine($"{tokens.Length} tokens: loss {nll:F4} nats/token, perplexity {Math.Exp(nll):F3} ({(activations == ActivationPrecision.Int8 ? "int8" : "float32")} activations)");
        return Task.FromResult(0);
    }
}
