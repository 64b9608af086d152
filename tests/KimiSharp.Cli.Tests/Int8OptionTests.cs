using KimiSharp.Testing;
using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Engine.Chat;

namespace KimiSharp.Cli.Tests;

/// <summary>Tests that switch process-wide kernel settings (int8 activations) run alone.</summary>
[CollectionDefinition(nameof(KernelSettingsCollection), DisableParallelization = true)]
public sealed class KernelSettingsCollection;

/// <summary><c>--int8</c> on chat, generate and serve: the fast activation mode for a command's lifetime only.</summary>
[Collection(nameof(KernelSettingsCollection))]
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
    public async Task Generate_and_chat_run_with_int8_activations_and_leave_the_default_behind()
    {
        Assert.False(MatrixKernels.Int8Activations);
        var exact = await Kimi.Run("generate", "--model", Model, "--prompt", "hello", "--max-tokens", "6", "--temperature", "0");
        Assert.True(exact.Code == 0, exact.Err);
        var fast = await Kimi.Run("generate", "--model", Model, "--prompt", "hello", "--max-tokens", "6", "--temperature", "0", "--int8");
        Assert.True(fast.Code == 0, fast.Err);
        Assert.Contains("generated tokens", fast.Err);
        Assert.False(MatrixKernels.Int8Activations); // restored when the command ends

        // "--int8 question": the question is not taken for the flag's value.
        var chat = await Kimi.Run("chat", "--model", Model, "--no-tools", "--int8", "hi", "--max-tokens", "4");
        Assert.True(chat.Code == 0, chat.Err);
        Assert.False(MatrixKernels.Int8Activations);
    }

    [Fact]
    public async Task Int8_takes_no_value_where_a_command_has_no_free_arguments()
    {
        var (code, _, err) = await Kimi.Run("generate", "--model", Model, "--prompt", "hello", "--int8", "yes");
        Assert.Equal(2, code);
        Assert.Contains("--int8 takes no value (got 'yes')", err);
        Assert.False(MatrixKernels.Int8Activations);
    }
}
