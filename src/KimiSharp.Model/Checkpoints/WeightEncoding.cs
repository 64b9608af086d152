using System.Buffers.Binary;

namespace KimiSharp.Model.Checkpoints;

/// <summary>A block-quantised FP8 E4M3FN weight: the codes plus the F32 <c>weight_scale_inv</c> grid.</summary>
/// <param name="Codes">FP8 E4M3FN bytes, row-major [rows, cols].</param>
/// <param name="Scales">Per-block scales, row-major [ceil(rows/BlockRows), ceil(cols/BlockCols)]; dequantised value = fp8(code) * scale.</param>
public sealed record Fp8BlockWeight(byte[] Codes, float[] Scales, long[] CodesShape, long[] ScalesShape, int BlockRows, int BlockCols);

/// <summary>A compressed-tensors "pack-quantized" symmetric INT4 weight.</summary>
/// <param name="Packed">int32 words, row-major [rows, ceil(cols/8)]; column c is nibble c%8 of word c/8, least-significant nibble first, stored as q + 8.</param>
/// <param name="Scales">BF16 bit patterns, row-major [rows, ceil(cols/groupSize)]; dequantised value = q * scale.</param>
public sealed record Int4PackedWeight(int[] Packed, ushort[] Scales, long[] PackedShape, long[] ScalesShape, int Rows, int Cols, int GroupSize);

/// <summary>Encoders from float32 to the storage formats K2-family checkpoints use.</summary>
public static class WeightEncoding
{
    /// <summary>Largest finite FP8 E4M3FN magnitude.</summary>
    public const float Fp8E4M3Max = 448f;

    /// <summary>Largest magnitude of a signed 4-bit code used by the symmetric quantiser (codes span -8..7).</summary>
    public const int Int4MaxMagnitude = 7;

    /// <summary>float32 to bfloat16 bits, rounding to nearest even. NaN stays NaN (made quiet, sign kept); overflow rounds to infinity like IEEE.</summary>
    public static ushort FloatToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        uint lsb = (bits >> 16) & 1;
        bits += 0x7FFFu + lsb;
        return (ushort)(bits >> 16);
    }

    /// <summary>bfloat16 bits to float32 (exact).</summary>
    public static float Bf16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Rounds <paramref name="value"/> to the nearest bfloat16 and returns it as a float.</summary>
    public static float RoundToBf16(float value) => Bf16ToFloat(FloatToBf16(value));

    /// <summary>
    /// float32 to FP8 E4M3FN (1 sign bit, 4 exponent bits with bias 7, 3 mantissa bits, subnormals, no infinities).
    /// Rounds to nearest even, saturates finite and infinite overflow to ±448, and maps NaN to the NaN code with the sign kept.
    /// </summary>
    public static byte FloatToFp8E4M3(float value)
    {
        byte sign = (byte)(BitConverter.SingleToInt32Bits(value) < 0 ? 0x80 : 0);
        if (float.IsNaN(value)) return (byte)(sign | 0x7F);
        double a = Math.Abs((double)value);
        if (a >= Fp8E4M3Max) return (byte)(sign | 0x7E);

        const double minNormal = 1.0 / 64; // 2^-6
        if (a < minNormal)
        {
            // Subnormal step is 2^-9; a mantissa count of 8 is exactly the code of the smallest normal (0x08).
            int m = (int)Math.Round(a * 512.0, MidpointRounding.ToEven);
            return (byte)(sign | m);
        }

        int e = Math.ILogB(a); // a in [2^e, 2^(e+1)), e in [-6, 8]
        double fraction = Math.ScaleB(a, -e) - 1.0; // [0, 1), exact
        int q = (int)Math.Round(fraction * 8.0, MidpointRounding.ToEven);
        if (q == 8) { q = 0; e++; }
        int code = ((e + 7) << 3) | q;
        if (code > 0x7E) code = 0x7E; // cannot happen for a < 448, kept as a guard
        return (byte)(sign | code);
    }

    /// <summary>FP8 E4M3FN byte to float32 (exact). 0x7F and 0xFF are NaN.</summary>
    public static float Fp8E4M3ToFloat(byte code)
    {
        int exponent = (code >> 3) & 0xF, mantissa = code & 7;
        double magnitude;
        if (exponent == 0xF && mantissa == 7) return float.NaN;
        if (exponent == 0) magnitude = Math.ScaleB(mantissa, -9);
        else magnitude = Math.ScaleB(8 + mantissa, exponent - 10);
        return (float)((code & 0x80) != 0 ? -magnitude : magnitude);
    }

    /// <summary>Encodes floats as little-endian bfloat16 bytes.</summary>
    public static byte[] ToBf16Bytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), FloatToBf16(values[i]));
        return bytes;
    }

    /// <summary>Encodes floats as little-endian float32 bytes.</summary>
    public static byte[] ToF32Bytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    /// <summary>Encodes ints as little-endian int32 bytes.</summary>
    public static byte[] ToI32Bytes(ReadOnlySpan<int> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    /// <summary>Encodes longs as little-endian int64 bytes.</summary>
    public static byte[] ToI64Bytes(ReadOnlySpan<long> values)
    {
        var bytes = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8 * i), values[i]);
        return bytes;
    }

    /// <summary>Encodes bfloat16 bit patterns as little-endian bytes.</summary>
    public static byte[] ToU16Bytes(ReadOnlySpan<ushort> values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), values[i]);
        return bytes;
    }

    /// <summary>
    /// DeepSeek-V3 style block FP8 quantisation of a row-major [rows, cols] weight.
    /// Per block S = max|W| / 448 (1 for an all-zero block), code = fp8(W / S), dequantised = fp8value(code) * S.
    /// Partial edge blocks cover only the real elements.
    /// </summary>
    public static Fp8BlockWeight QuantizeFp8Block(ReadOnlySpan<float> weight, int rows, int cols, int blockRows = 128, int blockCols = 128)
    {
        ValidateMatrix(weight.Length, rows, cols);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCols, 1);
        int scaleRows = CeilDiv(rows, blockRows), scaleCols = CeilDiv(cols, blockCols);
        var codes = new byte[weight.Length];
        var scales = new float[scaleRows * scaleCols];
        for (int br = 0; br < scaleRows; br++)
        {
            int r0 = br * blockRows, r1 = Math.Min(rows, r0 + blockRows);
            for (int bc = 0; bc < scaleCols; bc++)
            {
                int c0 = bc * blockCols, c1 = Math.Min(cols, c0 + blockCols);
                float amax = 0;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        amax = Math.Max(amax, Math.Abs(weight[r * cols + c]));
                float scale = amax > 0 && float.IsFinite(amax) ? amax / Fp8E4M3Max : 1f;
                if (scale == 0) scale = float.Epsilon; // amax so tiny that amax/448 underflows: keep the division finite
                scales[br * scaleCols + bc] = scale;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        codes[r * cols + c] = FloatToFp8E4M3(weight[r * cols + c] / scale);
            }
        }
        return new Fp8BlockWeight(codes, scales, [rows, cols], [scaleRows, scaleCols], blockRows, blockCols);
    }

    /// <summary>
    /// compressed-tensors pack-quantized symmetric INT4 of a row-major [rows, cols] weight, one scale per
    /// <paramref name="groupSize"/> consecutive input columns of a row: scale = bf16(max|w| / 7) (1 for an all-zero group),
    /// q = clamp(round_half_even(w / scale), -8, 7), stored nibble q + 8. Padding nibbles past the last column are zero bits.
    /// </summary>
    public static Int4PackedWeight QuantizeInt4Packed(ReadOnlySpan<float> weight, int rows, int cols, int groupSize = 32)
    {
        ValidateMatrix(weight.Length, rows, cols);
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        int words = CeilDiv(cols, 8), groups = CeilDiv(cols, groupSize);
        var packed = new int[rows * words];
        var scales = new ushort[rows * groups];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = weight.Slice(r * cols, cols);
            for (int g = 0; g < groups; g++)
            {
                int c0 = g * groupSize, c1 = Math.Min(cols, c0 + groupSize);
                float amax = 0;
                for (int c = c0; c < c1; c++) amax = Math.Max(amax, Math.Abs(row[c]));
                float rawScale = amax > 0 && float.IsFinite(amax) ? amax / Int4MaxMagnitude : 1f;
                ushort scaleBits = FloatToBf16(rawScale);
                float scale = Bf16ToFloat(scaleBits);
                if (scale == 0) { scaleBits = FloatToBf16(1f); scale = 1f; } // a subnormal amax underflowed in bf16
                scales[r * groups + g] = scaleBits;
                for (int c = c0; c < c1; c++)
                {
                    double q = Math.Round(row[c] / (double)scale, MidpointRounding.ToEven);
                    int qi = (int)Math.Clamp(q, -8, 7);
                    uint nibble = (uint)(qi + 8);
                    ref int word = ref packed[r * words + c / 8];
                    word = (int)((uint)word | (nibble << (4 * (c % 8))));
                }
            }
        }
        return new Int4PackedWeight(packed, scales, [rows, words], [rows, groups], rows, cols, groupSize);
    }

    /// <summary>Dequantises a block FP8 weight back to floats (fp8 value times block scale).</summary>
    public static float[] DequantizeFp8Block(Fp8BlockWeight w)
    {
        int blockRows = w.BlockRows, blockCols = w.BlockCols;
        int rows = checked((int)w.CodesShape[0]), cols = checked((int)w.CodesShape[1]);
        int scaleCols = checked((int)w.ScalesShape[1]);
        var result = new float[w.Codes.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                result[r * cols + c] = Fp8E4M3ToFloat(w.Codes[r * cols + c]) * w.Scales[(r / blockRows) * scaleCols + c / blockCols];
        return result;
    }

    /// <summary>Dequantises a pack-quantized INT4 weight back to floats (q times group scale).</summary>
    public static float[] DequantizeInt4Packed(Int4PackedWeight w)
    {
        int words = checked((int)w.PackedShape[1]), groups = checked((int)w.ScalesShape[1]);
        var result = new float[w.Rows * w.Cols];
        for (int r = 0; r < w.Rows; r++)
            for (int c = 0; c < w.Cols; c++)
            {
                uint word = (uint)w.Packed[r * words + c / 8];
                int q = (int)((word >> (4 * (c % 8))) & 0xF) - 8;
                result[r * w.Cols + c] = q * Bf16ToFloat(w.Scales[r * groups + c / w.GroupSize]);
            }
        return result;
    }

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;

    private static void ValidateMatrix(int length, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cols, 1);
        if ((long)rows * cols != length)
            throw new ArgumentException($"weight has {length} elements, expected {rows}x{cols}.");
    }
}
