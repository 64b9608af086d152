using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Benchmarks;

/// <summary>Matrix × vector (decode, Tokens = 1) and matrix × matrix (prefill) for each weight format, on one thread.</summary>
[MemoryDiagnoser]
public unsafe class MatMulBenchmarks : IDescribesWork, IDisposable
{
    public const int Rows = 1408, Cols = 2048;

    [Params("int4", "int4-q8", "int4-q8-rows16", "fp8", "bf16")]
    public string Format { get; set; } = "int4";

    [Params(1, 64)]
    public int Tokens { get; set; } = 1;

    private WeightMatrix? _w;
    private float[] _x = [], _y = [];
    private readonly List<nint> _memory = [];

    private T* Alloc<T>(long count) where T : unmanaged
    {
        var p = (T*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(T)), 64);
        _memory.Add((nint)p);
        return p;
    }

    [GlobalSetup]
    public void Setup()
    {
        _kernels = new KernelSettings
        {
            MaxThreads = 1,
            Activations = Format.StartsWith("int4-q8", StringComparison.Ordinal) ? ActivationPrecision.Int8 : ActivationPrecision.Float32,
        };
        var rng = new Random(1);
        var values = new float[Rows * Cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.02f;
        switch (Format)
        {
            case "int4" or "int4-q8" or "int4-q8-rows16":
            {
                var q = WeightEncoding.QuantizeInt4Packed(values, Rows, Cols, 32);
                var packed = Alloc<int>(q.Packed.Length);
                q.Packed.CopyTo(new Span<int>(packed, q.Packed.Length));
                var scales = Alloc<ushort>(q.Scales.Length);
                q.Scales.CopyTo(new Span<ushort>(scales, q.Scales.Length));
                _w = WeightMatrix.FromPackedInt(packed, scales, Rows, Cols, 4, 32);
                if (Format == "int4-q8-rows16") _w = _w.RepackRows16();
                break;
            }
            case "fp8":
            {
                var q = WeightEncoding.QuantizeFp8Block(values, Rows, Cols, 128, 128);
                var codes = Alloc<byte>(q.Codes.Length);
                q.Codes.CopyTo(new Span<byte>(codes, q.Codes.Length));
                var scales = Alloc<float>(q.Scales.Length);
                q.Scales.CopyTo(new Span<float>(scales, q.Scales.Length));
                _w = WeightMatrix.FromFp8Block(codes, scales, Rows, Cols, 128, 128);
                break;
            }
            default:
            {
                var data = Alloc<ushort>(values.Length);
                for (int i = 0; i < values.Length; i++) data[i] = WeightEncoding.FloatToBf16(values[i]);
                _w = WeightMatrix.FromBFloat16(data, Rows, Cols);
                break;
            }
        }
        _x = new float[Tokens * Cols];
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)(rng.NextDouble() * 2 - 1);
        _y = new float[Tokens * Rows];
    }

    [Benchmark]
    public void MatMul() => MatrixKernels.MatMul(_w!, _x, _y, Tokens, _kernels);

    private KernelSettings _kernels = KernelSettings.Default;

    public (double Bytes, double Flops) Work(string method)
    {
        double weightBytes = Format switch
        {
            "int4" or "int4-q8" or "int4-q8-rows16" => Rows * (Cols / 2.0 + Cols / 32 * 2.0),
            "fp8" => Rows * (double)Cols + 4.0 * ((Rows + 127) / 128) * ((Cols + 127) / 128),
            _ => 2.0 * Rows * Cols,
        };
        return (weightBytes + 4.0 * Tokens * (Cols + Rows), 2.0 * Rows * Cols * Tokens);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        foreach (var p in _memory) NativeMemory.AlignedFree((void*)p);
        _memory.Clear();
    }
}

/// <summary>The element-wise and reduction operators, at a hidden size and at odd sizes.</summary>
public class OpsBenchmarks : IDescribesWork
{
    [Params(2048, 7168)]
    public int Size { get; set; } = 2048;

    private float[] _x = [], _y = [], _w = [], _cos = [], _sin = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(2);
        _x = new float[Size]; _y = new float[Size]; _w = new float[Size];
        for (int i = 0; i < Size; i++) { _x[i] = (float)rng.NextDouble(); _w[i] = 1 + 0.1f * (float)rng.NextDouble(); }
        _cos = new float[Size / 2]; _sin = new float[Size / 2];
        for (int i = 0; i < Size / 2; i++) { _cos[i] = MathF.Cos(i); _sin[i] = MathF.Sin(i); }
    }

    [Benchmark] public void RmsNorm() => Ops.RmsNorm(_x, _w, 1e-6f, _y);
    [Benchmark] public void RotatePairs() => Ops.RotatePairs(_y, _cos, _sin);
    [Benchmark] public void Softmax() { _x.CopyTo(_y, 0); Ops.Softmax(_y); }
    [Benchmark] public void SiluMultiply() => Ops.SiluMultiply(_x, _w, _y);
    [Benchmark] public float Dot() => Reductions.Dot(_x, _w);

    public (double Bytes, double Flops) Work(string method) => method switch
    {
        nameof(RmsNorm) => (12.0 * Size, 4.0 * Size),
        nameof(RotatePairs) => (12.0 * Size, 3.0 * Size),
        nameof(Softmax) => (16.0 * Size, 4.0 * Size),
        nameof(SiluMultiply) => (12.0 * Size, 5.0 * Size),
        nameof(Dot) => (8.0 * Size, 2.0 * Size),
        _ => (0, 0),
    };
}

/// <summary>
/// MLA attention over a latent cache, one thread: absorbed decode (16 heads' scores against Positions latents of 512 +
/// rope 64, then their weighted sums of the latents), and kv_b_proj folded into one head's query (128 INT4 rows of
/// 512): in float32, and in the int8 mode through the head's transposed key copy; plus the int8 value projection of
/// one head's mixed latent (128 rows of the 16-row copy).
/// </summary>
public unsafe class AttentionBenchmarks : IDescribesWork, IDisposable
{
    public const int Heads = 16, Latent = 512, Rope = 64, Nope = 128;

    [Params(64, 512, 4096)]
    public int Positions { get; set; } = 512;

    private float* _queries, _ropeQueries, _latents, _ropeKeys, _scores, _mixed;
    private WeightMatrix? _kvB;
    private float[] _alphas = [], _absorbed = [];
    private int* _packed, _packedHead;
    private ushort* _scales, _scalesHead;
    private WeightMatrix? _head16;
    private TransposedRowBlocks? _keysTransposed;
    private NativeArena? _arena;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(3);
        float* Fill(long n)
        {
            var p = (float*)NativeMemory.AlignedAlloc((nuint)(n * 4), 64);
            for (long i = 0; i < n; i++) p[i] = (float)(rng.NextDouble() * 2 - 1);
            return p;
        }
        _queries = Fill(Heads * Latent); _ropeQueries = Fill(Heads * Rope);
        _latents = Fill((long)Positions * Latent); _ropeKeys = Fill((long)Positions * Rope);
        _scores = Fill((long)Heads * Positions); _mixed = Fill(Heads * Latent);
        var values = new float[Nope * Latent];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.02f;
        var q = WeightEncoding.QuantizeInt4Packed(values, Nope, Latent, 32);
        _packed = (int*)NativeMemory.AlignedAlloc((nuint)(q.Packed.Length * 4), 64);
        q.Packed.CopyTo(new Span<int>(_packed, q.Packed.Length));
        _scales = (ushort*)NativeMemory.AlignedAlloc((nuint)(q.Scales.Length * 2), 64);
        q.Scales.CopyTo(new Span<ushort>(_scales, q.Scales.Length));
        _kvB = WeightMatrix.FromPackedInt(_packed, _scales, Nope, Latent, 4, 32);
        _alphas = new float[Nope];
        for (int i = 0; i < Nope; i++) _alphas[i] = (float)(rng.NextDouble() * 2 - 1);
        _absorbed = new float[Latent];

        // One head of kv_b_proj (128 key rows, then 128 value rows) in the 16-row layout, and its transposed key copy.
        var head = new float[2 * Nope * Latent];
        for (int i = 0; i < head.Length; i++) head[i] = (float)(rng.NextDouble() * 2 - 1) * 0.02f;
        var hq = WeightEncoding.QuantizeInt4Packed(head, 2 * Nope, Latent, 32);
        _packedHead = (int*)NativeMemory.AlignedAlloc((nuint)(hq.Packed.Length * 4), 64);
        hq.Packed.CopyTo(new Span<int>(_packedHead, hq.Packed.Length));
        _scalesHead = (ushort*)NativeMemory.AlignedAlloc((nuint)(hq.Scales.Length * 2), 64);
        hq.Scales.CopyTo(new Span<ushort>(_scalesHead, hq.Scales.Length));
        _head16 = WeightMatrix.FromPackedInt(_packedHead, _scalesHead, 2 * Nope, Latent, 4, 32).RepackRows16();
        _arena = new NativeArena(1 << 20);
        _keysTransposed = TransposedRowBlocks.Create(_head16, 0, 2 * Nope, Nope, 1, _arena);
        _values = new float[Nope];
    }

    private float[] _values = [];

    [Benchmark]
    public void Scores() => AttentionKernels.Scores(_queries, Latent, _ropeQueries, Rope, Heads, _latents, Latent, Latent, _ropeKeys, Rope, Rope,
        Positions, 0.07f, _scores, Positions);

    [Benchmark]
    public void WeightedSum() => AttentionKernels.WeightedSum(_scores, Positions, Heads, _latents, Latent, Latent, Positions, _mixed, Latent);

    [Benchmark]
    public void FoldKvBIntoQuery() => MatrixKernels.AddScaledRows(_kvB!, 0, _alphas, _absorbed);

    [Benchmark]
    public void FoldKvBIntoQueryInt8() => _keysTransposed!.TransposeMultiplyInt8(0, _alphas, _absorbed);

    [Benchmark]
    public void ProjectValuesInt8() => MatrixKernels.DotRowsInt8(_head16!, Nope, new ReadOnlySpan<float>(_mixed, Latent), _values);

    public (double Bytes, double Flops) Work(string method) => method switch
    {
        nameof(Scores) => (4.0 * Positions * (Latent + Rope) + 4.0 * Heads * (Latent + Rope + Positions), 2.0 * Heads * Positions * (Latent + Rope)),
        nameof(WeightedSum) => (4.0 * Positions * Latent + 4.0 * Heads * (Positions + Latent), 2.0 * Heads * Positions * Latent),
        nameof(FoldKvBIntoQuery) => (Nope * (Latent / 2.0 + Latent / 32 * 2.0) + 8.0 * Latent, 2.0 * Nope * Latent),
        // The transposed copy (nibbles + its unit scales, one per 32 key rows) and the source's scales for the factors.
        nameof(FoldKvBIntoQueryInt8) => (Nope * Latent / 2.0 + Latent * (Nope / 32) * 2.0 + Nope * (Latent / 32) * 2.0 + 8.0 * Latent, 2.0 * Nope * Latent),
        nameof(ProjectValuesInt8) => (Nope * (Latent / 2.0 + Latent / 32 * 2.0) + 4.0 * (Latent + Nope), 2.0 * Nope * Latent),
        _ => (0, 0),
    };

    [GlobalCleanup]
    public void Dispose()
    {
        foreach (var p in new[] { (nint)_queries, (nint)_ropeQueries, (nint)_latents, (nint)_ropeKeys, (nint)_scores, (nint)_mixed, (nint)_packed, (nint)_scales,
                     (nint)_packedHead, (nint)_scalesHead })
            if (p != 0) NativeMemory.AlignedFree((void*)p);
        _queries = _ropeQueries = _latents = _ropeKeys = _scores = _mixed = null;
        _packed = _packedHead = null; _scales = _scalesHead = null;
        _arena?.Dispose();
        _arena = null;
    }
}
