using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Model.Tests.Reference;

public sealed class ReferenceModelTests : IDisposable
{
    private const double GoldenTolerance = 1e-4;

    private readonly string _temp = Path.Combine(Path.GetTempPath(), "kimisharp-ref-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_temp)) Directory.Delete(_temp, recursive: true);
    }

    // ---------------------------------------------------------------- goldens

    [Theory]
    [InlineData("tiny-a-bf16")]
    [InlineData("tiny-a-int4")]
    [InlineData("tiny-a-fp8")]
    public void Reference_reproduces_golden_logits(string name)
    {
        var golden = GoldenCase.Load(name);
        var model = ReferenceModel.Load(golden.Directory);
        Assert.Empty(model.UnusedTensors);
        Assert.Equal(golden.Rows, golden.Tokens.Length);
        Assert.Equal(golden.Vocab, model.Config.VocabSize);

        double error = golden.RelativeError(model.Logits(golden.Tokens));
        Assert.True(error <= GoldenTolerance, $"{name}: relative error {error:E3} > {GoldenTolerance:E0}");
    }

    /// <summary>
    /// Pins the latent-norm convention of the goldens: they use config rms_norm_eps (1e-5) for q_a/kv_a layernorm
    /// (vLLM behaviour). Config eps lands at float32 storage precision; HF's class-default 1e-6 is two orders worse.
    /// </summary>
    [Theory]
    [InlineData("tiny-a-bf16")]
    [InlineData("tiny-a-int4")]
    [InlineData("tiny-a-fp8")]
    public void Goldens_use_config_eps_for_latent_norms(string name)
    {
        var golden = GoldenCase.Load(name);
        Assert.Equal(1e-5, ReferenceModel.Load(golden.Directory).Config.RmsNormEps);
        double configEps = golden.RelativeError(ReferenceModel.Load(golden.Directory).Logits(golden.Tokens));
        double hfDefault = golden.RelativeError(ReferenceModel.Load(golden.Directory, new ReferenceOptions { LatentNormEps = 1e-6 }).Logits(golden.Tokens));
        Assert.True(configEps < 1e-6, $"{name}: config eps relative error {configEps:E3}");
        Assert.True(hfDefault > 10 * configEps, $"{name}: eps 1e-6 error {hfDefault:E3} vs config eps {configEps:E3}");
    }

    // ---------------------------------------------------------------- reference building blocks

    private static double Logit(double p) => Math.Log(p / (1 - p));

    [Fact]
    public void Routing_keeps_the_best_groups_and_uses_unbiased_weights()
    {
        // 4 groups of 2. Biased scores by group: {0.9, 0.1} {0.6, 0.55} {0.05, 0.7} {0.2, 0.2}; group scores 1.0, 1.15, 0.75, 0.4.
        double[] s = [0.9, 0.1, 0.6, 0.55, 0.05, 0.7, 0.2, 0.2];
        double[] logits = s.Select(Logit).ToArray();
        double[] bias = new double[8];
        var (ungrouped, _) = ReferenceModel.Route(logits, bias, 1, 1, 3, true, 1.0);
        Assert.Equal([0, 5, 2], ungrouped);

        var (experts, weights) = ReferenceModel.Route(logits, bias, 4, 2, 3, true, 2.0);
        Assert.Equal([0, 2, 3], experts); // expert 5 sits in a dropped group
        Assert.Equal(2 * 0.9 / 2.05, weights[0], 12);
        Assert.Equal(2 * 0.6 / 2.05, weights[1], 12);
        Assert.Equal(2 * 0.55 / 2.05, weights[2], 12);

        // The bias steers the choice but not the weight.
        bias[1] = 0.85; // expert 1: choice 0.95, weight from s = 0.1
        var (biased, biasedWeights) = ReferenceModel.Route(logits, bias, 1, 1, 2, false, 1.0);
        Assert.Equal([1, 0], biased);
        Assert.Equal(0.1, biasedWeights[0], 12);
        Assert.Equal(0.9, biasedWeights[1], 12);
    }

    [Fact]
    public void Routing_group_mask_conventions_differ_only_for_negative_kept_scores()
    {
        double[] s = [0.9, 0.05, 0.5, 0.5, 0.3, 0.3, 0.1, 0.1];
        double[] bias = [0, -0.2, 0, 0, 0, 0, 0, 0]; // expert 1's biased score is -0.15
        double[] logits = s.Select(Logit).ToArray();
        var (negInf, _) = ReferenceModel.Route(logits, bias, 4, 2, 4, true, 1.0);
        var (zero, _) = ReferenceModel.Route(logits, bias, 4, 2, 4, true, 1.0, maskWithZero: true);
        Assert.Equal([0, 2, 3, 1], negInf);
        Assert.Equal([0, 2, 3, 4], zero); // a masked 0.0 beats -0.15; the lower index wins the tie among masked experts
    }

    [Fact]
    public void Routing_ties_go_to_the_lower_index_and_single_choice_is_not_normalised()
    {
        var (experts, weights) = ReferenceModel.Route([0.3, 0.3, 0.3, 0.3], new double[4], 1, 1, 1, true, 2.5);
        Assert.Equal([0], experts);
        Assert.Equal(2.5 / (1 + Math.Exp(-0.3)), weights[0], 12);
    }

    private static RefConfig RopeConfig(double theta, double? factor, double betaFast = 1, double betaSlow = 1, int nope = 128, int rope = 64) => new()
    {
        VocabSize = 1, HiddenSize = 1, IntermediateSize = 1, MoeIntermediateSize = 1, NumHiddenLayers = 1, NumAttentionHeads = 1,
        NRoutedExperts = 0, NSharedExperts = 0, NumExpertsPerTok = 0, NGroup = 1, TopkGroup = 1, RoutedScalingFactor = 1,
        NormTopkProb = false, FirstKDenseReplace = 0, MoeLayerFreq = 1, QLoraRank = null, KvLoraRank = 1,
        QkNopeHeadDim = nope, QkRopeHeadDim = rope, VHeadDim = 1, RopeTheta = theta,
        Yarn = factor is double f ? new RefYarn(f, 4096, betaFast, betaSlow, 1, 1) : null,
        RmsNormEps = 1e-6, TieWordEmbeddings = false, Fp8BlockSize = null, Int4GroupSize = null,
    };

    [Theory]
    // theta, factor, beta_fast, beta_slow, pairs kept at the original frequency, pairs divided by factor (research 2.3 table)
    [InlineData(50000, 32, 1, 1, 20, 12)]
    [InlineData(50000, 64, 1, 1, 20, 12)]
    [InlineData(50000, 64, 32, 1, 9, 12)]
    [InlineData(10000, 40, 32, 1, 11, 9)]
    public void Yarn_frequencies_match_the_research_table(double theta, double factor, double betaFast, double betaSlow, int kept, int divided)
    {
        var (invFreq, magnitude) = ReferenceModel.RopeFrequencies(RopeConfig(theta, factor, betaFast, betaSlow));
        Assert.Equal(1.0, magnitude);
        int keptCount = 0, dividedCount = 0;
        for (int i = 0; i < 32; i++)
        {
            double original = 1.0 / Math.Pow(theta, 2.0 * i / 64);
            if (Math.Abs(invFreq[i] - original) <= 1e-15 * original) keptCount++;
            else if (Math.Abs(invFreq[i] - original / factor) <= 1e-15 * original) dividedCount++;
            else Assert.InRange(invFreq[i], original / factor, original); // blended
        }
        Assert.Equal((kept, divided), (keptCount, dividedCount));
    }

    [Theory]
    [InlineData(32.0, 0.1308608)]
    [InlineData(64.0, 0.1446796)]
    [InlineData(40.0, 0.1352338)]
    [InlineData(null, 0.0721688)]
    public void Softmax_scale_matches_the_research_values(double? factor, double expected)
    {
        Assert.Equal(expected, ReferenceModel.SoftmaxScale(RopeConfig(50000, factor)), 6);
    }

    // ---------------------------------------------------------------- random checkpoints

    /// <summary>Odd shapes on purpose: q_lora, YaRN with a blended ramp, group-limited routing, 2 dense layers, partial FP8 blocks and INT4 groups.</summary>
    private static RandomCheckpointOptions OddOptions(CheckpointFormat format, long? maxShardBytes = null) => new()
    {
        VocabSize = 300,
        HiddenSize = 72,
        IntermediateSize = 96,
        MoeIntermediateSize = 20,
        NumHiddenLayers = 4,
        NumAttentionHeads = 3,
        NRoutedExperts = 8,
        NSharedExperts = 1,
        NumExpertsPerTok = 3,
        NGroup = 4,
        TopkGroup = 2,
        RoutedScalingFactor = 2.5,
        NormTopkProb = true,
        FirstKDenseReplace = 2,
        MoeLayerFreq = 1,
        QLoraRank = 40,
        KvLoraRank = 24,
        QkNopeHeadDim = 10,
        QkRopeHeadDim = 6,
        VHeadDim = 14,
        RopeTheta = 50000,
        Yarn = new YarnOptions { Factor = 16, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 0.8 },
        RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 65536,
        Seed = 77,
        Format = format,
        Fp8BlockRows = 16,
        Fp8BlockCols = 16,
        Int4GroupSize = 32,
        MaxShardBytes = maxShardBytes,
    };

    private static readonly int[] OddTokens = [5, 299, 0, 17, 17, 42, 150, 7, 233, 1, 98];

    private double[] WriteAndRun(RandomCheckpointOptions options, string folder, int[] tokens, out ReferenceModel model)
    {
        string dir = Path.Combine(_temp, folder);
        RandomCheckpoint.Write(dir, options);
        model = ReferenceModel.Load(dir);
        Assert.Empty(model.UnusedTensors);
        double[] logits = model.Logits(tokens);
        Assert.Equal(tokens.Length * options.VocabSize, logits.Length);
        Assert.All(logits, v => Assert.True(double.IsFinite(v)));
        return logits;
    }

    [Theory]
    [InlineData(CheckpointFormat.Bf16)]
    [InlineData(CheckpointFormat.Fp8)]
    [InlineData(CheckpointFormat.Int4)]
    public void RandomCheckpoint_single_and_sharded_load_and_agree(CheckpointFormat format)
    {
        var single = WriteAndRun(OddOptions(format), $"{format}-single", OddTokens, out var model);
        var sharded = WriteAndRun(OddOptions(format, maxShardBytes: 40_000), $"{format}-sharded", OddTokens, out _);
        Assert.Equal(single, sharded);

        var files = Directory.GetFiles(Path.Combine(_temp, $"{format}-sharded"), "model-*-of-*.safetensors");
        Assert.True(files.Length > 2, $"expected several shards, got {files.Length}");

        // The config round-trips into the reference's reading of it.
        var c = model.Config;
        Assert.Equal((72, 300, 4, 3, 40, 24, 6), (c.HiddenSize, c.VocabSize, c.NumHiddenLayers, c.NumAttentionHeads, c.QLoraRank, c.KvLoraRank, c.QkRopeHeadDim));
        Assert.Equal((8, 1, 3, 4, 2, 2), (c.NRoutedExperts, c.NSharedExperts, c.NumExpertsPerTok, c.NGroup, c.TopkGroup, c.FirstKDenseReplace));
        Assert.Equal(new RefYarn(16, 4096, 32, 1, 1, 0.8), c.Yarn);
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.False(c.IsMoeLayer(1));
        Assert.True(c.IsMoeLayer(2));
        switch (format)
        {
            case CheckpointFormat.Fp8: Assert.Equal([16, 16], c.Fp8BlockSize!); break;
            case CheckpointFormat.Int4: Assert.Equal(32, c.Int4GroupSize); break;
            default: Assert.Null(c.Fp8BlockSize); Assert.Null(c.Int4GroupSize); break;
        }
    }

    [Fact]
    public void RandomCheckpoint_tensor_dtypes_follow_the_format()
    {
        foreach (var format in Enum.GetValues<CheckpointFormat>())
        {
            string dir = Path.Combine(_temp, "dtypes-" + format);
            RandomCheckpoint.Write(dir, OddOptions(format));
            var t = RefSafetensors.LoadDirectory(dir);
            string Dt(string name) => t[name].DType;

            Assert.Equal("F32", Dt("model.layers.2.mlp.gate.e_score_correction_bias"));
            Assert.Equal("BF16", Dt("model.layers.2.mlp.gate.weight"));
            Assert.Equal("BF16", Dt("model.embed_tokens.weight"));
            Assert.Equal("BF16", Dt("lm_head.weight"));
            Assert.Equal("BF16", Dt("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"));
            Assert.Equal("BF16", Dt("model.layers.0.self_attn.q_a_layernorm.weight"));
            Assert.Equal([3L * 16, 40], t["model.layers.0.self_attn.q_b_proj.weight"].Shape);
            Assert.Equal([24L + 6, 72], t["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"].Shape);
            Assert.Equal([3L * 24, 24], t["model.layers.0.self_attn.kv_b_proj.weight"].Shape);
            Assert.Equal([72L, 3 * 14], t["model.layers.0.self_attn.o_proj.weight"].Shape);
            Assert.Equal([20L, 72], t["model.layers.3.mlp.shared_experts.gate_proj.weight"].Shape);
            switch (format)
            {
                case CheckpointFormat.Bf16:
                    Assert.Equal("BF16", Dt("model.layers.3.mlp.experts.7.down_proj.weight"));
                    Assert.Equal("BF16", Dt("model.layers.0.mlp.down_proj.weight"));
                    break;
                case CheckpointFormat.Fp8:
                    Assert.Equal("F8_E4M3", Dt("model.layers.0.self_attn.q_a_proj.weight"));
                    Assert.Equal([3L, 5], t["model.layers.0.self_attn.q_a_proj.weight_scale_inv"].Shape); // [40, 72] in 16x16 blocks
                    Assert.Equal("F8_E4M3", Dt("model.layers.3.mlp.experts.7.down_proj.weight"));
                    Assert.Equal("F8_E4M3", Dt("model.layers.3.mlp.shared_experts.up_proj.weight"));
                    Assert.Equal("F8_E4M3", Dt("model.layers.1.mlp.gate_proj.weight"));
                    Assert.Equal("F32", Dt("model.layers.1.mlp.gate_proj.weight_scale_inv"));
                    Assert.False(t.ContainsKey("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"));
                    break;
                case CheckpointFormat.Int4:
                    Assert.Equal("I32", Dt("model.layers.3.mlp.experts.7.down_proj.weight_packed"));
                    Assert.Equal([72L, 3], t["model.layers.3.mlp.experts.7.down_proj.weight_packed"].Shape); // in = 20 -> 3 words
                    Assert.Equal([72L, 1], t["model.layers.3.mlp.experts.7.down_proj.weight_scale"].Shape);
                    Assert.Equal([20L, 3], t["model.layers.3.mlp.experts.7.gate_proj.weight_scale"].Shape); // in = 72 -> 3 groups
                    Assert.Equal("I64", Dt("model.layers.3.mlp.experts.7.gate_proj.weight_shape"));
                    Assert.Equal("BF16", Dt("model.layers.3.mlp.shared_experts.up_proj.weight"));
                    Assert.Equal("BF16", Dt("model.layers.1.mlp.gate_proj.weight"));
                    break;
            }
        }
    }

    /// <summary>
    /// The float weights do not depend on the format, so every quantised linear must decode to within its format's
    /// rounding bound of the BF16 checkpoint's copy (which is itself within 2^-9 relative of the float weight).
    /// Logits are not compared: quantisation noise flips near-tied routing decisions, which moves logits a lot.
    /// </summary>
    [Fact]
    public void RandomCheckpoint_quantised_weights_track_bf16()
    {
        string Dir(CheckpointFormat f)
        {
            string dir = Path.Combine(_temp, "track-" + f);
            RandomCheckpoint.Write(dir, OddOptions(f));
            return dir;
        }
        var bf16 = RefSafetensors.LoadDirectory(Dir(CheckpointFormat.Bf16));
        var fp8 = RefSafetensors.LoadDirectory(Dir(CheckpointFormat.Fp8));
        var int4 = RefSafetensors.LoadDirectory(Dir(CheckpointFormat.Int4));
        const double bf16Rel = 1.0 / 256; // 2^-9 plus slack for the float -> bf16 rounding of the reference copy
        int fp8Count = 0, int4Count = 0;

        foreach (var (name, reference) in bf16)
        {
            if (!name.EndsWith(".weight", StringComparison.Ordinal) || reference.Shape.Length != 2) continue;
            string prefix = name[..^".weight".Length];
            int rows = (int)reference.Shape[0], cols = (int)reference.Shape[1];
            double[] w = RefDecode.Floats(reference);

            if (fp8.TryGetValue(prefix + ".weight_scale_inv", out var scaleInv))
            {
                fp8Count++;
                double[] q = RefDecode.Fp8Block(fp8[name], scaleInv, 16, 16);
                double[] s = RefDecode.Floats(scaleInv);
                int sc = (int)scaleInv.Shape[1];
                for (int i = 0; i < q.Length; i++)
                {
                    double scale = s[(i / cols / 16) * sc + i % cols / 16];
                    double bound = Math.Abs(w[i]) * (Math.ScaleB(1, -4) + bf16Rel) + scale * Math.ScaleB(1, -10);
                    Assert.True(Math.Abs(q[i] - w[i]) <= bound, $"{name}[{i}]: fp8 {q[i]} vs bf16 {w[i]}");
                }
            }
            else
            {
                Assert.Equal(reference.Data, fp8[name].Data); // kept BF16 in the fp8 format: identical bytes
            }

            if (int4.TryGetValue(prefix + ".weight_packed", out var packed))
            {
                int4Count++;
                double[] q = RefDecode.Int4Packed(packed, int4[prefix + ".weight_scale"], int4[prefix + ".weight_shape"], 32, out int r, out int c);
                Assert.Equal((rows, cols), (r, c));
                double[] s = RefDecode.Floats(int4[prefix + ".weight_scale"]);
                int groups = (cols + 31) / 32;
                for (int i = 0; i < q.Length; i++)
                {
                    double scale = s[(i / cols) * groups + i % cols / 32];
                    double bound = scale * 0.5 * (1 + 1e-6) + Math.Abs(w[i]) * bf16Rel;
                    Assert.True(Math.Abs(q[i] - w[i]) <= bound, $"{name}[{i}]: int4 {q[i]} vs bf16 {w[i]}");
                }
            }
            else
            {
                Assert.Equal(reference.Data, int4[name].Data);
            }
        }
        // 2 dense layers x (q_a, q_b, kv_b, o, 3 MLP) + 2 MoE layers x (4 attention + 8 experts x 3 + shared 3).
        Assert.Equal(2 * 7 + 2 * (4 + 24 + 3), fp8Count);
        Assert.Equal(2 * 24, int4Count);
    }

    [Fact]
    public void RandomCheckpoint_variants_without_shared_experts_tied_and_sparse_moe()
    {
        var options = OddOptions(CheckpointFormat.Int4) with
        {
            NSharedExperts = 0,
            TieWordEmbeddings = true,
            QLoraRank = null,
            Yarn = null,
            NGroup = 1,
            TopkGroup = 1,
            NumExpertsPerTok = 1,
            FirstKDenseReplace = 1,
            MoeLayerFreq = 2,
            Int4GroupSize = 16,
        };
        WriteAndRun(options, "variant", OddTokens, out var model);
        var tensors = RefSafetensors.LoadDirectory(Path.Combine(_temp, "variant"));
        Assert.False(tensors.ContainsKey("lm_head.weight"));
        Assert.False(tensors.ContainsKey("model.layers.2.mlp.shared_experts.up_proj.weight"));
        Assert.True(tensors.ContainsKey("model.layers.0.self_attn.q_proj.weight"));
        Assert.True(tensors.ContainsKey("model.layers.3.mlp.gate_proj.weight")); // 3 % 2 != 0: dense
        Assert.True(tensors.ContainsKey("model.layers.2.mlp.experts.0.up_proj.weight_packed"));
        Assert.True(model.Config.TieWordEmbeddings);
        Assert.Equal(16, model.Config.Int4GroupSize);

        // A dense-only model (no routed experts at all) also loads.
        WriteAndRun(OddOptions(CheckpointFormat.Fp8) with { NRoutedExperts = 0 }, "dense-only", OddTokens, out _);
    }

    [Fact]
    public void RandomCheckpoint_is_deterministic_and_replaces_stale_files()
    {
        string dir = Path.Combine(_temp, "det");
        RandomCheckpoint.Write(dir, OddOptions(CheckpointFormat.Fp8, maxShardBytes: 30_000));
        Assert.True(File.Exists(Path.Combine(dir, SafetensorsWriter.IndexFileName)));
        RandomCheckpoint.Write(dir, OddOptions(CheckpointFormat.Fp8));
        Assert.False(File.Exists(Path.Combine(dir, SafetensorsWriter.IndexFileName)));
        Assert.Empty(Directory.GetFiles(dir, "model-*"));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp-*"));
        byte[] first = File.ReadAllBytes(Path.Combine(dir, "model.safetensors"));
        RandomCheckpoint.Write(dir, OddOptions(CheckpointFormat.Fp8));
        Assert.Equal(first, File.ReadAllBytes(Path.Combine(dir, "model.safetensors")));
        RandomCheckpoint.Write(dir, OddOptions(CheckpointFormat.Fp8) with { Seed = 78 });
        Assert.NotEqual(first, File.ReadAllBytes(Path.Combine(dir, "model.safetensors")));
    }

    [Fact]
    public void RandomCheckpoint_config_matches_golden_style()
    {
        foreach (var (format, golden) in new[] { (CheckpointFormat.Bf16, "tiny-a-bf16"), (CheckpointFormat.Fp8, "tiny-a-fp8"), (CheckpointFormat.Int4, "tiny-a-int4") })
        {
            // Default options are the tiny-a shapes, so the config must equal the golden's, key for key.
            using var ours = JsonDocument.Parse(RandomCheckpoint.BuildConfigJson(new RandomCheckpointOptions { Format = format }));
            using var theirs = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(GoldenCase.Root, golden, "config.json")));
            Assert.True(JsonElement.DeepEquals(ours.RootElement, theirs.RootElement),
                $"{format}:\n{Encoding.UTF8.GetString(RandomCheckpoint.BuildConfigJson(new RandomCheckpointOptions { Format = format }))}");
        }
    }

    [Fact]
    public void RandomCheckpoint_rejects_invalid_options()
    {
        Assert.Throws<ArgumentException>(() => RandomCheckpoint.BuildTensors(new RandomCheckpointOptions { QkRopeHeadDim = 5 }));
        Assert.Throws<ArgumentException>(() => RandomCheckpoint.BuildTensors(new RandomCheckpointOptions { NGroup = 3 }));
        Assert.Throws<ArgumentException>(() => RandomCheckpoint.BuildTensors(new RandomCheckpointOptions { NGroup = 4, TopkGroup = 1, NumExpertsPerTok = 3 }));
        Assert.Throws<ArgumentException>(() => RandomCheckpoint.BuildTensors(new RandomCheckpointOptions { MaxShardBytes = 0 }));
    }

    // ---------------------------------------------------------------- encoders vs decoders

    [Fact]
    public void Bf16_encoder_rounds_to_nearest_even()
    {
        var rng = new Random(5);
        var values = new List<float> { 0f, -0f, 1f, -1f, float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, 1e-40f };
        // Exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 (goes to even 1); 1 + 3*2^-8 goes up to 1 + 2^-6.
        values.Add(1f + MathF.ScaleB(1, -8));
        values.Add(1f + 3 * MathF.ScaleB(1, -8));
        for (int i = 0; i < 20000; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next(int.MinValue, int.MaxValue)));

        foreach (float x in values)
        {
            ushort bits = WeightEncoding.FloatToBf16(x);
            double decoded = RefDecode.Bf16(bits);
            if (float.IsNaN(x)) { Assert.True(double.IsNaN(decoded)); continue; }
            if (float.IsInfinity(x)) { Assert.Equal((double)x, decoded); continue; }

            // Neighbours by truncation: lower = toward zero, upper = next bf16 away from zero. Past the largest finite
            // bf16 the upper neighbour is infinity, which IEEE rounding treats as 2^128 (so x >= max + half ulp overflows).
            uint raw = BitConverter.SingleToUInt32Bits(x);
            ushort down = (ushort)(raw >> 16), up = (ushort)(down + 1);
            double upValue = (up & 0x7FFF) == 0x7F80 ? Math.CopySign(Math.ScaleB(1, 128), x) : RefDecode.Bf16(up);
            double dDown = Math.Abs(x - RefDecode.Bf16(down)), dUp = Math.Abs(x - upValue);
            ushort expected = dDown < dUp ? down : dUp < dDown ? up : (down & 1) == 0 ? down : up;
            Assert.Equal(expected, bits);
        }
        Assert.Equal(1.0, RefDecode.Bf16(WeightEncoding.FloatToBf16(1f + MathF.ScaleB(1, -8))));
        Assert.Equal(1.0 + Math.ScaleB(1, -6), RefDecode.Bf16(WeightEncoding.FloatToBf16(1f + 3 * MathF.ScaleB(1, -8))));
    }

    [Fact]
    public void Fp8_encoder_round_trips_every_code_and_rounds_to_nearest_even()
    {
        for (int code = 0; code < 256; code++)
        {
            double value = RefDecode.Fp8E4M3((byte)code);
            byte again = WeightEncoding.FloatToFp8E4M3((float)value);
            if (double.IsNaN(value)) Assert.Equal(0x7F, again & 0x7F); // NaN stays NaN (the sign does not survive double NaN)
            else Assert.Equal(code, again);
            Assert.Equal(value, (double)WeightEncoding.Fp8E4M3ToFloat((byte)code));
        }

        Assert.Equal(0x7E, WeightEncoding.FloatToFp8E4M3(448f));
        Assert.Equal(0x7E, WeightEncoding.FloatToFp8E4M3(1e6f));
        Assert.Equal(0x7E, WeightEncoding.FloatToFp8E4M3(float.PositiveInfinity));
        Assert.Equal(0xFE, WeightEncoding.FloatToFp8E4M3(-470f));
        Assert.Equal(0xFE, WeightEncoding.FloatToFp8E4M3(float.NegativeInfinity));
        Assert.True(double.IsNaN(RefDecode.Fp8E4M3(WeightEncoding.FloatToFp8E4M3(float.NaN))));
        Assert.Equal(0x7F, WeightEncoding.FloatToFp8E4M3(BitConverter.Int32BitsToSingle(0x7FC00000)));
        Assert.Equal(0xFF, WeightEncoding.FloatToFp8E4M3(BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00000))));
        Assert.Equal(0x80, WeightEncoding.FloatToFp8E4M3(-0f));
        Assert.Equal(0x00, WeightEncoding.FloatToFp8E4M3((float)Math.ScaleB(1, -11))); // quarter of the smallest subnormal
        Assert.Equal(0x00, WeightEncoding.FloatToFp8E4M3((float)Math.ScaleB(1, -10))); // exact tie with 0 and 2^-9: even is 0
        Assert.Equal(0x02, WeightEncoding.FloatToFp8E4M3((float)(3 * Math.ScaleB(1, -10)))); // tie 2^-9 / 2^-8: even is 2

        var finite = Enumerable.Range(0, 256).Where(c => !double.IsNaN(RefDecode.Fp8E4M3((byte)c))).ToArray();
        var rng = new Random(11);
        for (int i = 0; i < 20000; i++)
        {
            double magnitude = Math.ScaleB(rng.NextDouble() + 0.5, rng.Next(-12, 9));
            float x = (float)(rng.Next(2) == 0 ? magnitude : -magnitude);
            if (Math.Abs(x) >= 448) continue;
            byte code = WeightEncoding.FloatToFp8E4M3(x);
            double got = Math.Abs(x - RefDecode.Fp8E4M3(code));
            double best = finite.Min(c => Math.Abs(x - RefDecode.Fp8E4M3((byte)c)));
            Assert.Equal(best, got);
            if (x != 0) Assert.Equal(x < 0, (code & 0x80) != 0);
            // On an exact tie the even code wins.
            int ties = finite.Count(c => Math.Abs(x - RefDecode.Fp8E4M3((byte)c)) == best && (c & 0x80) == (code & 0x80));
            if (ties > 1) Assert.Equal(0, code & 1);
        }
    }

    [Fact]
    public void Fp8_block_quantiser_round_trips_through_the_reference_reader()
    {
        const int rows = 40, cols = 50, br = 16, bc = 16;
        var rng = new Random(3);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-4, 2)));
        for (int r = 16; r < 32; r++) for (int c = 16; c < 32; c++) w[r * cols + c] = 0; // one all-zero block

        var q = WeightEncoding.QuantizeFp8Block(w, rows, cols, br, bc);
        Assert.Equal([3L, 4], q.ScalesShape);
        string path = Path.Combine(_temp, "fp8.safetensors");
        var writer = new SafetensorsWriter();
        writer.AddFp8Block("x", q);
        writer.Save(path);
        var t = RefSafetensors.ReadFile(path);
        Assert.Equal("F8_E4M3", t["x.weight"].DType);
        Assert.Equal("F32", t["x.weight_scale_inv"].DType);
        double[] scales = RefDecode.Floats(t["x.weight_scale_inv"]);
        double[] back = RefDecode.Fp8Block(t["x.weight"], t["x.weight_scale_inv"], br, bc);
        Assert.Equal(1.0, scales[1 * 4 + 1]);
        Assert.Equal(back.Select(v => (float)v), WeightEncoding.DequantizeFp8Block(q)); // exact product rounded once to float

        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                double s = scales[(r / br) * 4 + c / bc];
                double x = w[r * cols + c], err = Math.Abs(back[r * cols + c] - x);
                // Normal range: half a mantissa step (2^-4 relative); subnormal range: half the 2^-9 step, times the scale.
                double bound = Math.Max(Math.Abs(x) * Math.ScaleB(1, -4), s * Math.ScaleB(1, -10)) * (1 + 1e-6);
                Assert.True(err <= bound, $"[{r},{c}] {x} -> {back[r * cols + c]} (scale {s})");
            }
        // Each block's largest magnitude maps onto ±448·S.
        for (int b = 0; b < scales.Length; b++)
        {
            if (b == 5) continue;
            int r0 = b / 4 * br, c0 = b % 4 * bc;
            double amax = 0;
            for (int r = r0; r < Math.Min(rows, r0 + br); r++) for (int c = c0; c < Math.Min(cols, c0 + bc); c++) amax = Math.Max(amax, Math.Abs(w[r * cols + c]));
            Assert.Equal(amax / 448, scales[b], 1e-6 * amax);
        }
    }

    [Fact]
    public void Int4_quantiser_round_trips_through_the_reference_reader()
    {
        const int rows = 5, cols = 70, group = 32;
        var rng = new Random(9);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * (1 + i % 7);
        for (int c = 0; c < cols; c++) w[2 * cols + c] = 0; // an all-zero row

        var q = WeightEncoding.QuantizeInt4Packed(w, rows, cols, group);
        string path = Path.Combine(_temp, "int4.safetensors");
        var writer = new SafetensorsWriter();
        writer.AddInt4Packed("x", q);
        writer.Save(path);
        var t = RefSafetensors.ReadFile(path);
        Assert.Equal("I32", t["x.weight_packed"].DType);
        Assert.Equal([5L, 9], t["x.weight_packed"].Shape);
        Assert.Equal("BF16", t["x.weight_scale"].DType);
        Assert.Equal([5L, 3], t["x.weight_scale"].Shape);
        Assert.Equal("I64", t["x.weight_shape"].DType);
        Assert.Equal([2L], t["x.weight_shape"].Shape);
        Assert.Equal([5L, 70], RefDecode.Integers(t["x.weight_shape"]));

        double[] back = RefDecode.Int4Packed(t["x.weight_packed"], t["x.weight_scale"], t["x.weight_shape"], group, out int rr, out int cc);
        Assert.Equal((rows, cols), (rr, cc));
        Assert.Equal(back, WeightEncoding.DequantizeInt4Packed(q).Select(v => (double)v));
        double[] scales = RefDecode.Floats(t["x.weight_scale"]);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < 3; g++)
            {
                int c0 = g * group, c1 = Math.Min(cols, c0 + group);
                double amax = 0;
                for (int c = c0; c < c1; c++) amax = Math.Max(amax, Math.Abs(w[r * cols + c]));
                double scale = scales[r * 3 + g];
                double expected = amax == 0 ? 1 : amax / 7;
                Assert.True(Math.Abs(scale - expected) <= expected * Math.ScaleB(1, -8), $"scale[{r},{g}] {scale} vs {expected}");
                for (int c = c0; c < c1; c++)
                {
                    double x = w[r * cols + c], y = back[r * cols + c];
                    double level = y / scale;
                    Assert.Equal(Math.Round(level), level);
                    Assert.InRange(level, -8, 7);
                    Assert.True(Math.Abs(y - x) <= scale * 0.5 * (1 + 1e-9) + 1e-12, $"[{r},{c}] {x} -> {y} (scale {scale})");
                }
            }
        // Padding nibbles past column 69 are zero bits.
        long lastWord = RefDecode.Integers(t["x.weight_packed"])[8];
        Assert.Equal(0, (lastWord >> 24) & 0xFF);
    }

    // ---------------------------------------------------------------- safetensors writer layout

    [Fact]
    public void SafetensorsWriter_layout_is_padded_ordered_and_back_to_back()
    {
        var writer = new SafetensorsWriter();
        writer.AddF32("zeta", [3], [1f, 2f, 3f]);
        writer.Add("alpha", SafetensorsDType.U8, [5], new byte[] { 1, 2, 3, 4, 5 });
        writer.AddBf16("mid", [2, 2], [1f, -2f, 0.5f, 3f]);
        writer.AddI64("empty", [0], ReadOnlySpan<long>.Empty);
        Assert.Throws<ArgumentException>(() => writer.AddF32("zeta", [1], [0f]));
        Assert.Throws<ArgumentException>(() => writer.AddF32("bad", [2], [0f]));

        string path = Path.Combine(_temp, "layout.safetensors");
        writer.Save(path);
        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.Matches(@"^\{.*\} *$", header);
        Assert.Equal(8 + (long)n + 12 + 5 + 8, bytes.Length);

        using var doc = JsonDocument.Parse(header);
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(["zeta", "alpha", "mid", "empty", "__metadata__"], names);
        Assert.Equal("pt", doc.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal("[12,17]", doc.RootElement.GetProperty("alpha").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[25,25]", doc.RootElement.GetProperty("empty").GetProperty("data_offsets").GetRawText());

        var t = RefSafetensors.ReadFile(path);
        Assert.Equal([1.0, 2, 3], RefDecode.Floats(t["zeta"]));
        Assert.Equal([1.0, -2, 0.5, 3], RefDecode.Floats(t["mid"]));
        Assert.Equal([1L, 2, 3, 4, 5], RefDecode.Integers(t["alpha"]));
    }

    [Fact]
    public void SafetensorsWriter_shards_respect_the_limit_and_index_everything()
    {
        var writer = new SafetensorsWriter();
        writer.AddF32("a", [10], new float[10]);   // 40 bytes
        writer.AddF32("b", [10], new float[10]);   // 40
        writer.AddF32("big", [50], new float[50]); // 200, larger than a shard: alone
        writer.AddF32("c", [5], new float[5]);     // 20
        string dir = Path.Combine(_temp, "shards");
        var files = writer.SaveSharded(dir, 100);
        Assert.Equal(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"], files);

        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, SafetensorsWriter.IndexFileName)));
        Assert.Equal(300, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = index.RootElement.GetProperty("weight_map");
        Assert.Equal(files[0], map.GetProperty("a").GetString());
        Assert.Equal(files[0], map.GetProperty("b").GetString());
        Assert.Equal(files[1], map.GetProperty("big").GetString());
        Assert.Equal(files[2], map.GetProperty("c").GetString());
        Assert.Equal(4, RefSafetensors.LoadDirectory(dir).Count);
    }

    private static double RelativeError(double[] actual, double[] expected)
    {
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        return maxDiff / maxRef;
    }
}
