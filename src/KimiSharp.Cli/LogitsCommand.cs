using System.CommandLine;
using System.Globalization;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Cli;

/// <summary><c>kimi logits</c>: the verification tool. Writes float32 logits [tokens, vocab] for every position.</summary>
public static class LogitsCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder (config.json and *.safetensors)");
        var tokens = new Option<int[]>("--tokens")
        {
            Description = "Token ids, comma-separated (e.g. 1,2,3)", HelpName = "IDS", Required = true, Arity = ArgumentArity.ExactlyOne,
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0) return [];
                try { return ParseTokens(r.Tokens[^1].Value); }
                catch (UsageException e) { r.AddError(e.Message); return []; }
            },
        };
        var output = CliOptions.Required("--out", "FILE", "Where to write the logits (little-endian float32, [tokens, vocab])");
        var incremental = CliOptions.Flag("--incremental", "Feed the tokens one at a time through the KV cache");
        var threads = CliOptions.Threads();
        var command = new Command("logits",
            "Run the model over token ids and write little-endian float32 logits [tokens, vocab] (the verification tool).")
        {
            model, tokens, output, incremental, threads,
        };
        command.SetAction((r, ct) => RunAsync(r.GetValue(model)!, r.GetValue(tokens)!, r.GetValue(output)!, r.GetValue(incremental),
            r.GetValue(threads), r.Err(), ct));
        return command;
    }

    public static async Task<int> RunAsync(string modelDir, int[] tokens, string outPath, bool incremental, int? threads,
        TextWriter stderr, CancellationToken cancellationToken)
    {
        // The verification tool runs the exact float32 path (the reference the goldens are checked against).
        var kernels = threads is int count ? new KernelSettings { MaxThreads = count } : KernelSettings.Default;
        using var model = KimiModel.Load(modelDir, new KimiModelLoadOptions { Kernels = kernels });
        ConfigWarnings.Report(model.Config, stderr);
        int vocab = model.Config.VocabSize;
        foreach (int token in tokens)
            if (token >= vocab) throw new ArgumentException($"--tokens: token id {token} is outside the vocabulary (vocab_size {vocab}, ids 0 to {vocab - 1})");
        var logits = new float[(long)tokens.Length * vocab];
        if (incremental)
        {
            var cache = model.CreateCache(tokens.Length);
            for (int t = 0; t < tokens.Length; t++)
                model.Forward(tokens.AsSpan(t, 1), cache, logits.AsSpan(t * vocab, vocab), cancellationToken: cancellationToken);
        }
        else
        {
            model.Forward(tokens, model.CreateCache(tokens.Length), logits, cancellationToken: cancellationToken);
        }

        // Write beside the target and rename, so an interrupted run never leaves a half-written file behind.
        string full = Path.GetFullPath(outPath);
        string temporary = full + ".partial";
        await using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
        {
            var bytes = new byte[logits.Length * sizeof(float)];
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()).CopyTo(bytes);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
            await stream.WriteAsync(bytes, cancellationToken);
        }
        File.Move(temporary, full, overwrite: true);
        stderr.WriteLine($"wrote {tokens.Length}×{vocab} float32 logits ({(incremental ? "incremental" : "full sequence")}) to {outPath}");
        return 0;
    }

    public static int[] ParseTokens(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts is [""]) throw new UsageException("--tokens needs at least one token id");
        var tokens = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            // "1,,2" is a typo, not two tokens: an empty item is refused rather than skipped.
            if (parts[i].Length == 0) throw new UsageException($"--tokens: item {i + 1} of '{text}' is empty (token ids are separated by single commas)");
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out tokens[i]))
                throw new UsageException($"--tokens: '{parts[i]}' is not a non-negative integer token id");
        }
        return tokens;
    }
}

internal static class ConfigWarnings
{
    public static void Report(Model.Configuration.ModelConfig config, TextWriter stderr)
    {
        foreach (string key in config.UnknownKeys)
            stderr.WriteLine($"warning: config.json: unknown key '{key}' ignored");
    }
}
