using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Model.Tests;

/// <summary>
/// Segments of a batched forward may carry their own embedding patches (image features): each sequence gets what the
/// single-sequence patched forward gives it, and a patch in one segment leaves the others untouched.
/// </summary>
public sealed class BatchedEmbeddingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimisharp-batch-patch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Each_segment_gets_its_own_patch_as_if_alone()
    {
        RandomCheckpoint.Write(_dir, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 64, IntermediateSize = 96, MoeIntermediateSize = 32, NumHiddenLayers = 2,
            NumAttentionHeads = 2, NRoutedExperts = 4, NSharedExperts = 1, NumExpertsPerTok = 2, KvLoraRank = 32,
            QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 64, Seed = 7, Format = CheckpointFormat.Bf16,
        });
        using var model = KimiModel.Load(_dir);
        int vocab = model.Config.VocabSize, hidden = model.Config.HiddenSize;
        var random = new Random(3);
        float[] Rows(int count) => [.. Enumerable.Range(0, count * hidden).Select(_ => (float)(random.NextDouble() - 0.5))];
        int[][] prompts = [[5, 90, 90, 90, 7], [11, 12, 13], [64, 90, 90, 3]];
        EmbeddingPatch?[] patches = [new EmbeddingPatch([1, 2, 3], Rows(3)), null, new EmbeddingPatch([1, 2], Rows(2))];

        var alone = new float[prompts.Length][];
        for (int i = 0; i < prompts.Length; i++)
        {
            alone[i] = new float[vocab];
            var cache = model.CreateCache();
            if (patches[i] is { } patch) model.Forward(prompts[i], patch, cache, alone[i], lastOnly: true);
            else model.Forward(prompts[i], cache, alone[i], lastOnly: true);
        }

        var segments = prompts.Select((p, i) => new ForwardSegment(p, model.CreateCache()) { Embeddings = patches[i] }).ToArray();
        var batched = new float[prompts.Length * vocab];
        model.Forward(segments, batched, new BatchWorkspace());
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(alone[i], batched.AsSpan(i * vocab, vocab).ToArray());

        // Without the patches the patched sequences' logits change (the rows are really used).
        var plain = new float[vocab];
        model.Forward(prompts[0], model.CreateCache(), plain, lastOnly: true);
        Assert.NotEqual(alone[0], plain);

        var outside = new ForwardSegment(prompts[1], model.CreateCache()) { Embeddings = new EmbeddingPatch([3], Rows(1)) };
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([outside], new float[vocab], new BatchWorkspace()));
    }
}
