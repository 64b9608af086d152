using System.Buffers;
using KimiSharp.Training.Optimizers;

namespace KimiSharp.Training;

/// <summary>
/// The float32 training path of one causal MLA attention head (<see cref="TrainOps.AttentionHead{T}"/> and its
/// backward): the head's Q, K and V are gathered into contiguous matrices and every product (Q·Kᵀ, P·V and the
/// four of the backward) runs as a register-tiled GEMM. Masked entries of P are exactly zero, so the full-square
/// products add nothing for them. Summation order is fixed, so results do not depend on thread timing.
/// </summary>
internal static class FloatAttention
{
    /// <summary>Forward of head <paramref name="h"/> of sequence <paramref name="b"/>; returns its largest scaled logit.</summary>
    public static float Head(TrainOps.AttentionShape a, int b, int h, float[] q, float[] kvb, float[] kr, float[] probs, float[] output)
    {
        int S = a.Seq, qk = a.QkDim, vd = a.VDim;
        var pool = ArrayPool<float>.Shared;
        float[] qh = pool.Rent(S * qk), kt = pool.Rent(qk * S), p = pool.Rent(S * S), v = pool.Rent(S * vd), o = pool.Rent(S * vd);
        try
        {
            GatherQuery(a, b, h, q, qh);
            GatherKey(a, b, h, kvb, kr, kt, transposed: true);
            Gemm.MultiplyNN(qh, kt, p, S, S, qk);                       // raw scores, row t over keys s
            float scale = (float)a.Scale, max = float.NegativeInfinity;
            for (int t = 0; t < S; t++)
            {
                var row = p.AsSpan(t * S, S);
                float rowMax = float.NegativeInfinity;
                for (int s = 0; s <= t; s++) { row[s] *= scale; if (row[s] > rowMax) rowMax = row[s]; }
                if (rowMax > max) max = rowMax;
                float sum = 0;
                for (int s = 0; s <= t; s++) { row[s] = MathF.Exp(row[s] - rowMax); sum += row[s]; }
                float inv = 1f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                row[(t + 1)..].Clear();
            }
            p.AsSpan(0, S * S).CopyTo(probs.AsSpan((b * a.Heads + h) * S * S, S * S));
            GatherValue(a, b, h, kvb, v, transposed: false);
            Gemm.MultiplyNN(p, v, o, S, vd, S);
            for (int t = 0; t < S; t++)
                o.AsSpan(t * vd, vd).CopyTo(output.AsSpan(((b * S + t) * a.Heads + h) * vd, vd));
            return max;
        }
        finally { pool.Return(qh); pool.Return(kt); pool.Return(p); pool.Return(v); pool.Return(o); }
    }

    /// <summary>Backward of <see cref="Head"/>: accumulates into dq, dkvb (this head's slices) and dkr.</summary>
    public static void HeadBackward(TrainOps.AttentionShape a, int b, int h, float[] q, float[] kvb, float[] kr, float[] probs,
        float[] dOutput, float[] dq, float[] dkvb, float[] dkr)
    {
        int S = a.Seq, H = a.Heads, qk = a.QkDim, vd = a.VDim, kvw = a.Nope + a.VDim;
        var pool = ArrayPool<float>.Shared;
        float[] p = pool.Rent(S * S), pt = pool.Rent(S * S), dp = pool.Rent(S * S), dO = pool.Rent(S * vd), vt = pool.Rent(vd * S),
            kh = pool.Rent(S * qk), qh = pool.Rent(S * qk), grad = pool.Rent(S * Math.Max(qk, vd));
        try
        {
            probs.AsSpan((b * H + h) * S * S, S * S).CopyTo(p);
            for (int t = 0; t < S; t++) dOutput.AsSpan(((b * S + t) * H + h) * vd, vd).CopyTo(dO.AsSpan(t * vd, vd));
            GatherValue(a, b, h, kvb, vt, transposed: true);

            // dV = Pᵀ·dO
            Gemm.Transpose(p, pt, S, S);
            Gemm.MultiplyNN(pt, dO, grad, S, vd, S);
            for (int s = 0; s < S; s++)
                Add(grad.AsSpan(s * vd, vd), dkvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw + a.Nope, vd));

            // dP = dO·Vᵀ; dScore = P ⊙ (dP − Σ P·dP)·scale (zero where masked, since P is)
            Gemm.MultiplyNN(dO, vt, dp, S, S, vd);
            float scale = (float)a.Scale;
            for (int t = 0; t < S; t++)
            {
                var pr = p.AsSpan(t * S, t + 1);
                var dr = dp.AsSpan(t * S, S);
                float dot = 0;
                for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                for (int s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - dot) * scale;
                dr[(t + 1)..].Clear();
            }

            // dQ = dScore·K
            GatherKey(a, b, h, kvb, kr, kh, transposed: false);
            Gemm.MultiplyNN(dp, kh, grad, S, qk, S);
            for (int t = 0; t < S; t++) Add(grad.AsSpan(t * qk, qk), dq.AsSpan(((b * S + t) * H + h) * qk, qk));

            // dK = dScoreᵀ·Q: the nope part to this head's k slice of kv_b, the rope part to the shared rope key
            GatherQuery(a, b, h, q, qh);
            Gemm.Transpose(dp, pt, S, S);
            Gemm.MultiplyNN(pt, qh, grad, S, qk, S);
            for (int s = 0; s < S; s++)
            {
                Add(grad.AsSpan(s * qk, a.Nope), dkvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw, a.Nope));
                Add(grad.AsSpan(s * qk + a.Nope, a.Rope), dkr.AsSpan((b * S + s) * a.Rope, a.Rope));
            }
        }
        finally
        {
            pool.Return(p); pool.Return(pt); pool.Return(dp); pool.Return(dO); pool.Return(vt);
            pool.Return(kh); pool.Return(qh); pool.Return(grad);
        }
    }

    private static void GatherQuery(TrainOps.AttentionShape a, int b, int h, float[] q, float[] qh)
    {
        int S = a.Seq, qk = a.QkDim;
        for (int t = 0; t < S; t++) q.AsSpan(((b * S + t) * a.Heads + h) * qk, qk).CopyTo(qh.AsSpan(t * qk, qk));
    }

    /// <summary>Key rows [S, nope+rope] (k_nope of this head, then the shared rope key), or their transpose [nope+rope, S].</summary>
    private static void GatherKey(TrainOps.AttentionShape a, int b, int h, float[] kvb, float[] kr, float[] dst, bool transposed)
    {
        int S = a.Seq, qk = a.QkDim, kvw = a.Nope + a.VDim;
        for (int s = 0; s < S; s++)
        {
            var nope = kvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw, a.Nope);
            var rope = kr.AsSpan((b * S + s) * a.Rope, a.Rope);
            if (!transposed)
            {
                nope.CopyTo(dst.AsSpan(s * qk, a.Nope));
                rope.CopyTo(dst.AsSpan(s * qk + a.Nope, a.Rope));
                continue;
            }
            for (int d = 0; d < a.Nope; d++) dst[d * S + s] = nope[d];
            for (int d = 0; d < a.Rope; d++) dst[(a.Nope + d) * S + s] = rope[d];
        }
    }

    /// <summary>Value rows [S, v] of this head, or their transpose [v, S].</summary>
    private static void GatherValue(TrainOps.AttentionShape a, int b, int h, float[] kvb, float[] dst, bool transposed)
    {
        int S = a.Seq, vd = a.VDim, kvw = a.Nope + a.VDim;
        for (int s = 0; s < S; s++)
        {
            var v = kvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw + a.Nope, vd);
            if (!transposed) { v.CopyTo(dst.AsSpan(s * vd, vd)); continue; }
            for (int d = 0; d < vd; d++) dst[d * S + s] = v[d];
        }
    }

    private static void Add(ReadOnlySpan<float> x, Span<float> y) => TrainOps.Axpy(1f, x, y);
}
