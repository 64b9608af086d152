using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;

namespace KimiSharp.Model.Tests;

/// <summary>
/// The latent cache in fixed-size blocks: attention over a block table gives the bits of one contiguous cache, whatever
/// the block size; shared prefixes are held by reference and copied only on write; the pool's accounting is exact.
/// </summary>
public sealed class PagedKvCacheTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimisharp-paged-").FullName;
    private readonly KimiModel _model;

    public PagedKvCacheTests()
    {
        // kv_lora_rank and the rope width are multiples of 16, so attention takes the vector kernels where the CPU has them.
        RandomCheckpoint.Write(_dir, new RandomCheckpointOptions
        {
            VocabSize = 97, HiddenSize = 64, IntermediateSize = 96, MoeIntermediateSize = 32, NumHiddenLayers = 2,
            NumAttentionHeads = 2, NRoutedExperts = 4, NSharedExperts = 1, NumExpertsPerTok = 2, KvLoraRank = 64,
            QkNopeHeadDim = 16, QkRopeHeadDim = 16, VHeadDim = 16, MaxPositionEmbeddings = 192, Seed = 5,
        });
        _model = KimiModel.Load(_dir);
    }

    public void Dispose()
    {
        _model.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private int Vocab => _model.Config.VocabSize;

    private static int[] Tokens(int seed, int count)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(97)).ToArray();
    }

    private KvBlockPool Pool(int blockTokens, int blocks = 1000) =>
        new(_model.Config, blocks * blockTokens * KvCache.BytesPerTokenFor(_model.Config), blockTokens);

    /// <summary>Prefill in chunks, then decode one token at a time; every position's logits.</summary>
    private List<float[]> Run(KvCache cache, int[] prompt, int decode, AttentionMode mode)
    {
        var all = new List<float[]>();
        for (int start = 0; start < prompt.Length; start += 37)
        {
            int n = Math.Min(37, prompt.Length - start);
            var logits = new float[n * Vocab];
            _model.Forward(prompt.AsSpan(start, n), cache, logits, mode: mode);
            all.Add(logits);
        }
        int next = prompt[^1];
        for (int i = 0; i < decode; i++)
        {
            var logits = new float[Vocab];
            _model.Forward([next], cache, logits);
            all.Add(logits);
            next = Array.IndexOf(logits, logits.Max());
        }
        return all;
    }

    private static void AssertBitIdentical(List<float[]> expected, List<float[]> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            for (int j = 0; j < expected[i].Length; j++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i][j]) == BitConverter.SingleToInt32Bits(actual[i][j]),
                    $"step {i} logit {j}: {expected[i][j]} vs {actual[i][j]}");
    }

    [Theory]
    [InlineData(AttentionMode.Auto)]
    [InlineData(AttentionMode.Absorbed)]
    [InlineData(AttentionMode.Expanded)]
    public void Any_block_size_gives_the_bits_of_one_contiguous_block(AttentionMode mode)
    {
        // 100 prompt tokens and 40 decoded: decode attention's 64-position chunks cross blocks of 5 and 16 (the sums
        // continue across pieces) and coincide with blocks of 64; one block of 192 is the old contiguous cache.
        var prompt = Tokens(1, 100);
        var contiguous = Run(new KvCache(_model.Config, Pool(192, 1)), prompt, 40, mode);
        foreach (int block in new[] { 1, 5, 16, 64 })
            AssertBitIdentical(contiguous, Run(new KvCache(_model.Config, Pool(block)), prompt, 40, mode));
        // The standalone cache (its own pool) too.
        AssertBitIdentical(contiguous, Run(_model.CreateCache(1), prompt, 40, mode));
    }

    [Fact]
    public void A_shared_prefix_is_held_by_reference_and_copied_only_when_written()
    {
        var pool = Pool(16, 40);
        var tokens = Tokens(2, 100);
        var source = new KvCache(_model.Config, pool);
        _model.Forward(tokens, source, new float[tokens.Length * Vocab]);
        Assert.Equal(7, pool.UsedBlocks); // ⌈100 / 16⌉

        // 70 positions: blocks 0–3 full, block 4 holds 6 of its 16 — all five shared, nothing new taken.
        var target = new KvCache(_model.Config, pool);
        target.SharePrefixFrom(source, 70);
        Assert.Equal(7, pool.UsedBlocks);
        Assert.Equal(source.Blocks.Take(5), target.Blocks);
        foreach (int block in target.Blocks) Assert.Equal(2, pool.RefCount(block));
        Assert.Equal(1, target.BlocksToReach(71)); // the shared partial block is copied before the first write
        Assert.Equal(2, target.BlocksToReach(81)); // and one more block past position 80

        // Writing 12 new tokens (to position 81) copies block 4 and adds block 5; the source keeps its own block 4 untouched.
        var extra = Tokens(3, 12);
        var sharedLogits = new float[Vocab];
        _model.Forward(extra, target, sharedLogits, lastOnly: true);
        Assert.Equal(9, pool.UsedBlocks);
        Assert.Equal(source.Blocks.Take(4), target.Blocks.Take(4));
        Assert.NotEqual(source.Blocks[4], target.Blocks[4]);
        Assert.Equal(1, pool.RefCount(source.Blocks[4]));

        // The sharer computes exactly what a cache that computed the prefix itself does…
        var own = new KvCache(_model.Config, Pool(16));
        _model.Forward(tokens.AsSpan(0, 70), own, new float[70 * Vocab]);
        var ownLogits = new float[Vocab];
        _model.Forward(extra, own, ownLogits, lastOnly: true);
        Assert.Equal(ownLogits, sharedLogits);
        // …and the source, continuing, what it would had nobody shared its blocks.
        var fresh = new KvCache(_model.Config, Pool(16));
        _model.Forward(tokens, fresh, new float[tokens.Length * Vocab]);
        var expected = new float[Vocab];
        var actual = new float[Vocab];
        _model.Forward([7], fresh, expected);
        _model.Forward([7], source, actual);
        Assert.Equal(expected, actual);

        // Every block goes back once both let go.
        target.Reset();
        Assert.Equal(7, pool.UsedBlocks);
        source.Reset();
        Assert.Equal(0, pool.UsedBlocks);
        Assert.Equal(9, pool.PeakUsedBlocks);
    }

    [Fact]
    public void The_pool_counts_blocks_exactly_and_refuses_past_its_budget()
    {
        var pool = Pool(8, 4);
        Assert.Equal(4, pool.TotalBlocks);
        Assert.Equal(8 * KvCache.BytesPerTokenFor(_model.Config), pool.BlockBytes);
        var cache = new KvCache(_model.Config, pool);
        _model.Forward(Tokens(4, 20), cache, new float[20 * Vocab]);
        Assert.Equal((3, 1), (pool.UsedBlocks, pool.FreeBlocks));
        Assert.Equal(24, cache.Capacity);
        cache.Truncate(9); // positions 0–8: two blocks stay
        Assert.Equal(2, pool.UsedBlocks);
        var other = new KvCache(_model.Config, pool);
        var error = Assert.Throws<KvCacheExhaustedException>(() => _model.Forward(Tokens(5, 17), other, new float[17 * Vocab]));
        Assert.Contains("all 4 KV cache blocks", error.Message);
        other.Reset();
        cache.Reset();
        Assert.Equal(0, pool.UsedBlocks);
        Assert.Throws<InvalidOperationException>(() => pool.Release(0));
        // A budget below one block holds none.
        Assert.Equal(0, new KvBlockPool(_model.Config, pool.BlockBytes - 1, 8).TotalBlocks);
    }
}
