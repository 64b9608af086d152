using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KimiSharp.Kernels;

/// <summary>
/// Register-blocked attention products: scores of several queries against many keys, and probability-weighted sums
/// of value rows. Blocks of 4 queries × 4 keys (scores) or 4 queries × 64 columns (sums) keep their accumulators in
/// registers, so each key or value row is loaded once per 4 queries instead of once per query.
/// <para>
/// Every output element has one fixed arithmetic, whichever block or call computes it: a score is accumulated lane by
/// lane over 16-column chunks of the first part (a) and then the second (b) into one accumulator, summed across lanes,
/// then scaled; a weighted sum is fma(p_s, v_s, acc) for s = 0, 1, … from +0. Queries grouped differently, positions
/// split differently or extra zero-probability positions therefore never change a result's bits.
/// </para>
/// </summary>
public static unsafe class AttentionKernels
{
    /// <summary>Whether the Vector512 paths handle these widths (all multiples of 16); otherwise the scalar paths run.</summary>
    public static bool Vectorized(int aDim, int bDim) => Vector512.IsHardwareAccelerated && aDim % 16 == 0 && bDim % 16 == 0;

    /// <summary>
    /// scores[i·scoreStride + s] = scale · (qa_i · ka_s + qb_i · kb_s) for queries i &lt; <paramref name="queries"/> and
    /// positions s &lt; <paramref name="positions"/>. Query i's parts start at qa + i·qaStride and qb + i·qbStride; key s's
    /// at ka + s·kaStride and kb + s·kbStride. <paramref name="bDim"/> may be 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scores(float* qa, long qaStride, float* qb, long qbStride, int queries,
        float* ka, long kaStride, int aDim, float* kb, long kbStride, int bDim,
        int positions, float scale, float* scores, long scoreStride)
    {
        if (!Vectorized(aDim, bDim))
        {
            ScoresScalar(qa, qaStride, qb, qbStride, queries, ka, kaStride, aDim, kb, kbStride, bDim, positions, scale, scores, scoreStride);
            return;
        }
        // Positions outer, queries inner: a block of 4 keys stays in L1 while every query passes over it, so the keys are
        // read from memory once per call however many queries there are.
        int full = queries / 4 * 4;
        int s = 0;
        for (; s + 4 <= positions; s += 4)
        {
            float* a = ka + s * kaStride, b = kb + s * kbStride;
            for (int i = 0; i < full; i += 4)
                Scores4x4(qa + i * qaStride, qaStride, qb + i * qbStride, qbStride, a, kaStride, aDim, b, kbStride, bDim,
                    scale, scores + i * scoreStride + s, scoreStride);
            for (int i = full; i < queries; i++)
                Scores1x4(qa + i * qaStride, qb + i * qbStride, a, kaStride, aDim, b, kbStride, bDim, scale, scores + i * scoreStride + s);
        }
        for (; s < positions; s++)
            for (int i = 0; i < queries; i++)
                scores[i * scoreStride + s] = Score1(qa + i * qaStride, qb + i * qbStride, ka + s * kaStride, aDim, kb + s * kbStride, bDim) * scale;
    }

    /// <summary>Without Vector512, or for widths that are not multiples of 16: plain sequential sums (the same for every blocking).</summary>
    private static void ScoresScalar(float* qa, long qaStride, float* qb, long qbStride, int queries, float* ka, long kaStride, int aDim,
        float* kb, long kbStride, int bDim, int positions, float scale, float* scores, long scoreStride)
    {
        for (int i = 0; i < queries; i++)
            for (int s = 0; s < positions; s++)
            {
                float sum = 0;
                float* x = qa + i * qaStride, k = ka + s * kaStride;
                for (int d = 0; d < aDim; d++) sum = MathF.FusedMultiplyAdd(x[d], k[d], sum);
                x = qb + i * qbStride; k = kb + s * kbStride;
                for (int d = 0; d < bDim; d++) sum = MathF.FusedMultiplyAdd(x[d], k[d], sum);
                scores[i * scoreStride + s] = sum * scale;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Score1(float* qa, float* qb, float* ka, int aDim, float* kb, int bDim)
    {
        Vector512<float> acc = default;
        for (int d = 0; d < aDim; d += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(qa + d), Vector512.Load(ka + d), acc);
        for (int d = 0; d < bDim; d += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(qb + d), Vector512.Load(kb + d), acc);
        return Vector512.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores1x4(float* qa, float* qb, float* ka, long kaStride, int aDim, float* kb, long kbStride, int bDim, float scale, float* scores)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int d = 0; d < aDim; d += 16)
        {
            var q = Vector512.Load(qa + d);
            a0 = Vector512.FusedMultiplyAdd(q, Vector512.Load(ka + d), a0);
            a1 = Vector512.FusedMultiplyAdd(q, Vector512.Load(ka + kaStride + d), a1);
            a2 = Vector512.FusedMultiplyAdd(q, Vector512.Load(ka + 2 * kaStride + d), a2);
            a3 = Vector512.FusedMultiplyAdd(q, Vector512.Load(ka + 3 * kaStride + d), a3);
        }
        for (int d = 0; d < bDim; d += 16)
        {
            var q = Vector512.Load(qb + d);
            a0 = Vector512.FusedMultiplyAdd(q, Vector512.Load(kb + d), a0);
            a1 = Vector512.FusedMultiplyAdd(q, Vector512.Load(kb + kbStride + d), a1);
            a2 = Vector512.FusedMultiplyAdd(q, Vector512.Load(kb + 2 * kbStride + d), a2);
            a3 = Vector512.FusedMultiplyAdd(q, Vector512.Load(kb + 3 * kbStride + d), a3);
        }
        scores[0] = Vector512.Sum(a0) * scale; scores[1] = Vector512.Sum(a1) * scale;
        scores[2] = Vector512.Sum(a2) * scale; scores[3] = Vector512.Sum(a3) * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores4x4(float* qa, long qaStride, float* qb, long qbStride, float* ka, long kaStride, int aDim, float* kb, long kbStride, int bDim,
        float scale, float* scores, long scoreStride)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        for (int part = 0; part < 2; part++)
        {
            float* q = part == 0 ? qa : qb;
            long qStride = part == 0 ? qaStride : qbStride;
            float* k = part == 0 ? ka : kb;
            long ks = part == 0 ? kaStride : kbStride;
            int dim = part == 0 ? aDim : bDim;
            for (int d = 0; d < dim; d += 16)
            {
                var k0 = Vector512.Load(k + d); var k1 = Vector512.Load(k + ks + d);
                var k2 = Vector512.Load(k + 2 * ks + d); var k3 = Vector512.Load(k + 3 * ks + d);
                var q0 = Vector512.Load(q + d);
                a00 = Vector512.FusedMultiplyAdd(q0, k0, a00); a01 = Vector512.FusedMultiplyAdd(q0, k1, a01);
                a02 = Vector512.FusedMultiplyAdd(q0, k2, a02); a03 = Vector512.FusedMultiplyAdd(q0, k3, a03);
                var q1 = Vector512.Load(q + qStride + d);
                a10 = Vector512.FusedMultiplyAdd(q1, k0, a10); a11 = Vector512.FusedMultiplyAdd(q1, k1, a11);
                a12 = Vector512.FusedMultiplyAdd(q1, k2, a12); a13 = Vector512.FusedMultiplyAdd(q1, k3, a13);
                var q2 = Vector512.Load(q + 2 * qStride + d);
                a20 = Vector512.FusedMultiplyAdd(q2, k0, a20); a21 = Vector512.FusedMultiplyAdd(q2, k1, a21);
                a22 = Vector512.FusedMultiplyAdd(q2, k2, a22); a23 = Vector512.FusedMultiplyAdd(q2, k3, a23);
                var q3 = Vector512.Load(q + 3 * qStride + d);
                a30 = Vector512.FusedMultiplyAdd(q3, k0, a30); a31 = Vector512.FusedMultiplyAdd(q3, k1, a31);
                a32 = Vector512.FusedMultiplyAdd(q3, k2, a32); a33 = Vector512.FusedMultiplyAdd(q3, k3, a33);
            }
        }
        float* r = scores;
        r[0] = Vector512.Sum(a00) * scale; r[1] = Vector512.Sum(a01) * scale; r[2] = Vector512.Sum(a02) * scale; r[3] = Vector512.Sum(a03) * scale;
        r += scoreStride;
        r[0] = Vector512.Sum(a10) * scale; r[1] = Vector512.Sum(a11) * scale; r[2] = Vector512.Sum(a12) * scale; r[3] = Vector512.Sum(a13) * scale;
        r += scoreStride;
        r[0] = Vector512.Sum(a20) * scale; r[1] = Vector512.Sum(a21) * scale; r[2] = Vector512.Sum(a22) * scale; r[3] = Vector512.Sum(a23) * scale;
        r += scoreStride;
        r[0] = Vector512.Sum(a30) * scale; r[1] = Vector512.Sum(a31) * scale; r[2] = Vector512.Sum(a32) * scale; r[3] = Vector512.Sum(a33) * scale;
    }

    /// <summary>
    /// output[i·outStride + c] = Σ_s probs[i·probStride + s] · rows[s·rowStride + c] for queries i &lt; <paramref name="queries"/>
    /// and columns c &lt; <paramref name="dim"/>, summed as fma over s = 0, 1, … from +0 (output is overwritten).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedSum(float* probs, long probStride, int queries, float* rows, long rowStride, int dim, int positions,
        float* output, long outStride)
    {
        if (!Vectorized(dim, 0))
        {
            for (int i = 0; i < queries; i++)
                for (int c = 0; c < dim; c++)
                {
                    float acc = 0;
                    for (int s = 0; s < positions; s++) acc = MathF.FusedMultiplyAdd(probs[i * probStride + s], rows[s * rowStride + c], acc);
                    output[i * outStride + c] = acc;
                }
            return;
        }
        // Column chunks outer, queries inner: a chunk of every row (64 columns × positions) is pulled into L2 by the
        // first block of queries and re-read from there by the others.
        int full = queries / 4 * 4;
        for (int c = 0; c < dim; c += 64)
        {
            bool wide = c + 64 <= dim;
            for (int q = 0; q < full; q += 4)
            {
                if (wide) Sum4x64(probs + q * probStride, probStride, rows + c, rowStride, positions, output + q * outStride + c, outStride);
                else
                    for (int c16 = c; c16 < dim; c16 += 16)
                        for (int i = q; i < q + 4; i++) Sum1x16(probs + i * probStride, rows + c16, rowStride, positions, output + i * outStride + c16);
            }
            for (int q = full; q < queries; q++)
            {
                if (wide) Sum1x64(probs + q * probStride, rows + c, rowStride, positions, output + q * outStride + c);
                else
                    for (int c16 = c; c16 < dim; c16 += 16) Sum1x16(probs + q * probStride, rows + c16, rowStride, positions, output + q * outStride + c16);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sum4x64(float* p, long probStride, float* rows, long rowStride, int positions, float* output, long outStride)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        float* p1 = p + probStride, p2 = p1 + probStride, p3 = p2 + probStride;
        for (int s = 0; s < positions; s++)
        {
            float* v = rows + s * rowStride;
            var v0 = Vector512.Load(v); var v1 = Vector512.Load(v + 16); var v2 = Vector512.Load(v + 32); var v3 = Vector512.Load(v + 48);
            var w = Vector512.Create(p[s]);
            a00 = Vector512.FusedMultiplyAdd(w, v0, a00); a01 = Vector512.FusedMultiplyAdd(w, v1, a01);
            a02 = Vector512.FusedMultiplyAdd(w, v2, a02); a03 = Vector512.FusedMultiplyAdd(w, v3, a03);
            w = Vector512.Create(p1[s]);
            a10 = Vector512.FusedMultiplyAdd(w, v0, a10); a11 = Vector512.FusedMultiplyAdd(w, v1, a11);
            a12 = Vector512.FusedMultiplyAdd(w, v2, a12); a13 = Vector512.FusedMultiplyAdd(w, v3, a13);
            w = Vector512.Create(p2[s]);
            a20 = Vector512.FusedMultiplyAdd(w, v0, a20); a21 = Vector512.FusedMultiplyAdd(w, v1, a21);
            a22 = Vector512.FusedMultiplyAdd(w, v2, a22); a23 = Vector512.FusedMultiplyAdd(w, v3, a23);
            w = Vector512.Create(p3[s]);
            a30 = Vector512.FusedMultiplyAdd(w, v0, a30); a31 = Vector512.FusedMultiplyAdd(w, v1, a31);
            a32 = Vector512.FusedMultiplyAdd(w, v2, a32); a33 = Vector512.FusedMultiplyAdd(w, v3, a33);
        }
        float* o = output;
        a00.Store(o); a01.Store(o + 16); a02.Store(o + 32); a03.Store(o + 48); o += outStride;
        a10.Store(o); a11.Store(o + 16); a12.Store(o + 32); a13.Store(o + 48); o += outStride;
        a20.Store(o); a21.Store(o + 16); a22.Store(o + 32); a23.Store(o + 48); o += outStride;
        a30.Store(o); a31.Store(o + 16); a32.Store(o + 32); a33.Store(o + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sum1x64(float* p, float* rows, long rowStride, int positions, float* output)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int s = 0; s < positions; s++)
        {
            float* v = rows + s * rowStride;
            var w = Vector512.Create(p[s]);
            a0 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v), a0); a1 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 32), a2); a3 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 48), a3);
        }
        a0.Store(output); a1.Store(output + 16); a2.Store(output + 32); a3.Store(output + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sum1x16(float* p, float* rows, long rowStride, int positions, float* output)
    {
        Vector512<float> acc = default;
        for (int s = 0; s < positions; s++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(p[s]), Vector512.Load(rows + s * rowStride), acc);
        acc.Store(output);
    }
}
