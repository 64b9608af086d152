using System.CommandLine;
using System.Diagnostics;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi export-gguf</c>: writes a model folder as a GGUF file in the llama.cpp / ik_llama.cpp <c>deepseek2</c>
/// layout (<see cref="DeepSeek2GgufLayout"/>), so other engines can run the very same weights (for same-machine
/// comparisons). This command handles the arguments, the temporary file and the progress.
/// </summary>
public static class ExportGgufCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder to export");
        var output = CliOptions.Required("--out", "FILE.gguf", "The GGUF file to write");
        var quant = CliOptions.Choice("--quant", "Matrix encoding: q4_0 (rows that are a multiple of 32; others stay f32) or f32", "q4_0", "q4_0", "f32");
        var command = new Command("export-gguf", """
            Write the model as a GGUF file in llama.cpp's deepseek2 layout (Q4_0 or F32 weights, placeholder vocab),
            so ik_llama.cpp / llama.cpp can be benchmarked on the same weights.
            """)
        {
            model, output, quant,
        };
        command.SetAction((r, ct) => Task.FromResult(Run(r.GetValue(model)!, r.GetValue(output)!,
            r.GetValue(quant) == "f32" ? GgmlType.F32 : GgmlType.Q4_0, r.Out(), r.Err(), ct)));
        return command;
    }

    public static int Run(string modelDir, string outPath, GgmlType matrixType, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        using var model = KimiModel.Load(modelDir);
        var c = model.Config;
        if (c.NGroup > 1 && c.TopkGroup < c.NGroup)
            stderr.WriteLine($"kimi export-gguf: warning: n_group {c.NGroup} / topk_group {c.TopkGroup} is written, but ik_llama.cpp's deepseek2 ignores group-limited routing");

        var gguf = DeepSeek2GgufLayout.Build(model, matrixType, Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar)));
        string partial = outPath + ".partial";
        long size;
        try
        {
            size = Write(gguf, partial, stderr, clock, cancellationToken);
            File.Move(partial, outPath, overwrite: true);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
        double perToken = DeepSeek2GgufLayout.DecodeBytesPerToken(model, matrixType);
        stdout.WriteLine($"wrote {outPath}: {gguf.TensorCount} tensors, {size / 1e6:F1} MB ({size / (double)(1 << 30):F2} GiB), " +
            $"{(matrixType == GgmlType.Q4_0 ? "q4_0" : "f32")} in {clock.Elapsed.TotalSeconds:F1} s; " +
            $"decode reads {perToken / 1e6:F1} MB of weights per token");
        return 0;
    }

    /// <summary>Writes the file with a progress bar on a terminal, or a plain line at most once a second otherwise.</summary>
    private static long Write(GgufWriter gguf, string path, TextWriter stderr, Stopwatch clock, CancellationToken cancellationToken)
    {
        if (Terminal.Live(stderr) is { } console)
            return Terminal.Bars(console).Start(context =>
            {
                var task = context.AddTask("export-gguf", maxValue: gguf.TensorCount);
                return gguf.Write(path, new SyncProgress<(int Done, int Total, long Bytes)>(p =>
                {
                    task.Value = p.Done;
                    task.Description = Terminal.Plain($"export-gguf: {p.Done}/{p.Total} tensors, {p.Bytes / 1e6:F0} MB");
                }), cancellationToken);
            });
        var lastReport = Stopwatch.StartNew();
        return gguf.Write(path, new SyncProgress<(int Done, int Total, long Bytes)>(p =>
        {
            if (p.Done < p.Total && lastReport.Elapsed.TotalSeconds < 1) return;
            lastReport.Restart();
            stderr.WriteLine($"export-gguf: {p.Done}/{p.Total} tensors, {p.Bytes / 1e6:F0} MB, {clock.Elapsed.TotalSeconds:F0} s");
        }), cancellationToken);
    }
}
