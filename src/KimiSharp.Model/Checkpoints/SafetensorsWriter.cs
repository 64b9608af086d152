using System.Buffers.Binary;
using System.Text.Json;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Model.Checkpoints;

/// <summary>
/// Collects tensors (in memory, or as producers run at save time) and writes them as a safetensors file (or a sharded set with a Hugging Face index).
/// Layout: 8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8 bytes,
/// then the tensor bytes back to back in the order they were added. Meant for test and tool sized checkpoints.
/// </summary>
public sealed class SafetensorsWriter
{
    /// <summary>File name of the Hugging Face shard index.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<Entry> _entries = [];
    private readonly Dictionary<string, int> _byName = new(StringComparer.Ordinal);

    /// <summary>String metadata written under <c>__metadata__</c>; defaults to <c>{"format":"pt"}</c>.</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal) { ["format"] = "pt" };

    /// <summary>Number of tensors added so far.</summary>
    public int Count => _entries.Count;

    /// <summary>Sum of all tensors' data sizes in bytes.</summary>
    public long TotalDataBytes { get; private set; }

    /// <summary>Tensor names in the order added.</summary>
    public IEnumerable<string> Names => _entries.Select(e => e.Name);

    /// <summary>Adds a tensor whose raw little-endian bytes are <paramref name="data"/> (copied).</summary>
    public void Add(string name, SafetensorsDType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved.", nameof(name));
        if (_byName.ContainsKey(name)) throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        long elements = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor '{name}' has a negative dimension.", nameof(shape));
            elements = checked(elements * d);
        }
        long expected = checked(elements * SafetensorsDTypes.SizeOf(dtype));
        if (expected != data.Length)
            throw new ArgumentException($"Tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype} needs {expected} bytes, got {data.Length}.", nameof(data));
        _byName.Add(name, _entries.Count);
        _entries.Add(new Entry(name, dtype, (long[])shape.Clone(), data.Length, data.ToArray(), null));
        TotalDataBytes += data.Length;
    }

    /// <summary>
    /// Adds a tensor whose bytes <paramref name="produce"/> makes only when the file is written, so a large checkpoint
    /// never sits in memory whole. The producer must return exactly the bytes the shape implies; it runs once per save,
    /// possibly on another thread while earlier tensors are still being written.
    /// </summary>
    public void AddDeferred(string name, SafetensorsDType dtype, long[] shape, Func<byte[]> produce)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(produce);
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved.", nameof(name));
        if (_byName.ContainsKey(name)) throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        long elements = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor '{name}' has a negative dimension.", nameof(shape));
            elements = checked(elements * d);
        }
        long length = checked(elements * SafetensorsDTypes.SizeOf(dtype));
        _byName.Add(name, _entries.Count);
        _entries.Add(new Entry(name, dtype, (long[])shape.Clone(), length, null, produce));
        TotalDataBytes += length;
    }

    /// <summary>Adds floats stored as BF16 (round to nearest even).</summary>
    public void AddBf16(string name, long[] shape, ReadOnlySpan<float> values) =>
        Add(name, SafetensorsDType.BF16, shape, WeightEncoding.ToBf16Bytes(values));

    /// <summary>Adds floats stored as F32.</summary>
    public void AddF32(string name, long[] shape, ReadOnlySpan<float> values) =>
        Add(name, SafetensorsDType.F32, shape, WeightEncoding.ToF32Bytes(values));

    /// <summary>Adds floats in <paramref name="dtype"/> (BF16 or F32).</summary>
    public void AddFloats(string name, SafetensorsDType dtype, long[] shape, ReadOnlySpan<float> values)
    {
        switch (dtype)
        {
            case SafetensorsDType.BF16: AddBf16(name, shape, values); break;
            case SafetensorsDType.F32: AddF32(name, shape, values); break;
            default: throw new ArgumentException($"Cannot encode floats as {dtype}.", nameof(dtype));
        }
    }

    /// <summary>Adds int32 values stored as I32.</summary>
    public void AddI32(string name, long[] shape, ReadOnlySpan<int> values) =>
        Add(name, SafetensorsDType.I32, shape, WeightEncoding.ToI32Bytes(values));

    /// <summary>Adds int64 values stored as I64.</summary>
    public void AddI64(string name, long[] shape, ReadOnlySpan<long> values) =>
        Add(name, SafetensorsDType.I64, shape, WeightEncoding.ToI64Bytes(values));

    /// <summary>Adds <c>{prefix}.weight</c> (F8_E4M3) and <c>{prefix}.weight_scale_inv</c> (F32).</summary>
    public void AddFp8Block(string prefix, Fp8BlockWeight weight)
    {
        Add(prefix + ".weight", SafetensorsDType.F8_E4M3, weight.CodesShape, weight.Codes);
        AddF32(prefix + ".weight_scale_inv", weight.ScalesShape, weight.Scales);
    }

    /// <summary>Adds <c>{prefix}.weight_packed</c> (I32), <c>{prefix}.weight_scale</c> (BF16) and <c>{prefix}.weight_shape</c> (I64).</summary>
    public void AddInt4Packed(string prefix, Int4PackedWeight weight)
    {
        AddI32(prefix + ".weight_packed", weight.PackedShape, weight.Packed);
        Add(prefix + ".weight_scale", SafetensorsDType.BF16, weight.ScalesShape, WeightEncoding.ToU16Bytes(weight.Scales));
        AddI64(prefix + ".weight_shape", [2], [weight.Rows, weight.Cols]);
    }

    /// <summary>Writes every tensor to one safetensors file. The file is written beside <paramref name="path"/> and renamed over it.</summary>
    public void Save(string path) => WriteFile(path, _entries);

    /// <summary>
    /// Writes the tensors to <c>model-0000N-of-0000M.safetensors</c> shards of at most <paramref name="maxShardBytes"/> data bytes
    /// (a single larger tensor gets a shard of its own), keeping the order added, plus <see cref="IndexFileName"/>.
    /// Returns the shard file names.
    /// </summary>
    public IReadOnlyList<string> SaveSharded(string directory, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        Directory.CreateDirectory(directory);

        var shards = new List<List<Entry>>();
        long current = 0;
        foreach (var e in _entries)
        {
            if (shards.Count == 0 || (current + e.Length > maxShardBytes && shards[^1].Count > 0))
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(e);
            current += e.Length;
        }
        if (shards.Count == 0) shards.Add([]);

        var names = new List<string>(shards.Count);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            names.Add(file);
            WriteFile(Path.Combine(directory, file), shards[i]);
            foreach (var e in shards[i]) weightMap[e.Name] = file;
        }

        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", TotalDataBytes);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (tensor, file) in weightMap) json.WriteString(tensor, file);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        WriteAtomically(Path.Combine(directory, IndexFileName), stream => buffer.WriteTo(stream));
        return names;
    }

    /// <summary>The header JSON (unpadded) for <paramref name="entries"/>.</summary>
    private byte[] BuildHeader(IReadOnlyList<Entry> entries)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            long offset = 0;
            foreach (var e in entries)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", SafetensorsDTypes.Name(e.DType));
                json.WriteStartArray("shape");
                foreach (long d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + e.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += e.Length;
            }
            if (Metadata.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in Metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private void WriteFile(string path, IReadOnlyList<Entry> entries)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] header = BuildHeader(entries);
        int padded = (header.Length + 7) / 8 * 8;
        WriteAtomically(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(header);
            for (int i = header.Length; i < padded; i++) stream.WriteByte((byte)' ');
            // Deferred tensors are produced up to two ahead on the thread pool while earlier ones are written.
            const int lookahead = 2;
            var pending = new Queue<Task<byte[]>>();
            int next = 0;
            void Refill()
            {
                while (next < entries.Count && pending.Count < lookahead)
                {
                    var e = entries[next++];
                    pending.Enqueue(e.Data is { } ready ? Task.FromResult(ready) : Task.Run(e.Produce!));
                }
            }
            for (int i = 0; i < entries.Count; i++)
            {
                Refill();
                byte[] data = pending.Dequeue().GetAwaiter().GetResult();
                if (data.LongLength != entries[i].Length)
                    throw new InvalidOperationException($"Tensor '{entries[i].Name}' produced {data.LongLength} bytes, its shape needs {entries[i].Length}.");
                stream.Write(data);
            }
        });
    }

    /// <summary>Writes to a temporary file in the same folder, flushes it, then renames it over <paramref name="path"/>.</summary>
    private static void WriteAtomically(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string temp = full + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private sealed record Entry(string Name, SafetensorsDType DType, long[] Shape, long Length, byte[]? Data, Func<byte[]>? Produce);
}
