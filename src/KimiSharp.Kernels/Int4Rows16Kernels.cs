using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KimiSharp.Kernels;

/// <summary>
/// INT4 (group 32) weights repacked 16 rows at a time for int8 activations (<see cref="WeightFormat.PackedInt4Rows16"/>).
/// <para>
/// Layout: row block b (rows 16b … 16b+15) and group g take 256 bytes at (b·G + g)·256, G = Cols/32. Chunk k (0–3) is
/// 64 bytes: for each of the 16 rows r, 4 bytes whose low nibbles are columns 32g+4k … 32g+4k+3 and whose high nibbles
/// are columns 32g+16+4k … +3, still offset by +8. Scales: bfloat16 [b][g][16 rows], in the same bytes the [rows, G]
/// scales held. The repack moves bytes only inside each block, so it is done in place and costs no memory.
/// </para>
/// <para>
/// Why: one 64-byte load then holds 4 columns of 16 rows, and a token's 4 int8 activations broadcast across it, so a
/// whole group of 16 rows is summed in int16 lanes (8 <c>vpmaddubsw</c>, 7 adds, one <c>vpmaddwd</c>) before a single
/// conversion, instead of converting every 8-column lane of every row. Arithmetic, for every (row, token), in this
/// order whichever path computes it: per group the exact integer s = Σ q·xq − 8·Σ xq, then
/// acc = fma(float(s) · dx_g, scale_g, acc) for g = 0, 1, …; acc starts at 0.
/// </para>
/// </summary>
internal static unsafe class Int4Rows16Kernels
{
    public const int Rows = 16;
    private const int Group = Int4Kernels.Group;
    private const int BlockBytes = Rows * Group / 2;

    /// <summary>
    /// How far ahead a one-token product asks for weight bytes, into L2 (prefetcht1) rather than L1: on the 2-core
    /// Xeon guest, batches of expert-sized matrices streamed at 84–91 % of the bandwidth probe this way, against 77 %
    /// with the row kernels' 8 KB into L1 (1 thread: 90 % against 87 %).
    /// </summary>
    internal const int DecodePrefetchDistance = 16384;

    /// <summary>
    /// The blocks a row range computes when rows are split across threads: each block whose first row falls in
    /// [<paramref name="rowStart"/>, <paramref name="rowEnd"/>), all 16 of its rows, so every row is written exactly once.
    /// </summary>
    public static (int First, int End) BlocksStartingIn(int rowStart, int rowEnd) =>
        ((rowStart + Rows - 1) / Rows, (rowEnd + Rows - 1) / Rows);

    /// <summary>Whether <paramref name="w"/> (PackedInt) can be repacked: 4-bit, group 32, whole blocks of rows and groups.</summary>
    public static bool CanRepack(WeightMatrix w) =>
        Int4Kernels.Handles(w) && w.Rows % Rows == 0 && w.Cols % Group == 0 && w.ScaleStride == w.Cols / Group && w.RowBytes == w.Cols / 2;

    /// <summary>Rewrites <paramref name="w"/>'s bytes and scales in place into the 16-row layout, blocks in parallel.</summary>
    public static void Repack(WeightMatrix w)
    {
        if (!CanRepack(w)) throw new ArgumentException($"a [{w.Rows}, {w.Cols}] {w.Format} weight cannot be repacked into 16-row blocks");
        int groups = w.Cols / Group;
        long blockSpan = (long)Rows * w.RowBytes; // bytes of 16 rows, in either layout
        nint data = (nint)w.Data, scaleBase = (nint)w.Scales;
        Parallel.For(0, w.Rows / Rows,
            () => (Bytes: new byte[blockSpan], Scales: new ushort[Rows * groups]),
            (b, _, copy) =>
            {
                RepackBlock((byte*)data + b * blockSpan, (ushort*)scaleBase + (long)b * Rows * groups, groups, w.RowBytes, copy.Bytes, copy.Scales);
                return copy;
            },
            _ => { });
    }

    private static void RepackBlock(byte* dst, ushort* dstScales, int groups, long rowBytes, byte[] rowCopy, ushort[] scaleCopy)
    {
        new ReadOnlySpan<byte>(dst, rowCopy.Length).CopyTo(rowCopy);
        new ReadOnlySpan<ushort>(dstScales, scaleCopy.Length).CopyTo(scaleCopy);
        fixed (byte* src = rowCopy)
        fixed (ushort* srcScales = scaleCopy)
            for (int g = 0; g < groups; g++)
            {
                byte* block = dst + (long)g * BlockBytes;
                for (int r = 0; r < Rows; r++)
                {
                    // 16 bytes of the row's group: byte j holds columns 2j (low nibble) and 2j+1 (high nibble).
                    byte* s = src + r * rowBytes + g * (Group / 2);
                    for (int k = 0; k < 4; k++)
                    {
                        // Chunk k: low nibbles are columns 4k … 4k+3 (bytes 2k, 2k+1), high nibbles 16+4k … (bytes 8+2k, 9+2k).
                        byte lo0 = s[2 * k], lo1 = s[2 * k + 1], hi0 = s[8 + 2 * k], hi1 = s[9 + 2 * k];
                        byte* o = block + k * 64 + 4 * r;
                        o[0] = (byte)((lo0 & 0xF) | (hi0 << 4));
                        o[1] = (byte)((lo0 >> 4) | (hi0 & 0xF0));
                        o[2] = (byte)((lo1 & 0xF) | (hi1 << 4));
                        o[3] = (byte)((lo1 >> 4) | (hi1 & 0xF0));
                    }
                    dstScales[g * Rows + r] = srcScales[r * groups + g];
                }
            }
    }

    /// <summary>The stored nibble (0–15, +8 offset) of w[row, col] in the 16-row layout.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Element(WeightMatrix w, int row, int col)
    {
        int groups = w.Cols / Group, g = col / Group, c = col % Group, r = row % Rows;
        byte* block = w.Data + ((long)(row / Rows) * groups + g) * BlockBytes;
        byte b = block[(c & 15) / 4 * 64 + 4 * r + (c & 3)];
        return c < 16 ? b & 0xF : b >> 4;
    }

    /// <summary>The bfloat16 scale of w[row, group].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(WeightMatrix w, int row, int group) =>
        NumberFormats.Bf16ToFloat(((ushort*)w.Scales)[((long)(row / Rows) * (w.Cols / Group) + group) * Rows + row % Rows]);

    /// <summary>
    /// y[t·yStride + r] for the 16 rows of block <paramref name="block"/> and <paramref name="count"/> tokens from
    /// <paramref name="token"/>. Up to eight tokens share the unpacked weights; every result is the per-(row, token)
    /// arithmetic in the type summary, so it does not depend on how tokens are grouped.
    /// </summary>
    /// <para>
    /// <paramref name="stream"/>: this is the only pass over the block's weights (a decode step, or a batch of at most
    /// eight tokens, as most routed experts get in batched decoding), so they come from DRAM and are prefetched ahead.
    /// One token alone always streams.
    /// </para>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Block(WeightMatrix w, int block, QuantizedActivations q, int token, int count, float* y, long yStride, bool stream = false)
    {
        if (Int4Kernels.Level != 2) { BlockScalar(w, block, q, token, count, y, yStride); return; }
        stream |= count == 1;
        int t = 0;
        for (; t + 8 <= count; t += 8) Block8(w, block, q, token + t, y + t * yStride, yStride, stream && t == 0);
        for (; count - t >= 2; t += 4)
            Block2To4(w, block, q, token + t, Math.Min(4, count - t), y + t * yStride, yStride, stream && t == 0);
        if (t < count) Block1(w, block, q[token + t], y + t * yStride, stream && t == 0);
    }

    /// <summary>Asks for the group <see cref="DecodePrefetchDistance"/> bytes ahead into L2 (see there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(byte* b)
    {
        Sse.Prefetch1(b + DecodePrefetchDistance); Sse.Prefetch1(b + DecodePrefetchDistance + 64);
        Sse.Prefetch1(b + DecodePrefetchDistance + 128); Sse.Prefetch1(b + DecodePrefetchDistance + 192);
    }

    /// <summary>The per-(row, token) arithmetic, one element at a time: the reference the vector paths must match bit for bit.</summary>
    public static void BlockScalar(WeightMatrix w, int block, QuantizedActivations q, int token, int count, float* y, long yStride)
    {
        int groups = w.Cols / Group;
        for (int t = 0; t < count; t++)
        {
            var xq = q[token + t];
            for (int r = 0; r < Rows; r++)
            {
                int row = block * Rows + r;
                float acc = 0;
                for (int g = 0; g < groups; g++)
                {
                    int s = 0;
                    for (int c = 0; c < Group; c++) s += Element(w, row, g * Group + c) * xq.Natural[g * Group + c];
                    s -= xq.GroupOffsets[g];
                    acc = MathF.FusedMultiplyAdd(s * xq.GroupScales[g], Scale(w, row, g), acc);
                }
                y[t * yStride + r] = acc;
            }
        }
    }

    /// <summary>Σ over one group of 16 rows × 32 columns against one token's 32 int8 activations, per row (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> GroupSum(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
        Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3, sbyte* x, Vector512<short> ones)
    {
        // Each product lane sums 2 of |q·x| ≤ 15·127; eight of them stay within int16 (16 · 1905 = 30480).
        var p0 = Avx512BW.MultiplyAddAdjacent(l0, Vector512.Create(*(int*)x).AsSByte());
        var p1 = Avx512BW.MultiplyAddAdjacent(l1, Vector512.Create(*(int*)(x + 4)).AsSByte());
        var p2 = Avx512BW.MultiplyAddAdjacent(l2, Vector512.Create(*(int*)(x + 8)).AsSByte());
        var p3 = Avx512BW.MultiplyAddAdjacent(l3, Vector512.Create(*(int*)(x + 12)).AsSByte());
        var p4 = Avx512BW.MultiplyAddAdjacent(h0, Vector512.Create(*(int*)(x + 16)).AsSByte());
        var p5 = Avx512BW.MultiplyAddAdjacent(h1, Vector512.Create(*(int*)(x + 20)).AsSByte());
        var p6 = Avx512BW.MultiplyAddAdjacent(h2, Vector512.Create(*(int*)(x + 24)).AsSByte());
        var p7 = Avx512BW.MultiplyAddAdjacent(h3, Vector512.Create(*(int*)(x + 28)).AsSByte());
        var sum = Avx512BW.Add(Avx512BW.Add(Avx512BW.Add(p0, p1), Avx512BW.Add(p2, p3)), Avx512BW.Add(Avx512BW.Add(p4, p5), Avx512BW.Add(p6, p7)));
        return Avx512BW.MultiplyAddAdjacent(sum, ones);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales(ushort* scales) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(scales)), 16).AsSingle();

    /// <summary>
    /// Two to four tokens over one block (a routed expert gets a few tokens of a batched decoding step): the weights are
    /// loaded and unpacked once per group for all of them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block2To4(WeightMatrix w, int block, QuantizedActivations q, int token, int count, float* y, long yStride, bool prefetch)
    {
        int groups = w.Cols / Group;
        byte* blocks = w.Data + (long)block * groups * BlockBytes;
        ushort* scales = (ushort*)w.Scales + (long)block * groups * Rows;
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        QuantizedActivations.Token x0 = q[token], x1 = q[token + 1], x2 = count > 2 ? q[token + 2] : x1, x3 = count > 3 ? q[token + 3] : x1;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int g = 0; g < groups; g++)
        {
            byte* b = blocks + (long)g * BlockBytes;
            if (prefetch) PrefetchAhead(b);
            Unpack(b, nibble, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            var sc = Scales(scales + g * Rows);
            int c = g * Group;
            a0 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x0.Natural + c, ones), x0, g, sc, a0);
            a1 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x1.Natural + c, ones), x1, g, sc, a1);
            if (count > 2) a2 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x2.Natural + c, ones), x2, g, sc, a2);
            if (count > 3) a3 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x3.Natural + c, ones), x3, g, sc, a3);
        }
        a0.Store(y); a1.Store(y + yStride);
        if (count > 2) a2.Store(y + 2 * yStride);
        if (count > 3) a3.Store(y + 3 * yStride);
    }

    /// <summary>Eight tokens over one block: the weights are loaded and unpacked once per group for all of them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block8(WeightMatrix w, int block, QuantizedActivations q, int token, float* y, long yStride, bool prefetch)
    {
        int groups = w.Cols / Group;
        byte* blocks = w.Data + (long)block * groups * BlockBytes;
        ushort* scales = (ushort*)w.Scales + (long)block * groups * Rows;
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        QuantizedActivations.Token x0 = q[token], x1 = q[token + 1], x2 = q[token + 2], x3 = q[token + 3],
            x4 = q[token + 4], x5 = q[token + 5], x6 = q[token + 6], x7 = q[token + 7];
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int g = 0; g < groups; g++)
        {
            byte* b = blocks + (long)g * BlockBytes;
            if (prefetch) PrefetchAhead(b);
            Unpack(b, nibble, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            var sc = Scales(scales + g * Rows);
            int c = g * Group;
            a0 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x0.Natural + c, ones), x0, g, sc, a0);
            a1 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x1.Natural + c, ones), x1, g, sc, a1);
            a2 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x2.Natural + c, ones), x2, g, sc, a2);
            a3 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x3.Natural + c, ones), x3, g, sc, a3);
            a4 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x4.Natural + c, ones), x4, g, sc, a4);
            a5 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x5.Natural + c, ones), x5, g, sc, a5);
            a6 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x6.Natural + c, ones), x6, g, sc, a6);
            a7 = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x7.Natural + c, ones), x7, g, sc, a7);
        }
        a0.Store(y); a1.Store(y + yStride); a2.Store(y + 2 * yStride); a3.Store(y + 3 * yStride);
        a4.Store(y + 4 * yStride); a5.Store(y + 5 * yStride); a6.Store(y + 6 * yStride); a7.Store(y + 7 * yStride);
    }

    /// <summary>A group's 256 bytes as 8 vectors of nibbles: chunks k = 0–3 low (columns 4k…) and high (16+4k…).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unpack(byte* b, Vector512<byte> nibble, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2,
        out Vector512<byte> l3, out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3)
    {
        var w0 = Vector512.Load(b); var w1 = Vector512.Load(b + 64); var w2 = Vector512.Load(b + 128); var w3 = Vector512.Load(b + 192);
        l0 = w0 & nibble; l1 = w1 & nibble; l2 = w2 & nibble; l3 = w3 & nibble;
        h0 = Avx512BW.ShiftRightLogical(w0.AsUInt16(), 4).AsByte() & nibble;
        h1 = Avx512BW.ShiftRightLogical(w1.AsUInt16(), 4).AsByte() & nibble;
        h2 = Avx512BW.ShiftRightLogical(w2.AsUInt16(), 4).AsByte() & nibble;
        h3 = Avx512BW.ShiftRightLogical(w3.AsUInt16(), 4).AsByte() & nibble;
    }

    /// <summary>fma(float(s − 8·Σxq_g)·dx_g, scale_g, acc): a group's exact integer sum into one token's 16 row accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Accumulate(Vector512<int> sum, QuantizedActivations.Token x, int g, Vector512<float> scale, Vector512<float> acc) =>
        Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sum - Vector512.Create(x.GroupOffsets[g])) * x.GroupScales[g], scale, acc);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1(WeightMatrix w, int block, QuantizedActivations.Token x, float* y, bool prefetch)
    {
        int groups = w.Cols / Group;
        byte* blocks = w.Data + (long)block * groups * BlockBytes;
        ushort* scales = (ushort*)w.Scales + (long)block * groups * Rows;
        var nibble = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        Vector512<float> acc = default;
        for (int g = 0; g < groups; g++)
        {
            byte* b = blocks + (long)g * BlockBytes;
            if (prefetch) PrefetchAhead(b); // decode streams the weights from DRAM once
            Unpack(b, nibble, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            acc = Accumulate(GroupSum(l0, l1, l2, l3, h0, h1, h2, h3, x.Natural + g * Group, ones), x, g, Scales(scales + g * Rows), acc);
        }
        acc.Store(y);
    }
}
