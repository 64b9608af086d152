using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Checkpoints;

/// <summary>
/// How a K2-family model maps onto llama.cpp / ik_llama.cpp's <c>deepseek2</c> GGUF layout: the metadata keys, tensor
/// names and shapes, and a row source per tensor that decodes the stored weights to float32 for <see cref="GgufWriter"/>
/// to re-encode as Q4_0 (2-D weights whose rows are a multiple of 32) or F32. Norms, the router and its correction
/// bias stay F32. The vocabulary is a placeholder GPT-2 byte vocabulary of vocab_size entries: enough for benchmarks on
/// token ids, not for text.
/// </summary>
public static class DeepSeek2GgufLayout
{
    /// <summary>The GGUF type a weight of <paramref name="cols"/> columns gets: F32 when Q4_0 blocks do not fit its rows.</summary>
    public static GgmlType TypeFor(GgmlType wanted, long cols) =>
        wanted == GgmlType.Q4_0 && cols % GgufWriter.Q4_0BlockValues != 0 ? GgmlType.F32 : wanted;

    /// <summary>Declares the deepseek2 metadata and tensors of <paramref name="model"/> (nothing is read until Write).</summary>
    public static GgufWriter Build(KimiModel model, GgmlType matrixType, string name)
    {
        var c = model.Config;
        if (c.AttentionBias) throw new ModelConfigException("config.json: attention_bias is true, but the deepseek2 GGUF layout has no attention biases");
        var g = new GgufWriter();
        const string a = "deepseek2";
        int heads = c.NumAttentionHeads, dn = c.QkNopeHeadDim, dr = c.QkRopeHeadDim, dv = c.VHeadDim, r = c.KvLoraRank;
        g.AddString("general.architecture", a);
        g.AddString("general.name", name);
        g.AddUInt32("general.file_type", matrixType == GgmlType.Q4_0 ? 2u : 0u); // LLAMA_FTYPE_MOSTLY_Q4_0 / ALL_F32
        g.AddUInt32("general.alignment", GgufWriter.Alignment);
        g.AddUInt32($"{a}.block_count", (uint)c.NumHiddenLayers);
        g.AddUInt32($"{a}.context_length", (uint)c.MaxPositionEmbeddings);
        g.AddUInt32($"{a}.embedding_length", (uint)c.HiddenSize);
        g.AddUInt32($"{a}.feed_forward_length", (uint)c.IntermediateSize);
        g.AddUInt32($"{a}.attention.head_count", (uint)heads);
        g.AddUInt32($"{a}.attention.head_count_kv", (uint)heads);
        g.AddFloat32($"{a}.rope.freq_base", (float)c.RopeTheta);
        g.AddFloat32($"{a}.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
        g.AddUInt32($"{a}.expert_used_count", (uint)c.NumExpertsPerTok);
        g.AddUInt32($"{a}.leading_dense_block_count", (uint)LeadingDenseLayers(c));
        g.AddUInt32($"{a}.vocab_size", (uint)c.VocabSize);
        if (c.QLoraRank is int qRank) g.AddUInt32($"{a}.attention.q_lora_rank", (uint)qRank);
        g.AddUInt32($"{a}.attention.kv_lora_rank", (uint)r);
        g.AddUInt32($"{a}.attention.key_length", (uint)(dn + dr));
        g.AddUInt32($"{a}.attention.value_length", (uint)dv);
        g.AddUInt32($"{a}.expert_feed_forward_length", (uint)c.MoeIntermediateSize);
        g.AddUInt32($"{a}.expert_count", (uint)c.NRoutedExperts);
        g.AddUInt32($"{a}.expert_shared_count", (uint)c.NSharedExperts);
        g.AddFloat32($"{a}.expert_weights_scale", (float)c.RoutedScalingFactor);
        g.AddBool($"{a}.expert_weights_norm", c.NormTopkProb);
        g.AddUInt32($"{a}.expert_gating_func", 2); // LLM_EXPERT_GATING_FUNC_SIGMOID
        g.AddUInt32($"{a}.expert_group_count", (uint)c.NGroup);
        g.AddUInt32($"{a}.expert_group_used_count", (uint)c.TopkGroup);
        g.AddUInt32($"{a}.rope.dimension_count", (uint)dr);
        if (c.Yarn is { } y)
        {
            g.AddString($"{a}.rope.scaling.type", "yarn");
            g.AddFloat32($"{a}.rope.scaling.factor", (float)y.Factor);
            g.AddUInt32($"{a}.rope.scaling.original_context_length", (uint)y.OriginalMaxPositionEmbeddings);
            g.AddFloat32($"{a}.rope.scaling.yarn_log_multiplier", (float)(0.1 * y.MscaleAllDim));
            g.AddFloat32($"{a}.rope.scaling.yarn_beta_fast", (float)y.BetaFast);
            g.AddFloat32($"{a}.rope.scaling.yarn_beta_slow", (float)y.BetaSlow);
        }
        AddPlaceholderVocabulary(g, c);

        void Matrix(string tensor, WeightMatrix w) =>
            g.AddTensor(tensor, TypeFor(matrixType, w.Cols), [w.Cols, w.Rows], (row, v) => MatrixKernels.DecodeRow(w, (int)row, v));
        void Vector(string tensor, float[] values) =>
            g.AddTensor(tensor, GgmlType.F32, [values.Length], (_, v) => values.CopyTo(v));
        void Stacked(string tensor, IReadOnlyList<WeightMatrix> experts)
        {
            int rows = experts[0].Rows, cols = experts[0].Cols;
            g.AddTensor(tensor, TypeFor(matrixType, cols), [cols, rows, experts.Count],
                (row, v) => MatrixKernels.DecodeRow(experts[(int)(row / rows)], (int)(row % rows), v));
        }

        Matrix("token_embd.weight", model.Embedding);
        for (int l = 0; l < model.Layers.Count; l++)
        {
            var layer = model.Layers[l];
            var at = layer.Attention;
            string p = $"blk.{l}.";
            Vector(p + "attn_norm.weight", layer.InputNorm);
            if (at.QProj is { } q) Matrix(p + "attn_q.weight", q);
            else
            {
                Matrix(p + "attn_q_a.weight", at.QAProj!);
                Vector(p + "attn_q_a_norm.weight", at.QANorm!);
                Matrix(p + "attn_q_b.weight", at.QBProj!);
            }
            Matrix(p + "attn_kv_a_mqa.weight", at.KvAProj);
            Vector(p + "attn_kv_a_norm.weight", at.KvANorm);
            Matrix(p + "attn_kv_b.weight", at.KvBProj);
            // kv_b_proj is [H·(dn+dv), R]. attn_k_b holds each head's key part transposed, [H·R, dn]; attn_v_b its value
            // part, [H·dv, R] (what the upstream converter writes; ik would otherwise derive them at load).
            var kvB = at.KvBProj;
            var kvBFloat = new Lazy<float[]>(() =>
            {
                var all = new float[(long)kvB.Rows * kvB.Cols];
                for (int row = 0; row < kvB.Rows; row++) MatrixKernels.DecodeRow(kvB, row, all.AsSpan(row * kvB.Cols, kvB.Cols));
                return all;
            }, LazyThreadSafetyMode.ExecutionAndPublication);
            g.AddTensor(p + "attn_k_b.weight", TypeFor(matrixType, dn), [dn, (long)heads * r], (row, v) =>
            {
                var all = kvBFloat.Value;
                int h = (int)(row / r), latent = (int)(row % r);
                for (int j = 0; j < dn; j++) v[j] = all[((long)h * (dn + dv) + j) * r + latent];
            });
            g.AddTensor(p + "attn_v_b.weight", TypeFor(matrixType, r), [r, (long)heads * dv], (row, v) =>
            {
                int h = (int)(row / dv), j = (int)(row % dv);
                MatrixKernels.DecodeRow(kvB, h * (dn + dv) + dn + j, v);
            });
            Matrix(p + "attn_output.weight", at.OProj);
            Vector(p + "ffn_norm.weight", layer.PostAttentionNorm);
            if (layer.Moe is { } moe)
            {
                g.AddTensor(p + "ffn_gate_inp.weight", GgmlType.F32, [moe.Router.Cols, moe.Router.Rows],
                    (row, v) => MatrixKernels.DecodeRow(moe.Router, (int)row, v));
                Vector(p + "exp_probs_b.bias", moe.ChoiceBias);
                Stacked(p + "ffn_gate_exps.weight", moe.Experts.Select(e => e.Gate).ToArray());
                Stacked(p + "ffn_up_exps.weight", moe.Experts.Select(e => e.Up).ToArray());
                Stacked(p + "ffn_down_exps.weight", moe.Experts.Select(e => e.Down).ToArray());
                if (moe.Shared is { } s)
                {
                    Matrix(p + "ffn_gate_shexp.weight", s.Gate);
                    Matrix(p + "ffn_up_shexp.weight", s.Up);
                    Matrix(p + "ffn_down_shexp.weight", s.Down);
                }
            }
            else
            {
                var d = layer.Dense!;
                Matrix(p + "ffn_gate.weight", d.Gate);
                Matrix(p + "ffn_up.weight", d.Up);
                Matrix(p + "ffn_down.weight", d.Down);
            }
        }
        Vector("output_norm.weight", model.FinalNorm);
        Matrix("output.weight", model.LmHead);
        return g;
    }

    /// <summary>deepseek2 treats layers below leading_dense_block_count as dense and all others as MoE.</summary>
    private static int LeadingDenseLayers(ModelConfig c)
    {
        int lead = 0;
        while (lead < c.NumHiddenLayers && !c.IsMoeLayer(lead)) lead++;
        for (int l = lead; l < c.NumHiddenLayers; l++)
            if (!c.IsMoeLayer(l))
                throw new ModelConfigException($"config.json: layer {l} is dense after MoE layers (first_k_dense_replace {c.FirstKDenseReplace}, moe_layer_freq {c.MoeLayerFreq}); the deepseek2 GGUF layout cannot express that");
        return lead;
    }

    /// <summary>
    /// A GPT-2 style BPE vocabulary of vocab_size tokens: the 256 byte tokens (GPT-2's byte-to-character map), one
    /// merge ("Ġ t" → token 256) and [TOKn] fillers. llama.cpp needs a merges array for the gpt2 tokenizer.
    /// </summary>
    private static void AddPlaceholderVocabulary(GgufWriter g, ModelConfig c)
    {
        if (c.VocabSize < 257) throw new ModelConfigException($"config.json: vocab_size {c.VocabSize} is too small for the placeholder GGUF vocabulary (needs ≥ 257)");
        var tokens = new string[c.VocabSize];
        var byteChars = Gpt2ByteCharacters();
        for (int b = 0; b < 256; b++) tokens[b] = byteChars[b].ToString();
        tokens[256] = byteChars[' '].ToString() + byteChars['t'];
        for (int i = 257; i < tokens.Length; i++) tokens[i] = $"[TOK{i}]";
        var types = new int[c.VocabSize];
        Array.Fill(types, 1); // LLAMA_TOKEN_TYPE_NORMAL
        g.AddString("tokenizer.ggml.model", "gpt2");
        g.AddString("tokenizer.ggml.pre", "default");
        g.AddStringArray("tokenizer.ggml.tokens", tokens);
        g.AddInt32Array("tokenizer.ggml.token_type", types);
        g.AddStringArray("tokenizer.ggml.merges", [$"{byteChars[' ']} {byteChars['t']}"]);
        if (c.BosTokenId is int bos && bos >= 0 && bos < c.VocabSize) g.AddUInt32("tokenizer.ggml.bos_token_id", (uint)bos);
        if (c.EosTokenIds.Count > 0 && c.EosTokenIds[0] >= 0 && c.EosTokenIds[0] < c.VocabSize)
            g.AddUInt32("tokenizer.ggml.eos_token_id", (uint)c.EosTokenIds[0]);
        g.AddBool("tokenizer.ggml.add_bos_token", false);
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.</summary>
    private static char[] Gpt2ByteCharacters()
    {
        var map = new char[256];
        bool Printable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        int next = 256;
        for (int b = 0; b < 256; b++) map[b] = Printable(b) ? (char)b : (char)next++;
        return map;
    }

    /// <summary>Weight bytes one decoded token reads in the exported file: every non-expert weight, the top-k routed experts, one embedding row.</summary>
    public static double DecodeBytesPerToken(KimiModel model, GgmlType matrixType)
    {
        double Bytes(long rows, long cols) => rows * GgufWriter.RowBytes(TypeFor(matrixType, cols), cols);
        double Of(WeightMatrix w) => Bytes(w.Rows, w.Cols);
        var c = model.Config;
        double total = Bytes(1, model.Embedding.Cols) + Of(model.LmHead) + 4.0 * model.FinalNorm.Length;
        foreach (var layer in model.Layers)
        {
            var at = layer.Attention;
            total += 4.0 * (layer.InputNorm.Length + layer.PostAttentionNorm.Length + at.KvANorm.Length + (at.QANorm?.Length ?? 0));
            total += (at.QProj is { } q ? Of(q) : Of(at.QAProj!) + Of(at.QBProj!)) + Of(at.KvAProj) + Of(at.OProj);
            // The absorbed (MLA) decode path reads attn_k_b and attn_v_b rather than attn_kv_b; both hold kv_b's elements.
            total += Bytes((long)c.NumAttentionHeads * c.KvLoraRank, c.QkNopeHeadDim) + Bytes((long)c.NumAttentionHeads * c.VHeadDim, c.KvLoraRank);
            if (layer.Moe is { } moe)
            {
                total += 4.0 * (moe.Router.Rows * (double)moe.Router.Cols + moe.ChoiceBias.Length);
                var e = moe.Experts[0];
                total += c.NumExpertsPerTok * (Of(e.Gate) + Of(e.Up) + Of(e.Down));
                if (moe.Shared is { } s) total += Of(s.Gate) + Of(s.Up) + Of(s.Down);
            }
            else total += Of(layer.Dense!.Gate) + Of(layer.Dense.Up) + Of(layer.Dense.Down);
        }
        return total;
    }
}
