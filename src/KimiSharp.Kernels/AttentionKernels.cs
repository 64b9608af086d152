using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
            // Decode reads the cache from memory once per call: ask for the keys two blocks ahead (no effect on results).
            if (s + PrefetchAhead + 4 <= positions)
            {
                Prefetch(a + PrefetchAhead * kaStride, kaStride, aDim);
                Prefetch(b + PrefetchAhead * kbStride, kbStride, bDim);
            }
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

    /// <summary>Positions ahead of the current block whose rows are prefetched.</summary>
    private const int PrefetchAhead = 8;

    /// <summary>Rows ahead whose 64-column chunk a weighted sum prefetches.</summary>
    private const int SumPrefetchAhead = 16;

    /// <summary>Requests 4 rows of <paramref name="dim"/> floats into L1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* row, long stride, int dim)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < 4; r++, row += stride)
            for (int d = 0; d < dim; d += 16) Sse.Prefetch0(row + d);
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

    /// <summary>
    /// The lane sum every vector score uses: the two 256-bit halves added, then the two 128-bit quarters, then
    /// (l0 + l1) + (l2 + l3). Four accumulators are reduced together (one result lane each), one alone gives the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        Vector128<float> qa = Quarter(a), qb = Quarter(b), qc = Quarter(c), qd = Quarter(d);
        if (Sse3.IsSupported) return Sse3.HorizontalAdd(Sse3.HorizontalAdd(qa, qb), Sse3.HorizontalAdd(qc, qd));
        return Vector128.Create(Pairs(qa), Pairs(qb), Pairs(qc), Pairs(qd));

        static float Pairs(Vector128<float> v) => (v.GetElement(0) + v.GetElement(1)) + (v.GetElement(2) + v.GetElement(3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Quarter(Vector512<float> v)
    {
        var half = v.GetLower() + v.GetUpper();
        return half.GetLower() + half.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Sum1(Vector512<float> v) => Sum4(v, v, v, v).ToScalar();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Score1(float* qa, float* qb, float* ka, int aDim, float* kb, int bDim)
    {
        Vector512<float> acc = default;
        for (int d = 0; d < aDim; d += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(qa + d), Vector512.Load(ka + d), acc);
        for (int d = 0; d < bDim; d += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(qb + d), Vector512.Load(kb + d), acc);
        return Sum1(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores1x4(float* qa, float* qb, float* ka, long kaStride, int aDim, float* kb, long kbStride, int bDim, float scale, float* scores)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* k0 = ka, k1 = ka + kaStride, k2 = ka + 2 * kaStride, k3 = ka + 3 * kaStride;
        for (int d = 0; d < aDim; d += 16)
        {
            var q = Vector512.Load(qa + d);
            a0 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k0 + d), a0);
            a1 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k1 + d), a1);
            a2 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k2 + d), a2);
            a3 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k3 + d), a3);
        }
        k0 = kb; k1 = kb + kbStride; k2 = kb + 2 * kbStride; k3 = kb + 3 * kbStride;
        for (int d = 0; d < bDim; d += 16)
        {
            var q = Vector512.Load(qb + d);
            a0 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k0 + d), a0);
            a1 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k1 + d), a1);
            a2 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k2 + d), a2);
            a3 = Vector512.FusedMultiplyAdd(q, Vector512.Load(k3 + d), a3);
        }
        (Sum4(a0, a1, a2, a3) * scale).Store(scores);
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
            // Row pointers computed once per part, so the inner loop is loads and FMAs only.
            float* q0 = part == 0 ? qa : qb, k0 = part == 0 ? ka : kb;
            long qs = part == 0 ? qaStride : qbStride, ks = part == 0 ? kaStride : kbStride;
            int dim = part == 0 ? aDim : bDim;
            float* q1 = q0 + qs, q2 = q1 + qs, q3 = q2 + qs;
            float* k1 = k0 + ks, k2 = k1 + ks, k3 = k2 + ks;
            for (int d = 0; d < dim; d += 16)
            {
                var v0 = Vector512.Load(k0 + d); var v1 = Vector512.Load(k1 + d);
                var v2 = Vector512.Load(k2 + d); var v3 = Vector512.Load(k3 + d);
                var x = Vector512.Load(q0 + d);
                a00 = Vector512.FusedMultiplyAdd(x, v0, a00); a01 = Vector512.FusedMultiplyAdd(x, v1, a01);
                a02 = Vector512.FusedMultiplyAdd(x, v2, a02); a03 = Vector512.FusedMultiplyAdd(x, v3, a03);
                x = Vector512.Load(q1 + d);
                a10 = Vector512.FusedMultiplyAdd(x, v0, a10); a11 = Vector512.FusedMultiplyAdd(x, v1, a11);
                a12 = Vector512.FusedMultiplyAdd(x, v2, a12); a13 = Vector512.FusedMultiplyAdd(x, v3, a13);
                x = Vector512.Load(q2 + d);
                a20 = Vector512.FusedMultiplyAdd(x, v0, a20); a21 = Vector512.FusedMultiplyAdd(x, v1, a21);
                a22 = Vector512.FusedMultiplyAdd(x, v2, a22); a23 = Vector512.FusedMultiplyAdd(x, v3, a23);
                x = Vector512.Load(q3 + d);
                a30 = Vector512.FusedMultiplyAdd(x, v0, a30); a31 = Vector512.FusedMultiplyAdd(x, v1, a31);
                a32 = Vector512.FusedMultiplyAdd(x, v2, a32); a33 = Vector512.FusedMultiplyAdd(x, v3, a33);
            }
        }
        (Sum4(a00, a01, a02, a03) * scale).Store(scores);
        (Sum4(a10, a11, a12, a13) * scale).Store(scores + scoreStride);
        (Sum4(a20, a21, a22, a23) * scale).Store(scores + 2 * scoreStride);
        (Sum4(a30, a31, a32, a33) * scale).Store(scores + 3 * scoreStride);
    }

    /// <summary>
    /// output[i·outStride + c] = Σ_s probs[i·probStride + s] · rows[s·rowStride + c] for queries i &lt; <paramref name="queries"/>
    /// and columns c &lt; <paramref name="dim"/>, summed as fma over s = 0, 1, … from +0 (output is overwritten), or, with
    /// <paramref name="accumulate"/>, from output's current values: a sum over positions split into consecutive calls
    /// (positions spread over cache blocks) then has exactly the bits of one call over them all.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedSum(float* probs, long probStride, int queries, float* rows, long rowStride, int dim, int positions,
        float* output, long outStride, bool accumulate = false)
    {
        if (!Vectorized(dim, 0))
        {
            for (int i = 0; i < queries; i++)
                for (int c = 0; c < dim; c++)
                {
                    float acc = accumulate ? output[i * outStride + c] : 0;
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
                if (wide) Sum4x64(probs + q * probStride, probStride, rows + c, rowStride, positions, output + q * outStride + c, outStride, prefetch: q == 0, accumulate);
                else
                    for (int c16 = c; c16 < dim; c16 += 16)
                        for (int i = q; i < q + 4; i++) Sum1x16(probs + i * probStride, rows + c16, rowStride, positions, output + i * outStride + c16, accumulate);
            }
            for (int q = full; q < queries; q++)
            {
                if (wide) Sum1x64(probs + q * probStride, rows + c, rowStride, positions, output + q * outStride + c, accumulate);
                else
                    for (int c16 = c; c16 < dim; c16 += 16) Sum1x16(probs + q * probStride, rows + c16, rowStride, positions, output + q * outStride + c16, accumulate);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sum4x64(float* p, long probStride, float* rows, long rowStride, int positions, float* output, long outStride, bool prefetch,
        bool accumulate)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        if (accumulate)
        {
            float* o0 = output, o1 = o0 + outStride, o2 = o1 + outStride, o3 = o2 + outStride;
            a00 = Vector512.Load(o0); a01 = Vector512.Load(o0 + 16); a02 = Vector512.Load(o0 + 32); a03 = Vector512.Load(o0 + 48);
            a10 = Vector512.Load(o1); a11 = Vector512.Load(o1 + 16); a12 = Vector512.Load(o1 + 32); a13 = Vector512.Load(o1 + 48);
            a20 = Vector512.Load(o2); a21 = Vector512.Load(o2 + 16); a22 = Vector512.Load(o2 + 32); a23 = Vector512.Load(o2 + 48);
            a30 = Vector512.Load(o3); a31 = Vector512.Load(o3 + 16); a32 = Vector512.Load(o3 + 32); a33 = Vector512.Load(o3 + 48);
        }
        float* p1 = p + probStride, p2 = p1 + probStride, p3 = p2 + probStride;
        for (int s = 0; s < positions; s++)
        {
            float* v = rows + s * rowStride;
            if (prefetch && Sse.IsSupported && s + SumPrefetchAhead < positions)
            {
                // The first block of queries pulls this chunk of each row in from memory; the rows are strided, so ask ahead.
                float* ahead = v + SumPrefetchAhead * rowStride;
                Sse.Prefetch0(ahead); Sse.Prefetch0(ahead + 16); Sse.Prefetch0(ahead + 32); Sse.Prefetch0(ahead + 48);
            }
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
    private static void Sum1x64(float* p, float* rows, long rowStride, int positions, float* output, bool accumulate)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        if (accumulate)
        {
            a0 = Vector512.Load(output); a1 = Vector512.Load(output + 16); a2 = Vector512.Load(output + 32); a3 = Vector512.Load(output + 48);
        }
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
    private static void Sum1x16(float* p, float* rows, long rowStride, int positions, float* output, bool accumulate)
    {
        Vector512<float> acc = accumulate ? Vector512.Load(output) : default;
        for (int s = 0; s < positions; s++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(p[s]), Vector512.Load(rows + s * rowStride), acc);
        acc.Store(output);
    }
}
