using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Cli;

namespace KimiSharp.Cli.Tests;

public sealed class LogitsCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-cli-test-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    internal static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) return dir.FullName;
            throw new DirectoryNotFoundException("no KimiSharp.slnx above the test binaries");
        }
    }

    private static string Golden(string name) =>
        Path.Combine(Environment.GetEnvironmentVariable("KIMI_GOLDEN_DIR") ?? Path.Combine(RepositoryRoot, "tests", "golden"), name);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => Kimi.Run(args);

    private static (int[] Tokens, float[] Logits) LoadGolden(string dir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json")));
        var tokens = doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return (tokens, ReadFloats(Path.Combine(dir, "logits.f32")));
    }

    private static float[] ReadFloats(string path)
    {
        byte[] raw = File.ReadAllBytes(path);
        var values = new float[raw.Length / 4];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(4 * i));
        return values;
    }

    [Theory]
    [InlineData("tiny-a-bf16", false)]
    [InlineData("tiny-a-int4", true)]
    [InlineData("tiny-a-fp8", false)]
    [InlineData("tiny-a-fp8", true)]
    public async Task Writes_float32_logits_matching_golden(string name, bool incremental)
    {
        string dir = Golden(name);
        var (tokens, expected) = LoadGolden(dir);
        string output = Path.Combine(_scratch, "out.f32");
        var args = new List<string> { "logits", "--model", dir, "--tokens", string.Join(',', tokens), "--out", output };
        if (incremental) args.Add("--incremental");
        var (code, _, err) = await Run([.. args]);
        Assert.True(code == 0, err);
        var actual = ReadFloats(output);
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        Assert.True(maxDiff / maxRef <= 1e-3, $"relative error {maxDiff / maxRef:E3}");
        Assert.False(File.Exists(output + ".partial"));
    }

    [Fact]
    public async Task Bad_arguments_give_clear_errors_and_leave_existing_output_alone()
    {
        string output = Path.Combine(_scratch, "keep.f32");
        File.WriteAllText(output, "previous results");
        string dir = Golden("tiny-a-bf16");

        var (code, _, err) = await Run("logits", "--model", dir, "--tokens", "1,x,3", "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("'x' is not a non-negative integer", err);

        (code, _, err) = await Run("logits", "--model", dir, "--tokens", "1,99999", "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("token id 99999 is outside the vocabulary", err);

        (code, _, err) = await Run("logits", "--model", Path.Combine(_scratch, "nowhere"), "--tokens", "1", "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("config.json", err);

        (code, _, err) = await Run("logits", "--model", dir, "--tokens", "1", "--out", output, "--bogus");
        Assert.Equal(2, code);
        Assert.Contains("unknown option --bogus", err);

        (code, _, err) = await Run("logits", "--tokens", "1", "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("missing --model", err);

        Assert.Equal("previous results", File.ReadAllText(output));
    }

    [Fact]
    public async Task Help_lists_the_commands_and_unknown_commands_fail()
    {
        var (code, output, _) = await Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("kimi logits --model DIR --tokens", output);
        (code, _, var err) = await Run("frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("unknown command 'frobnicate'", err);
    }

    [Fact]
    public async Task Info_describes_the_checkpoint()
    {
        var (code, output, err) = await Run("info", "--model", Golden("tiny-a-int4"));
        Assert.True(code == 0, err);
        Assert.Contains("3 (1 dense, 2 MoE)", output);
        Assert.Contains("PackedInt", output);
    }

    /// <summary>The repository-root launcher builds the CLI on first use and runs it (what a fresh clone does).</summary>
    [Fact]
    public async Task Launcher_script_runs_the_cli()
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(RepositoryRoot, "kimi"), "--help"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = RepositoryRoot,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, await stderr);
        Assert.Contains("kimi logits", await stdout);
    }
}
