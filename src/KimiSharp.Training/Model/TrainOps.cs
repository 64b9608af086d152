using System.Numerics;
using System.Runtime.CompilerServices;
using KimiSharp.Model.Layers;

namespace KimiSharp.Training;

/// <summary>
/// Forward operations of the K2 / DeepSeek-V3 decoder with their hand-written backward beside each (llm.c style).
/// Generic over the element type so every op runs in float32 for training and in float64 for gradient checks.
/// Backward functions accumulate (+=) into gradient arrays. Every output element is computed by one thread in a
/// fixed order, so results do not depend on thread timing.
/// </summary>
public static class TrainOps
{
    /// <summary>Work (multiply-adds) below which loops run on the calling thread.</summary>
    private const long ParallelThreshold = 1 << 16;

    internal static void Rows(int count, long work, Action<int> body)
    {
        if (count > 1 && work >= ParallelThreshold) Parallel.For(0, count, body);
        else for (int i = 0; i < count; i++) body(i);
    }

    /// <summary>Σ a·b with a fixed summation order (vector lanes, then the tail), independent of alignment.</summary>
    public static T Dot<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0, n = a.Length;
        T s = T.Zero;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
                acc += new Vector<T>(a.Slice(i)) * new Vector<T>(b.Slice(i));
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>y += α·x.</summary>
    public static void Axpy<T>(T alpha, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0, n = x.Length;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var a = new Vector<T>(alpha);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
                (new Vector<T>(y.Slice(i)) + a * new Vector<T>(x.Slice(i))).CopyTo(y.Slice(i));
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    // ---------------------------------------------------------------- linear

    /// <summary>y[n, out] = x[n, in] · Wᵀ with W stored [out, in] (nn.Linear).</summary>
    public static void MatMul<T>(T[] x, T[] w, T[] y, int n, int inDim, int outDim) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            FloatLinear.Forward(Unsafe.As<float[]>(x), Unsafe.As<float[]>(w), Unsafe.As<float[]>(y), n, inDim, outDim);
            return;
        }
        Rows(n, (long)n * inDim * outDim, i =>
        {
            var xr = x.AsSpan(i * inDim, inDim);
            for (int o = 0; o < outDim; o++) y[i * outDim + o] = Dot<T>(xr, w.AsSpan(o * inDim, inDim));
        });
    }

    /// <summary>dx += dy·W (when dx is not null); dW += dyᵀ·x.</summary>
    public static void MatMulBackward<T>(T[] dy, T[] x, T[] w, T[]? dx, T[] dw, int n, int inDim, int outDim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            FloatLinear.Backward(Unsafe.As<float[]>(dy), Unsafe.As<float[]>(x), Unsafe.As<float[]>(w),
                dx is null ? null : Unsafe.As<float[]>(dx), Unsafe.As<float[]>(dw), n, inDim, outDim);
            return;
        }
        long work = (long)n * inDim * outDim;
        if (dx is not null)
            Rows(n, work, i =>
            {
                var dxr = dx.AsSpan(i * inDim, inDim);
                for (int o = 0; o < outDim; o++) Axpy(dy[i * outDim + o], w.AsSpan(o * inDim, inDim), dxr);
            });
        Rows(outDim, work, o =>
        {
            var dwr = dw.AsSpan(o * inDim, inDim);
            for (int i = 0; i < n; i++) Axpy(dy[i * outDim + o], x.AsSpan(i * inDim, inDim), dwr);
        });
    }

    // ---------------------------------------------------------------- RMSNorm

    /// <summary>y = x / sqrt(mean(x²) + eps) ⊙ w per row of width d; rstd[i] = 1/sqrt(mean + eps) is kept for backward.</summary>
    public static void RmsNorm<T>(T[] x, T[] w, T eps, T[] y, T[] rstd, int n, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Rows(n, (long)n * d * 4, i =>
        {
            var xr = x.AsSpan(i * d, d);
            T r = T.One / T.Sqrt(Dot<T>(xr, xr) / T.CreateChecked(d) + eps);
            rstd[i] = r;
            for (int j = 0; j < d; j++) y[i * d + j] = xr[j] * r * w[j];
        });
    }

    /// <summary>dx += r·(dy⊙w) − x·r³·Σ(dy⊙w⊙x)/d; dw += Σ_rows dy⊙x·r.</summary>
    public static void RmsNormBackward<T>(T[] dy, T[] x, T[] w, T[] rstd, T[] dx, T[] dw, int n, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T dd = T.CreateChecked(d);
        Rows(n, (long)n * d * 4, i =>
        {
            T r = rstd[i], s = T.Zero;
            for (int j = 0; j < d; j++) s += dy[i * d + j] * w[j] * x[i * d + j];
            T c = s * r * r * r / dd;
            for (int j = 0; j < d; j++) dx[i * d + j] += r * dy[i * d + j] * w[j] - x[i * d + j] * c;
        });
        for (int i = 0; i < n; i++)
        {
            T r = rstd[i];
            for (int j = 0; j < d; j++) dw[j] += dy[i * d + j] * x[i * d + j] * r;
        }
    }

    // ---------------------------------------------------------------- RoPE

    /// <summary>
    /// Interleaved-pair rotation in place of <paramref name="dim"/> values at x[offset..] by the angle of row
    /// <paramref name="position"/> of the [positions, dim/2] tables (cos and sin carry YaRN's magnitude scale).
    /// </summary>
    public static void Rope<T>(T[] x, int offset, int dim, T[] cos, T[] sin, int position) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int pairs = dim / 2;
        for (int i = 0; i < pairs; i++)
        {
            T c = cos[position * pairs + i], s = sin[position * pairs + i];
            T a = x[offset + 2 * i], b = x[offset + 2 * i + 1];
            x[offset + 2 * i] = a * c - b * s;
            x[offset + 2 * i + 1] = a * s + b * c;
        }
    }

    /// <summary>The transpose of <see cref="Rope{T}"/> applied in place to a gradient: [[c, s], [−s, c]].</summary>
    public static void RopeBackward<T>(T[] dx, int offset, int dim, T[] cos, T[] sin, int position) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int pairs = dim / 2;
        for (int i = 0; i < pairs; i++)
        {
            T c = cos[position * pairs + i], s = sin[position * pairs + i];
            T a = dx[offset + 2 * i], b = dx[offset + 2 * i + 1];
            dx[offset + 2 * i] = a * c + b * s;
            dx[offset + 2 * i + 1] = -a * s + b * c;
        }
    }

    // ---------------------------------------------------------------- MLA attention core

    /// <summary>Shapes of the attention core.</summary>
    public readonly record struct AttentionShape(int Seq, int Heads, int Nope, int Rope, int VDim, double Scale)
    {
        public int QkDim => Nope + Rope;
        public int KvbWidth => Heads * (Nope + VDim);
    }

    /// <summary>
    /// Causal MLA attention of sequence <paramref name="b"/>. q [B·S, heads, nope+rope] (rope part already rotated);
    /// kvb [B·S, heads, nope+v] (kv_b_proj of the normed latent: per head k_nope then v); kr [B·S, rope] the shared
    /// rotated rope key. probs [B, heads, S, S] keeps the softmax; out [B·S, heads, v]. maxLogit[h] receives the
    /// largest scaled pre-softmax logit of the sequence per head.
    /// </summary>
    public static void Attention<T>(AttentionShape a, int b, T[] q, T[] kvb, T[] kr, T[] probs, T[] output, Span<T> maxLogit)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int h = 0; h < a.Heads; h++) maxLogit[h] = AttentionHead(a, b, h, q, kvb, kr, probs, output);
    }

    /// <summary>Head <paramref name="h"/> of <see cref="Attention{T}"/>; returns its largest scaled logit. Heads write disjoint outputs.</summary>
    public static T AttentionHead<T>(AttentionShape a, int b, int h, T[] q, T[] kvb, T[] kr, T[] probs, T[] output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
            return T.CreateTruncating(FloatAttention.Head(a, b, h, Unsafe.As<float[]>(q), Unsafe.As<float[]>(kvb), Unsafe.As<float[]>(kr),
                Unsafe.As<float[]>(probs), Unsafe.As<float[]>(output)));
        int S = a.Seq, H = a.Heads, qk = a.QkDim, kvw = a.Nope + a.VDim;
        T scale = T.CreateChecked(a.Scale);
        T max = T.NegativeInfinity;
        for (int t = 0; t < S; t++)
        {
            var qr = q.AsSpan(((b * S + t) * H + h) * qk, qk);
            var p = probs.AsSpan(((b * H + h) * S + t) * S, S);
            T rowMax = T.NegativeInfinity;
            for (int s = 0; s <= t; s++)
            {
                T score = Dot<T>(qr[..a.Nope], kvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw, a.Nope))
                    + Dot<T>(qr[a.Nope..], kr.AsSpan((b * S + s) * a.Rope, a.Rope));
                score *= scale;
                p[s] = score;
                if (score > rowMax) rowMax = score;
            }
            if (rowMax > max) max = rowMax;
            T sum = T.Zero;
            for (int s = 0; s <= t; s++) { p[s] = T.Exp(p[s] - rowMax); sum += p[s]; }
            for (int s = 0; s <= t; s++) p[s] /= sum;
            for (int s = t + 1; s < S; s++) p[s] = T.Zero;
            var o = output.AsSpan(((b * S + t) * H + h) * a.VDim, a.VDim);
            o.Clear();
            for (int s = 0; s <= t; s++) Axpy(p[s], kvb.AsSpan((b * S + s) * a.KvbWidth + h * kvw + a.Nope, a.VDim), o);
        }
        return max;
    }

    /// <summary>Backward of <see cref="Attention{T}"/> for sequence <paramref name="b"/>: accumulates into dq, dkvb and dkr.</summary>
    public static void AttentionBackward<T>(AttentionShape a, int b, T[] q, T[] kvb, T[] kr, T[] probs, T[] dOutput,
        T[] dq, T[] dkvb, T[] dkr) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int h = 0; h < a.Heads; h++) AttentionHeadBackward(a, b, h, q, kvb, kr, probs, dOutput, dq, dkvb, dkr);
    }

    /// <summary>
    /// Head <paramref name="h"/> of <see cref="AttentionBackward{T}"/>. dq and dkvb slices are disjoint per head; the
    /// shared rope key's gradient is not, so parallel callers give each head its own <paramref name="dkr"/> and sum them.
    /// </summary>
    public static void AttentionHeadBackward<T>(AttentionShape a, int b, int h, T[] q, T[] kvb, T[] kr, T[] probs, T[] dOutput,
        T[] dq, T[] dkvb, T[] dkr) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            FloatAttention.HeadBackward(a, b, h, Unsafe.As<float[]>(q), Unsafe.As<float[]>(kvb), Unsafe.As<float[]>(kr), Unsafe.As<float[]>(probs),
                Unsafe.As<float[]>(dOutput), Unsafe.As<float[]>(dq), Unsafe.As<float[]>(dkvb), Unsafe.As<float[]>(dkr));
            return;
        }
        int S = a.Seq, H = a.Heads, qk = a.QkDim, kvw = a.Nope + a.VDim;
        T scale = T.CreateChecked(a.Scale);
        var dp = new T[S];
        for (int t = 0; t < S; t++)
        {
            var p = probs.AsSpan(((b * H + h) * S + t) * S, S);
            var dout = dOutput.AsSpan(((b * S + t) * H + h) * a.VDim, a.VDim);
            T dot = T.Zero;
            for (int s = 0; s <= t; s++)
            {
                int vOff = (b * S + s) * a.KvbWidth + h * kvw + a.Nope;
                dp[s] = Dot<T>(dout, kvb.AsSpan(vOff, a.VDim));
                Axpy(p[s], dout, dkvb.AsSpan(vOff, a.VDim));
                dot += p[s] * dp[s];
            }
            int qOff = ((b * S + t) * H + h) * qk;
            for (int s = 0; s <= t; s++)
            {
                T ds = p[s] * (dp[s] - dot) * scale; // d(score before scale)
                int kOff = (b * S + s) * a.KvbWidth + h * kvw, rOff = (b * S + s) * a.Rope;
                Axpy(ds, kvb.AsSpan(kOff, a.Nope), dq.AsSpan(qOff, a.Nope));
                Axpy(ds, kr.AsSpan(rOff, a.Rope), dq.AsSpan(qOff + a.Nope, a.Rope));
                Axpy(ds, q.AsSpan(qOff, a.Nope), dkvb.AsSpan(kOff, a.Nope));
                Axpy(ds, q.AsSpan(qOff + a.Nope, a.Rope), dkr.AsSpan(rOff, a.Rope));
            }
        }
    }

    // ---------------------------------------------------------------- SwiGLU

    /// <summary>act = silu(g) ⊙ u.</summary>
    public static void SwiGlu<T>(T[] g, T[] u, T[] act, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < count; i++)
        {
            T sg = T.One / (T.One + T.Exp(-g[i]));
            act[i] = g[i] * sg * u[i];
        }
    }

    /// <summary>dg += dact·u·σ(g)(1 + g(1 − σ(g))); du += dact·silu(g).</summary>
    public static void SwiGluBackward<T>(T[] dact, T[] g, T[] u, T[] dg, T[] du, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < count; i++)
        {
            T sg = T.One / (T.One + T.Exp(-g[i]));
            dg[i] += dact[i] * u[i] * sg * (T.One + g[i] * (T.One - sg));
            du[i] += dact[i] * g[i] * sg;
        }
    }

    // ---------------------------------------------------------------- embedding, head, loss

    /// <summary>out[i] = table[tokens[i]].</summary>
    public static void Embedding<T>(int[] tokens, T[] table, T[] output, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < tokens.Length; i++) table.AsSpan(tokens[i] * d, d).CopyTo(output.AsSpan(i * d, d));
    }

    /// <summary>dtable[tokens[i]] += dout[i], in token order.</summary>
    public static void EmbeddingBackward<T>(int[] tokens, T[] dOutput, T[] dTable, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < tokens.Length; i++) Axpy(T.One, dOutput.AsSpan(i * d, d), dTable.AsSpan(tokens[i] * d, d));
    }

    /// <summary>
    /// Mean cross-entropy over rows whose target is ≥ 0 and whose mask (when given) is non-zero, weighting each row by
    /// its mask value and dividing by Σ |weights| (so signed weights — policy-gradient advantages — work as well).
    /// Writes softmax probabilities into <paramref name="probs"/> and returns (loss, Σ |weights|).
    /// </summary>
    public static (T Loss, T Weight) CrossEntropy<T>(T[] logits, int[] targets, float[]? mask, T[] probs, int n, int vocab)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rowLoss = new T[n];
        Rows(n, (long)n * vocab * 8, i =>
        {
            var l = logits.AsSpan(i * vocab, vocab);
            var p = probs.AsSpan(i * vocab, vocab);
            T max = T.NegativeInfinity;
            foreach (var v in l) if (v > max) max = v;
            T sum = T.Zero;
            for (int j = 0; j < vocab; j++) { p[j] = T.Exp(l[j] - max); sum += p[j]; }
            for (int j = 0; j < vocab; j++) p[j] /= sum;
            int target = targets[i];
            if (target >= 0) rowLoss[i] = -(l[target] - max - T.Log(sum));
        });
        T loss = T.Zero, weight = T.Zero;
        for (int i = 0; i < n; i++)
        {
            T m = RowWeight<T>(targets, mask, i);
            loss += m * rowLoss[i];
            weight += T.Abs(m);
        }
        return (weight > T.Zero ? loss / weight : T.Zero, weight);
    }

    private static T RowWeight<T>(int[] targets, float[]? mask, int i) where T : unmanaged, IFloatingPointIeee754<T> =>
        targets[i] < 0 ? T.Zero : mask is null ? T.One : T.CreateChecked(mask[i]);

    /// <summary>dlogits = dLoss·w_i·(p − onehot(target)) / Σ w (overwrites).</summary>
    public static void CrossEntropyBackward<T>(T[] probs, int[] targets, float[]? mask, T weight, T dLoss, T[] dLogits, int n, int vocab)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < n; i++)
        {
            T m = weight > T.Zero ? dLoss * RowWeight<T>(targets, mask, i) / weight : T.Zero;
            var d = dLogits.AsSpan(i * vocab, vocab);
            if (m == T.Zero) { d.Clear(); continue; }
            for (int j = 0; j < vocab; j++) d[j] = m * probs[i * vocab + j];
            d[targets[i]] -= m;
        }
    }

    // ---------------------------------------------------------------- router

    /// <summary>DeepSeek-V3 noaux_tc routing parameters.</summary>
    public readonly record struct RouterShape(int Experts, int TopK, int Groups, int TopkGroup, bool NormTopkProb, double ScalingFactor);

    /// <summary>
    /// Routes one token like the inference engine: scores = σ(logits); choice = scores + bias; groups ranked by the sum
    /// of their two best choice scores, experts outside the best topk_group groups excluded; top-k by choice score (ties:
    /// lower index); weights = unbiased scores, normalized over the chosen (norm_topk_prob, k &gt; 1), × routed_scaling_factor.
    /// Writes chosen[k], weights[k] and scores[experts] (the sigmoid of every expert, kept for backward).
    /// </summary>
    public static void Route<T>(RouterShape r, ReadOnlySpan<T> logits, ReadOnlySpan<float> bias, Span<int> chosen, Span<T> weights, Span<T> scores)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int count = r.Experts;
        Span<double> choice = stackalloc double[count];
        for (int e = 0; e < count; e++)
        {
            scores[e] = T.One / (T.One + T.Exp(-logits[e]));
            choice[e] = double.CreateChecked(scores[e]) + bias[e];
        }
        ExpertRouting.ChooseExperts(choice, r.Groups, r.TopkGroup, chosen[..r.TopK]);
        ExpertRouting.Weigh<T>(scores, chosen[..r.TopK], r.NormTopkProb, r.ScalingFactor, weights[..r.TopK]);
    }

    /// <summary>
    /// Backward of the routing weights (the choice itself is not differentiated): dlogits[e] += ∂L/∂logit_e through
    /// w_j = c·s_j / Σ_i s_i (or c·s_j without normalization) and s = σ(logit).
    /// </summary>
    public static void RouteBackward<T>(RouterShape r, ReadOnlySpan<int> chosen, ReadOnlySpan<T> scores, ReadOnlySpan<T> dWeights, Span<T> dLogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c = T.CreateChecked(r.ScalingFactor);
        int k = r.TopK;
        if (k > 1 && r.NormTopkProb)
        {
            T sum = T.CreateChecked(1e-20), weighted = T.Zero;
            for (int j = 0; j < k; j++) sum += scores[chosen[j]];
            for (int j = 0; j < k; j++) weighted += dWeights[j] * scores[chosen[j]];
            for (int j = 0; j < k; j++)
            {
                T s = scores[chosen[j]];
                T ds = c * (dWeights[j] / sum - weighted / (sum * sum));
                dLogits[chosen[j]] += ds * s * (T.One - s);
            }
        }
        else
            for (int j = 0; j < k; j++)
            {
                T s = scores[chosen[j]];
                dLogits[chosen[j]] += c * dWeights[j] * s * (T.One - s);
            }
    }
}
