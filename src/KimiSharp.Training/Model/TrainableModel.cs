using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Training;

/// <summary>
/// A K2 / DeepSeek-V3 model in float32 that trains: forward with mean masked cross-entropy, caching activations, and a
/// hand-written backward that accumulates into every <see cref="Parameter.Grad"/>. Parameters carry Hugging Face
/// names, so <see cref="SaveCheckpoint"/> writes a folder <c>KimiSharp.Model.KimiModel.Load</c> reads.
/// <para>
/// MoE: gradients flow through the chosen experts and, through the routing weights (normalized unbiased sigmoid
/// scores × routed_scaling_factor), into the router; the top-k choice itself is not differentiated. The
/// e_score_correction_bias of each MoE layer is a buffer (<see cref="ExpertBias"/>), changed only by a balancing rule.
/// The optional sequence-wise balance loss α·Σ f_i·P_i (DeepSeek-V3 §2.1.2, averaged over the batch and added per MoE
/// layer) is off by default (<see cref="BalanceLossAlpha"/> = 0; DeepSeek-V3 used 1e-4).
/// </para>
/// <para>Threading: matrix products run rows in parallel and attention runs sequences in parallel; every output element is
/// computed by one thread in a fixed order, so results are bit-identical across runs.</para>
/// </summary>
public sealed class TrainableModel
{
    private readonly Network<float> _net;
    private readonly Parameter[] _parameters;

    public ModelConfig Config { get; }

    /// <summary>Every trainable tensor, in checkpoint order (lm_head absent when embeddings are tied).</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>e_score_correction_bias per layer ([n_routed_experts] for MoE layers, null for dense ones). Not trained by gradients.</summary>
    public float[]?[] ExpertBias { get; }

    /// <summary>
    /// The non-gradient buffers as HF-named parameters of kind <see cref="ParameterKind.Bias"/>
    /// (<c>model.layers.N.mlp.gate.e_score_correction_bias</c>; Data is the same array as <see cref="ExpertBias"/>[N]).
    /// Not in <see cref="Parameters"/>, so optimizers leave them alone; the expert-bias balancer updates them.
    /// </summary>
    public IReadOnlyList<Parameter> Buffers { get; }

    /// <summary>Largest scaled pre-softmax attention logit per [layer][head] of the last forward (what QK-Clip compares to τ).</summary>
    public float[][] MaxAttentionLogits => _net.MaxAttentionLogits;

    /// <summary>Tokens routed to each expert per [layer][expert] in the last forward (null for dense layers).</summary>
    public int[]?[] ExpertLoad => _net.ExpertLoad;

    /// <summary>The last forward's expert loads keyed by MoE layer, as the expert-bias balancer takes them.</summary>
    public Dictionary<int, long[]> ExpertLoadsByLayer()
    {
        var loads = new Dictionary<int, long[]>();
        for (int l = 0; l < ExpertLoad.Length; l++)
            if (ExpertLoad[l] is { } load) loads[l] = load.Select(v => (long)v).ToArray();
        return loads;
    }

    /// <summary>Coefficient α of the sequence-wise balance loss; 0 (the default) turns it off.</summary>
    public double BalanceLossAlpha { get => _net.BalanceAlpha; set => _net.BalanceAlpha = value; }

    /// <summary>The logits [batch·seq, vocab] of the last forward.</summary>
    public float[] Logits => _net.Logits;

    /// <param name="config">Architecture (quantization and attention_bias are not supported).</param>
    /// <param name="seed">Seed of the deterministic initialization.</param>
    /// <param name="initStd">Standard deviation of the normal init of every matrix and the embedding; norms start at 1, biases at 0.</param>
    public TrainableModel(ModelConfig config, int seed = 0, double initStd = 0.02)
    {
        Config = config;
        ExpertBias = new float[]?[config.NumHiddenLayers];
        var buffers = new List<Parameter>();
        for (int l = 0; l < config.NumHiddenLayers; l++)
            if (config.IsMoeLayer(l))
            {
                var bias = new Parameter($"model.layers.{l}.mlp.gate.e_score_correction_bias", [config.NRoutedExperts], ParameterKind.Bias);
                buffers.Add(bias);
                ExpertBias[l] = bias.Data;
            }
        Buffers = buffers;
        var parameters = new List<Parameter>();
        _net = new Network<float>(config, (name, shape, kind) =>
        {
            var p = new Parameter(name, shape, kind);
            parameters.Add(p);
            return (p.Data, p.Grad);
        }, l => ExpertBias[l]!);
        _parameters = parameters.ToArray();
        Initialize(seed, initStd);
    }

    /// <summary>Norm gains 1; every other parameter N(0, std²) from a stream keyed by seed and parameter index.</summary>
    public void Initialize(int seed, double std)
    {
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.Kind == ParameterKind.Norm) { Array.Fill(p.Data, 1f); continue; }
            var random = new Random(unchecked(seed * 1_000_003 + i));
            for (long j = 0; j < p.Data.LongLength; j++)
            {
                double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                p.Data[j] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }
        }
    }

    /// <summary>The parameter named <paramref name="name"/>.</summary>
    public Parameter this[string name] => _parameters.FirstOrDefault(p => p.Name == name)
        ?? throw new KeyNotFoundException($"no parameter '{name}'");

    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.ZeroGrad();
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> ([batch·seq], each row at positions 0…seq−1). With <paramref name="targets"/>
    /// (−1 = ignore) returns the mean cross-entropy over positions whose <paramref name="lossMask"/> is 1 (all when null)
    /// plus the balance loss when enabled; without, returns 0 and only computes <see cref="Logits"/>.
    /// </summary>
    public float Forward(int[] tokens, int batch, int seq, int[]? targets, float[]? lossMask = null) =>
        _net.Forward(tokens, batch, seq, targets, lossMask);

    /// <summary>Accumulates the gradient of the last forward's loss into every <see cref="Parameter.Grad"/>.</summary>
    public void Backward() => _net.Backward();

    /// <summary>Copies the weights into a float64 network (for gradient checks).</summary>
    internal Network<double> ToDouble()
    {
        int index = 0;
        return new Network<double>(Config, (name, shape, kind) =>
        {
            var p = _parameters[index++];
            if (p.Name != name) throw new InvalidOperationException($"parameter order mismatch: {p.Name} vs {name}");
            return (p.Data.Select(v => (double)v).ToArray(), new double[p.Data.Length]);
        }, l => ExpertBias[l]!) { BalanceAlpha = BalanceLossAlpha };
    }

    /// <summary>
    /// Writes <c>config.json</c> (model_type deepseek_v3) and <c>model.safetensors</c> (weights in BF16, or F32 when
    /// <paramref name="float32"/>; the e_score_correction_bias always F32) into <paramref name="directory"/>.
    /// </summary>
    public void SaveCheckpoint(string directory, bool float32 = false)
    {
        Directory.CreateDirectory(directory);
        var writer = new SafetensorsWriter();
        var dtype = float32 ? SafetensorsDType.F32 : SafetensorsDType.BF16;
        foreach (var p in _parameters)
        {
            writer.AddFloats(p.Name, dtype, p.Shape.Select(d => (long)d).ToArray(), p.Data);
            if (p.Kind == ParameterKind.Router)
            {
                int layer = int.Parse(p.Name.Split('.')[2], CultureInfo.InvariantCulture);
                writer.AddF32($"model.layers.{layer}.mlp.gate.e_score_correction_bias", [Config.NRoutedExperts], ExpertBias[layer]);
            }
        }
        writer.Save(Path.Combine(directory, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(directory, "config.json"), ConfigJson(Config, float32 ? "float32" : "bfloat16"));
    }

    /// <summary>The Hugging Face style config.json of <paramref name="c"/>.</summary>
    public static byte[] ConfigJson(ModelConfig c, string torchDtype = "bfloat16") => ModelConfigJson.Write(c, torchDtype);
}
