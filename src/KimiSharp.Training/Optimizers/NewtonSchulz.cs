namespace KimiSharp.Training.Optimizers;

/// <summary>
/// Quintic Newton–Schulz orthogonalisation used by Muon (Jordan et al. 2024; Moonlight eq. 2):
/// X₀ = G/(‖G‖_F + ε); repeat X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ, (a, b, c) = (3.4445, −4.7750, 2.0315).
/// Runs in the wide orientation (transposes when rows &gt; cols), so the Gram matrix is min(rows, cols)².
/// The result is ≈ U·S′·Vᵀ with S′ roughly in [0.68, 1.14] (not exactly UVᵀ: the coefficients trade accuracy for speed).
/// </summary>
public static class NewtonSchulz
{
    public const float A = 3.4445f;
    public const float B = -4.7750f;
    public const float C = 2.0315f;
    public const int DefaultSteps = 5;
    public const float DefaultEpsilon = 1e-7f;

    /// <summary>Returns NS(G) for a row-major [rows, cols] matrix; <paramref name="g"/> is not modified.</summary>
    public static float[] Orthogonalize(ReadOnlySpan<float> g, int rows, int cols, int steps = DefaultSteps, float epsilon = DefaultEpsilon)
    {
        if (rows <= 0 || cols <= 0) throw new ArgumentOutOfRangeException(nameof(rows), "matrix dimensions must be positive");
        if (g.Length != (long)rows * cols) throw new ArgumentException($"expected {rows}×{cols} = {(long)rows * cols} values, got {g.Length}");
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps));

        double sumSq = 0;
        foreach (float v in g) sumSq += (double)v * v;
        float inv = (float)(1.0 / (Math.Sqrt(sumSq) + epsilon));

        bool transpose = rows > cols;
        int m = transpose ? cols : rows, n = transpose ? rows : cols; // X is m×n with m ≤ n
        var x = new float[m * n];
        if (transpose)
        {
            var scaled = new float[g.Length];
            for (int i = 0; i < g.Length; i++) scaled[i] = g[i] * inv;
            Gemm.Transpose(scaled, x, rows, cols);
        }
        else
        {
            for (int i = 0; i < g.Length; i++) x[i] = g[i] * inv;
        }

        var gram = new float[m * m];
        var gram2 = new float[m * m];
        var next = new float[m * n];
        for (int s = 0; s < steps; s++)
        {
            Gemm.MultiplyNT(x, x, gram, m, m, n);        // A = X Xᵀ
            Gemm.MultiplyNN(gram, gram, gram2, m, m, m); // A²
            for (int i = 0; i < gram2.Length; i++) gram2[i] = B * gram[i] + C * gram2[i]; // b·A + c·A²
            Gemm.MultiplyNN(gram2, x, next, m, n, m);    // (b·A + c·A²)·X
            for (int i = 0; i < next.Length; i++) next[i] += A * x[i];
            (x, next) = (next, x);
        }

        if (!transpose) return x;
        var result = new float[rows * cols];
        Gemm.Transpose(x, result, m, n);
        return result;
    }
}
