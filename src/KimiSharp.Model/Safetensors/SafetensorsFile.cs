using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace KimiSharp.Model.Safetensors;

/// <summary>Where one tensor lives in a safetensors file.</summary>
public sealed record TensorInfo(string Name, SafetensorsDType DType, long[] Shape, long DataOffset, long ByteLength, string FilePath)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>A checkpoint file or folder that is not what it claims to be. The message names the file and tensor.</summary>
public sealed class CheckpointFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A memory-mapped safetensors file: the header is parsed and checked up front, tensor bytes are only
/// paged in when a kernel touches them, so a checkpoint larger than RAM can be opened.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers above this are refused: real ones are a few MB, a bigger length is a corrupt prefix.</summary>
    private const long MaxHeaderBytes = 100L << 20;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly Dictionary<string, TensorInfo> _tensors;

    public string Path { get; }
    public long Length { get; }
    public IReadOnlyDictionary<string, TensorInfo> Tensors => _tensors;
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view,
        Dictionary<string, TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path; Length = length; _map = map; _view = view; _tensors = tensors; Metadata = metadata;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
        _base += view.PointerOffset;
    }

    public static SafetensorsFile Open(string path)
    {
        string name = System.IO.Path.GetFileName(path);
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: no such safetensors file");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        try
        {
            long length = stream.Length;
            if (length < 8) throw new CheckpointFormatException($"{name}: file is {length} bytes, too short to hold a safetensors header (truncated?)");
            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            long headerLength = (long)BitConverter.ToUInt64(prefix);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > length - 8)
                throw new CheckpointFormatException($"{name}: header length {headerLength} does not fit in a {length}-byte file (truncated or not a safetensors file)");
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataStart = 8 + headerLength;
            var (tensors, metadata) = ParseHeader(header, name, path, dataStart, length - dataStart);
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new SafetensorsFile(path, length, map, view, tensors, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, TensorInfo>, Dictionary<string, string>) ParseHeader(
        byte[] header, string name, string path, long dataStart, long dataLength)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)' ')); }
        catch (JsonException e) { throw new CheckpointFormatException($"{name}: header is not valid JSON ({e.Message})", e); }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"{name}: header must be a JSON object");
            var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>();
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in entry.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                tensors.Add(entry.Name, ParseTensor(entry, name, path, dataStart, dataLength));
            }
            CheckNoOverlap(tensors.Values, name);
            return (tensors, metadata);
        }
    }

    private static TensorInfo ParseTensor(JsonProperty entry, string name, string path, long dataStart, long dataLength)
    {
        string tensor = entry.Name;
        var value = entry.Value;
        string Where() => $"{name}: tensor '{tensor}'";
        if (value.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{Where()}: header entry is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException($"{Where()}: missing dtype");
        string dtypeName = dtypeElement.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw new CheckpointFormatException($"{Where()}: unsupported dtype {dtypeName} (supported: F32, F16, BF16, I32, I64, F8_E4M3, I8, U8)");
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException($"{Where()}: missing shape");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new CheckpointFormatException($"{Where()}: shape {shapeElement.GetRawText()} is not a list of non-negative integers");
            shape[i++] = dim;
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw new CheckpointFormatException($"{Where()}: data_offsets must be two integers");
        long elements = 1;
        foreach (long d in shape)
        {
            if (d != 0 && elements > long.MaxValue / 8 / d) throw new CheckpointFormatException($"{Where()}: shape is too large");
            elements *= d;
        }
        long expected = elements * SafetensorsDTypes.SizeOf(dtype);
        if (begin < 0 || end < begin)
            throw new CheckpointFormatException($"{Where()}: data_offsets [{begin}, {end}] are not an increasing pair");
        if (end - begin != expected)
            throw new CheckpointFormatException($"{Where()}: data_offsets [{begin}, {end}] span {end - begin} bytes but {dtypeName} shape [{string.Join(", ", shape)}] needs {expected}");
        if (end > dataLength)
            throw new CheckpointFormatException($"{Where()}: data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes; file truncated?)");
        return new TensorInfo(tensor, dtype, shape, dataStart + begin, end - begin, path);
    }

    private static void CheckNoOverlap(IEnumerable<TensorInfo> tensors, string name)
    {
        TensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.DataOffset))
        {
            if (previous is not null && t.DataOffset < previous.DataOffset + previous.ByteLength)
                throw new CheckpointFormatException($"{name}: tensors '{previous.Name}' and '{t.Name}' overlap in the data section (header lies about offsets)");
            previous = t;
        }
    }

    /// <summary>The first byte of <paramref name="tensor"/>'s data, inside the mapping.</summary>
    public byte* Pointer(TensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base is null, this);
        return _base + tensor.DataOffset;
    }

    public ReadOnlySpan<byte> Bytes(TensorInfo tensor) => new(Pointer(tensor), checked((int)tensor.ByteLength));

    public void Dispose()
    {
        if (_base is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view.Dispose();
        _map.Dispose();
    }
}
