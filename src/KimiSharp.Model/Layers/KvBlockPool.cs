using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// Fixed-size blocks of MLA latent cache drawn from one byte budget. A block holds <see cref="BlockTokens"/> positions of
/// every layer: per layer, the positions' latents (kv_lora_rank each) and then their rope keys (qk_rope_head_dim each).
/// Blocks are reference counted: a sequence's <see cref="KvCache"/> holds one reference per block of its block table,
/// and the engine's prefix cache holds its own, so a shared prefix is stored once. A block returns to the free list when
/// its count drops to zero. Storage is created on first use and kept for reuse, so resident memory grows only as far as
/// the cache was ever filled, never past the budget.
/// <para>
/// One block spans all layers, so one block table (and one reference count) serves the whole model. The block size
/// matches the decode attention's position chunk (64): up to 4K context each chunk is exactly one block's contiguous
/// rows per layer, so attention runs the same kernel calls over the same memory shape as with a contiguous cache.
/// </para>
/// Not thread-safe: one owner (the engine's loop) rents and releases; counters may be read from any thread.
/// </summary>
public sealed unsafe class KvBlockPool
{
    /// <summary>Positions per block unless told otherwise: the decode attention's smallest position chunk.</summary>
    public const int DefaultBlockTokens = 64;

    private readonly List<float[]> _storage = [];
    private readonly List<nint> _pointers = [];
    private readonly List<int> _refCounts = [];
    private readonly Stack<int> _free = new();
    private int _used;

    public int Layers { get; }
    public int LatentDim { get; }
    public int RopeDim { get; }
    /// <summary>Positions per block.</summary>
    public int BlockTokens { get; }
    /// <summary>Blocks the budget allows.</summary>
    public int TotalBlocks { get; }
    /// <summary>Blocks with at least one reference.</summary>
    public int UsedBlocks => Volatile.Read(ref _used);
    public int FreeBlocks => TotalBlocks - UsedBlocks;
    /// <summary>Blocks whose storage exists (used now, or used once and kept on the free list).</summary>
    public int MaterializedBlocks => _storage.Count;
    /// <summary>Bytes of one block: <see cref="BlockTokens"/> × <see cref="BytesPerToken"/>.</summary>
    public long BlockBytes => (long)BlockTokens * BytesPerToken;
    public long BytesPerToken => KvCache.BytesPerTokenOf(Layers, LatentDim, RopeDim);
    /// <summary>The most blocks in use at once since the pool was made.</summary>
    public int PeakUsedBlocks { get; private set; }

    private int LayerStride => BlockTokens * (LatentDim + RopeDim);

    /// <summary>A pool of blocks for <paramref name="config"/>'s model within <paramref name="budgetBytes"/> (whole blocks only).</summary>
    public KvBlockPool(ModelConfig config, long budgetBytes, int blockTokens = DefaultBlockTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegative(budgetBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockTokens, 1);
        Layers = config.NumHiddenLayers;
        LatentDim = config.KvLoraRank;
        RopeDim = config.QkRopeHeadDim;
        BlockTokens = blockTokens;
        long floatsPerBlock = (long)Layers * LayerStride;
        if (floatsPerBlock > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(blockTokens), blockTokens, $"a block of {blockTokens} positions would exceed the largest array");
        TotalBlocks = (int)Math.Min(int.MaxValue, budgetBytes / BlockBytes);
    }

    /// <summary>An unshared pool that holds <paramref name="config"/>'s whole context: the home of a standalone cache.</summary>
    public static KvBlockPool ForOneSequence(ModelConfig config) =>
        new(config, (long)((config.MaxPositionEmbeddings + DefaultBlockTokens - 1) / DefaultBlockTokens) * DefaultBlockTokens * KvCache.BytesPerTokenFor(config));

    /// <summary>Blocks that hold <paramref name="tokens"/> positions.</summary>
    public int BlocksFor(long tokens) => (int)Math.Min(int.MaxValue, (tokens + BlockTokens - 1) / BlockTokens);

    /// <summary>Takes a free block (its contents are stale) with one reference, or returns false when all are in use.</summary>
    public bool TryRent(out int block)
    {
        if (_used >= TotalBlocks) { block = -1; return false; }
        if (_free.Count > 0) block = _free.Pop();
        else
        {
            block = _storage.Count;
            // Pinned, so attention may hold raw pointers into a block for a whole layer.
            var storage = GC.AllocateArray<float>((int)((long)Layers * LayerStride), pinned: true);
            _storage.Add(storage);
            _pointers.Add((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(storage)));
            _refCounts.Add(0);
        }
        _refCounts[block] = 1;
        Volatile.Write(ref _used, _used + 1);
        PeakUsedBlocks = Math.Max(PeakUsedBlocks, _used);
        return true;
    }

    /// <summary>Adds a reference to a block in use (another block table shares it).</summary>
    public void AddRef(int block)
    {
        CheckInUse(block);
        _refCounts[block]++;
    }

    /// <summary>Drops a reference; the block is free again when none remain.</summary>
    public void Release(int block)
    {
        CheckInUse(block);
        if (--_refCounts[block] > 0) return;
        _free.Push(block);
        Volatile.Write(ref _used, _used - 1);
    }

    /// <summary>References held on <paramref name="block"/> (0 when free).</summary>
    public int RefCount(int block) => (uint)block < (uint)_refCounts.Count ? _refCounts[block] : 0;

    private void CheckInUse(int block)
    {
        if ((uint)block >= (uint)_refCounts.Count || _refCounts[block] == 0)
            throw new InvalidOperationException($"KV block {block} is not in use");
    }

    /// <summary>The first latent row of <paramref name="layer"/> in <paramref name="block"/>: [BlockTokens, LatentDim].</summary>
    internal float* Latents(int block, int layer) => (float*)_pointers[block] + (long)layer * LayerStride;

    /// <summary>The first rope key row of <paramref name="layer"/> in <paramref name="block"/>: [BlockTokens, RopeDim].</summary>
    internal float* RopeKeys(int block, int layer) => (float*)_pointers[block] + (long)layer * LayerStride + (long)BlockTokens * LatentDim;

    /// <summary>Copies the first <paramref name="positions"/> positions of every layer of <paramref name="source"/> into <paramref name="target"/>.</summary>
    internal void CopyBlock(int source, int target, int positions)
    {
        for (int l = 0; l < Layers; l++)
        {
            new ReadOnlySpan<float>(Latents(source, l), positions * LatentDim).CopyTo(new Span<float>(Latents(target, l), positions * LatentDim));
            new ReadOnlySpan<float>(RopeKeys(source, l), positions * RopeDim).CopyTo(new Span<float>(RopeKeys(target, l), positions * RopeDim));
        }
    }
}

/// <summary>The KV block pool has no free block for a sequence that needs one (the scheduler should have waited).</summary>
public sealed class KvCacheExhaustedException(string message) : Exception(message);
