using System.Runtime.CompilerServices;

namespace KimiSharp.Kernels;

/// <summary>
/// Several independent matrix × vector products (one token) run as one parallel job, e.g. the gate and up projections
/// of all the experts a token is routed to. Each output element is computed by exactly the row product
/// <see cref="MatrixKernels.MatMul"/> uses, so results are bit-identical to separate calls; only the hand-offs to the
/// worker pool are fewer. Reuse one instance (Clear, Add…, Run): it allocates only when it first grows.
/// </summary>
public sealed unsafe class MatVecBatch : IRowJob
{
    private WeightMatrix?[] _weights = new WeightMatrix?[8];
    private nint[] _inputs = new nint[8], _outputs = new nint[8];
    private int[] _firstRow = new int[9];
    private QuantizedActivations?[] _quantized = new QuantizedActivations?[8], _own = new QuantizedActivations?[8];
    private int _count;

    public int Count => _count;

    public void Clear() => _count = 0;

    /// <summary>
    /// Queues y = w · x. The memory behind <paramref name="x"/> and <paramref name="y"/> must stay where it is until
    /// <see cref="Run"/> returns (native memory, pinned arrays or a <c>fixed</c> block around both calls).
    /// </summary>
    public void Add(WeightMatrix w, float* x, float* y)
    {
        if (_count == _weights.Length)
        {
            int size = 2 * _count;
            Array.Resize(ref _weights, size);
            Array.Resize(ref _inputs, size);
            Array.Resize(ref _outputs, size);
            Array.Resize(ref _firstRow, size + 1);
            Array.Resize(ref _quantized, size);
            Array.Resize(ref _own, size);
        }
        _weights[_count] = w;
        _inputs[_count] = (nint)x;
        _outputs[_count] = (nint)y;
        _firstRow[_count + 1] = _firstRow[_count] + w.Rows;
        _count++;
    }

    /// <summary>Runs every queued product on up to <see cref="KernelSettings.MaxThreads"/> threads, with the settings' activation precision.</summary>
    public void Run(KernelSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (_count == 0) return;
        long work = 0;
        for (int i = 0; i < _count; i++)
        {
            var w = _weights[i]!;
            work += (long)w.Rows * w.Cols;
            _quantized[i] = null;
            if (settings.Int8Activations && Int4Kernels.HandlesInt8(w))
            {
                // Products that share an input share its quantization (the same function of the same values).
                for (int j = 0; j < i && _quantized[i] is null; j++)
                    if (_inputs[j] == _inputs[i] && _quantized[j] is not null && _weights[j]!.Cols == w.Cols) _quantized[i] = _quantized[j];
                if (_quantized[i] is null)
                {
                    var own = _own[i] ??= new QuantizedActivations();
                    own.Quantize((float*)_inputs[i], 1, w.Cols);
                    _quantized[i] = own;
                }
            }
        }
        int rows = _firstRow[_count];
        int parts = KernelThreading.PartsFor(work, rows, settings.MaxThreads);
        if (parts <= 1) Run(0, rows);
        else KernelThreading.ParallelRows(rows, parts, this, settings.MaxThreads, taper: true);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IRowJob.Run(int rowStart, int rowEnd) => Run(rowStart, rowEnd);

    private void Run(int rowStart, int rowEnd)
    {
        int i = 0;
        while (_firstRow[i + 1] <= rowStart) i++;
        for (int global = rowStart; global < rowEnd; i++)
        {
            var w = _weights[i]!;
            int first = _firstRow[i], end = Math.Min(rowEnd, _firstRow[i + 1]);
            float* x = (float*)_inputs[i], y = (float*)_outputs[i];
            var q = _quantized[i];
            if (w.Format == WeightFormat.PackedInt4Rows16 && q is not null)
            {
                var (firstBlock, endBlock) = Int4Rows16Kernels.BlocksStartingIn(global - first, end - first);
                for (int b = firstBlock; b < endBlock; b++)
                    Int4Rows16Kernels.Block(w, b, q, 0, 1, y + b * Int4Rows16Kernels.Rows, 1);
                global = end;
                continue;
            }
            if (q is not null)
            {
                var token = q[0];
                for (; global + 2 <= end; global += 2)
                    Int4Kernels.DotQ8Rows2(w, global - first, token, y + (global - first), y + (global - first) + 1);
                if (global < end) { y[global - first] = Int4Kernels.DotQ8(w, global - first, token); global++; }
            }
            else if (Int4Kernels.Handles(w))
                for (; global + 2 <= end; global += 2)
                    Int4Kernels.DotRows2(w, global - first, x, y + (global - first), y + (global - first) + 1);
            for (; global < end; global++)
            {
                int r = global - first;
                y[r] = MatrixKernels.DotRowUnchecked(w, r, x);
            }
        }
    }
}
