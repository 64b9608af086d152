using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Model.Tests;

/// <summary>
/// The opt-in int8-activation mode for INT4 weights: still batch-invariant (a cached prefix gives bit-identical logits,
/// a token decoded alone matches it in a batch), and close to the exact float32 path.
/// </summary>
public sealed class Int8ActivationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kimisharp-int8-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly int[] Tokens = [5, 90, 13, 42, 7, 7, 61, 0, 88, 23, 17, 54, 31, 2, 76, 45, 19, 96, 8, 33];

    private static readonly KernelSettings Int8 = new() { Activations = ActivationPrecision.Int8 };

    private KimiModel Load(int experts = 8, bool repack = false, KernelSettings? kernels = null)
    {
        string dir = Write(experts);
        return KimiModel.Load(dir, new KimiModelLoadOptions { RepackInt4ForInt8 = repack, Kernels = kernels ?? KernelSettings.Default });
    }

    private string Write(int experts)
    {
        string dir = Path.Combine(_root, "m" + experts);
        if (Directory.Exists(dir)) return dir;
        RandomCheckpoint.Write(dir, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 160, IntermediateSize = 200, MoeIntermediateSize = 64, NumHiddenLayers = 3,
            NumAttentionHeads = 3, NRoutedExperts = experts, NSharedExperts = 1, NumExpertsPerTok = 3, KvLoraRank = 96,
            QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 64, Seed = 21,
            Format = CheckpointFormat.Int4, Int4AllLinears = true,
        });
        return dir;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Int8_mode_keeps_cached_prefixes_and_batches_bit_identical(bool repack)
    {
        using var model = Load(repack: repack, kernels: Int8);
        int vocab = model.Config.VocabSize;
        {
            var whole = model.Logits(Tokens);
            var cache = model.CreateCache();
            var split = new float[whole.Length];
            model.Forward(Tokens.AsSpan(0, 7), cache, split.AsSpan(0, 7 * vocab));
            model.Forward(Tokens.AsSpan(7), cache, split.AsSpan(7 * vocab));
            Assert.Equal(whole, split);

            // Decoding one token (MoE experts batched into one job) equals that token in a two-token batch with the
            // same attention form.
            var c1 = model.CreateCache();
            var c2 = model.CreateCache();
            var prefix = new float[6 * vocab];
            model.Forward(Tokens.AsSpan(0, 6), c1, prefix);
            model.Forward(Tokens.AsSpan(0, 6), c2, prefix);
            var one = new float[vocab];
            model.Forward(Tokens.AsSpan(6, 1), c1, one, mode: Layers.AttentionMode.Absorbed);
            var two = new float[2 * vocab];
            model.Forward(Tokens.AsSpan(6, 2), c2, two, mode: Layers.AttentionMode.Absorbed);
            Assert.Equal(one, two.AsSpan(0, vocab).ToArray());
        }
    }

    [Fact]
    public void Int8_mode_stays_close_to_float32()
    {
        // Dense layers only: in a tiny random MoE, int8 rounding can flip a near-tied expert choice, which moves the
        // logits by far more than the rounding itself (that is why the mode is opt-in).
        float[] exact, approximate;
        using (var model = Load(experts: 0)) exact = model.Logits(Tokens);
        using (var model = Load(experts: 0, kernels: Int8)) approximate = model.Logits(Tokens);
        var (maxDiff, maxRef) = LogitComparison.MaxDifference(exact, approximate);
        Assert.True(maxDiff > 0, "int8 mode must actually quantize");
        Assert.True(maxDiff <= 0.05 * maxRef, $"relative error {maxDiff / maxRef:E2}");
    }

    [Fact]
    public void Int8_decode_folds_keys_through_the_transposed_copy_and_stays_close_to_float32()
    {
        // Key heads 32 wide, so each head's kv_b_proj key rows get a transposed copy; dense layers, as above.
        string dir = Path.Combine(_root, "wide-keys");
        RandomCheckpoint.Write(dir, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 160, IntermediateSize = 200, MoeIntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 3, NRoutedExperts = 0, NSharedExperts = 0, NumExpertsPerTok = 0, KvLoraRank = 96,
            QkNopeHeadDim = 32, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 64, Seed = 23,
            Format = CheckpointFormat.Int4, Int4AllLinears = true,
        });
        float[] exact;
        using (var plain = KimiModel.Load(dir)) exact = plain.Logits(Tokens);
        using var model = KimiModel.Load(dir, new KimiModelLoadOptions { Kernels = Int8 });
        Assert.All(model.Layers, layer => Assert.NotNull(layer.Attention.KvBKeysTransposed));
        int vocab = model.Config.VocabSize;
        var decoded = new float[Tokens.Length * vocab];
        {
            var cache = model.CreateCache();
            for (int t = 0; t < Tokens.Length; t++)
                model.Forward(Tokens.AsSpan(t, 1), cache, decoded.AsSpan(t * vocab, vocab), mode: Layers.AttentionMode.Absorbed);
        }
        var (maxDiff, maxRef) = LogitComparison.MaxDifference(exact, decoded);
        Assert.True(maxDiff > 0, "int8 mode must actually quantize");
        Assert.True(maxDiff <= 0.05 * maxRef, $"relative error {maxDiff / maxRef:E2}");
    }

    private static T OnNewThread<T>(Func<T> work)
    {
        T result = default!;
        var thread = new Thread(() => result = work());
        thread.Start();
        thread.Join();
        return result;
    }

    [Fact]
    public void The_model_carries_its_activation_setting_to_whichever_thread_runs_it()
    {
        // A model loaded for int8 and run on another thread (as the engine runs it) computes exactly what it computes
        // on the loading thread, and not the float32 result: the setting travels with the model, not the thread.
        string dir = Write(8);
        using var int8 = KimiModel.Load(dir, new KimiModelLoadOptions { Kernels = Int8 });
        Assert.Same(Int8, int8.Kernels);
        Assert.True(int8.RepackedWeights > 0, "int8 models are repacked for the int8 kernels");
        var here = int8.Logits(Tokens);
        var elsewhere = OnNewThread(() => int8.Logits(Tokens));
        Assert.Equal(here, elsewhere);

        using var exact = KimiModel.Load(dir);
        var reference = OnNewThread(() => exact.Logits(Tokens));
        var (maxDiff, _) = LogitComparison.MaxDifference(reference, elsewhere);
        Assert.True(maxDiff > 0, "the int8 model on another thread must quantize its activations");

        // Two models with different settings, run at once on two threads, each compute their own.
        float[]? fromInt8 = null, fromExact = null;
        var a = new Thread(() => { for (int i = 0; i < 5; i++) fromInt8 = int8.Logits(Tokens); });
        var b = new Thread(() => { for (int i = 0; i < 5; i++) fromExact = exact.Logits(Tokens); });
        a.Start(); b.Start(); a.Join(); b.Join();
        Assert.Equal(here, fromInt8);
        Assert.Equal(reference, fromExact);
    }

    [Fact]
    public void Repacked_int8_model_matches_the_unrepacked_one_and_leaves_the_files_alone()
    {
        string dir = Write(8);
        var before = Directory.GetFiles(dir, "*.safetensors").Select(f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))).ToArray();
        float[] plain, repacked;
        {
            using (var model = Load(repack: false, kernels: Int8))
            {
                Assert.Equal(0, model.RepackedWeights);
                plain = model.Logits(Tokens);
            }
            using (var model = Load(repack: true, kernels: Int8))
            {
                // The routed experts' shapes block into 16 rows (64 × 160, 160 × 64); the others stay as stored.
                var expert = model.Layers[1].Moe!.Experts[0];
                Assert.Equal(WeightFormat.PackedInt4Rows16, expert.Gate.Format);
                Assert.Equal(WeightFormat.PackedInt4Rows16, expert.Down.Format);
                // kv_b_proj keeps its stored rows (decode reads them one by one) and gains a 16-row copy for prefill.
                Assert.Equal(WeightFormat.PackedInt, model.Layers[1].Attention.KvBProj.Format);
                Assert.Equal(WeightFormat.PackedInt4Rows16, model.Layers[1].Attention.KvBProjRows16!.Format);
                // 2 MoE layers × (8 routed + 1 shared experts) × gate, up and down, plus each layer's kv_b_proj copy.
                Assert.Equal(2 * 9 * 3 + model.Layers.Count, model.RepackedWeights);
                repacked = model.Logits(Tokens);
            }
        }
        // Same integer sums, combined in another float order: equal up to rounding.
        var (maxDiff, maxRef) = LogitComparison.MaxDifference(plain, repacked);
        Assert.True(maxDiff <= 1e-4 * maxRef, $"relative difference {maxDiff / maxRef:E2}");
        var after = Directory.GetFiles(dir, "*.safetensors").Select(f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))).ToArray();
        Assert.Equal(before, after);
    }
}
