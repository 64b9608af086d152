using System.Buffers.Binary;
using System.Text.Json;

namespace KimiSharp.Model.Tests.Reference;

/// <summary>One golden folder under tests/golden: checkpoint, token ids and float32 logits [tokens, vocab].</summary>
public sealed record GoldenCase(string Directory, int[] Tokens, float[] Logits, int Rows, int Vocab)
{
    /// <summary>Locates the golden checkpoints: env KIMI_GOLDEN_DIR, else tests/golden in the repository (a copy of shared/golden).</summary>
    public static string Root
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable("KIMI_GOLDEN_DIR");
            if (!string.IsNullOrEmpty(fromEnv)) return Path.GetFullPath(fromEnv);
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx")))
                    return Path.Combine(dir.FullName, "tests", "golden");
            }
            throw new DirectoryNotFoundException($"No KimiSharp.slnx above {AppContext.BaseDirectory}; set KIMI_GOLDEN_DIR.");
        }
    }

    public static GoldenCase Load(string name)
    {
        string dir = Path.Combine(Root, name);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "golden.json")));
        var root = doc.RootElement;
        int[] tokens = root.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string logitsFile = root.TryGetProperty("logits_file", out var lf) ? lf.GetString()! : "logits.f32";
        byte[] raw = File.ReadAllBytes(Path.Combine(dir, logitsFile));
        var logits = new float[raw.Length / 4];
        for (int i = 0; i < logits.Length; i++) logits[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(4 * i));
        int[] shape = root.TryGetProperty("shape", out var s)
            ? s.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : [tokens.Length, logits.Length / tokens.Length];
        if (shape[0] * shape[1] != logits.Length) throw new InvalidDataException($"{name}: logits file does not match shape.");
        return new GoldenCase(dir, tokens, logits, shape[0], shape[1]);
    }

    /// <summary>max|actual - golden| / max|golden|.</summary>
    public double RelativeError(double[] actual)
    {
        if (actual.Length != Logits.Length) throw new ArgumentException($"Expected {Logits.Length} logits, got {actual.Length}.");
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - Logits[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)Logits[i]));
        }
        return maxDiff / maxRef;
    }
}
