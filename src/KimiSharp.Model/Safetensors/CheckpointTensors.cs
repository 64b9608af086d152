using System.Text.Json;

namespace KimiSharp.Model.Safetensors;

/// <summary>
/// All tensors of a Hugging Face checkpoint folder: one <c>model.safetensors</c>, or the shards named by
/// <c>model.safetensors.index.json</c>. Each file stays memory-mapped while this is alive.
/// </summary>
public sealed unsafe class CheckpointTensors : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";

    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<string, (TensorInfo Info, SafetensorsFile File)> _tensors = new(StringComparer.Ordinal);

    public string Directory { get; }
    public IReadOnlyList<SafetensorsFile> Files => _files;
    public IEnumerable<string> Names => _tensors.Keys;
    public long TotalBytes => _files.Sum(f => f.Length);

    private CheckpointTensors(string directory) => Directory = directory;

    public static CheckpointTensors Open(string directory, IProgress<(int Done, int Total)>? progress = null)
    {
        if (!System.IO.Directory.Exists(directory)) throw new CheckpointFormatException($"{directory}: no such model folder");
        var result = new CheckpointTensors(directory);
        try
        {
            string index = Path.Combine(directory, IndexFileName);
            string single = Path.Combine(directory, SingleFileName);
            if (File.Exists(index)) result.OpenSharded(index, progress);
            else if (File.Exists(single)) result.Add(SafetensorsFile.Open(single));
            else
            {
                var files = System.IO.Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
                if (files.Length == 0)
                    throw new CheckpointFormatException($"{directory}: no {SingleFileName}, {IndexFileName} or other *.safetensors file");
                for (int i = 0; i < files.Length; i++) { result.Add(SafetensorsFile.Open(files[i])); progress?.Report((i + 1, files.Length)); }
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private void OpenSharded(string indexPath, IProgress<(int Done, int Total)>? progress)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"{IndexFileName}: missing the weight_map object");
            weightMap = new(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException($"{IndexFileName}: weight_map entry '{entry.Name}' is not a file name");
                weightMap[entry.Name] = entry.Value.GetString()!;
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{IndexFileName}: not valid JSON ({e.Message})", e);
        }

        var shardNames = weightMap.Values.Distinct().Order(StringComparer.Ordinal).ToArray();
        int done = 0;
        foreach (string shard in shardNames)
        {
            if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                throw new CheckpointFormatException($"{IndexFileName}: shard name '{shard}' must be a plain file name in the model folder");
            string path = Path.Combine(Directory, shard);
            if (!File.Exists(path)) throw new CheckpointFormatException($"{IndexFileName}: names shard '{shard}', which is not in {Directory}");
            Add(SafetensorsFile.Open(path));
            progress?.Report((++done, shardNames.Length));
        }
        foreach (var (tensor, shard) in weightMap)
        {
            if (!_tensors.TryGetValue(tensor, out var found))
                throw new CheckpointFormatException($"{IndexFileName}: tensor '{tensor}' is mapped to {shard}, which does not contain it");
            if (Path.GetFileName(found.File.Path) != shard)
                throw new CheckpointFormatException($"{IndexFileName}: tensor '{tensor}' is mapped to {shard} but stored in {Path.GetFileName(found.File.Path)}");
        }
    }

    private void Add(SafetensorsFile file)
    {
        _files.Add(file);
        foreach (var (name, info) in file.Tensors)
        {
            if (_tensors.TryGetValue(name, out var existing))
                throw new CheckpointFormatException($"tensor '{name}' is stored twice: in {Path.GetFileName(existing.File.Path)} and {Path.GetFileName(file.Path)}");
            _tensors[name] = (info, file);
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo Info(string name) => _tensors.TryGetValue(name, out var t)
        ? t.Info
        : throw new CheckpointFormatException($"{Directory}: missing tensor '{name}'");

    public byte* Pointer(string name)
    {
        var (info, file) = _tensors.TryGetValue(name, out var t) ? t : throw new CheckpointFormatException($"{Directory}: missing tensor '{name}'");
        return file.Pointer(info);
    }

    /// <summary>A small tensor (norm weight, bias) widened to float32; the big ones stay in the mapping.</summary>
    public float[] ReadFloats(string name, long expectedLength)
    {
        var info = Info(name);
        if (info.ElementCount != expectedLength || info.Shape.Length != 1)
            throw new CheckpointFormatException($"{Path.GetFileName(info.FilePath)}: tensor '{name}' has shape {info.ShapeText} but config.json implies [{expectedLength}]");
        var result = new float[expectedLength];
        byte* p = Pointer(name);
        for (long i = 0; i < expectedLength; i++)
            result[i] = info.DType switch
            {
                SafetensorsDType.F32 => ((float*)p)[i],
                SafetensorsDType.F16 => (float)((Half*)p)[i],
                SafetensorsDType.BF16 => Kernels.NumberFormats.Bf16ToFloat(((ushort*)p)[i]),
                _ => throw new CheckpointFormatException($"{Path.GetFileName(info.FilePath)}: tensor '{name}' is {info.DType}; expected a float type"),
            };
        return result;
    }

    public long[] ReadInt64s(string name)
    {
        var info = Info(name);
        byte* p = Pointer(name);
        var result = new long[info.ElementCount];
        for (long i = 0; i < result.Length; i++)
            result[i] = info.DType switch
            {
                SafetensorsDType.I64 => ((long*)p)[i],
                SafetensorsDType.I32 => ((int*)p)[i],
                _ => throw new CheckpointFormatException($"{Path.GetFileName(info.FilePath)}: tensor '{name}' is {info.DType}; expected I64 or I32"),
            };
        return result;
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
        _tensors.Clear();
    }
}
