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
        using var model = KimiModel.Load(_root);
        var tokens = Enumerable.Range(0, 100).Select(i => (i * 37 + 11) % 97).ToArray();
        int saved = KernelThreading.MaxThreads;
        float[] serial, parallel;
        try
        {
            // Up to 100 positions: past 64 the scores split into position chunks; 200 latent columns mix in 64-column chunks and a tail.
            KernelThreading.MaxThreads = 1;
            serial = model.Logits(tokens, AttentionMode.Absorbed);
            KernelThreading.MaxThreads = 2;
            parallel = model.Logits(tokens, AttentionMode.Absorbed);
        }
        finally
        {
            KernelThreading.MaxThreads = saved;
        }
        Assert.Equal(serial, parallel);

        var expanded = model.Logits(tokens, AttentionMode.Expanded);
        var (maxDiff, maxRef) = LogitComparison.MaxDifference(expanded, serial);
        Assert.True(maxDiff <= 1e-4 * maxRef, $"absorbed vs expanded: relative difference {maxDiff / maxRef:E2}");
    }
}
