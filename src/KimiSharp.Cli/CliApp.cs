using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Cli;

/// <summary>
/// The <c>kimi</c> command line (System.CommandLine): one subcommand per verb, each declaring its options with type,
/// default and validation, so help, errors and shell completion come from the same declarations.
/// Exit codes: 0 done, 1 bad model or input (the message names the file, tensor or key), 2 bad command line, 130 cancelled.
/// </summary>
public static class CliApp
{
    public const int Ok = 0, BadInput = 1, BadCommandLine = 2, Cancelled = 130;

    /// <summary>The root command with every verb. Built per run: options are stateless declarations, cheap to make.</summary>
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("kimi — Kimi K2 family models in .NET")
        {
            LogitsCommand.Create(),
            ChatCommand.Create(),
            Code.CodeCommand.Create(),
            TraceCommand.Create(),
            EvalCommand.Create(),
            GenerateCommand.Create(),
            ServeCommand.Create(),
            ChatTemplateCommand.Create(),
            TrainCommand.Create(),
            SynthesizeCommand.Create(),
            RlCommand.Create(),
            QuantizeCommand.CreateQuantize(),
            ExportGgufCommand.Create(),
            QuantizeCommand.CreatePerplexity(),
            InfoCommand.Create(),
            BenchCommand.Create(),
            ServeBenchCommand.Create(),
            SwarmBenchCommand.Create(),
            InitRandomCommand.Create(),
            ImageFeaturesCommand.Create(),
        };
        foreach (var option in root.Options)
        {
            if (option is HelpOption { Action: HelpAction help } helpOption) helpOption.Action = new HelpWithSynopsis(help);
            if (option is VersionOption version) version.Action = new PrintVersion();
        }
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        var root = CreateRootCommand();
        // "kimi" alone prints the help and fails (nothing was done); "kimi help [VERB]" is "kimi [VERB] --help".
        bool bare = args.Length == 0;
        if (bare) args = ["--help"];
        else if (args[0] == "help") args = [.. args[1..], "--help"];

        // No response files: a prompt such as "@alice hi" is text, not a file of arguments. No option bundling either:
        // there are no one-letter options to bundle, and "-3" stays a value.
        var result = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null, EnablePosixBundling = false });
        string verb = result.CommandResult.Command is RootCommand ? "kimi" : $"kimi {result.CommandResult.Command.Name}";
        if (result.Action is ParseErrorAction)
        {
            stderr.WriteLine($"{verb}: {FirstError(result, args)}");
            if (result.CommandResult.Command is not RootCommand) stderr.WriteLine($"Run '{verb} --help' for its options.");
            return BadCommandLine;
        }

        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null, // Program.cs owns Ctrl+C: the first asks the command to stop cleanly
        };
        try
        {
            int code = await result.InvokeAsync(invocation, cancellationToken);
            return bare ? 1 : code; // as before: a bare "kimi" did nothing
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"{verb}: {e.Message}");
            return BadCommandLine;
        }
        catch (Exception e) when (e is ModelConfigException or CheckpointFormatException or ContextLengthExceededException
            or IOException or UnauthorizedAccessException or ArgumentException or System.Text.Json.JsonException or FormatException
            or KimiSharp.Jinja.TemplateException or KimiSharp.Tokens.Tokenization.TokenizerFormatException
            or KimiSharp.Engine.RequestTooLargeException or KimiSharp.Client.ChatEndpointException or KimiSharp.Agent.Mcp.McpConfigException
            or KimiSharp.Vision.VisionConfigException or KimiSharp.Vision.ImageDecodeException or KimiSharp.Vision.VideoDecodeException)
        {
            stderr.WriteLine($"{verb}: error: {e.Message}");
            return BadInput;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine($"{verb}: cancelled");
            return Cancelled;
        }
    }

    /// <summary>
    /// The one message a bad command line gets, in the order a reader fixes them: an unknown word, a missing required
    /// option, then the parser's and the validators' own messages (each names its option).
    /// </summary>
    private static string FirstError(ParseResult result, IReadOnlyList<string> args)
    {
        var command = result.CommandResult.Command;
        foreach (string token in result.UnmatchedTokens)
        {
            if (command is RootCommand)
                return token.StartsWith('-') ? $"unknown option {token}. Run 'kimi --help' for the list."
                    : $"unknown command '{token}'. Run 'kimi --help' for the list.";
            // A word right after a switch was meant as its value ("--int8 yes"); say so rather than "unexpected argument".
            int at = IndexOf(args, token);
            if (at > 0 && FindOption(command, args[at - 1]) is { Arity.MaximumNumberOfValues: 0 } flag)
                return $"{flag.Name} takes no value (got '{token}')";
            return token.StartsWith("--", StringComparison.Ordinal) ? $"unknown option {token.Split('=')[0]}" : $"unexpected argument '{token}'";
        }
        foreach (var option in command.Options)
            if (option.Required && result.GetResult(option) is null or { Implicit: true } or { IdentifierTokenCount: 0 }) return $"missing {option.Name}";
        return result.Errors.Count > 0 ? result.Errors[0].Message : "invalid command line";
    }

    private static int IndexOf(IReadOnlyList<string> args, string token)
    {
        for (int i = 0; i < args.Count; i++) if (args[i] == token) return i;
        return -1;
    }

    private static Option? FindOption(Command command, string name)
    {
        foreach (var option in command.Options)
            if (option.Name == name || option.Aliases.Contains(name)) return option;
        return null;
    }

    /// <summary>
    /// The generated help; the root's is followed by one synopsis line per verb, built from the verbs' own option
    /// declarations (required options bare, the others bracketed).
    /// </summary>
    private sealed class HelpWithSynopsis(HelpAction generated) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            generated.Invoke(parseResult);
            if (parseResult.CommandResult.Command is not RootCommand root) return Ok;
            var output = parseResult.Out();
            output.WriteLine("Synopsis:");
            foreach (var verb in root.Subcommands)
                if (!verb.Hidden) output.WriteLine("  " + Synopsis(verb));
            output.WriteLine();
            output.WriteLine("""
                Run 'kimi COMMAND --help' for a command's options, their defaults and what they do.
                A model folder is a Hugging Face checkpoint: config.json plus model.safetensors or sharded
                model-*.safetensors with model.safetensors.index.json (BF16/F16/F32, FP8 block, INT4 compressed-tensors).
                Shell completion: kimi "[suggest:POSITION]" "COMMAND LINE" prints the completions at POSITION (see README).
                """);
            return Ok;
        }
    }

    /// <summary>"kimi logits --model DIR --tokens IDS --out FILE [--incremental] [--threads N]": required options bare, others bracketed.</summary>
    internal static string Synopsis(Command verb)
    {
        var line = new System.Text.StringBuilder("kimi ").Append(verb.Name);
        foreach (var option in verb.Options)
        {
            if (option.Hidden || option is HelpOption) continue;
            string part = option.Arity.MaximumNumberOfValues == 0 ? option.Name : $"{option.Name} {option.HelpName ?? "VALUE"}";
            if (option.Arity.MaximumNumberOfValues > 1) part += " ...";
            line.Append(' ').Append(option.Required ? part : $"[{part}]");
        }
        foreach (var argument in verb.Arguments)
            line.Append($" [{argument.HelpName ?? argument.Name}]");
        return line.ToString();
    }

    /// <summary>--version prints the bare version (not the build's commit suffix).</summary>
    private sealed class PrintVersion : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.Out().WriteLine(typeof(CliApp).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
            return Ok;
        }
    }
}

/// <summary>A command line that does not make sense; exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
