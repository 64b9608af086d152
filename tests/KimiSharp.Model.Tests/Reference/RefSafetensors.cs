using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace KimiSharp.Model.Tests.Reference;

/// <summary>One tensor read from a safetensors file: its header dtype name, shape and raw little-endian bytes.</summary>
public sealed record RefTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// A deliberately small, independent safetensors reader for the float64 reference: reads every tensor of a checkpoint
/// folder (single <c>model.safetensors</c>, a sharded index, or any <c>*.safetensors</c>) fully into memory.
/// </summary>
public static class RefSafetensors
{
    private const string IndexFile = "model.safetensors.index.json";

    /// <summary>All tensors of the checkpoint in <paramref name="directory"/>, by name.</summary>
    public static Dictionary<string, RefTensor> LoadDirectory(string directory)
    {
        var tensors = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        string index = Path.Combine(directory, IndexFile);
        if (File.Exists(index))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
            var weightMap = doc.RootElement.GetProperty("weight_map");
            var expected = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in weightMap.EnumerateObject()) expected[entry.Name] = entry.Value.GetString()!;
            foreach (string file in expected.Values.Distinct())
            {
                foreach (var (name, tensor) in ReadFile(Path.Combine(directory, file)))
                {
                    if (!expected.TryGetValue(name, out string? owner) || owner != file)
                        throw new InvalidDataException($"{file} holds '{name}', which the index does not map to it.");
                    if (!tensors.TryAdd(name, tensor)) throw new InvalidDataException($"Tensor '{name}' appears twice.");
                }
            }
            foreach (string name in expected.Keys)
                if (!tensors.ContainsKey(name)) throw new InvalidDataException($"Index names '{name}', but no shard holds it.");
            if (doc.RootElement.TryGetProperty("metadata", out var meta) && meta.TryGetProperty("total_size", out var total))
            {
                long sum = tensors.Values.Sum(t => (long)t.Data.Length);
                if (total.GetInt64() != sum) throw new InvalidDataException($"Index total_size {total.GetInt64()} != {sum} bytes of tensors.");
            }
            return tensors;
        }

        string single = Path.Combine(directory, "model.safetensors");
        IEnumerable<string> files = File.Exists(single)
            ? [single]
            : Directory.EnumerateFiles(directory, "*.safetensors").Order(StringComparer.Ordinal);
        foreach (string file in files)
            foreach (var (name, tensor) in ReadFile(file))
                if (!tensors.TryAdd(name, tensor)) throw new InvalidDataException($"Tensor '{name}' appears twice.");
        if (tensors.Count == 0) throw new FileNotFoundException($"No safetensors found in {directory}.");
        return tensors;
    }

    /// <summary>Every tensor of one safetensors file, validating the header layout strictly.</summary>
    public static Dictionary<string, RefTensor> ReadFile(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: too short.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8)) throw new InvalidDataException($"{path}: header length {headerLength} past end of file.");
        int dataStart = 8 + (int)headerLength;
        string headerText = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        using var doc = JsonDocument.Parse(headerText);

        var result = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        var spans = new List<(long Begin, long End)>();
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (property.Name == "__metadata__") continue;
            var value = property.Value;
            string dtype = value.GetProperty("dtype").GetString()!;
            long[] shape = value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long[] offsets = value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"{path}: bad data_offsets for '{property.Name}'.");
            long elements = shape.Aggregate(1L, (a, d) => a * d);
            if (elements * ElementSize(dtype) != offsets[1] - offsets[0])
                throw new InvalidDataException($"{path}: '{property.Name}' {dtype} [{string.Join(",", shape)}] does not fit {offsets[1] - offsets[0]} bytes.");
            byte[] data = bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0])).ToArray();
            result.Add(property.Name, new RefTensor(property.Name, dtype, shape, data));
            spans.Add((offsets[0], offsets[1]));
        }

        // The data section must be covered exactly, without holes or overlaps.
        spans.Sort();
        long cursor = 0;
        foreach (var (begin, end) in spans)
        {
            if (begin != cursor) throw new InvalidDataException($"{path}: data section has a hole or overlap at byte {cursor}.");
            cursor = end;
        }
        if (dataStart + cursor != bytes.Length) throw new InvalidDataException($"{path}: {bytes.Length - dataStart - cursor} trailing bytes.");
        return result;
    }

    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "F8_E4M3" or "F8_E5M2" or "I8" or "U8" or "BOOL" => 1,
        _ => throw new InvalidDataException($"Unknown dtype '{dtype}'."),
    };
}

/// <summary>Independent scalar decoders for the float reference (all results in double).</summary>
public static class RefDecode
{
    public static double Bf16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    public static double F16(ushort bits)
    {
        int sign = bits >> 15, exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
        double magnitude = exponent switch
        {
            0 => Math.ScaleB(mantissa, -24),
            0x1F => mantissa == 0 ? double.PositiveInfinity : double.NaN,
            _ => Math.ScaleB(1024 + mantissa, exponent - 25),
        };
        return sign == 1 ? -magnitude : magnitude;
    }

    /// <summary>FP8 E4M3FN: bias 7, 3 mantissa bits, subnormals, S.1111.111 is NaN, no infinities.</summary>
    public static double Fp8E4M3(byte code)
    {
        int sign = code >> 7, exponent = (code >> 3) & 0xF, mantissa = code & 7;
        if (exponent == 0xF && mantissa == 7) return double.NaN;
        double magnitude = exponent == 0 ? Math.ScaleB(mantissa, -9) : Math.ScaleB(8 + mantissa, exponent - 10);
        return sign == 1 ? -magnitude : magnitude;
    }

    /// <summary>Any float dtype to double, element by element.</summary>
    public static double[] Floats(RefTensor t)
    {
        var result = new double[t.ElementCount];
        ReadOnlySpan<byte> d = t.Data;
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = t.DType switch
            {
                "F64" => BinaryPrimitives.ReadDoubleLittleEndian(d[(8 * i)..]),
                "F32" => BinaryPrimitives.ReadSingleLittleEndian(d[(4 * i)..]),
                "F16" => F16(BinaryPrimitives.ReadUInt16LittleEndian(d[(2 * i)..])),
                "BF16" => Bf16(BinaryPrimitives.ReadUInt16LittleEndian(d[(2 * i)..])),
                "F8_E4M3" => Fp8E4M3(d[i]),
                _ => throw new InvalidDataException($"'{t.Name}': {t.DType} is not a float type."),
            };
        }
        return result;
    }

    /// <summary>Any integer dtype to long.</summary>
    public static long[] Integers(RefTensor t)
    {
        var result = new long[t.ElementCount];
        ReadOnlySpan<byte> d = t.Data;
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = t.DType switch
            {
                "I64" => BinaryPrimitives.ReadInt64LittleEndian(d[(8 * i)..]),
                "I32" => BinaryPrimitives.ReadInt32LittleEndian(d[(4 * i)..]),
                "U32" => BinaryPrimitives.ReadUInt32LittleEndian(d[(4 * i)..]),
                "I16" => BinaryPrimitives.ReadInt16LittleEndian(d[(2 * i)..]),
                "I8" => (sbyte)d[i],
                "U8" => d[i],
                _ => throw new InvalidDataException($"'{t.Name}': {t.DType} is not an integer type."),
            };
        }
        return result;
    }

    /// <summary>
    /// DeepSeek block FP8: w[i, j] = fp8(W[i, j]) * S[i / bm, j / bn]. The scale grid must be exactly ceil(M/bm) x ceil(N/bn).
    /// </summary>
    public static double[] Fp8Block(RefTensor weight, RefTensor scaleInv, int blockRows, int blockCols)
    {
        if (weight.Shape.Length != 2 || scaleInv.Shape.Length != 2) throw new InvalidDataException($"'{weight.Name}': FP8 block weight must be 2-D.");
        int rows = (int)weight.Shape[0], cols = (int)weight.Shape[1];
        int sr = (int)scaleInv.Shape[0], sc = (int)scaleInv.Shape[1];
        if (sr != (rows + blockRows - 1) / blockRows || sc != (cols + blockCols - 1) / blockCols)
            throw new InvalidDataException($"'{scaleInv.Name}' is [{sr},{sc}], expected ceil([{rows},{cols}] / [{blockRows},{blockCols}]).");
        double[] codes = Floats(weight);
        double[] scales = Floats(scaleInv);
        var result = new double[codes.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                result[i * cols + j] = codes[i * cols + j] * scales[(i / blockRows) * sc + j / blockCols];
        return result;
    }

    /// <summary>
    /// compressed-tensors pack-quantized INT4: nibble k of int32 word w holds column 8w + k (least-significant first) as q + 8;
    /// w[r, c] = (nibble - 8) * scale[r, c / group].
    /// </summary>
    public static double[] Int4Packed(RefTensor packed, RefTensor scale, RefTensor shape, int groupSize, out int rows, out int cols)
    {
        long[] dims = Integers(shape);
        if (dims.Length != 2) throw new InvalidDataException($"'{shape.Name}' must hold 2 values.");
        rows = (int)dims[0];
        cols = (int)dims[1];
        int words = (cols + 7) / 8, groups = (cols + groupSize - 1) / groupSize;
        if (packed.DType != "I32" || packed.Shape.Length != 2 || packed.Shape[0] != rows || packed.Shape[1] != words)
            throw new InvalidDataException($"'{packed.Name}' is {packed.DType} [{string.Join(",", packed.Shape)}], expected I32 [{rows},{words}].");
        if (scale.Shape.Length != 2 || scale.Shape[0] != rows || scale.Shape[1] != groups)
            throw new InvalidDataException($"'{scale.Name}' is [{string.Join(",", scale.Shape)}], expected [{rows},{groups}] for group size {groupSize}.");
        long[] packedWords = Integers(packed);
        double[] scales = Floats(scale);
        var result = new double[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                uint word = unchecked((uint)packedWords[r * words + c / 8]);
                int q = (int)((word >> (4 * (c % 8))) & 0xF) - 8;
                result[r * cols + c] = q * scales[r * groups + c / groupSize];
            }
        return result;
    }
}
