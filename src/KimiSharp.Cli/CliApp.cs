using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Cli;

/// <summary>The <c>kimi</c> command line: dispatches to one command per verb.</summary>
public static class CliApp
{
    public const string Usage = """
        kimi — Kimi K2 family models in .NET

        Usage:
          kimi logits --model DIR --tokens 1,2,3 --out FILE [--incremental] [--threads N]
              Run the model over the token ids and write little-endian float32 logits [tokens, vocab].
              --incremental feeds the tokens one at a time through the KV cache.
          kimi info --model DIR
              Print the model's architecture, weight formats and size.
          kimi --help | --version

        A model folder is a Hugging Face checkpoint: config.json plus model.safetensors or sharded
        model-*.safetensors with model.safetensors.index.json (BF16/F16/F32, FP8 block, INT4 compressed-tensors).
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? 1 : 0;
        }
        if (args[0] is "--version")
        {
            stdout.WriteLine(typeof(CliApp).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
            return 0;
        }
        try
        {
            var options = CommandLine.Parse(args.AsSpan(1));
            if (options.Has("help")) { stdout.WriteLine(Usage); return 0; }
            switch (args[0])
            {
                case "logits": return await LogitsCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "info": return InfoCommand.Run(options, stdout, stderr);
                default:
                    stderr.WriteLine($"kimi: unknown command '{args[0]}'. Run 'kimi --help' for the list.");
                    return 2;
            }
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"kimi {args[0]}: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ModelConfigException or CheckpointFormatException or ContextLengthExceededException
            or IOException or UnauthorizedAccessException or ArgumentException)
        {
            stderr.WriteLine($"kimi {args[0]}: error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine($"kimi {args[0]}: cancelled");
            return 130;
        }
    }
}

/// <summary>A command line that does not make sense; exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>--name value and --flag options.</summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = [];

    public static CommandLine Parse(ReadOnlySpan<string> args)
    {
        var result = new CommandLine();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) { result.Positional.Add(a); continue; }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) value = args[++i];
            result._values[name] = value;
        }
        return result;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public string Require(string name) =>
        Get(name) ?? throw new UsageException(Has(name) ? $"--{name} needs a value" : $"missing --{name}");

    public int? Int(string name)
    {
        string? v = Get(name);
        if (v is null) return Has(name) ? throw new UsageException($"--{name} needs a value") : null;
        return int.TryParse(v, out int i) ? i : throw new UsageException($"--{name} must be an integer, got '{v}'");
    }

    /// <summary>Rejects options the command does not know, so a typo is not silently ignored.</summary>
    public void AllowOnly(params string[] names)
    {
        foreach (var key in _values.Keys)
            if (!names.Contains(key)) throw new UsageException($"unknown option --{key}");
        if (Positional.Count > 0) throw new UsageException($"unexpected argument '{Positional[0]}'");
    }
}
