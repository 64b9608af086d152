using KimiSharp.Cli;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi init-random</c> writes a loadable checkpoint of the configured shape; <c>kimi bench</c> reports every figure.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-bench-test-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => Kimi.Run(args);

    private static readonly string SmallConfig = Kimi.SmallConfig(40);

    [Theory]
    [InlineData("int4")]
    [InlineData("int4-all")]
    [InlineData("fp8")]
    [InlineData("bf16")]
    public async Task Init_random_writes_a_checkpoint_of_the_configured_shape(string quant)
    {
        string config = Path.Combine(_scratch, "config-in.json");
        File.WriteAllText(config, SmallConfig);
        string dir = Path.Combine(_scratch, quant);
        var (code, output, error) = await Run("init-random", "--config", config, "--out", dir, "--quant", quant);
        Assert.True(code == 0, error);
        Assert.Contains("wrote", output);
        using var model = KimiModel.Load(dir);
        Assert.Equal(96, model.Config.HiddenSize);
        Assert.Equal(8, model.Config.NRoutedExperts);
        var expert = model.Layers[1].Moe!.Experts[0].Gate.Format;
        Assert.Equal(quant.StartsWith("int4") ? WeightFormat.PackedInt : quant == "fp8" ? WeightFormat.Fp8Block : WeightFormat.BF16, expert);
        Assert.Equal(quant == "int4-all" ? WeightFormat.PackedInt : quant == "fp8" ? WeightFormat.Fp8Block : WeightFormat.BF16,
            model.Layers[0].Attention.OProj.Format);
        Assert.Equal(3, model.Logits([1, 2, 3]).Length / 300);
    }

    [Fact]
    public void Deferred_tensors_are_byte_identical_to_eager_ones()
    {
        // Large tensors are generated while the file is written; the bytes must not depend on that.
        var options = new RandomCheckpointOptions
        {
            VocabSize = 1100, HiddenSize = 1024, IntermediateSize = 1100, MoeIntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 2, NRoutedExperts = 2, NumExpertsPerTok = 1, KvLoraRank = 32, Format = CheckpointFormat.Int4,
            Int4AllLinears = true,
        };
        string a = Path.Combine(_scratch, "a"), b = Path.Combine(_scratch, "b");
        RandomCheckpoint.Write(a, options);
        RandomCheckpoint.Write(b, options with { MaxShardBytes = 3_000_000 });
        using var ma = KimiModel.Load(a);
        using var mb = KimiModel.Load(b);
        Assert.Equal(ma.Logits([5, 6, 7]), mb.Logits([5, 6, 7]));
    }

    [Fact]
    public async Task Bench_reports_throughput_bytes_per_token_bandwidth_and_roofline()
    {
        string config = Path.Combine(_scratch, "config-in.json");
        File.WriteAllText(config, SmallConfig);
        string dir = Path.Combine(_scratch, "model");
        Assert.Equal(0, (await Run("init-random", "--config", config, "--out", dir, "--quant", "int4")).Code);
        // The default measures int8 activations on repacked weights (as --int8 says explicitly); --float32 the exact path.
        foreach (var extra in new[] { Array.Empty<string>(), ["--int8", "--profile"], ["--float32"] })
        {
            bool float32 = extra.Contains("--float32"), profile = extra.Contains("--profile");
            var (code, output, error) = await Run(["bench", "--model", dir, "--threads", "2", "--prompt", "8", "--gen", "4", "--rounds", "1", "--bandwidth-mb", "8", .. extra]);
            Assert.True(code == 0, error);
            foreach (var label in new[] { "prefill", "decode", "decode (0)", "weights/tok", "cache/tok", "bandwidth", "roofline", "decode/roof", "peak RSS" })
                Assert.Contains(label, output);
            // Decoding 4 tokens after an 8-token prompt reads the cache at a mean context of 8 + 4/2.
            Assert.Contains("at its mean context 10)", output);
            Assert.Equal(!float32, output.Contains("INT4 weights repacked into 16-row blocks", StringComparison.Ordinal));
            Assert.Contains(float32 ? "activations float32" : "activations int8", output);
            // --profile: one line per phase, with prefill and decode times that are not all zero.
            Assert.Equal(profile, output.Contains("profile (last round", StringComparison.Ordinal));
            if (profile)
            {
                // Every phase has a line "name  prefill-ms ms share %  decode-ms ms share %"; the shares add up to 100.
                var rows = Enum.GetNames<ForwardPhase>().Select(name =>
                {
                    var line = output.Split('\n').Single(l => l.TrimStart().StartsWith(name + " ", StringComparison.Ordinal));
                    var m = System.Text.RegularExpressions.Regex.Match(line, @"([\d.]+) ms\s+([\d.]+) %\s+([\d.]+) ms\s+([\d.]+) %");
                    Assert.True(m.Success, line);
                    return Enumerable.Range(1, 4).Select(i => double.Parse(m.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                }).ToArray();
                Assert.True(rows.Sum(r => r[0]) > 0 && rows.Sum(r => r[2]) > 0);
                Assert.InRange(rows.Sum(r => r[1]), 99, 101);
                Assert.InRange(rows.Sum(r => r[3]), 99, 101);
            }
        }
    }

    [Fact]
    public async Task Bench_concurrency_reports_each_level_through_the_engine()
    {
        string config = Path.Combine(_scratch, "config-in.json");
        File.WriteAllText(config, SmallConfig);
        string dir = Path.Combine(_scratch, "model-c");
        Assert.Equal(0, (await Run("init-random", "--config", config, "--out", dir, "--quant", "int4")).Code);
        var (code, output, error) = await Run("bench", "--model", dir, "--prompt", "8", "--gen", "4", "--rounds", "1", "--bandwidth-mb", "8", "--concurrency", "1,3");
        Assert.True(code == 0, error);
        var rows = output.Split('\n').Select(l => System.Text.RegularExpressions.Regex.Match(l,
            @"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) %\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) %\s+(\d+)"))
            .Where(m => m.Success).ToArray();
        Assert.Equal(["1", "3"], rows.Select(m => m.Groups[1].Value));
        double Value(System.Text.RegularExpressions.Match row, int group) => double.Parse(row.Groups[group].Value, System.Globalization.CultureInfo.InvariantCulture);
        // The KV budget is N sequences' blocks: one 64-token block each for 8 + 4 positions. At the fullest moment each
        // running sequence holds its 8 prompt positions and up to 3 generated ones (the last generated token is never fed
        // back): 8–11 of its 64 slots, depending on how the sequences' steps interleaved.
        Assert.InRange(Value(rows[1], 10) - 3 * Value(rows[0], 10), -0.003, 0.003);
        foreach (var row in rows)
        {
            Assert.InRange(Value(row, 11) - Value(row, 10) / Value(row, 1), -0.002, 0.002);
            Assert.InRange(Value(row, 12), 100 * (1 - 11 / 64.0) - 0.1, 100 * (1 - 8 / 64.0) + 0.1);
            Assert.True(Value(row, 13) >= Value(row, 9), row.Value); // peak resident ≥ resident at the end
        }
        foreach (var row in rows)
        {
            double experts = double.Parse(row.Groups[6].Value, System.Globalization.CultureInfo.InvariantCulture);
            int n = int.Parse(row.Groups[1].Value);
            // A decode step of n tokens touches between top-k (3) and min(n·k, all 8) distinct experts per layer.
            Assert.InRange(experts, 3, Math.Min(8, 3 * n));
            Assert.True(double.Parse(row.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, row.Value);
        }
        (code, _, error) = await Run("bench", "--model", dir, "--concurrency", "4,0");
        Assert.Equal(2, code);
        Assert.Contains("--concurrency", error);
    }

    [Fact]
    public async Task Bad_options_are_usage_errors()
    {
        Assert.Equal(2, (await Run("init-random", "--config", "x.json")).Code);
        string config = Path.Combine(_scratch, "c.json");
        File.WriteAllText(config, SmallConfig);
        Assert.Equal(2, (await Run("init-random", "--config", config, "--out", Path.Combine(_scratch, "q"), "--quant", "int3")).Code);
        Assert.Equal(2, (await Run("bench", "--model", _scratch, "--prompt", "0")).Code);
        var (code, _, error) = await Run("bench", "--model", _scratch, "--int8", "--float32");
        Assert.Equal(2, code);
        Assert.Contains("--int8 and --float32 exclude each other", error);
        (code, _, error) = await Run("bench", "--model", _scratch, "--int8", "yes");
        Assert.Equal(2, code);
        Assert.Contains("--int8 takes no value (got 'yes')", error);
    }
}
