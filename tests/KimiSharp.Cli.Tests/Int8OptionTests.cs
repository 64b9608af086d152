using System.CommandLine;
using KimiSharp.Testing;
using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli.Tests;

/// <summary>
/// <c>--int8</c>, <c>--exact</c> and <c>--threads</c> on chat, generate, serve and eval: kernel settings the model is
/// loaded with (nothing process-wide, so these tests run beside the others).
/// </summary>
public sealed class Int8OptionTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-int8-cli-").FullName;
    private string Model => Path.Combine(_scratch, "model");

    public Int8OptionTests() =>
        RandomChatModel.Write(Model, new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MoeIntermediateSize = 32, MaxPositionEmbeddings = 512,
            Format = CheckpointFormat.Int4, Int4AllLinears = true, Seed = 4,
        });

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    [Fact]
    public async Task Generate_loads_the_model_with_the_activations_and_threads_asked_for()
    {
        string[] args = ["generate", "--model", Model, "--prompt", "hello", "--max-tokens", "6", "--temperature", "0"];
        var byDefault = await Kimi.Run([.. args]);
        Assert.True(byDefault.Code == 0, byDefault.Err);
        Assert.Contains($"; {(KernelOptions.ServingDefault == ActivationPrecision.Int8 ? "int8" : "float32")} activations, {Environment.ProcessorCount} threads]", byDefault.Err);

        var exact = await Kimi.Run([.. args, "--exact", "--threads", "1"]);
        Assert.True(exact.Code == 0, exact.Err);
        Assert.Contains("; float32 activations, 1 threads]", exact.Err);

        var fast = await Kimi.Run([.. args, "--int8", "--threads", "2"]);
        Assert.True(fast.Code == 0, fast.Err);
        Assert.Contains("; int8 activations, 2 threads]", fast.Err);

        // "--int8 question": the question is not taken for the flag's value.
        var chat = await Kimi.Run("chat", "--model", Model, "--no-tools", "--int8", "hi", "--max-tokens", "4");
        Assert.True(chat.Code == 0, chat.Err);
    }

    [Fact]
    public async Task Int8_and_exact_exclude_each_other_and_take_no_value()
    {
        var both = await Kimi.Run("generate", "--model", Model, "--prompt", "hello", "--int8", "--exact");
        Assert.Equal(2, both.Code);
        Assert.Contains("--int8 and --exact exclude each other", both.Err);

        var (code, _, err) = await Kimi.Run("generate", "--model", Model, "--prompt", "hello", "--int8", "yes");
        Assert.Equal(2, code);
        Assert.Contains("--int8 takes no value (got 'yes')", err);
    }

    [Fact]
    public async Task Perplexity_scores_a_text_or_tokens_the_model_samples_with_either_precision()
    {
        string text = Path.Combine(_scratch, "chat.txt");
        File.WriteAllText(text, "<|im_user|>user<|im_middle|>hello there<|im_end|> and some plain words after it");
        var plain = await Kimi.Run("perplexity", "--model", Model, "--text", text);
        var special = await Kimi.Run("perplexity", "--model", Model, "--text", text, "--special");
        Assert.True(plain.Code == 0 && special.Code == 0, plain.Err + special.Err);
        int Tokens(string output) => int.Parse(output.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Tokens(special.Out) < Tokens(plain.Out), "special tokens read as themselves take one token each");

        var exact = await Kimi.Run("perplexity", "--model", Model, "--sampled", "40", "--seed", "3");
        var int8 = await Kimi.Run("perplexity", "--model", Model, "--sampled", "40", "--seed", "3", "--int8", "--threads", "1");
        Assert.True(exact.Code == 0 && int8.Code == 0, exact.Err + int8.Err);
        Assert.StartsWith("40 tokens sampled from the model (seed 3)", exact.Out);
        Assert.Contains("(float32 activations)", exact.Out);
        Assert.Contains("(int8 activations)", int8.Out);
        // The same sampled stream, scored two ways: close, and not the same numbers.
        Assert.NotEqual(exact.Out.Replace("float32", ""), int8.Out.Replace("int8", ""));

        var neither = await Kimi.Run("perplexity", "--model", Model);
        Assert.Equal(2, neither.Code);
        Assert.Contains("missing --text (or --sampled N)", neither.Err);
        var both = await Kimi.Run("perplexity", "--model", Model, "--text", text, "--sampled", "8");
        Assert.Equal(2, both.Code);
        Assert.Contains("give --text or --sampled, not both", both.Err);
    }

    [Theory]
    [InlineData(new string[0], null, null)]
    [InlineData(new[] { "--exact" }, ActivationPrecision.Float32, null)]
    [InlineData(new[] { "--int8", "--threads", "3" }, ActivationPrecision.Int8, 3)]
    [InlineData(new[] { "--threads", "1" }, null, 1)]
    public void The_flags_make_the_settings(string[] args, ActivationPrecision? activations, int? threads)
    {
        var options = new KernelOptions();
        var command = new Command("probe");
        options.AddTo(command);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        var settings = options.Settings(parsed);
        Assert.Equal(activations ?? KernelOptions.ServingDefault, settings.Activations);
        Assert.Equal(threads ?? Environment.ProcessorCount, settings.MaxThreads);
    }
}
