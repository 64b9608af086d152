using System.Runtime.CompilerServices;

namespace KimiSharp.Kernels;

/// <summary>Scalar decoders for the compact number formats checkpoints store.</summary>
public static class NumberFormats
{
    /// <summary>bfloat16 is the top half of a float32, so widening is a shift.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Bf16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Every FP8 E4M3FN value, indexed by its byte (1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities).</summary>
    public static ReadOnlySpan<float> Fp8E4M3Table => s_fp8E4M3;

    private static readonly float[] s_fp8E4M3 = BuildFp8E4M3Table();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp8E4M3ToFloat(byte bits) => s_fp8E4M3[bits];

    private static float[] BuildFp8E4M3Table()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int sign = (b >> 7) & 1, exponent = (b >> 3) & 0xF, mantissa = b & 0x7;
            double magnitude;
            if (exponent == 0xF && mantissa == 0x7) magnitude = double.NaN; // E4M3FN keeps only S.1111.111 as NaN
            else if (exponent == 0) magnitude = mantissa / 8.0 * Math.Pow(2, -6);
            else magnitude = (1 + mantissa / 8.0) * Math.Pow(2, exponent - 7);
            table[b] = (float)(sign == 1 ? -magnitude : magnitude);
        }
        return table;
    }
}
