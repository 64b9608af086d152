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
        var text = CliOptions.Required("--text", "FILE", "A UTF-8 text file");
        var window = CliOptions.Int("--window", "Tokens per evaluation window", 512, min: 2);
        var int8 = CliOptions.Flag("--int8", "Int8 activations on repacked INT4 weights (the fast mode), to measure what it costs");
        var command = new Command("perplexity", "Mean loss and perplexity of a model on a text file.") { model, text, window, int8 };
        command.SetAction((r, ct) => Perplexity(r.GetValue(model)!, r.GetValue(text)!, r.GetValue(window),
            r.GetValue(int8) ? ActivationPrecision.Int8 : ActivationPrecision.Float32, r.Out(), ct));
        return command;
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
