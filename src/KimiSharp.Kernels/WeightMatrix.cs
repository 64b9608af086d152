namespace KimiSharp.Kernels;

/// <summary>How a weight matrix's elements are stored.</summary>
public enum WeightFormat
{
    F32,
    F16,
    BF16,
    /// <summary>FP8 E4M3 elements with one float32 multiplier per <c>BlockRows × BlockCols</c> block.</summary>
    Fp8Block,
    /// <summary>compressed-tensors pack-quantized: signed <c>Bits</c>-bit integers packed little-nibble-first into int32 words with a +2^(Bits-1) offset, one bfloat16 scale per <c>GroupSize</c> input columns.</summary>
    PackedInt,
    /// <summary>
    /// <see cref="PackedInt"/> 4-bit, group 32, repacked in place 16 rows at a time for int8 activations (see
    /// <c>Int4Rows16Kernels</c>); float activations still work, through a slower per-element decode.
    /// </summary>
    PackedInt4Rows16,
}

/// <summary>
/// A row-major [Rows, Cols] weight kept in its stored (possibly quantized) form. The memory belongs to the
/// caller (usually a memory-mapped checkpoint), which must outlive this view.
/// </summary>
public sealed unsafe class WeightMatrix
{
    public int Rows { get; }
    public int Cols { get; }
    public WeightFormat Format { get; }

    /// <summary>First byte of row 0.</summary>
    internal byte* Data { get; }
    /// <summary>Bytes between the starts of consecutive rows.</summary>
    internal long RowBytes { get; }
    /// <summary>FP8: float32 [ceil(Rows/BlockRows), ScaleStride]; packed int: bfloat16 [Rows, ScaleStride].</summary>
    internal void* Scales { get; }
    internal int ScaleStride { get; }
    internal int BlockRows { get; }
    /// <summary>FP8: columns per scale block. Packed int: the group size.</summary>
    internal int BlockCols { get; }
    internal int Bits { get; }

    private WeightMatrix(WeightFormat format, int rows, int cols, byte* data, long rowBytes,
        void* scales = null, int scaleStride = 0, int blockRows = 0, int blockCols = 0, int bits = 0)
    {
        if (rows <= 0 || cols <= 0) throw new ArgumentException($"a weight needs positive dimensions, got [{rows}, {cols}]");
        Format = format; Rows = rows; Cols = cols; Data = data; RowBytes = rowBytes;
        Scales = scales; ScaleStride = scaleStride; BlockRows = blockRows; BlockCols = blockCols; Bits = bits;
    }

    /// <summary>Bytes the stored form occupies (elements plus scales): what one full pass over it reads.</summary>
    public long StoredBytes => Format switch
    {
        WeightFormat.Fp8Block => RowBytes * Rows + 4L * ScaleStride * ((Rows + BlockRows - 1) / BlockRows),
        WeightFormat.PackedInt or WeightFormat.PackedInt4Rows16 => RowBytes * Rows + 2L * ScaleStride * Rows,
        _ => RowBytes * Rows,
    };

    public static WeightMatrix FromFloat32(float* data, int rows, int cols) =>
        new(WeightFormat.F32, rows, cols, (byte*)data, 4L * cols);

    public static WeightMatrix FromFloat16(Half* data, int rows, int cols) =>
        new(WeightFormat.F16, rows, cols, (byte*)data, 2L * cols);

    public static WeightMatrix FromBFloat16(ushort* data, int rows, int cols) =>
        new(WeightFormat.BF16, rows, cols, (byte*)data, 2L * cols);

    /// <param name="scaleInv">float32 [ceil(rows/blockRows), ceil(cols/blockCols)]; the value is element × scale.</param>
    public static WeightMatrix FromFp8Block(byte* data, float* scaleInv, int rows, int cols, int blockRows, int blockCols)
    {
        if (blockRows <= 0 || blockCols <= 0) throw new ArgumentException($"FP8 block size must be positive, got [{blockRows}, {blockCols}]");
        return new(WeightFormat.Fp8Block, rows, cols, data, cols, scaleInv, (cols + blockCols - 1) / blockCols, blockRows, blockCols);
    }

    /// <param name="packed">int32 [rows, ceil(cols·bits/32)]</param>
    /// <param name="scales">bfloat16 [rows, ceil(cols/groupSize)]</param>
    public static WeightMatrix FromPackedInt(int* packed, ushort* scales, int rows, int cols, int bits, int groupSize)
    {
        if (bits is not (4 or 8)) throw new ArgumentException($"packed integer weights of {bits} bits are not supported (4 or 8)");
        if (groupSize <= 0) throw new ArgumentException($"group size must be positive, got {groupSize}");
        return new(WeightFormat.PackedInt, rows, cols, (byte*)packed, 4L * PackedWordsPerRow(cols, bits),
            scales, (cols + groupSize - 1) / groupSize, 1, groupSize, bits);
    }

    /// <summary>
    /// Whether this CPU runs the 16-row int8 kernels in vector registers (AVX-512BW). Elsewhere they fall back to a
    /// scalar loop, far slower than the row kernels of the stored layout, so loaders should not repack.
    /// </summary>
    public static bool Rows16Accelerated => Int4Kernels.Level == 2;

    /// <summary>Whether <see cref="RepackRows16"/> applies: 4-bit packed, group 32, rows a multiple of 16, columns of 32.</summary>
    public bool CanRepackRows16 => Int4Rows16Kernels.CanRepack(this);

    /// <summary>
    /// Rewrites this packed INT4 weight's memory in place into 16-row blocks (<see cref="WeightFormat.PackedInt4Rows16"/>),
    /// the layout the fast int8-activation kernels read, and returns the view of it. This view must not be used
    /// afterwards. The memory must be writable and owned by the caller (the loader reads checkpoint weights into a
    /// <see cref="NativeArena"/> first); blocks are rewritten in parallel, each through a copy of its 16 rows.
    /// </summary>
    public WeightMatrix RepackRows16()
    {
        Int4Rows16Kernels.Repack(this);
        return new(WeightFormat.PackedInt4Rows16, Rows, Cols, Data, RowBytes, Scales, ScaleStride, 1, BlockCols, Bits);
    }

    public static int PackedWordsPerRow(int cols, int bits) => (cols * bits + 31) / 32;
}
