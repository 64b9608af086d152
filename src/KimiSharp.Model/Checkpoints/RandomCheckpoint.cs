using KimiSharp.Model.Configuration;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Model.Checkpoints;

/// <summary>How <see cref="RandomCheckpoint"/> stores the weights.</summary>
public enum CheckpointFormat
{
    /// <summary>Every tensor BF16 (router correction bias F32).</summary>
    Bf16,

    /// <summary>DeepSeek-V3 / K2-Instruct style: decoder linears F8_E4M3 with a block <c>weight_scale_inv</c>, kv_a_proj_with_mqa and the rest BF16.</summary>
    Fp8,

    /// <summary>K2-Thinking style: routed experts compressed-tensors pack-quantized INT4, the rest BF16.</summary>
    Int4,
}

/// <summary>How <see cref="RandomCheckpoint"/> names the tensors and shapes config.json.</summary>
public enum CheckpointLayout
{
    /// <summary>Kimi K2 / DeepSeek-V3 (<c>DeepseekV3ForCausalLM</c>): architecture keys at the top of config.json, tensors <c>model.layers.N…</c>, <c>lm_head.weight</c>.</summary>
    K2,

    /// <summary>
    /// Kimi K2.5 as released (<c>KimiK25ForConditionalGeneration</c>, model_type <c>kimi_k25</c>): the same keys (and
    /// quantization_config) under <c>text_config</c>, tensors <c>language_model.model.layers.N…</c>,
    /// <c>language_model.lm_head.weight</c>. The vision tower is added by KimiSharp.Vision's RandomVisionCheckpoint.
    /// </summary>
    K25,
}

/// <summary>YaRN rope scaling parameters, written as <c>rope_scaling: {"type": "yarn", ...}</c>.</summary>
public sealed record YarnOptions
{
    public double Factor { get; init; } = 32;
    public int OriginalMaxPositionEmbeddings { get; init; } = 4096;
    public double BetaFast { get; init; } = 1;
    public double BetaSlow { get; init; } = 1;
    public double Mscale { get; init; } = 1;
    public double MscaleAllDim { get; init; } = 1;
}

/// <summary>Shape, routing and storage options of a random-weight K2-family checkpoint. Defaults match the tiny-a golden models.</summary>
public sealed record RandomCheckpointOptions
{
    public int VocabSize { get; init; } = 512;
    public int HiddenSize { get; init; } = 64;
    public int IntermediateSize { get; init; } = 128;
    public int MoeIntermediateSize { get; init; } = 32;
    public int NumHiddenLayers { get; init; } = 3;
    public int NumAttentionHeads { get; init; } = 4;

    /// <summary>Routed experts per MoE layer; 0 makes every layer dense.</summary>
    public int NRoutedExperts { get; init; } = 8;

    /// <summary>Shared experts (their width is MoeIntermediateSize times this); 0 means no shared expert.</summary>
    public int NSharedExperts { get; init; } = 1;

    public int NumExpertsPerTok { get; init; } = 2;
    public int NGroup { get; init; } = 1;
    public int TopkGroup { get; init; } = 1;
    public double RoutedScalingFactor { get; init; } = 2.446;
    public bool NormTopkProb { get; init; } = true;
    public int FirstKDenseReplace { get; init; } = 1;
    public int MoeLayerFreq { get; init; } = 1;

    /// <summary>Rank of the q down-projection; null gives a plain <c>q_proj</c>.</summary>
    public int? QLoraRank { get; init; }

    public int KvLoraRank { get; init; } = 32;
    public int QkNopeHeadDim { get; init; } = 16;

    /// <summary>Rope part of each query/key head; must be even.</summary>
    public int QkRopeHeadDim { get; init; } = 8;

    public int VHeadDim { get; init; } = 16;
    public double RopeTheta { get; init; } = 50000;

    /// <summary>YaRN scaling; null writes <c>rope_scaling: null</c>.</summary>
    public YarnOptions? Yarn { get; init; }

    public double RmsNormEps { get; init; } = 1e-5;
    public int MaxPositionEmbeddings { get; init; } = 8192;
    public bool TieWordEmbeddings { get; init; }
    public int BosTokenId { get; init; }
    public int EosTokenId { get; init; } = 1;

    /// <summary>Seed of the weights. Each tensor draws from its own stream keyed by seed and name, so the float weights do not depend on <see cref="Format"/>.</summary>
    public int Seed { get; init; } = 1234;

    public CheckpointFormat Format { get; init; } = CheckpointFormat.Bf16;

    /// <summary>Tensor names and config.json shape; the weights themselves do not depend on it.</summary>
    public CheckpointLayout Layout { get; init; } = CheckpointLayout.K2;

    /// <summary>FP8 block rows (weight_block_size[0]).</summary>
    public int Fp8BlockRows { get; init; } = 128;

    /// <summary>FP8 block columns (weight_block_size[1]).</summary>
    public int Fp8BlockCols { get; init; } = 128;

    /// <summary>
    /// With <see cref="CheckpointFormat.Int4"/>: pack-quantize every linear weight (attention, dense and shared MLPs,
    /// lm_head) too, not only the routed experts; embedding, norms and router stay BF16. The layout of all-Q4_0 benchmarks.
    /// </summary>
    public bool Int4AllLinears { get; init; }

    /// <summary>INT4 group size (input columns per scale).</summary>
    public int Int4GroupSize { get; init; } = 32;

    /// <summary>Null writes one <c>model.safetensors</c>; otherwise shards of at most this many data bytes plus an index.</summary>
    public long? MaxShardBytes { get; init; }

    /// <summary>Whether layer <paramref name="layer"/> has a MoE feed-forward (otherwise the dense SwiGLU MLP).</summary>
    public bool IsMoeLayer(int layer) =>
        NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;

    /// <summary>Throws <see cref="ArgumentException"/> when the options cannot describe a valid model.</summary>
    public void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value < 1) throw new ArgumentException($"{name} must be at least 1 (got {value}).");
        }
        Positive(VocabSize, nameof(VocabSize));
        Positive(HiddenSize, nameof(HiddenSize));
        Positive(NumHiddenLayers, nameof(NumHiddenLayers));
        Positive(NumAttentionHeads, nameof(NumAttentionHeads));
        Positive(KvLoraRank, nameof(KvLoraRank));
        Positive(QkNopeHeadDim, nameof(QkNopeHeadDim));
        Positive(VHeadDim, nameof(VHeadDim));
        Positive(MoeLayerFreq, nameof(MoeLayerFreq));
        Positive(MaxPositionEmbeddings, nameof(MaxPositionEmbeddings));
        if (QkRopeHeadDim < 2 || QkRopeHeadDim % 2 != 0)
            throw new ArgumentException($"{nameof(QkRopeHeadDim)} must be even and at least 2 (got {QkRopeHeadDim}).");
        if (QLoraRank is int q) Positive(q, nameof(QLoraRank));
        if (FirstKDenseReplace < 0) throw new ArgumentException($"{nameof(FirstKDenseReplace)} must be non-negative.");
        if (NRoutedExperts < 0 || NSharedExperts < 0) throw new ArgumentException("Expert counts must be non-negative.");
        if (!(RopeTheta > 0)) throw new ArgumentException($"{nameof(RopeTheta)} must be positive.");
        if (!(RmsNormEps >= 0)) throw new ArgumentException($"{nameof(RmsNormEps)} must be non-negative.");
        if (BosTokenId < 0 || BosTokenId >= VocabSize || EosTokenId < 0 || EosTokenId >= VocabSize)
            throw new ArgumentException("bos/eos token ids must lie inside the vocabulary.");

        bool anyDense = Enumerable.Range(0, NumHiddenLayers).Any(l => !IsMoeLayer(l));
        if (anyDense) Positive(IntermediateSize, nameof(IntermediateSize));
        if (NRoutedExperts > 0)
        {
            Positive(MoeIntermediateSize, nameof(MoeIntermediateSize));
            Positive(NGroup, nameof(NGroup));
            if (NRoutedExperts % NGroup != 0)
                throw new ArgumentException($"{nameof(NRoutedExperts)} ({NRoutedExperts}) must be a multiple of {nameof(NGroup)} ({NGroup}).");
            if (TopkGroup < 1 || TopkGroup > NGroup)
                throw new ArgumentException($"{nameof(TopkGroup)} must lie in [1, {NGroup}] (got {TopkGroup}).");
            int reachable = TopkGroup * (NRoutedExperts / NGroup);
            if (NumExpertsPerTok < 1 || NumExpertsPerTok > reachable)
                throw new ArgumentException($"{nameof(NumExpertsPerTok)} must lie in [1, {reachable}] (got {NumExpertsPerTok}).");
        }
        if (Yarn is { } y)
        {
            if (!(y.Factor > 0)) throw new ArgumentException("YaRN factor must be positive.");
            Positive(y.OriginalMaxPositionEmbeddings, nameof(y.OriginalMaxPositionEmbeddings));
            if (!(y.BetaFast > 0) || !(y.BetaSlow > 0)) throw new ArgumentException("YaRN beta_fast/beta_slow must be positive.");
        }
        Positive(Fp8BlockRows, nameof(Fp8BlockRows));
        Positive(Fp8BlockCols, nameof(Fp8BlockCols));
        Positive(Int4GroupSize, nameof(Int4GroupSize));
        if (MaxShardBytes is long m && m < 1) throw new ArgumentException($"{nameof(MaxShardBytes)} must be positive.");
    }
}

/// <summary>
/// Writes random-weight K2-family (<c>DeepseekV3ForCausalLM</c>) checkpoint folders: <c>config.json</c> plus safetensors in
/// Hugging Face naming, in BF16, DeepSeek-style block FP8, or K2-Thinking-style INT4 experts. The weights are scaled so a
/// forward pass is well conditioned: embeddings ~N(0,1), linears ~N(0, 1/fan_in), norms in [0.9, 1.1], router bias in [-0.1, 0.1].
/// </summary>
public static class RandomCheckpoint
{
    /// <summary>Name of the single-file checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>
    /// Writes <c>config.json</c> and the weights into <paramref name="directory"/> (created if missing). Earlier
    /// <c>model*.safetensors</c> files and the shard index there are removed first so loaders cannot pick up stale files.
    /// Returns the names of the files written.
    /// </summary>
    public static IReadOnlyList<string> Write(string directory, RandomCheckpointOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Directory.CreateDirectory(directory);
        RemoveStaleWeights(directory);

        var writer = BuildTensors(options);
        var written = new List<string>();
        if (options.MaxShardBytes is long maxShard)
        {
            written.AddRange(writer.SaveSharded(directory, maxShard));
            written.Add(SafetensorsWriter.IndexFileName);
        }
        else
        {
            writer.Save(Path.Combine(directory, SingleFileName));
            written.Add(SingleFileName);
        }

        File.WriteAllBytes(Path.Combine(directory, "config.json"), BuildConfigJson(options));
        written.Insert(0, "config.json");
        return written;
    }

    /// <summary>The tensors of the checkpoint <paramref name="options"/> describes, ready to save.</summary>
    public static SafetensorsWriter BuildTensors(RandomCheckpointOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var b = new Builder(options);
        var o = options;
        int heads = o.NumAttentionHeads, qkHead = o.QkNopeHeadDim + o.QkRopeHeadDim;

        b.Embedding("model.embed_tokens.weight", o.VocabSize, o.HiddenSize);
        for (int layer = 0; layer < o.NumHiddenLayers; layer++)
        {
            string p = $"model.layers.{layer}.";
            b.Norm(p + "input_layernorm.weight", o.HiddenSize);

            string a = p + "self_attn.";
            if (o.QLoraRank is int qLora)
            {
                b.Linear(a + "q_a_proj", qLora, o.HiddenSize, Role.DecoderLinear);
                b.Norm(a + "q_a_layernorm.weight", qLora);
                b.Linear(a + "q_b_proj", heads * qkHead, qLora, Role.DecoderLinear);
            }
            else
            {
                b.Linear(a + "q_proj", heads * qkHead, o.HiddenSize, Role.DecoderLinear);
            }
            b.Linear(a + "kv_a_proj_with_mqa", o.KvLoraRank + o.QkRopeHeadDim, o.HiddenSize, Role.KvA);
            b.Norm(a + "kv_a_layernorm.weight", o.KvLoraRank);
            b.Linear(a + "kv_b_proj", heads * (o.QkNopeHeadDim + o.VHeadDim), o.KvLoraRank, Role.DecoderLinear);
            b.Linear(a + "o_proj", o.HiddenSize, heads * o.VHeadDim, Role.DecoderLinear);

            b.Norm(p + "post_attention_layernorm.weight", o.HiddenSize);
            string m = p + "mlp.";
            if (!o.IsMoeLayer(layer))
            {
                b.SwiGlu(m, o.IntermediateSize, Role.DecoderLinear);
                continue;
            }
            b.Router(m + "gate", o.NRoutedExperts, o.HiddenSize);
            for (int e = 0; e < o.NRoutedExperts; e++)
                b.SwiGlu($"{m}experts.{e}.", o.MoeIntermediateSize, Role.RoutedExpert);
            if (o.NSharedExperts > 0)
                b.SwiGlu(m + "shared_experts.", o.MoeIntermediateSize * o.NSharedExperts, Role.DecoderLinear);
        }
        b.Norm("model.norm.weight", o.HiddenSize);
        if (!o.TieWordEmbeddings)
            b.Linear("lm_head", o.VocabSize, o.HiddenSize, Role.Unquantized);
        return b.Writer;
    }

    /// <summary>
    /// The UTF-8 <c>config.json</c> for <paramref name="options"/>, in the style of the Hugging Face DeepSeek-V3 / K2 configs,
    /// or for <see cref="CheckpointLayout.K25"/> the K2.5 wrapper holding that config (quantization_config included) as text_config.
    /// </summary>
    public static byte[] BuildConfigJson(RandomCheckpointOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options;
        byte[] text = ModelConfigJson.Write(ToModelConfig(o), "bfloat16", w =>
        {
            switch (o.Format)
            {
                case CheckpointFormat.Fp8:
                    w.WriteStartObject("quantization_config");
                    w.WriteString("quant_method", "fp8");
                    w.WriteString("fmt", "e4m3");
                    w.WriteString("activation_scheme", "dynamic");
                    w.WriteStartArray("weight_block_size");
                    w.WriteNumberValue(o.Fp8BlockRows);
                    w.WriteNumberValue(o.Fp8BlockCols);
                    w.WriteEndArray();
                    w.WriteEndObject();
                    break;
                case CheckpointFormat.Int4:
                    WriteInt4QuantizationConfig(w, o.Int4GroupSize, quantizeAll: o.Int4AllLinears);
                    break;
            }
        });
        return o.Layout == CheckpointLayout.K25 ? WrapAsK25(text, o) : text;
    }

    /// <summary>
    /// The released K2.5 config.json shape: architectures/model_type of the wrapper, the language model's config as
    /// text_config, and the token ids and embedding tying repeated at the top level as K2.5 does.
    /// </summary>
    private static byte[] WrapAsK25(byte[] textConfig, RandomCheckpointOptions o)
    {
        using var text = JsonDocument.Parse(textConfig);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue(ModelConfig.K25Architecture);
            w.WriteEndArray();
            w.WriteNumber("bos_token_id", o.BosTokenId);
            w.WriteNumber("eos_token_id", o.EosTokenId);
            w.WriteString("model_type", ModelConfig.K25ModelType);
            w.WritePropertyName("text_config");
            text.RootElement.WriteTo(w);
            w.WriteBoolean("tie_word_embeddings", o.TieWordEmbeddings);
            w.WriteString("torch_dtype", "bfloat16");
            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>The architecture <paramref name="o"/> describes, as the engine reads it (unquantized).</summary>
    public static ModelConfig ToModelConfig(RandomCheckpointOptions o) => new()
    {
        ModelType = "deepseek_v3", VocabSize = o.VocabSize, HiddenSize = o.HiddenSize, IntermediateSize = o.IntermediateSize,
        MoeIntermediateSize = o.MoeIntermediateSize, NumHiddenLayers = o.NumHiddenLayers, NumAttentionHeads = o.NumAttentionHeads,
        NRoutedExperts = o.NRoutedExperts, NSharedExperts = o.NSharedExperts, NumExpertsPerTok = o.NumExpertsPerTok,
        NGroup = o.NGroup, TopkGroup = o.TopkGroup, TopkMethod = "noaux_tc", ScoringFunc = "sigmoid",
        NormTopkProb = o.NormTopkProb, RoutedScalingFactor = o.RoutedScalingFactor, FirstKDenseReplace = o.FirstKDenseReplace,
        MoeLayerFreq = o.MoeLayerFreq, QLoraRank = o.QLoraRank, KvLoraRank = o.KvLoraRank, QkNopeHeadDim = o.QkNopeHeadDim,
        QkRopeHeadDim = o.QkRopeHeadDim, VHeadDim = o.VHeadDim, RopeTheta = o.RopeTheta,
        Yarn = o.Yarn is { } y ? new YarnScaling(y.Factor, y.OriginalMaxPositionEmbeddings, y.BetaFast, y.BetaSlow, y.Mscale, y.MscaleAllDim) : null,
        RmsNormEps = o.RmsNormEps, MaxPositionEmbeddings = o.MaxPositionEmbeddings, TieWordEmbeddings = o.TieWordEmbeddings,
        AttentionBias = false, Quantization = null, BosTokenId = o.BosTokenId, EosTokenIds = [o.EosTokenId],
    };

    private static void WriteInt4QuantizationConfig(Utf8JsonWriter w, int groupSize, bool quantizeAll)
    {
        w.WriteStartObject("quantization_config");
        w.WriteString("quant_method", "compressed-tensors");
        w.WriteString("format", "pack-quantized");
        w.WriteStartObject("config_groups");
        w.WriteStartObject("group_0");
        w.WriteStartArray("targets");
        w.WriteStringValue("Linear");
        w.WriteEndArray();
        w.WriteNull("input_activations");
        w.WriteStartObject("weights");
        w.WriteNumber("num_bits", 4);
        w.WriteString("type", "int");
        w.WriteBoolean("symmetric", true);
        w.WriteString("strategy", "group");
        w.WriteNumber("group_size", groupSize);
        w.WriteBoolean("dynamic", false);
        w.WriteNull("actorder");
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartArray("ignore");
        if (!quantizeAll)
        {
            w.WriteStringValue("lm_head");
            w.WriteStringValue("re:.*self_attn.*");
            w.WriteStringValue("re:.*shared_experts.*");
            w.WriteStringValue(@"re:.*mlp\.(gate|up|gate_up|down)_proj.*");
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Writes a double the way Python's json does for floats: shortest round-trip form, always with a '.' or exponent.</summary>
    private static void RemoveStaleWeights(string directory)
    {
        var stale = Directory.EnumerateFiles(directory, "model*.safetensors")
            .Append(Path.Combine(directory, SafetensorsWriter.IndexFileName));
        foreach (string file in stale.ToList())
        {
            string name = Path.GetFileName(file);
            bool ours = name == SingleFileName || name == SafetensorsWriter.IndexFileName ||
                        (name.StartsWith("model-", StringComparison.Ordinal) && name.Contains("-of-", StringComparison.Ordinal));
            if (ours && File.Exists(file)) File.Delete(file);
        }
    }

    private enum Role
    {
        /// <summary>Always BF16 (lm_head).</summary>
        Unquantized,

        /// <summary>Attention, dense MLP and shared-expert projections: FP8 in the fp8 format.</summary>
        DecoderLinear,

        /// <summary>kv_a_proj_with_mqa: kept BF16 even in the fp8 format.</summary>
        KvA,

        /// <summary>Routed expert projections: FP8 in fp8, INT4 in int4.</summary>
        RoutedExpert,
    }

    /// <summary>A value computed once and handed to a fixed number of consumers, then dropped so its memory can go.</summary>
    private sealed class SharedResult<T>(int consumers, Func<T> compute) where T : class
    {
        private readonly object _gate = new();
        private T? _value;
        private int _left = consumers;

        public T Take()
        {
            lock (_gate)
            {
                if (_left <= 0) return compute(); // saved a second time: recompute rather than keep it alive
                var value = _value ??= compute();
                if (--_left == 0) _value = null;
                return value;
            }
        }
    }

    private sealed class Builder(RandomCheckpointOptions options)
    {
        public SafetensorsWriter Writer { get; } = new();

        private readonly string _tensorPrefix = options.Layout == CheckpointLayout.K25 ? ModelConfig.K25TensorPrefix : "";

        /// <summary>The stored name of K2-layout tensor <paramref name="name"/>. Values are keyed by the K2 name, so both layouts hold the same weights.</summary>
        private string T(string name) => _tensorPrefix + name;

        /// <summary>Tensors at least this large are generated while the file is written instead of being held in memory.</summary>
        private const long DeferAbove = 1 << 20;

        public void Embedding(string name, int rows, int cols)
        {
            if ((long)rows * cols < DeferAbove) Writer.AddBf16(T(name), [rows, cols], Normal(name, rows * cols, 1.0));
            else Writer.AddDeferred(T(name), SafetensorsDType.BF16, [rows, cols], () => WeightEncoding.ToBf16Bytes(Normal(name, rows * cols, 1.0)));
        }

        public void Norm(string name, int size)
        {
            var rng = StreamFor(name);
            var values = new float[size];
            for (int i = 0; i < size; i++) values[i] = (float)(0.9 + 0.2 * rng.NextDouble());
            Writer.AddBf16(T(name), [size], values);
        }

        public void Router(string prefix, int experts, int hidden)
        {
            Writer.AddBf16(T(prefix + ".weight"), [experts, hidden], Normal(prefix + ".weight", experts * hidden, 1.0 / Math.Sqrt(hidden)));
            string biasName = prefix + ".e_score_correction_bias";
            var rng = StreamFor(biasName);
            var bias = new float[experts];
            for (int i = 0; i < experts; i++) bias[i] = (float)(-0.1 + 0.2 * rng.NextDouble());
            if (experts > 1) bias[0] = -Math.Abs(bias[0]); // at least one negative bias, whatever the seed
            Writer.AddF32(T(biasName), [experts], bias);
        }

        public void SwiGlu(string prefix, int width, Role role)
        {
            int hidden = options.HiddenSize;
            Linear(prefix + "gate_proj", width, hidden, role);
            Linear(prefix + "up_proj", width, hidden, role);
            Linear(prefix + "down_proj", hidden, width, role);
        }

        public void Linear(string prefix, int rows, int cols, Role role)
        {
            string name = prefix + ".weight";
            if ((long)rows * cols >= DeferAbove)
            {
                LinearDeferred(prefix, rows, cols, role);
                return;
            }
            float[] w = Normal(name, rows * cols, 1.0 / Math.Sqrt(cols));
            switch (options.Format, role)
            {
                case (CheckpointFormat.Int4, _) when options.Int4AllLinears:
                    Writer.AddInt4Packed(T(prefix), WeightEncoding.QuantizeInt4Packed(w, rows, cols, options.Int4GroupSize));
                    break;
                case (CheckpointFormat.Fp8, Role.DecoderLinear or Role.RoutedExpert):
                    Writer.AddFp8Block(T(prefix), WeightEncoding.QuantizeFp8Block(w, rows, cols, options.Fp8BlockRows, options.Fp8BlockCols));
                    break;
                case (CheckpointFormat.Int4, Role.RoutedExpert):
                    Writer.AddInt4Packed(T(prefix), WeightEncoding.QuantizeInt4Packed(w, rows, cols, options.Int4GroupSize));
                    break;
                default:
                    Writer.AddBf16(T(name), [rows, cols], w);
                    break;
            }
        }

        /// <summary>The same tensors as <see cref="Linear"/>, made at save time; a quantized weight's parts share one quantization.</summary>
        private void LinearDeferred(string prefix, int rows, int cols, Role role)
        {
            string name = prefix + ".weight";
            double std = 1.0 / Math.Sqrt(cols);
            long[] shape = [rows, cols];
            switch (options.Format, role)
            {
                case (CheckpointFormat.Fp8, Role.DecoderLinear or Role.RoutedExpert):
                {
                    var shared = new SharedResult<Fp8BlockWeight>(2, () =>
                        WeightEncoding.QuantizeFp8Block(Normal(name, rows * cols, std), rows, cols, options.Fp8BlockRows, options.Fp8BlockCols));
                    int scaleRows = (rows + options.Fp8BlockRows - 1) / options.Fp8BlockRows, scaleCols = (cols + options.Fp8BlockCols - 1) / options.Fp8BlockCols;
                    Writer.AddDeferred(T(name), SafetensorsDType.F8_E4M3, shape, () => shared.Take().Codes);
                    Writer.AddDeferred(T(name + "_scale_inv"), SafetensorsDType.F32, [scaleRows, scaleCols], () => WeightEncoding.ToF32Bytes(shared.Take().Scales));
                    break;
                }
                case (CheckpointFormat.Int4, Role.RoutedExpert):
                case (CheckpointFormat.Int4, _) when options.Int4AllLinears:
                {
                    int groupSize = options.Int4GroupSize;
                    var shared = new SharedResult<Int4PackedWeight>(2, () =>
                        WeightEncoding.QuantizeInt4Packed(Normal(name, rows * cols, std), rows, cols, groupSize));
                    Writer.AddDeferred(T(prefix + ".weight_packed"), SafetensorsDType.I32, [rows, (cols + 7) / 8], () => WeightEncoding.ToI32Bytes(shared.Take().Packed));
                    Writer.AddDeferred(T(prefix + ".weight_scale"), SafetensorsDType.BF16, [rows, (cols + groupSize - 1) / groupSize], () => WeightEncoding.ToU16Bytes(shared.Take().Scales));
                    Writer.AddI64(T(prefix + ".weight_shape"), [2], [rows, cols]);
                    break;
                }
                default:
                    Writer.AddDeferred(T(name), SafetensorsDType.BF16, shape, () => WeightEncoding.ToBf16Bytes(Normal(name, rows * cols, std)));
                    break;
            }
        }

        private float[] Normal(string name, int count, double std)
        {
            var rng = StreamFor(name);
            var values = new float[count];
            for (int i = 0; i < count; i += 2)
            {
                // Box-Muller: two independent standard normals per pair of uniforms.
                double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                double radius = Math.Sqrt(-2.0 * Math.Log(u1)), angle = 2.0 * Math.PI * u2;
                values[i] = (float)(std * radius * Math.Cos(angle));
                if (i + 1 < count) values[i + 1] = (float)(std * radius * Math.Sin(angle));
            }
            return values;
        }

        /// <summary>A generator keyed by seed and tensor name (FNV-1a), so a tensor's values do not depend on which other tensors exist.</summary>
        private Random StreamFor(string name)
        {
            uint hash = 2166136261;
            foreach (char c in name) hash = (hash ^ c) * 16777619;
            hash = (hash ^ (uint)options.Seed) * 16777619;
            hash ^= (uint)options.Seed >> 16;
            return new Random((int)(hash & 0x7FFFFFFF));
        }
    }
}
