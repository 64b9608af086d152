using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;

namespace KimiSharp.Model.Tests;

/// <summary>Absorbed (decode) attention: its steps split across threads (by head, position and column), never changing a result.</summary>
public sealed class AbsorbedAttentionTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kimisharp-absorbed-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Thread_split_never_changes_absorbed_logits_and_they_match_the_expanded_form()
    {
        RandomCheckpoint.Write(_root, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 128, IntermediateSize = 160, MoeIntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 6, NRoutedExperts = 4, NSharedExperts = 1, NumExpertsPerTok = 2, KvLoraRank = 200,
            QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 128, Seed = 5,
        });
        var tokens = Enumerable.Range(0, 100).Select(i => (i * 37 + 11) % 97).ToArray();
        // Up to 100 positions: past 64 the scores split into position chunks; 200 latent columns mix in 64-column chunks and a tail.
        float[] serial, parallel;
        using (var model = KimiModel.Load(_root, new KimiModelLoadOptions { Kernels = new KernelSettings { MaxThreads = 1 } }))
            serial = model.Logits(tokens, AttentionMode.Absorbed);
        using var twoThreads = KimiModel.Load(_root, new KimiModelLoadOptions { Kernels = new KernelSettings { MaxThreads = 2 } });
        parallel = twoThreads.Logits(tokens, AttentionMode.Absorbed);
        Assert.Equal(serial, parallel);

        var expanded = twoThreads.Logits(tokens, AttentionMode.Expanded);
        var (maxDiff, maxRef) = LogitComparison.MaxDifference(expanded, serial);
        Assert.True(maxDiff <= 1e-4 * maxRef, $"absorbed vs expanded: relative difference {maxDiff / maxRef:E2}");
    }

    [Fact]
    public void Int8_absorbed_decode_computes_every_head_alike_on_any_thread()
    {
        // Int8 decode folds each head's keys through the transposed copy and projects its values with the int8 kernels,
        // head by head across the worker threads. Every thread must take the model's setting: when it was a flag of the
        // calling thread, the workers folded their heads in float32 and two threads disagreed with one.
        RandomCheckpoint.Write(_root, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 128, IntermediateSize = 160, MoeIntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 16, NRoutedExperts = 4, NSharedExperts = 1, NumExpertsPerTok = 2, KvLoraRank = 512,
            QkNopeHeadDim = 32, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 128, Seed = 6,
            Format = CheckpointFormat.Int4, Int4AllLinears = true,
        });
        var tokens = Enumerable.Range(0, 40).Select(i => (i * 29 + 5) % 97).ToArray();
        float[] Decode(int threads)
        {
            using var model = KimiModel.Load(_root, new KimiModelLoadOptions
            {
                Kernels = new KernelSettings { Activations = ActivationPrecision.Int8, MaxThreads = threads },
            });
            if (WeightMatrix.Rows16Accelerated) Assert.All(model.Layers, layer => Assert.NotNull(layer.Attention.KvBKeysTransposed));
            return model.Logits(tokens, AttentionMode.Absorbed);
        }
        Assert.Equal(Decode(1), Decode(2));
    }
}
