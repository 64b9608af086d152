using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KimiSharp.Kernels;

/// <summary>
/// Blocks of rows of a 4-bit group-32 weight (in the 16-row layout), each copied transposed, so that a transposed
/// product over one block, y = Σ_r α_r · w[first + r, :], runs on the int8 kernels as a plain matrix × vector that
/// streams its bytes once, instead of decoding every row to float32. Decode attention folds kv_b_proj's key rows into
/// each head's query this way.
/// <para>
/// Arithmetic: with w[row, c] = s[row, g(c)] · q[row, c] (g(c) = c / 32), y[c] = Σ_r (α_r · s[row_r, g(c)]) · q[row_r, c].
/// The factors a_g[r] = α_r · s[row_r, g] are rounded to float32, quantized to int8 per 32 values of r (the int8 mode's
/// activation quantization), and summed exactly as integers against the copied nibbles, 16 output columns at a time.
/// The copy keeps the nibbles bit for bit; its own scales are all 1.
/// </para>
/// </summary>
public sealed unsafe class TransposedRowBlocks
{
    private const int Group = 32, BlockRows = 16;
    private readonly WeightMatrix _source;
    private readonly WeightMatrix _transposed;
    [ThreadStatic] private static float[]? t_factors;
    [ThreadStatic] private static QuantizedActivations? t_quantized;

    /// <summary>Row of the source where block 0 starts.</summary>
    public int FirstRow { get; }
    /// <summary>Rows between the starts of consecutive blocks.</summary>
    public int RowStride { get; }
    /// <summary>Rows per block (a multiple of 32): the length of α.</summary>
    public int Rows { get; }
    public int Blocks { get; }
    /// <summary>Columns of the source: the length of y.</summary>
    public int Cols => _source.Cols;
    /// <summary>Bytes of the transposed copy.</summary>
    public long StoredBytes => _transposed.StoredBytes;

    private TransposedRowBlocks(WeightMatrix source, WeightMatrix transposed, int firstRow, int rowStride, int rows, int blocks)
    {
        _source = source; _transposed = transposed; FirstRow = firstRow; RowStride = rowStride; Rows = rows; Blocks = blocks;
    }

    /// <summary>
    /// Copies rows [firstRow + b·rowStride, + rows) for b &lt; <paramref name="blocks"/> of <paramref name="source"/>
    /// (<see cref="WeightFormat.PackedInt4Rows16"/>, whose scales the products keep reading) into memory from
    /// <paramref name="arena"/>, transposed and repacked.
    /// </summary>
    public static TransposedRowBlocks Create(WeightMatrix source, int firstRow, int rowStride, int rows, int blocks, NativeArena arena)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(arena);
        if (source.Format != WeightFormat.PackedInt4Rows16)
            throw new ArgumentException($"a {source.Format} weight cannot be transposed for the int8 kernels; repack it with RepackRows16 first", nameof(source));
        if (rows <= 0 || rows % Group != 0) throw new ArgumentException($"blocks of {rows} rows: need a positive multiple of {Group}", nameof(rows));
        if (firstRow % BlockRows != 0 || rowStride % BlockRows != 0)
            throw new ArgumentException($"blocks must start on the layout's 16-row boundaries (first row {firstRow}, stride {rowStride})");
        if (blocks <= 0 || rowStride < rows || firstRow < 0 || firstRow + (long)(blocks - 1) * rowStride + rows > source.Rows)
            throw new ArgumentException($"{blocks} blocks of {rows} rows every {rowStride} from row {firstRow} do not fit the weight's {source.Rows} rows");
        int cols = source.Cols; // a multiple of 32: the 16-row layout requires it
        long rowBytes = rows / 2, outRows = (long)blocks * cols;
        byte* data = arena.Allocate(outRows * rowBytes);
        var scales = (ushort*)arena.Allocate(outRows * (rows / Group) * sizeof(ushort));
        new Span<ushort>(scales, (int)(outRows * (rows / Group))).Fill(0x3F80); // bfloat16 1.0
        nint dataAddress = (nint)data;
        Parallel.For(0, blocks, b =>
        {
            byte* block = (byte*)dataAddress + (long)b * cols * rowBytes;
            for (int r = 0; r < rows; r += 2)
            {
                int row = firstRow + b * rowStride + r;
                for (int c = 0; c < cols; c++)
                    block[c * rowBytes + r / 2] = (byte)(Int4Rows16Kernels.Element(source, row, c) | (Int4Rows16Kernels.Element(source, row + 1, c) << 4));
            }
        });
        var transposed = WeightMatrix.FromPackedInt((int*)data, scales, (int)outRows, rows, 4, Group).RepackRows16();
        return new TransposedRowBlocks(source, transposed, firstRow, rowStride, rows, blocks);
    }

    /// <summary>y = Σ_r α_r · w[FirstRow + block·RowStride + r, :] on the calling thread (y is overwritten).</summary>
    public void TransposeMultiplyInt8(int block, ReadOnlySpan<float> alphas, Span<float> y)
    {
        if ((uint)block >= (uint)Blocks) throw new ArgumentOutOfRangeException(nameof(block), block, $"there are {Blocks} blocks");
        if (alphas.Length != Rows) throw new ArgumentException($"{alphas.Length} factors for a block of {Rows} rows");
        if (y.Length < Cols) throw new ArgumentException($"output has {y.Length} values, the weight has {Cols} columns");
        int groups = Cols / Group, first = FirstRow + block * RowStride;
        var factors = t_factors is { } f && f.Length >= groups * Rows ? f : t_factors = new float[groups * Rows];
        // The source's scales for 16 consecutive rows and one group are 16 consecutive bfloat16 values.
        var scaleBase = (ushort*)_source.Scales;
        fixed (float* pa = alphas)
        fixed (float* pf = factors)
            for (int r = 0; r < Rows; r += BlockRows)
            {
                ushort* rowBlock = scaleBase + (long)(first + r) / BlockRows * groups * BlockRows;
                var alpha = Vector512.Load(pa + r);
                for (int g = 0; g < groups; g++)
                {
                    ushort* s = rowBlock + g * BlockRows;
                    if (Avx512F.IsSupported)
                        (alpha * Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(s)), 16).AsSingle()).Store(pf + g * Rows + r);
                    else
                        for (int i = 0; i < BlockRows; i++) pf[g * Rows + r + i] = pa[r + i] * NumberFormats.Bf16ToFloat(s[i]);
                }
            }
        var quantized = t_quantized ??= new QuantizedActivations();
        fixed (float* pf = factors) quantized.Quantize(pf, groups, Rows);
        // Output columns 16·k … 16·k+15 lie in source group k/2, whose factors are quantized token k/2.
        int firstBlock = block * Cols / BlockRows;
        fixed (float* py = y)
            for (int k = 0; k < Cols / BlockRows; k++)
                Int4Rows16Kernels.Block(_transposed, firstBlock + k, quantized, k * BlockRows / Group, 1, py + k * BlockRows, 1);
    }
}
