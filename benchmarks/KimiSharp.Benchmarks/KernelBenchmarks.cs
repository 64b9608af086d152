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
        KernelThreading.MaxThreads = 1;
        MatrixKernels.Int8Activations = Format.StartsWith("int4-q8", StringComparison.Ordinal);
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
    public void MatMul() => MatrixKernels.MatMul(_w!, _x, _y, Tokens);

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
        MatrixKernels.Int8Activations = false;
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
