using KimiSharp.Kernels;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision;

/// <summary>One pre-norm MoonViT block: LayerNorm, fused qkv (with bias), output projection, LayerNorm, two-layer MLP.</summary>
public sealed class VisionBlockWeights
{
    public required float[] Norm0Weight { get; init; }
    public required float[] Norm0Bias { get; init; }
    /// <summary>[3·D, D]: the rows are all query heads, then all key heads, then all value heads.</summary>
    public required WeightMatrix Qkv { get; init; }
    public required float[] QkvBias { get; init; }
    public required WeightMatrix Output { get; init; }
    public required float[] OutputBias { get; init; }
    public required float[] Norm1Weight { get; init; }
    public required float[] Norm1Bias { get; init; }
    public required WeightMatrix Fc0 { get; init; }
    public required float[] Fc0Bias { get; init; }
    public required WeightMatrix Fc1 { get; init; }
    public required float[] Fc1Bias { get; init; }
}

/// <summary>
/// The <c>vision_tower.*</c> and <c>mm_projector.*</c> tensors of a K2.5 checkpoint. Matrices stay in the memory-mapped
/// files (F32, F16 or BF16); vectors and the position table are widened to float32. Nothing else in the folder is read,
/// so a folder holding only the vision part works too.
/// </summary>
public sealed class VisionWeights : IDisposable
{
    private readonly CheckpointTensors? _owned;

    public VisionConfig Config { get; }
    /// <summary>Conv weight [D, 3, p, p] seen as [D, 3·p·p]: a patch flattened channel-major, then row, then column.</summary>
    public WeightMatrix PatchProjection { get; }
    public float[] PatchProjectionBias { get; }
    /// <summary>Learned position table [PosEmbHeight, PosEmbWidth, D], row-major.</summary>
    public float[] PositionTable { get; }
    public IReadOnlyList<VisionBlockWeights> Blocks { get; }
    public float[] FinalNormWeight { get; }
    public float[] FinalNormBias { get; }
    public float[] ProjectorNormWeight { get; }
    public float[] ProjectorNormBias { get; }
    /// <summary>[4D, 4D] (<c>mm_projector.proj.0</c>).</summary>
    public WeightMatrix ProjectorLinear1 { get; }
    public float[] ProjectorLinear1Bias { get; }
    /// <summary>[text hidden, 4D] (<c>mm_projector.proj.2</c>).</summary>
    public WeightMatrix ProjectorLinear2 { get; }
    public float[] ProjectorLinear2Bias { get; }

    /// <summary>Opens the safetensors in <paramref name="modelDirectory"/> and binds the vision tensors of <paramref name="config"/>.</summary>
    public static VisionWeights Load(string modelDirectory, VisionConfig config)
    {
        var tensors = CheckpointTensors.Open(modelDirectory);
        try { return new VisionWeights(tensors, config, owns: true); }
        catch { tensors.Dispose(); throw; }
    }

    /// <summary>Binds the vision tensors of an already open checkpoint, which must outlive this object.</summary>
    public VisionWeights(CheckpointTensors tensors, VisionConfig config) : this(tensors, config, owns: false) { }

    private VisionWeights(CheckpointTensors tensors, VisionConfig config, bool owns)
    {
        config.Validate();
        Config = config;
        if (owns) _owned = tensors;
        var binder = new Binder(tensors);
        int d = config.HiddenSize, p = config.PatchSize;
        const string tower = "vision_tower.";
        PatchProjection = binder.Matrix(tower + "patch_embed.proj.weight", [d, 3, p, p], d, 3 * p * p);
        PatchProjectionBias = binder.Vector(tower + "patch_embed.proj.bias", d);
        PositionTable = binder.Floats(tower + "patch_embed.pos_emb.weight", [config.PosEmbHeight, config.PosEmbWidth, d]);
        var blocks = new VisionBlockWeights[config.NumHiddenLayers];
        for (int i = 0; i < blocks.Length; i++)
        {
            string b = $"{tower}encoder.blocks.{i}.";
            blocks[i] = new VisionBlockWeights
            {
                Norm0Weight = binder.Vector(b + "norm0.weight", d),
                Norm0Bias = binder.Vector(b + "norm0.bias", d),
                Qkv = binder.Matrix(b + "wqkv.weight", [3 * d, d], 3 * d, d),
                QkvBias = binder.Vector(b + "wqkv.bias", 3 * d),
                Output = binder.Matrix(b + "wo.weight", [d, d], d, d),
                OutputBias = binder.Vector(b + "wo.bias", d),
                Norm1Weight = binder.Vector(b + "norm1.weight", d),
                Norm1Bias = binder.Vector(b + "norm1.bias", d),
                Fc0 = binder.Matrix(b + "mlp.fc0.weight", [config.IntermediateSize, d], config.IntermediateSize, d),
                Fc0Bias = binder.Vector(b + "mlp.fc0.bias", config.IntermediateSize),
                Fc1 = binder.Matrix(b + "mlp.fc1.weight", [d, config.IntermediateSize], d, config.IntermediateSize),
                Fc1Bias = binder.Vector(b + "mlp.fc1.bias", d),
            };
        }
        Blocks = blocks;
        FinalNormWeight = binder.Vector(tower + "encoder.final_layernorm.weight", d);
        FinalNormBias = binder.Vector(tower + "encoder.final_layernorm.bias", d);
        int merged = config.MergedWidth;
        ProjectorNormWeight = binder.Vector("mm_projector.pre_norm.weight", d);
        ProjectorNormBias = binder.Vector("mm_projector.pre_norm.bias", d);
        ProjectorLinear1 = binder.Matrix("mm_projector.proj.0.weight", [merged, merged], merged, merged);
        ProjectorLinear1Bias = binder.Vector("mm_projector.proj.0.bias", merged);
        ProjectorLinear2 = binder.Matrix("mm_projector.proj.2.weight", [config.TextHiddenSize, merged], config.TextHiddenSize, merged);
        ProjectorLinear2Bias = binder.Vector("mm_projector.proj.2.bias", config.TextHiddenSize);
        binder.ThrowIfAnyProblem(modelDirectory: tensors.Directory);
    }

    public void Dispose() => _owned?.Dispose();

    /// <summary>Collects every missing or mis-shaped tensor, so one error lists them all instead of one per run.</summary>
    private sealed unsafe class Binder(CheckpointTensors tensors)
    {
        private readonly List<string> _problems = [];
        private static readonly WeightMatrix s_placeholder = WeightMatrix.FromFloat32(null, 1, 1);

        private TensorInfo? Check(string name, long[] shape)
        {
            if (!tensors.Contains(name))
            {
                _problems.Add($"missing tensor '{name}' (expected shape [{string.Join(", ", shape)}])");
                return null;
            }
            var info = tensors.Info(name);
            if (!info.Shape.SequenceEqual(shape))
            {
                _problems.Add($"tensor '{name}' has shape {info.ShapeText} but vision_config implies [{string.Join(", ", shape)}]");
                return null;
            }
            if (info.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            {
                _problems.Add($"tensor '{name}' is {info.DType}; the vision tower reads F32, F16 or BF16");
                return null;
            }
            return info;
        }

        public WeightMatrix Matrix(string name, long[] shape, int rows, int cols)
        {
            var info = Check(name, shape);
            if (info is null) return s_placeholder;
            byte* data = tensors.Pointer(name);
            return info.DType switch
            {
                SafetensorsDType.BF16 => WeightMatrix.FromBFloat16((ushort*)data, rows, cols),
                SafetensorsDType.F16 => WeightMatrix.FromFloat16((Half*)data, rows, cols),
                _ => WeightMatrix.FromFloat32((float*)data, rows, cols),
            };
        }

        public float[] Vector(string name, int length) => Floats(name, [length]);

        public float[] Floats(string name, long[] shape)
        {
            var info = Check(name, shape);
            if (info is null) return [];
            var result = new float[info.ElementCount];
            byte* p = tensors.Pointer(name);
            for (long i = 0; i < result.Length; i++)
                result[i] = info.DType switch
                {
                    SafetensorsDType.F32 => ((float*)p)[i],
                    SafetensorsDType.F16 => (float)((Half*)p)[i],
                    _ => NumberFormats.Bf16ToFloat(((ushort*)p)[i]),
                };
            return result;
        }

        public void ThrowIfAnyProblem(string modelDirectory)
        {
            if (_problems.Count == 0) return;
            const int shown = 12;
            string list = string.Join("; ", _problems.Take(shown)) + (_problems.Count > shown ? $"; and {_problems.Count - shown} more" : "");
            throw new CheckpointFormatException($"{modelDirectory}: the K2.5 vision weights do not match vision_config: {list}");
        }
    }
}
