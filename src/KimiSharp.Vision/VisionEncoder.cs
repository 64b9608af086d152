using System.Numerics.Tensors;
using KimiSharp.Kernels;

namespace KimiSharp.Vision;

/// <summary>A patch grid: frames (1 for an image, up to init_pos_emb_time for a video chunk), rows and columns of patches.</summary>
public readonly record struct VisionGrid(int Frames, int Rows, int Columns)
{
    public int Patches => Frames * Rows * Columns;
    public override string ToString() => $"{Frames}×{Rows}×{Columns}";
}

/// <summary>
/// One image or video chunk ready for the tower: <see cref="Patches"/> holds [frames·rows·cols, 3·p·p] normalised
/// pixels, patches in frame, row, column order, each flattened channel-major then row then column.
/// </summary>
public sealed record VisionInput(float[] Patches, VisionGrid Grid);

/// <summary>
/// The exact forward of the K2.5 vision path: patch embedding, position table (+ time embedding), 2-D RoPE attention
/// blocks, final LayerNorm, 2×2 merge with temporal mean, and the patch-merger projector to the text width.
/// Computes in float32 with double accumulation where the cost is negligible; weights may be F32, F16 or BF16.
/// </summary>
public sealed class VisionEncoder(VisionWeights weights)
{
    public VisionWeights Weights { get; } = weights;
    public VisionConfig Config => Weights.Config;

    /// <summary>Threads (and activation precision, for INT4 weights) of the tower's products; the exact path on every core by default.</summary>
    public KernelSettings Kernels
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(value));
    } = KernelSettings.Default;

    /// <summary>Tokens the projector writes for a grid: (rows/2)·(cols/2) whatever the frame count.</summary>
    public int TokensFor(VisionGrid grid) => grid.Rows / Config.MergeKernelHeight * (grid.Columns / Config.MergeKernelWidth);

    /// <summary>Checks a grid against the tower's limits; the message names the violated one.</summary>
    public void Validate(VisionGrid grid)
    {
        var c = Config;
        if (grid.Frames < 1 || grid.Rows < 1 || grid.Columns < 1)
            throw new ArgumentException($"patch grid {grid} must have at least one frame, row and column");
        if (grid.Frames > c.PosEmbTime)
            throw new ArgumentException($"patch grid {grid} has {grid.Frames} frames; a video chunk holds at most init_pos_emb_time = {c.PosEmbTime}");
        if (grid.Rows % c.MergeKernelHeight != 0 || grid.Columns % c.MergeKernelWidth != 0)
            throw new ArgumentException($"patch grid {grid} is not a multiple of the {c.MergeKernelHeight}×{c.MergeKernelWidth} merge kernel (pad images to multiples of {c.MergeKernelHeight * c.PatchSize} pixels)");
        if (grid.Rows > VisionConfig.RopeMaxSide || grid.Columns > VisionConfig.RopeMaxSide)
            throw new ArgumentException($"patch grid {grid} exceeds {VisionConfig.RopeMaxSide} patches on a side");
    }

    /// <summary>
    /// Runs the tower and projector over every input together (one batch through each linear layer; attention stays
    /// within each input) and returns, per input, its features [tokens, text hidden] row-major.
    /// </summary>
    public float[][] Encode(IReadOnlyList<VisionInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0) return [];
        var c = Config;
        int d = c.HiddenSize;
        var offsets = new int[inputs.Count + 1];
        for (int i = 0; i < inputs.Count; i++)
        {
            var input = inputs[i];
            Validate(input.Grid);
            if (input.Patches.Length != (long)input.Grid.Patches * c.PatchElements)
                throw new ArgumentException($"input {i}: {input.Patches.Length} pixel values do not fill a {input.Grid} grid of {c.PatchElements}-value patches");
            offsets[i + 1] = checked(offsets[i] + input.Grid.Patches);
        }
        int total = offsets[^1];

        var patches = new float[(long)total * c.PatchElements];
        for (int i = 0; i < inputs.Count; i++)
            inputs[i].Patches.CopyTo(patches, (long)offsets[i] * c.PatchElements);
        var x = new float[(long)total * d];
        MatrixKernels.MatMul(Weights.PatchProjection, patches, x, total, Kernels);
        AddBias(x, Weights.PatchProjectionBias, total);
        AddPositions(inputs, offsets, x);
        var (ropeCos, ropeSin) = RotaryTables(inputs, offsets);

        var normed = new float[(long)total * d];
        var qkv = new float[(long)total * 3 * d];
        var attention = new float[(long)total * d];
        var hidden = new float[(long)total * c.IntermediateSize];
        foreach (var block in Weights.Blocks)
        {
            cancellationToken.ThrowIfCancellationRequested();
            LayerNormRows(x, block.Norm0Weight, block.Norm0Bias, VisionConfig.TowerLayerNormEps, normed, total);
            MatrixKernels.MatMul(block.Qkv, normed, qkv, total, Kernels);
            AddBias(qkv, block.QkvBias, total);
            ApplyRotary(qkv, ropeCos, ropeSin, total);
            for (int i = 0; i < inputs.Count; i++)
                Attend(qkv, attention, offsets[i], offsets[i + 1] - offsets[i], cancellationToken);
            MatrixKernels.MatMul(block.Output, attention, normed, total, Kernels);
            AddBias(normed, block.OutputBias, total);
            TensorPrimitives.Add(x, normed, x);

            LayerNormRows(x, block.Norm1Weight, block.Norm1Bias, VisionConfig.TowerLayerNormEps, normed, total);
            MatrixKernels.MatMul(block.Fc0, normed, hidden, total, Kernels);
            AddBias(hidden, block.Fc0Bias, total);
            Ops.GeluTanh(hidden);
            MatrixKernels.MatMul(block.Fc1, hidden, normed, total, Kernels);
            AddBias(normed, block.Fc1Bias, total);
            TensorPrimitives.Add(x, normed, x);
        }
        LayerNormRows(x, Weights.FinalNormWeight, Weights.FinalNormBias, VisionConfig.TowerLayerNormEps, x, total);

        // Merge and project every input as one batch.
        var tokenOffsets = new int[inputs.Count + 1];
        for (int i = 0; i < inputs.Count; i++) tokenOffsets[i + 1] = tokenOffsets[i] + TokensFor(inputs[i].Grid);
        int tokens = tokenOffsets[^1];
        int merged = c.MergedWidth;
        var mergedRows = new float[(long)tokens * merged];
        for (int i = 0; i < inputs.Count; i++)
            MergePatches(x.AsSpan(offsets[i] * d, inputs[i].Grid.Patches * d), inputs[i].Grid, mergedRows.AsSpan(tokenOffsets[i] * merged));
        float eps = (float)c.ProjectorLayerNormEps;
        for (long row = 0; row < (long)tokens * (merged / d); row++)
        {
            var sub = mergedRows.AsSpan((int)(row * d), d);
            Ops.LayerNorm(sub, Weights.ProjectorNormWeight, Weights.ProjectorNormBias, eps, sub);
        }
        var projected = new float[(long)tokens * merged];
        MatrixKernels.MatMul(Weights.ProjectorLinear1, mergedRows, projected, tokens, Kernels);
        AddBias(projected, Weights.ProjectorLinear1Bias, tokens);
        Ops.Gelu(projected);
        var output = new float[(long)tokens * c.TextHiddenSize];
        MatrixKernels.MatMul(Weights.ProjectorLinear2, projected, output, tokens, Kernels);
        AddBias(output, Weights.ProjectorLinear2Bias, tokens);

        var results = new float[inputs.Count][];
        for (int i = 0; i < inputs.Count; i++)
            results[i] = output.AsSpan(tokenOffsets[i] * c.TextHiddenSize, (tokenOffsets[i + 1] - tokenOffsets[i]) * c.TextHiddenSize).ToArray();
        return results;
    }

    private static void AddBias(float[] rows, float[] bias, int count)
    {
        for (int t = 0; t < count; t++)
        {
            var row = rows.AsSpan(t * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    private void LayerNormRows(float[] x, float[] weight, float[] bias, float eps, float[] y, int count)
    {
        int d = weight.Length;
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Kernels.MaxThreads },
            t => Ops.LayerNorm(x.AsSpan(t * d, d), weight, bias, eps, y.AsSpan(t * d, d)));
    }

    private void AddPositions(IReadOnlyList<VisionInput> inputs, int[] offsets, float[] x)
    {
        var c = Config;
        int d = c.HiddenSize;
        var time = new float[d];
        for (int i = 0; i < inputs.Count; i++)
        {
            var grid = inputs[i].Grid;
            // The table is used as stored when the grid matches it, and resized otherwise (even to a larger grid).
            float[] table = grid.Rows == c.PosEmbHeight && grid.Columns == c.PosEmbWidth
                ? Weights.PositionTable
                : VisionPositions.ResizeBicubic(Weights.PositionTable, c.PosEmbHeight, c.PosEmbWidth, d, grid.Rows, grid.Columns);
            int framePatches = grid.Rows * grid.Columns;
            for (int f = 0; f < grid.Frames; f++)
            {
                var frame = x.AsSpan((offsets[i] + f * framePatches) * d, framePatches * d);
                TensorPrimitives.Add(frame, table, frame);
                // A single image gets no time embedding; a chunk of more frames gets one per frame, frame 0 included.
                if (grid.Frames == 1) continue;
                VisionPositions.TimeEmbedding(f, time);
                for (int p = 0; p < framePatches; p++)
                {
                    var row = frame.Slice(p * d, d);
                    TensorPrimitives.Add(row, time, row);
                }
            }
        }
    }

    private (float[] Cos, float[] Sin) RotaryTables(IReadOnlyList<VisionInput> inputs, int[] offsets)
    {
        int pairs = Config.HeadDim / 2;
        var cos = new float[(long)offsets[^1] * pairs];
        var sin = new float[cos.Length];
        for (int i = 0; i < inputs.Count; i++)
        {
            var grid = inputs[i].Grid;
            var (frameCos, frameSin) = VisionPositions.RotaryTable(grid.Rows, grid.Columns, Config.HeadDim);
            // Every frame of a chunk repeats the spatial angles: time enters only through the added embedding.
            for (int f = 0; f < grid.Frames; f++)
            {
                long at = (long)(offsets[i] + f * grid.Rows * grid.Columns) * pairs;
                frameCos.CopyTo(cos, at);
                frameSin.CopyTo(sin, at);
            }
        }
        return (cos, sin);
    }

    /// <summary>Rotates the query and key heads of every token in place (adjacent pairs, GPT-J layout).</summary>
    private void ApplyRotary(float[] qkv, float[] cos, float[] sin, int count)
    {
        int d = Config.HiddenSize, heads = Config.NumAttentionHeads, headDim = Config.HeadDim, pairs = headDim / 2;
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Kernels.MaxThreads }, t =>
        {
            var c = cos.AsSpan(t * pairs, pairs);
            var s = sin.AsSpan(t * pairs, pairs);
            for (int part = 0; part < 2; part++)
                for (int h = 0; h < heads; h++)
                    Ops.RotatePairs(qkv.AsSpan(t * 3 * d + part * d + h * headDim, headDim), c, s);
        });
    }

    /// <summary>Full (non-causal) softmax attention among the <paramref name="length"/> patches of one input, per head.</summary>
    private void Attend(float[] qkv, float[] output, int first, int length, CancellationToken cancellationToken)
    {
        int d = Config.HiddenSize, heads = Config.NumAttentionHeads, headDim = Config.HeadDim;
        float scale = 1f / MathF.Sqrt(headDim);
        // Keys and values per head, contiguous, so a query streams through them.
        var keys = new float[(long)heads * length * headDim];
        var values = new float[keys.Length];
        for (int t = 0; t < length; t++)
            for (int h = 0; h < heads; h++)
            {
                long source = (long)(first + t) * 3 * d + h * headDim;
                long target = ((long)h * length + t) * headDim;
                Array.Copy(qkv, source + d, keys, target, headDim);
                Array.Copy(qkv, source + 2 * d, values, target, headDim);
            }
        const int queryBlock = 16;
        int blocks = (length + queryBlock - 1) / queryBlock;
        Parallel.For(0, heads * blocks, new ParallelOptions { MaxDegreeOfParallelism = Kernels.MaxThreads, CancellationToken = cancellationToken },
            () => new float[length],
            (job, _, scores) =>
            {
                int h = job / blocks, start = job % blocks * queryBlock, end = Math.Min(length, start + queryBlock);
                var headKeys = keys.AsSpan(h * length * headDim, length * headDim);
                var headValues = values.AsSpan(h * length * headDim, length * headDim);
                for (int q = start; q < end; q++)
                {
                    var query = qkv.AsSpan((first + q) * 3 * d + h * headDim, headDim);
                    for (int k = 0; k < length; k++)
                        scores[k] = TensorPrimitives.Dot(query, headKeys.Slice(k * headDim, headDim)) * scale;
                    Ops.Softmax(scores);
                    var result = output.AsSpan((first + q) * d + h * headDim, headDim);
                    result.Clear();
                    for (int k = 0; k < length; k++)
                        TensorPrimitives.MultiplyAdd(headValues.Slice(k * headDim, headDim), scores[k], result, result);
                }
                return scores;
            },
            _ => { });
    }

    /// <summary>
    /// Groups each 2×2 block of patches into one row [sub-patch (row-major in the block), D], averaging the frames:
    /// merged token (i, j) of an (rows/2)×(cols/2) grid takes patches (2i + a, 2j + b).
    /// </summary>
    private void MergePatches(ReadOnlySpan<float> x, VisionGrid grid, Span<float> destination)
    {
        int d = Config.HiddenSize, kh = Config.MergeKernelHeight, kw = Config.MergeKernelWidth;
        int outRows = grid.Rows / kh, outCols = grid.Columns / kw, framePatches = grid.Rows * grid.Columns;
        for (int i = 0; i < outRows; i++)
            for (int j = 0; j < outCols; j++)
                for (int a = 0; a < kh; a++)
                    for (int b = 0; b < kw; b++)
                    {
                        var target = destination.Slice((((i * outCols + j) * kh + a) * kw + b) * d, d);
                        int patch = (i * kh + a) * grid.Columns + j * kw + b;
                        x.Slice(patch * d, d).CopyTo(target);
                        if (grid.Frames == 1) continue;
                        for (int f = 1; f < grid.Frames; f++)
                            TensorPrimitives.Add(target, x.Slice((f * framePatches + patch) * d, d), target);
                        TensorPrimitives.Divide(target, (float)grid.Frames, target);
                    }
    }
}
