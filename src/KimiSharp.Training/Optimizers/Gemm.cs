using System.Numerics;
using System.Runtime.CompilerServices;

namespace KimiSharp.Training.Optimizers;

/// <summary>
/// Small float32 row-major GEMM kernels for the optimizers. Work is split over blocks of output rows with
/// <see cref="Parallel.For(int, int, Action{int})"/>; every output element is produced by one thread with a fixed
/// summation order, so results are bit-identical run to run regardless of scheduling.
/// </summary>
internal static class Gemm
{
    private const int RowTile = 16;          // output rows per parallel work item; a B panel is reused by all of them from L1
    private const int DepthBlock = 256;      // rows of B per panel: 256 × 2 vectors ≤ 16 KiB with AVX2
    private const long ParallelThreshold = 1L << 18; // multiply-adds below which threads are not worth starting

    /// <summary>C[m×n] = A[m×k] · B[k×n], or C += A·B when <paramref name="accumulate"/>. C must not alias A or B.</summary>
    public static void MultiplyNN(float[] a, float[] b, float[] c, int m, int n, int k, bool accumulate = false)
    {
        Check(a, (long)m * k, b, (long)k * n, c, (long)m * n);
        int tiles = (m + RowTile - 1) / RowTile;
        Run(tiles, (long)m * n * k, tile => NNTile(a, b, c, tile * RowTile, Math.Min(RowTile, m - tile * RowTile), n, k, accumulate));
    }

    /// <summary>C[m×n] = A[m×k] · B[n×k]ᵀ (dot products of rows), computed as A · (Bᵀ). C must not alias A or B.</summary>
    public static void MultiplyNT(float[] a, float[] b, float[] c, int m, int n, int k)
    {
        Check(a, (long)m * k, b, (long)n * k, c, (long)m * n);
        var bt = new float[(long)k * n];
        Transpose(b, bt, n, k);
        MultiplyNN(a, bt, c, m, n, k);
    }

    /// <summary>
    /// Rows [i0, i0 + rows) of C. Each C element is accumulated over p = 0 … k−1 in order (register blocks of
    /// 4 rows × 2 vectors, panels of <see cref="DepthBlock"/> rows of B), so the result is independent of threading.
    /// </summary>
    private static unsafe void NNTile(float[] aArr, float[] bArr, float[] cArr, int i0, int rows, int n, int k, bool accumulate)
    {
        int vc = Vector<float>.Count, w = 2 * vc;
        int fullCols = Vector.IsHardwareAccelerated ? n / w * w : 0;
        fixed (float* a = aArr, b = bArr, c = cArr)
        {
            if (!accumulate) new Span<float>(c + (long)i0 * n, rows * n).Clear();
            for (int p0 = 0; p0 < k; p0 += DepthBlock)
            {
                int pe = Math.Min(k, p0 + DepthBlock);
                for (int j = 0; j < fullCols; j += w)
                {
                    int r = 0;
                    for (; r + 4 <= rows; r += 4) Kernel4(a, b, c, i0 + r, j, p0, pe, n, k);
                    for (; r < rows; r++) Kernel1(a, b, c, i0 + r, j, p0, pe, n, k);
                }
                for (int r = 0; r < rows; r++)
                {
                    float* ar = a + (long)(i0 + r) * k;
                    float* cr = c + (long)(i0 + r) * n;
                    for (int j = fullCols; j < n; j++)
                    {
                        float sum = cr[j];
                        for (int p = p0; p < pe; p++) sum += ar[p] * b[(long)p * n + j];
                        cr[j] = sum;
                    }
                }
            }
        }
    }

    private static unsafe void Kernel4(float* a, float* b, float* c, int i, int j, int p0, int pe, int n, int k)
    {
        int vc = Vector<float>.Count;
        float* c0 = c + (long)i * n + j, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
        float* a0 = a + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
        var x00 = Load(c0); var x01 = Load(c0 + vc);
        var x10 = Load(c1); var x11 = Load(c1 + vc);
        var x20 = Load(c2); var x21 = Load(c2 + vc);
        var x30 = Load(c3); var x31 = Load(c3 + vc);
        float* bp = b + (long)p0 * n + j;
        for (int p = p0; p < pe; p++, bp += n)
        {
            var b0 = Load(bp); var b1 = Load(bp + vc);
            var s = new Vector<float>(a0[p]); x00 += s * b0; x01 += s * b1;
            s = new Vector<float>(a1[p]); x10 += s * b0; x11 += s * b1;
            s = new Vector<float>(a2[p]); x20 += s * b0; x21 += s * b1;
            s = new Vector<float>(a3[p]); x30 += s * b0; x31 += s * b1;
        }
        Store(c0, x00); Store(c0 + vc, x01);
        Store(c1, x10); Store(c1 + vc, x11);
        Store(c2, x20); Store(c2 + vc, x21);
        Store(c3, x30); Store(c3 + vc, x31);
    }

    private static unsafe void Kernel1(float* a, float* b, float* c, int i, int j, int p0, int pe, int n, int k)
    {
        int vc = Vector<float>.Count;
        float* c0 = c + (long)i * n + j;
        float* a0 = a + (long)i * k;
        var x0 = Load(c0); var x1 = Load(c0 + vc);
        float* bp = b + (long)p0 * n + j;
        for (int p = p0; p < pe; p++, bp += n)
        {
            var s = new Vector<float>(a0[p]);
            x0 += s * Load(bp); x1 += s * Load(bp + vc);
        }
        Store(c0, x0); Store(c0 + vc, x1);
    }

    private static unsafe Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);
    private static unsafe void Store(float* p, Vector<float> v) => Unsafe.WriteUnaligned(p, v);

    /// <summary>dst[cols×rows] = src[rows×cols]ᵀ.</summary>
    public static void Transpose(float[] src, float[] dst, int rows, int cols)
    {
        const int T = 32;
        for (int i0 = 0; i0 < rows; i0 += T)
            for (int j0 = 0; j0 < cols; j0 += T)
            {
                int iEnd = Math.Min(rows, i0 + T), jEnd = Math.Min(cols, j0 + T);
                for (int i = i0; i < iEnd; i++)
                    for (int j = j0; j < jEnd; j++)
                        dst[j * rows + i] = src[i * cols + j];
            }
    }

    private static void Run(int blocks, long work, Action<int> body)
    {
        if (blocks <= 1 || work < ParallelThreshold)
        {
            for (int i = 0; i < blocks; i++) body(i);
        }
        else Parallel.For(0, blocks, body);
    }

    private static void Check(float[] a, long na, float[] b, long nb, float[] c, long nc)
    {
        if (a.LongLength < na || b.LongLength < nb || c.LongLength < nc) throw new ArgumentException("Gemm: buffer too small for the given dimensions");
        if (ReferenceEquals(c, a) || ReferenceEquals(c, b)) throw new ArgumentException("Gemm: the output must not alias an input");
    }
}
