using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Model.Weights;

/// <summary>
/// Turns checkpoint tensors into kernel views, checking every shape against config.json. Quantized weights
/// are viewed in place in the memory mapping; only small vectors (norms, biases) are copied to float32.
/// Callers name tensors and modules as a K2 checkpoint does (<c>model.layers.0.self_attn.o_proj</c>, <c>lm_head</c>);
/// this is the one place that adds the config's <see cref="ModelConfig.TensorPrefix"/> (K2.5's <c>language_model.</c>),
/// so errors name the tensor as it is stored.
/// </summary>
internal sealed unsafe class WeightLoader(CheckpointTensors tensors, ModelConfig config)
{
    private string Stored(string name) => config.TensorPrefix + name;

    /// <summary>
    /// Throws when <paramref name="stored"/> is missing but the same tensor exists in the other layout (K2 names in a
    /// folder whose config.json says K2.5, or the reverse), which means config.json and the weights disagree.
    /// </summary>
    private void RequireLayout(string stored)
    {
        if (tensors.Contains(stored)) return;
        string other = config.TensorPrefix.Length > 0
            ? stored[config.TensorPrefix.Length..]
            : ModelConfig.K25TensorPrefix + stored;
        if (tensors.Contains(other))
            throw new CheckpointFormatException(
                $"{tensors.Directory}: missing tensor '{stored}', but '{other}' is there: config.json ({config.Architecture}) and the weights use different tensor layouts");
    }

    private string FileOf(string tensor) => Path.GetFileName(tensors.Info(tensor).FilePath);

    private CheckpointFormatException ShapeError(string tensor, string expected) =>
        new($"{FileOf(tensor)}: tensor '{tensor}' has shape {tensors.Info(tensor).ShapeText} but config.json implies {expected}");

    private void RequireShape(string tensor, params long[] shape)
    {
        var info = tensors.Info(tensor);
        if (!info.Shape.AsSpan().SequenceEqual(shape)) throw ShapeError(tensor, "[" + string.Join(", ", shape) + "]");
    }

    private void RequireDType(string tensor, params SafetensorsDType[] allowed)
    {
        var info = tensors.Info(tensor);
        if (!allowed.Contains(info.DType))
            throw new CheckpointFormatException($"{FileOf(tensor)}: tensor '{tensor}' is {info.DType}; expected {string.Join(" or ", allowed)}");
    }

    /// <summary>The weight of the Linear module <paramref name="module"/> (out = <paramref name="rows"/>, in = <paramref name="cols"/>).</summary>
    public WeightMatrix Linear(string module, int rows, int cols)
    {
        string stored = Stored(module);
        var group = (config.Quantization as PackQuantization)?.GroupFor(module, stored);
        if (group is not null) return PackedLinear(stored, rows, cols, group);
        if (!tensors.Contains(stored + ".weight") && tensors.Contains(stored + ".weight_packed"))
            throw new CheckpointFormatException(
                $"{FileOf(stored + ".weight_packed")}: tensor '{stored}.weight_packed' is pack-quantized, but config.json's quantization_config does not quantize '{stored}' (see its ignore list)");
        return DenseStored(stored + ".weight", rows, cols);
    }

    /// <summary>
    /// Where weights repacked into 16-row blocks live (null: no repacking). They are read from the files with plain
    /// reads, so the mapped pages of the originals are never touched and resident memory stays at one copy.
    /// </summary>
    public NativeArena? RepackArena { get; init; }

    /// <summary>How many weights <see cref="MatMulLinear"/> repacked.</summary>
    public int Repacked { get; private set; }

    private readonly Dictionary<string, Microsoft.Win32.SafeHandles.SafeFileHandle> _files = new(StringComparer.Ordinal);

    /// <summary>
    /// <see cref="Linear"/> for a weight the model only multiplies whole (never reads row by row), which is repacked
    /// into the int8 kernels' 16-row layout when <see cref="RepackArena"/> is set, the shape allows it and the CPU has
    /// the vector kernels for it.
    /// </summary>
    public WeightMatrix MatMulLinear(string module, int rows, int cols)
    {
        var weight = Linear(module, rows, cols); // checks names, dtypes and shapes; touches no weight page
        return Rows16Copy(weight, module) ?? weight;
    }

    /// <summary>
    /// An INT4 weight read into the arena in the 16-row layout; null when there is no arena, the shape does not block
    /// (CanRepackRows16: 4-bit, group 32) or the CPU lacks the kernels. <see cref="MatMulLinear"/> uses it in place of
    /// the stored weight; kv_b_proj keeps both (prefill expands the latents with the copy and int8 decode projects values
    /// with it; float32 decode folds the stored rows into the queries), which costs its size once more.
    /// </summary>
    public WeightMatrix? Rows16Copy(WeightMatrix weight, string module)
    {
        if (RepackArena is null || !weight.CanRepackRows16 || !WeightMatrix.Rows16Accelerated) return null;
        byte* packed = ReadIntoArena(Stored(module) + ".weight_packed");
        byte* scales = ReadIntoArena(Stored(module) + ".weight_scale");
        Repacked++;
        return WeightMatrix.FromPackedInt((int*)packed, (ushort*)scales, weight.Rows, weight.Cols, 4, 32).RepackRows16();
    }

    /// <summary>
    /// Each head's key rows of kv_b_proj's 16-row copy, transposed for the int8 kernels (decode folds them into the
    /// query with one streaming pass), in the arena: another copy of half of kv_b_proj. Null without a copy or when the
    /// head widths do not block (qk_nope_head_dim a multiple of 32, qk_nope + v a multiple of 16).
    /// </summary>
    public TransposedRowBlocks? TransposedKeys(WeightMatrix? kvBRows16, ModelConfig c)
    {
        int rowsPerHead = c.QkNopeHeadDim + c.VHeadDim;
        if (kvBRows16 is null || c.QkNopeHeadDim % 32 != 0 || rowsPerHead % 16 != 0) return null;
        return TransposedRowBlocks.Create(kvBRows16, 0, rowsPerHead, c.QkNopeHeadDim, c.NumAttentionHeads, RepackArena!);
    }

    private byte* ReadIntoArena(string tensor)
    {
        var info = tensors.Info(tensor);
        byte* destination = RepackArena!.Allocate(info.ByteLength);
        if (!_files.TryGetValue(info.FilePath, out var handle))
            _files[info.FilePath] = handle = File.OpenHandle(info.FilePath, FileMode.Open, FileAccess.Read, FileShare.Read);
        for (long done = 0; done < info.ByteLength;)
        {
            int chunk = (int)Math.Min(1 << 30, info.ByteLength - done);
            int read = RandomAccess.Read(handle, new Span<byte>(destination + done, chunk), info.DataOffset + done);
            if (read == 0) throw new CheckpointFormatException($"{FileOf(tensor)}: tensor '{tensor}' ends past the end of the file (truncated?)");
            done += read;
        }
        // Whatever the checks or the kernel's fault-around mapped of the original stays out of the resident set.
        MemoryAdvice.DropMappedPages(tensors.Pointer(tensor), info.ByteLength);
        return destination;
    }

    /// <summary>Closes the files opened for repacking (the memory mapping stays).</summary>
    public void CloseFiles()
    {
        foreach (var handle in _files.Values) handle.Dispose();
        _files.Clear();
    }

    /// <summary>A plain [rows, cols] tensor in F32/F16/BF16, or F8_E4M3 with its <c>_scale_inv</c> blocks.</summary>
    public WeightMatrix Dense(string tensor, int rows, int cols) => DenseStored(Stored(tensor), rows, cols);

    private WeightMatrix DenseStored(string tensor, int rows, int cols)
    {
        RequireLayout(tensor);
        var info = tensors.Info(tensor);
        RequireShape(tensor, rows, cols);
        byte* data = tensors.Pointer(tensor);
        switch (info.DType)
        {
            case SafetensorsDType.BF16: return WeightMatrix.FromBFloat16((ushort*)data, rows, cols);
            case SafetensorsDType.F16: return WeightMatrix.FromFloat16((Half*)data, rows, cols);
            case SafetensorsDType.F32: return WeightMatrix.FromFloat32((float*)data, rows, cols);
            case SafetensorsDType.F8_E4M3:
                var block = config.Quantization as Fp8BlockQuantization ?? new Fp8BlockQuantization(128, 128);
                string scale = tensor + "_scale_inv";
                if (!tensors.Contains(scale))
                    throw new CheckpointFormatException($"{FileOf(tensor)}: FP8 tensor '{tensor}' has no '{scale}' (block scales are required)");
                RequireDType(scale, SafetensorsDType.F32);
                RequireShape(scale, (rows + block.BlockRows - 1) / block.BlockRows, (cols + block.BlockCols - 1) / block.BlockCols);
                return WeightMatrix.FromFp8Block(data, (float*)tensors.Pointer(scale), rows, cols, block.BlockRows, block.BlockCols);
            default:
                throw new CheckpointFormatException($"{FileOf(tensor)}: tensor '{tensor}' is {info.DType}; a weight must be BF16, F16, F32 or F8_E4M3");
        }
    }

    /// <param name="module">The stored module name (prefix included).</param>
    private WeightMatrix PackedLinear(string module, int rows, int cols, PackGroup group)
    {
        string packed = module + ".weight_packed", scale = module + ".weight_scale", shape = module + ".weight_shape";
        if (!tensors.Contains(packed))
        {
            string hint = tensors.Contains(module + ".weight") ? $" (it has '{module}.weight' instead; is the quantization_config ignore list right?)" : "";
            throw new CheckpointFormatException($"{tensors.Directory}: missing tensor '{packed}': config.json's quantization_config packs '{module}'{hint}");
        }
        RequireDType(packed, SafetensorsDType.I32);
        RequireShape(packed, rows, WeightMatrix.PackedWordsPerRow(cols, group.Bits));
        int groupSize = Math.Min(group.GroupSize, cols);
        RequireDType(scale, SafetensorsDType.BF16);
        RequireShape(scale, rows, (cols + groupSize - 1) / groupSize);
        if (tensors.Contains(shape))
        {
            var declared = tensors.ReadInt64s(shape);
            if (declared.Length != 2 || declared[0] != rows || declared[1] != cols)
                throw new CheckpointFormatException(
                    $"{FileOf(shape)}: tensor '{shape}' says [{string.Join(", ", declared)}] but config.json implies [{rows}, {cols}]");
        }
        return WeightMatrix.FromPackedInt((int*)tensors.Pointer(packed), (ushort*)tensors.Pointer(scale), rows, cols, group.Bits, groupSize);
    }

    public float[] Vector(string tensor, int length)
    {
        RequireLayout(Stored(tensor));
        return tensors.ReadFloats(Stored(tensor), length);
    }

    public float[]? OptionalBias(string module, int length) =>
        tensors.Contains(Stored(module) + ".bias") ? tensors.ReadFloats(Stored(module) + ".bias", length) : null;

    public bool Has(string tensor) => tensors.Contains(Stored(tensor));
}
