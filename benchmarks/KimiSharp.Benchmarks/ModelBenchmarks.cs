using BenchmarkDotNet.Attributes;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;

namespace KimiSharp.Benchmarks;

/// <summary>
/// Top-k routing over K2's 384 experts, and one decode step of a single Moonlight-sized layer over a filled MLA latent
/// cache (attention over the cache dominates as the context grows).
/// </summary>
public class ModelBenchmarks : IDescribesWork, IDisposable
{
    [Params(64, 1024)]
    public int Context { get; set; } = 64;

    private string _dir = "";
    private KimiModel? _model;
    private KvCache? _cache;
    private float[] _logits = [];
    private MoeBlock? _router;
    private float[] _routerLogits = [], _weights = [], _scratch = [];
    private int[] _experts = [];

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("kimisharp-bench-").FullName;
        RandomCheckpoint.Write(_dir, new RandomCheckpointOptions
        {
            VocabSize = 1024, HiddenSize = 2048, IntermediateSize = 1408, MoeIntermediateSize = 1408, NumHiddenLayers = 1,
            NumAttentionHeads = 16, NRoutedExperts = 0, NSharedExperts = 0, FirstKDenseReplace = 1, KvLoraRank = 512,
            QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128, MaxPositionEmbeddings = 4096, Format = CheckpointFormat.Int4,
            Int4AllLinears = true,
        });
        _model = KimiModel.Load(_dir, new KimiModelLoadOptions { Kernels = new KernelSettings { MaxThreads = 1 } });
        _cache = _model.CreateCache(Context + 1);
        _logits = new float[_model.Config.VocabSize * Context];
        var prompt = new int[Context];
        for (int i = 0; i < Context; i++) prompt[i] = i % 1000;
        _model.Forward(prompt, _cache, _logits, lastOnly: true);

        var config = _model.Config;
        _router = new MoeBlock(KimiSharp.Model.Configuration.ModelConfig.Parse(
            """{"architectures":["DeepseekV3ForCausalLM"],"model_type":"kimi_k2","topk_method":"noaux_tc","scoring_func":"sigmoid","hidden_act":"silu","moe_layer_freq":1,"tie_word_embeddings":false,"rope_scaling":null,"attention_bias":false,"bos_token_id":0,"eos_token_id":1,"hidden_size":7168,"n_routed_experts":384,"num_experts_per_tok":8,"n_group":1,"topk_group":1,"routed_scaling_factor":2.827,"norm_topk_prob":true,"vocab_size":1000,"intermediate_size":18432,"moe_intermediate_size":2048,"num_hidden_layers":1,"num_attention_heads":64,"kv_lora_rank":512,"qk_nope_head_dim":128,"qk_rope_head_dim":64,"v_head_dim":128,"max_position_embeddings":4096,"rope_theta":50000.0,"rms_norm_eps":1e-6,"first_k_dense_replace":0,"n_shared_experts":1,"q_lora_rank":1536}"""))
        {
            Router = null!, ChoiceBias = new float[384], Experts = [],
        };
        var rng = new Random(3);
        _routerLogits = new float[384];
        for (int i = 0; i < 384; i++) _routerLogits[i] = (float)(rng.NextDouble() * 4 - 2);
        _experts = new int[8]; _weights = new float[8]; _scratch = new float[2 * 384];
    }

    [Benchmark]
    public void DecodeStepOneLayer()
    {
        _cache!.Truncate(Context);
        _model!.Forward([7], _cache, _logits.AsSpan(0, _model.Config.VocabSize));
    }

    [Benchmark]
    public void TopKRouting384() => _router!.Route(_routerLogits, _experts, _weights, _scratch);

    public (double Bytes, double Flops) Work(string method) => method switch
    {
        // Weights of the layer (INT4, ~4.5 bits) plus the latent cache read twice (scores and mix).
        nameof(DecodeStepOneLayer) => (0.5625 * (2048.0 * 3072 + 2048 * 576 + 512 * 4096 + 2048 * 2048 + 3 * 2048 * 1408 + 1024 * 2048) + 2 * 4.0 * Context * 576,
                                       2.0 * (2048.0 * 3072 + 2048 * 576 + 512 * 4096 + 2048 * 2048 + 3 * 2048 * 1408 + 1024 * 2048) + 16 * 4.0 * Context * 512),
        nameof(TopKRouting384) => (4.0 * 384 * 3, 384.0 * 12),
        _ => (0, 0),
    };

    [GlobalCleanup]
    public void Dispose()
    {
        _model?.Dispose();
        if (_dir.Length > 0 && Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
