using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;

namespace KimiSharp.Model.Tests;

/// <summary>
/// One forward pass over several sequences (continuous batching) gives each sequence exactly the logits it gets alone,
/// in both activation modes, whatever mix of prefill chunks and decode tokens shares the batch.
/// </summary>
public sealed class BatchedForwardTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kimisharp-batch-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(CheckpointFormat format)
    {
        string dir = Path.Combine(_root, format.ToString());
        if (!Directory.Exists(dir))
            RandomCheckpoint.Write(dir, new RandomCheckpointOptions
            {
                VocabSize = 97, HiddenSize = 160, IntermediateSize = 200, MoeIntermediateSize = 64, NumHiddenLayers = 3,
                NumAttentionHeads = 3, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 3, KvLoraRank = 96,
                QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, MaxPositionEmbeddings = 64, Seed = 31,
                Format = format, Int4AllLinears = format == CheckpointFormat.Int4,
            });
        return dir;
    }

    private static readonly int[][] Prompts =
    [
        [5, 90, 13, 42, 7, 7, 61],
        [0, 88, 23],
        [17, 54, 31, 2, 76, 45, 19, 96, 8, 33, 11],
        [64],
    ];

    /// <summary>Prompt i's prefix of length <c>prefixes[i]</c> is cached; then the next step feeds <c>next[i]</c> tokens.</summary>
    private static (int Prefix, int Next)[] Plan => [(6, 1), (0, 3), (4, 5), (0, 1)];

    [Theory]
    [InlineData(CheckpointFormat.Int4, ActivationPrecision.Float32)]
    [InlineData(CheckpointFormat.Int4, ActivationPrecision.Int8)]
    [InlineData(CheckpointFormat.Bf16, ActivationPrecision.Float32)]
    public void A_batch_of_prefill_chunks_and_decode_tokens_matches_each_sequence_alone(CheckpointFormat format, ActivationPrecision activations)
    {
        using var model = KimiModel.Load(Write(format), new KimiModelLoadOptions { Kernels = new KernelSettings { Activations = activations } });
        int vocab = model.Config.VocabSize;

        // Alone: each sequence's prefix, then its next tokens, last-position logits.
        var alone = new float[Prompts.Length][];
        for (int i = 0; i < Prompts.Length; i++)
        {
            var (prefix, next) = Plan[i];
            var cache = model.CreateCache();
            if (prefix > 0) model.Forward(Prompts[i].AsSpan(0, prefix), cache, new float[prefix * vocab]);
            alone[i] = new float[vocab];
            model.Forward(Prompts[i].AsSpan(prefix, next), cache, alone[i], lastOnly: true);
        }

        // Together: the same prefixes, then one pass over every sequence's next tokens.
        var caches = new KvCache[Prompts.Length];
        var segments = new ForwardSegment[Prompts.Length];
        for (int i = 0; i < Prompts.Length; i++)
        {
            var (prefix, next) = Plan[i];
            caches[i] = model.CreateCache();
            if (prefix > 0) model.Forward(Prompts[i].AsSpan(0, prefix), caches[i], new float[prefix * vocab]);
            segments[i] = new ForwardSegment(Prompts[i].AsMemory(prefix, next), caches[i]);
        }
        var batched = new float[Prompts.Length * vocab];
        var workspace = new BatchWorkspace();
        model.Forward(segments, batched, workspace);
        var report = string.Join(", ", Enumerable.Range(0, Prompts.Length).Select(i =>
            $"{i}: {alone[i].Zip(batched.AsSpan(i * vocab, vocab).ToArray(), (p, q) => Math.Abs(p - q)).Max():E2}"));
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.True(alone[i].AsSpan().SequenceEqual(batched.AsSpan(i * vocab, vocab)), report);
            Assert.Equal(Plan[i].Prefix + Plan[i].Next, caches[i].Length);
        }

        // A second step of decode tokens only, reusing the workspace, matches the same steps taken alone.
        var again = new float[Prompts.Length * vocab];
        var decode = new ForwardSegment[Prompts.Length];
        for (int i = 0; i < Prompts.Length; i++) decode[i] = new ForwardSegment(new[] { (i * 7 + 3) % vocab }, caches[i]);
        model.Forward(decode, again, workspace);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var (prefix, next) = Plan[i];
            var cache = model.CreateCache();
            if (prefix > 0) model.Forward(Prompts[i].AsSpan(0, prefix), cache, new float[prefix * vocab]);
            model.Forward(Prompts[i].AsSpan(prefix, next), cache, new float[vocab], lastOnly: true);
            var one = new float[vocab];
            model.Forward(new[] { (i * 7 + 3) % vocab }, cache, one, lastOnly: true);
            Assert.Equal(one, again.AsSpan(i * vocab, vocab).ToArray());
        }
    }

    [Fact]
    public void Every_position_logits_come_out_segment_after_segment()
    {
        using var model = KimiModel.Load(Write(CheckpointFormat.Int4));
        int vocab = model.Config.VocabSize;
        var a = model.Logits(Prompts[0]);
        var b = model.Logits(Prompts[1]);
        var all = new float[(Prompts[0].Length + Prompts[1].Length) * vocab];
        model.Forward([new ForwardSegment(Prompts[0], model.CreateCache()), new ForwardSegment(Prompts[1], model.CreateCache())],
            all, new BatchWorkspace(), lastOnly: false);
        Assert.Equal(a.Concat(b).ToArray(), all);
    }

    [Fact]
    public void Bad_batches_are_errors_naming_the_segment()
    {
        using var model = KimiModel.Load(Write(CheckpointFormat.Int4));
        var cache = model.CreateCache();
        var logits = new float[2 * model.Config.VocabSize];
        var shared = Assert.Throws<ArgumentException>(() => model.Forward(
            [new ForwardSegment(new[] { 1 }, cache), new ForwardSegment(new[] { 2 }, cache)], logits, new BatchWorkspace()));
        Assert.Contains("segments 0 and 1 share a cache", shared.Message);
        var empty = Assert.Throws<ArgumentException>(() => model.Forward(
            [new ForwardSegment(new[] { 1 }, model.CreateCache()), new ForwardSegment(Array.Empty<int>(), model.CreateCache())], logits, new BatchWorkspace()));
        Assert.Contains("segment 1 has no tokens", empty.Message);
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(
            [new ForwardSegment(new[] { 1 }, model.CreateCache()), new ForwardSegment(new[] { 500 }, model.CreateCache())], logits, new BatchWorkspace()));
        Assert.Contains("token id 500", outside.Message);
    }
}
