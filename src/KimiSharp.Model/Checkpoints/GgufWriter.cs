using System.Buffers.Binary;
using System.Text;

namespace KimiSharp.Model.Checkpoints;

/// <summary>ggml tensor element types this writer can produce (values as in ggml's <c>enum ggml_type</c>).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    /// <summary>Blocks of 32 values: fp16 scale d, then 16 bytes of 4-bit q (low nibbles elements 0..15, high 16..31); x = d·(q − 8).</summary>
    Q4_0 = 2,
}

/// <summary>
/// Writes a GGUF (version 3) file: the header, metadata key/values, tensor infos, then the tensor data, each tensor
/// aligned to <see cref="Alignment"/> bytes. Tensors are declared with a row source and encoded while the file is
/// written, so memory stays at a batch of rows whatever the model size. Dimensions follow ggml: <c>ne[0]</c> is the
/// contiguous one, so a row-major [rows, cols] matrix has ne = {cols, rows}.
/// </summary>
public sealed class GgufWriter
{
    public const uint Alignment = 32;
    public const int Q4_0BlockValues = 32;
    public const int Q4_0BlockBytes = 18;

    private enum ValueType : uint
    {
        UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
        UInt64 = 10, Int64 = 11, Float64 = 12,
    }

    /// <summary>Fills one row (ne[0] values) of the tensor; the argument is the row index over ne[1]·ne[2]·….</summary>
    public delegate void RowSource(long row, Span<float> values);

    private sealed record Tensor(string Name, GgmlType Type, long[] Shape, RowSource Source)
    {
        public long Rows => Shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        public long RowBytes => GgufWriter.RowBytes(Type, Shape[0]);
        public long Bytes => Rows * RowBytes;
    }

    private readonly List<(string Key, Action<BinaryWriter> Write)> _metadata = [];
    private readonly List<Tensor> _tensors = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);

    public int TensorCount => _tensors.Count;

    /// <summary>Bytes of all tensor data (without alignment padding).</summary>
    public long TensorDataBytes => _tensors.Sum(t => t.Bytes);

    /// <summary>Bytes of one row of <paramref name="cols"/> values stored as <paramref name="type"/>.</summary>
    public static long RowBytes(GgmlType type, long cols) => type switch
    {
        GgmlType.F32 => 4 * cols,
        GgmlType.F16 => 2 * cols,
        GgmlType.Q4_0 => cols % Q4_0BlockValues == 0
            ? cols / Q4_0BlockValues * Q4_0BlockBytes
            : throw new ArgumentException($"Q4_0 rows need a multiple of {Q4_0BlockValues} values, got {cols}"),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    private void AddKey(string key, ValueType type, Action<BinaryWriter> value)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"GGUF key '{key}' added twice");
        _metadata.Add((key, b => { b.Write((uint)type); value(b); }));
    }

    public void AddString(string key, string value) => AddKey(key, ValueType.String, b => WriteString(b, value));
    public void AddUInt32(string key, uint value) => AddKey(key, ValueType.UInt32, b => b.Write(value));
    public void AddInt32(string key, int value) => AddKey(key, ValueType.Int32, b => b.Write(value));
    public void AddFloat32(string key, float value) => AddKey(key, ValueType.Float32, b => b.Write(value));
    public void AddBool(string key, bool value) => AddKey(key, ValueType.Bool, b => b.Write((byte)(value ? 1 : 0)));

    public void AddStringArray(string key, IReadOnlyList<string> values) => AddKey(key, ValueType.Array, b =>
    {
        b.Write((uint)ValueType.String);
        b.Write((ulong)values.Count);
        foreach (var v in values) WriteString(b, v);
    });

    public void AddInt32Array(string key, IReadOnlyList<int> values) => AddKey(key, ValueType.Array, b =>
    {
        b.Write((uint)ValueType.Int32);
        b.Write((ulong)values.Count);
        foreach (var v in values) b.Write(v);
    });

    /// <summary>Declares a tensor of shape <paramref name="shape"/> (ggml order, ne[0] first) written in declaration order.</summary>
    public void AddTensor(string name, GgmlType type, long[] shape, RowSource source)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length is < 1 or > 4 || shape.Any(d => d <= 0)) throw new ArgumentException($"tensor '{name}': bad shape [{string.Join(", ", shape)}]");
        if (Encoding.UTF8.GetByteCount(name) >= 64) throw new ArgumentException($"tensor name '{name}' is longer than ggml's 63 bytes");
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' added twice");
        _ = RowBytes(type, shape[0]);
        _tensors.Add(new Tensor(name, type, (long[])shape.Clone(), source));
    }

    private static void WriteString(BinaryWriter b, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        b.Write((ulong)bytes.Length);
        b.Write(bytes);
    }

    private static long Pad(long offset) => (offset + Alignment - 1) / Alignment * Alignment;

    /// <summary>
    /// Writes the file. Rows are encoded in parallel batches; <paramref name="progress"/> gets (tensors done, tensor count,
    /// bytes written). Returns the file size.
    /// </summary>
    public long Write(string path, IProgress<(int Done, int Total, long Bytes)>? progress = null, CancellationToken cancellationToken = default)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var b = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        b.Write("GGUF"u8);
        b.Write(3u);
        b.Write((ulong)_tensors.Count);
        b.Write((ulong)_metadata.Count);
        foreach (var (key, write) in _metadata)
        {
            WriteString(b, key);
            write(b);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(b, t.Name);
            b.Write((uint)t.Shape.Length);
            foreach (long d in t.Shape) b.Write((ulong)d);
            b.Write((uint)t.Type);
            b.Write((ulong)offset);
            offset = Pad(offset + t.Bytes);
        }
        b.Flush();
        WriteZeros(stream, Pad(stream.Position) - stream.Position);
        long dataStart = stream.Position;

        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            int cols = checked((int)t.Shape[0]);
            long rowBytes = t.RowBytes;
            int batch = (int)Math.Clamp((4L << 20) / Math.Max(rowBytes, 1), 1, 4096);
            var buffer = new byte[batch * rowBytes];
            for (long first = 0; first < t.Rows; first += batch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(batch, t.Rows - first);
                long start = first;
                Parallel.For(0, n, new ParallelOptions { CancellationToken = cancellationToken }, () => new float[cols], (r, _, values) =>
                {
                    t.Source(start + r, values);
                    Encode(t.Type, values, buffer.AsSpan((int)(r * rowBytes), (int)rowBytes));
                    return values;
                }, _ => { });
                stream.Write(buffer, 0, (int)(n * rowBytes));
            }
            WriteZeros(stream, Pad(stream.Position - dataStart) - (stream.Position - dataStart));
            progress?.Report((i + 1, _tensors.Count, stream.Position));
        }
        stream.Flush();
        return stream.Length;
    }

    private static void WriteZeros(Stream stream, long count)
    {
        Span<byte> zeros = stackalloc byte[(int)Alignment];
        zeros.Clear();
        while (count > 0)
        {
            int n = (int)Math.Min(count, zeros.Length);
            stream.Write(zeros[..n]);
            count -= n;
        }
    }

    /// <summary>Encodes one row of float32 values as <paramref name="type"/>.</summary>
    public static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(destination[(4 * i)..], values[i]);
                break;
            case GgmlType.F16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(destination[(2 * i)..], (Half)values[i]);
                break;
            case GgmlType.Q4_0:
                QuantizeQ4_0(values, destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>ggml's <c>quantize_row_q4_0_ref</c>: d = (value of largest magnitude) / −8, q = min(15, trunc(x/d + 8.5)).</summary>
    public static void QuantizeQ4_0(ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (values.Length % Q4_0BlockValues != 0) throw new ArgumentException($"Q4_0 needs a multiple of {Q4_0BlockValues} values, got {values.Length}");
        for (int blk = 0; blk < values.Length / Q4_0BlockValues; blk++)
        {
            var x = values.Slice(blk * Q4_0BlockValues, Q4_0BlockValues);
            var y = destination.Slice(blk * Q4_0BlockBytes, Q4_0BlockBytes);
            float amax = 0, max = 0;
            foreach (float v in x)
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
            for (int j = 0; j < Q4_0BlockValues / 2; j++)
            {
                int q0 = Math.Min(15, (int)(x[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(x[j + Q4_0BlockValues / 2] * id + 8.5f));
                y[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <summary>Decodes Q4_0 blocks back to float32 (for checks).</summary>
    public static void DequantizeQ4_0(ReadOnlySpan<byte> source, Span<float> values)
    {
        for (int blk = 0; blk < values.Length / Q4_0BlockValues; blk++)
        {
            var y = source.Slice(blk * Q4_0BlockBytes, Q4_0BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(y);
            for (int j = 0; j < Q4_0BlockValues / 2; j++)
            {
                values[blk * Q4_0BlockValues + j] = d * ((y[2 + j] & 0xF) - 8);
                values[blk * Q4_0BlockValues + j + Q4_0BlockValues / 2] = d * ((y[2 + j] >> 4) - 8);
            }
        }
    }
}
