using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Cli;

/// <summary><c>kimi logits</c>: the verification tool. Writes float32 logits [tokens, vocab] for every position.</summary>
public static class LogitsCommand
{
    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowOnly("model", "tokens", "out", "incremental", "threads");
        string modelDir = options.Require("model");
        string outPath = options.Require("out");
        int[] tokens = ParseTokens(options.Require("tokens"));
        if (options.Int("threads") is int threads)
            KernelThreading.MaxThreads = threads >= 1 ? threads : throw new UsageException("--threads must be at least 1");
        bool incremental = options.Has("incremental");

        using var model = KimiModel.Load(modelDir);
        ConfigWarnings.Report(model.Config, stderr);
        int vocab = model.Config.VocabSize;
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
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--tokens needs at least one token id");
        var tokens = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out tokens[i]) || tokens[i] < 0)
                throw new UsageException($"--tokens: '{parts[i]}' is not a non-negative integer token id");
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
