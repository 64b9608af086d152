using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Cli;

/// <summary><c>kimi quantize</c> (post-training INT4 / FP8) and <c>kimi perplexity</c> (to measure what it cost).</summary>
internal static class QuantizeCommand
{
    public static int Quantize(CommandLine options, TextWriter stdout)
    {
        options.AllowOnly("model", "out", "quant");
        var target = options.Get("quant") switch
        {
            null or "int4" => QuantizationTarget.Int4Experts,
            "fp8" => QuantizationTarget.Fp8Block,
            "bf16" => QuantizationTarget.Bf16,
            var q => throw new UsageException($"--quant must be int4, fp8 or bf16, got '{q}'"),
        };
        string output = options.Require("out");
        int count = PostTrainingQuantizer.Quantize(options.Require("model"), output, target);
        stdout.WriteLine($"quantized {count} weights to {target switch { QuantizationTarget.Int4Experts => "INT4 (routed experts, group 32)", QuantizationTarget.Fp8Block => "FP8 (128×128 blocks)", _ => "BF16" }} in {output}");
        return 0;
    }

    public static int Perplexity(CommandLine options, TextWriter stdout, CancellationToken cancellationToken)
    {
        options.AllowOnly("model", "text", "window");
        string dir = options.Require("model");
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);
        var tokens = tokenizer.Encode(File.ReadAllText(options.Require("text")), allowSpecial: false).ToArray();
        using var model = KimiModel.Load(dir);
        double nll = Evaluation.MeanNegativeLogLikelihood(model, tokens, options.Int("window") ?? 512, cancellationToken);
        stdout.WriteLine($"{tokens.Length} tokens: loss {nll:F4} nats/token, perplexity {Math.Exp(nll):F3}");
        return 0;
    }
}
