namespace KimiSharp.Vision;

/// <summary>
/// The three position signals of the K2.5 tower: the learned table resized to the patch grid, the fixed sin-cos time
/// embedding of video chunks, and the 2-D rotary angles applied inside attention.
/// </summary>
public static class VisionPositions
{
    /// <summary>Keys' cubic convolution constant in torch's bicubic upsampling (PIL uses −0.5; torch and OpenCV −0.75).</summary>
    private const double CubicA = -0.75;

    /// <summary>
    /// Resizes a [height, width, dim] table to [outHeight, outWidth, dim] exactly as torch
    /// <c>F.interpolate(mode="bicubic", align_corners=False)</c> (no antialias): source coordinate
    /// (dst + 0.5)·in/out − 0.5, four taps per axis with a = −0.75, tap indices clamped to the border.
    /// </summary>
    public static float[] ResizeBicubic(ReadOnlySpan<float> table, int height, int width, int dim, int outHeight, int outWidth)
    {
        if (table.Length != (long)height * width * dim)
            throw new ArgumentException($"the table holds {table.Length} values, not {height}×{width}×{dim}");
        if (outHeight <= 0 || outWidth <= 0) throw new ArgumentOutOfRangeException(nameof(outHeight), $"output grid {outHeight}×{outWidth} must be positive");
        var (rowIndex, rowWeight) = CubicTaps(height, outHeight);
        var (colIndex, colWeight) = CubicTaps(width, outWidth);
        var result = new float[(long)outHeight * outWidth * dim];
        var accumulator = new double[dim];
        for (int y = 0; y < outHeight; y++)
            for (int x = 0; x < outWidth; x++)
            {
                Array.Clear(accumulator);
                for (int i = 0; i < 4; i++)
                {
                    int sourceRow = rowIndex[4 * y + i];
                    for (int j = 0; j < 4; j++)
                    {
                        double weight = rowWeight[4 * y + i] * colWeight[4 * x + j];
                        var source = table.Slice((sourceRow * width + colIndex[4 * x + j]) * dim, dim);
                        for (int c = 0; c < dim; c++) accumulator[c] += weight * source[c];
                    }
                }
                var target = result.AsSpan((y * outWidth + x) * dim, dim);
                for (int c = 0; c < dim; c++) target[c] = (float)accumulator[c];
            }
        return result;
    }

    private static (int[] Index, double[] Weight) CubicTaps(int inSize, int outSize)
    {
        var index = new int[4 * outSize];
        var weight = new double[4 * outSize];
        double scale = (double)inSize / outSize;
        for (int o = 0; o < outSize; o++)
        {
            // torch's area_pixel_compute_source_index for cubic: no clamping of the coordinate itself, only of the taps.
            double source = scale * (o + 0.5) - 0.5;
            double floor = Math.Floor(source);
            double t = source - floor;
            weight[4 * o + 0] = CubicFar(t + 1);
            weight[4 * o + 1] = CubicNear(t);
            weight[4 * o + 2] = CubicNear(1 - t);
            weight[4 * o + 3] = CubicFar(2 - t);
            for (int k = 0; k < 4; k++) index[4 * o + k] = Math.Clamp((int)floor - 1 + k, 0, inSize - 1);
        }
        return (index, weight);
    }

    /// <summary>Keys' kernel on |x| ≤ 1.</summary>
    private static double CubicNear(double x) => ((CubicA + 2) * x - (CubicA + 3)) * x * x + 1;

    /// <summary>Keys' kernel on 1 &lt; |x| &lt; 2.</summary>
    private static double CubicFar(double x) => ((CubicA * x - 5 * CubicA) * x + 8 * CubicA) * x - 4 * CubicA;

    /// <summary>
    /// Row <paramref name="frame"/> of the fixed time table: [sin(τ·ω), cos(τ·ω)] with ω_i = 10000^(−i/(dim/2)), in
    /// float32 as the published numpy code computes it. The tower adds it only to chunks of more than one frame.
    /// </summary>
    public static void TimeEmbedding(int frame, Span<float> destination)
    {
        int half = destination.Length / 2;
        for (int i = 0; i < half; i++)
        {
            float omega = 1f / MathF.Pow(10000f, i / (float)half);
            float angle = frame * omega;
            destination[i] = MathF.Sin(angle);
            destination[half + i] = MathF.Cos(angle);
        }
    }

    /// <summary>
    /// Cosines and sines [rows·cols, headDim/2] of the 2-D rotary embedding for a rows × cols patch grid (row-major).
    /// Pair j rotates by column·f_(j/2) when j is even and by row·f_(j/2) when odd, f_k = 10000^(−4k/headDim);
    /// frequencies and angles are float32, as the published table is built.
    /// </summary>
    public static (float[] Cos, float[] Sin) RotaryTable(int rows, int cols, int headDim)
    {
        if (headDim % 4 != 0) throw new ArgumentException($"the head width {headDim} must be a multiple of 4");
        if (rows > VisionConfig.RopeMaxSide || cols > VisionConfig.RopeMaxSide)
            throw new ArgumentException($"a {rows}×{cols} patch grid exceeds the {VisionConfig.RopeMaxSide}×{VisionConfig.RopeMaxSide} rotary table");
        int pairs = headDim / 2;
        var frequency = new float[headDim / 4];
        for (int k = 0; k < frequency.Length; k++)
            frequency[k] = 1f / MathF.Pow((float)VisionConfig.RopeTheta, 4 * k / (float)headDim);
        var cos = new float[rows * cols * pairs];
        var sin = new float[cos.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int offset = (r * cols + c) * pairs;
                for (int j = 0; j < pairs; j++)
                {
                    float angle = (j % 2 == 0 ? c : r) * frequency[j / 2];
                    cos[offset + j] = MathF.Cos(angle);
                    sin[offset + j] = MathF.Sin(angle);
                }
            }
        return (cos, sin);
    }
}
