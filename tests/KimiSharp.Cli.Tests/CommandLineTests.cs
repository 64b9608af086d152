using System.CommandLine;
using System.Text.Json.Nodes;

namespace KimiSharp.Cli.Tests;

/// <summary>
/// The command line itself: generated help for every verb, parse errors (exit 2, naming the option), shell completion,
/// and the input errors that used to be wrong or unclear.
/// </summary>
public sealed class CommandLineTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-cmdline-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string Golden(string name) =>
        Path.Combine(Environment.GetEnvironmentVariable("KIMI_GOLDEN_DIR") ?? Path.Combine(LogitsCommandTests.RepositoryRoot, "tests", "golden"), name);

    public static TheoryData<string> Verbs()
    {
        var data = new TheoryData<string>();
        foreach (var verb in CliApp.CreateRootCommand().Subcommands) data.Add(verb.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public async Task Every_verb_has_generated_help_naming_each_of_its_options(string verb)
    {
        var command = CliApp.CreateRootCommand().Subcommands.Single(c => c.Name == verb);
        var (code, output, error) = await Kimi.Run(verb, "--help");
        Assert.True(code == 0, error);
        Assert.Matches($@"Usage:\s+\S+ {verb} ", output); // the root's name is the host's (testhost here)
        foreach (var option in command.Options)
        {
            Assert.Contains(option.Name, output);
            Assert.False(string.IsNullOrWhiteSpace(option.Description), $"{verb} {option.Name} has no description");
        }
        // "kimi help VERB" is the same page.
        Assert.Equal(output, (await Kimi.Run("help", verb)).Out);
    }

    [Fact]
    public async Task Root_help_has_one_synopsis_line_per_verb_built_from_its_options()
    {
        var (code, output, _) = await Kimi.Run("--help");
        Assert.Equal(0, code);
        foreach (var verb in CliApp.CreateRootCommand().Subcommands)
            Assert.Contains("  " + CliApp.Synopsis(verb) + "\n", output.ReplaceLineEndings("\n"));
        // Required options bare, optional ones bracketed, switches without a value name.
        Assert.Contains("kimi logits --model DIR --tokens IDS --out FILE [--incremental] [--threads N]", output);
        Assert.Equal(1, (await Kimi.Run()).Code); // bare "kimi" prints the help but did nothing
    }

    [Theory]
    [InlineData("--max-tokens must be an integer, got 'abc'", "generate", "--prompt", "x", "--max-tokens", "abc")]
    [InlineData("--max-tokens must be at least 1, got 0", "generate", "--prompt", "x", "--max-tokens", "0")]
    [InlineData("--temperature must be at least 0, got -1", "generate", "--prompt", "x", "--temperature", "-1")]
    [InlineData("--top-p must be between 0 and 1, got 1.5", "generate", "--prompt", "x", "--top-p", "1.5")]
    [InlineData("--quant must be int4, int4-all, fp8 or bf16, got 'int3'", "init-random", "--config", "c.json", "--out", "o", "--quant", "int3")]
    [InlineData("--threads must be at least 1, got 0", "logits", "--model", "m", "--tokens", "1", "--out", "o", "--threads", "0")]
    [InlineData("missing --prompt", "generate", "--max-tokens", "3")]
    [InlineData("'--prompt'", "generate", "--prompt")]
    [InlineData("unknown option --frobnicate", "info", "--model", "m", "--frobnicate")]
    [InlineData("--incremental takes no value (got 'yes')", "logits", "--model", "m", "--tokens", "1", "--out", "o", "--incremental", "yes")]
    [InlineData("--max-steps needs tools (drop --no-tools)", "chat", "--no-tools", "--max-steps", "3", "hi")]
    [InlineData("give --resume or --export-state, not both", "train", "--config", "c.json", "--resume", "--export-state", "d")]
    [InlineData("--samples must be at least 2, got 1", "rl", "--config", "c.json", "--from", "r", "--out", "o", "--samples", "1")]
    [InlineData("--horizons takes positive integers separated by commas, got '1,0'", "eval", "--suite", "tool-use", "--horizons", "1,0")]
    [InlineData("--items takes task sizes from 5 to 100 cities separated by commas, got '10,101'", "eval", "--suite", "wide", "--items", "10,101")]
    [InlineData("--wide-items takes task sizes from 5 to 100 cities separated by commas, got '4'", "rl", "--config", "c.json", "--from", "r", "--out", "o", "--wide-items", "4")]
    [InlineData("--wide-share must be between 0 and 1, got 1.5", "rl", "--config", "c.json", "--from", "r", "--out", "o", "--wide-share", "1.5")]
    [InlineData("--wide-max-items 101: a wide task has at most 100 cities", "synthesize", "--out", "o", "--wide-max-items", "101")]
    public async Task Bad_command_lines_exit_2_with_a_message_naming_the_option(string message, params string[] args)
    {
        var (code, output, error) = await Kimi.Run(args);
        Assert.Equal(2, code);
        Assert.Contains($"kimi {args[0]}: ", error);
        Assert.Contains(message, error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Completion_directive_suggests_verbs_options_and_choices()
    {
        var verbs = (await Kimi.Run("[suggest:8]", "kimi gen")).Out.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["generate"], verbs);
        string line = "kimi export-gguf --quant ";
        var choices = (await Kimi.Run($"[suggest:{line.Length}]", line)).Out.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["f32", "q4_0"], choices.Order());
        line = "kimi bench --float";
        Assert.Contains("--float32", (await Kimi.Run($"[suggest:{line.Length}]", line)).Out);
    }

    [Fact]
    public async Task Values_that_look_like_negative_numbers_or_options_are_values()
    {
        // Old parser: "--seed -3" took "-3" for an option. Now it is the seed (and the run fails later, on the model).
        var (code, _, error) = await Kimi.Run("generate", "--model", Path.Combine(_scratch, "none"), "--prompt", "x", "--seed", "-3");
        Assert.Equal(1, code);
        Assert.Contains(Path.Combine(_scratch, "none"), error);
    }

    [Fact]
    public async Task Option_values_starting_with_an_at_sign_are_text_not_response_files()
    {
        string messages = Path.Combine(_scratch, "m.json");
        File.WriteAllText(messages, """[{"role":"user","content":"hi"}]""");
        var (code, output, error) = await Kimi.Run("chat-template", "--messages", messages, "--var", "@who=x");
        Assert.True(code == 0, error);
        Assert.Contains("hi", output);
    }

    [Theory]
    [InlineData("1,,2")]
    [InlineData("1,2,")]
    [InlineData(",1")]
    public async Task Logits_rejects_an_empty_token_item_instead_of_skipping_it(string tokens)
    {
        string output = Path.Combine(_scratch, "out.f32");
        var (code, _, error) = await Kimi.Run("logits", "--model", Golden("tiny-a-bf16"), "--tokens", tokens, "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("--tokens", error);
        Assert.Contains("is empty", error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task An_out_of_range_token_id_is_named_with_the_vocabulary_size()
    {
        string output = Path.Combine(_scratch, "out.f32");
        var (code, _, error) = await Kimi.Run("logits", "--model", Golden("tiny-a-bf16"), "--tokens", "3,99999,4", "--out", output);
        Assert.Equal(1, code);
        Assert.Matches(@"kimi logits: error: --tokens: token id 99999 is outside the vocabulary \(vocab_size \d+, ids 0 to \d+\)", error);
        Assert.DoesNotContain("Actual value", error);
        Assert.DoesNotContain("Parameter", error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task A_bad_model_in_a_training_config_names_the_users_file()
    {
        var model = TinyTrainModel.Config();
        model["hidden_act"] = "gelu";
        string config = Path.Combine(_scratch, "my.json");
        File.WriteAllText(config, new JsonObject { ["model"] = model, ["steps"] = 1, ["out"] = Path.Combine(_scratch, "run") }.ToJsonString());
        var (code, _, error) = await Kimi.Run("train", "--config", config);
        Assert.Equal(1, code);
        Assert.Contains($"{config}: model: hidden_act 'gelu' is not supported", error);
        Assert.DoesNotContain("error: config.json", error);
    }

    [Fact]
    public async Task A_config_json_symlink_loop_is_reported_as_a_loop_not_as_missing()
    {
        string dir = Directory.CreateDirectory(Path.Combine(_scratch, "looped")).FullName;
        File.CreateSymbolicLink(Path.Combine(dir, "config.json"), Path.Combine(dir, "config.json"));
        var (code, _, error) = await Kimi.Run("info", "--model", dir);
        Assert.Equal(1, code);
        Assert.Contains("config.json: symbolic link loop", error);
        Assert.DoesNotContain("not found", error);

        // So is a model folder that is itself a looping link (this one used to be "config.json: not found").
        string folder = Path.Combine(_scratch, "folder-loop");
        Directory.CreateSymbolicLink(folder, folder);
        (code, _, error) = await Kimi.Run("info", "--model", folder);
        Assert.Equal(1, code);
        Assert.Contains($"{folder}: symbolic link loop", error);
        Assert.DoesNotContain("not found", error);

        // A link to a missing file says where it points.
        string dangling = Directory.CreateDirectory(Path.Combine(_scratch, "dangling")).FullName;
        File.CreateSymbolicLink(Path.Combine(dangling, "config.json"), Path.Combine(_scratch, "gone.json"));
        (code, _, error) = await Kimi.Run("info", "--model", dangling);
        Assert.Equal(1, code);
        Assert.Contains($"symbolic link to {Path.Combine(_scratch, "gone.json")}, which does not exist", error);
    }
}
