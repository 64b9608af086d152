using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Kernels;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Model.Checkpoints;

/// <summary>Target format of <see cref="PostTrainingQuantizer"/>.</summary>
public enum QuantizationTarget
{
    /// <summary>K2 Thinking: routed experts INT4 compressed-tensors pack-quantized (group 32), everything else as it was.</summary>
    Int4Experts,
    /// <summary>DeepSeek-V3 / K2 Instruct: every decoder linear FP8 E4M3 with 128×128 block scales.</summary>
    Fp8Block,
    /// <summary>No quantization: every F32/F16 tensor to BF16 (round to nearest even), the expert-bias vectors kept F32 as in K2's checkpoints.</summary>
    Bf16,
}

/// <summary>
/// Quantizes an unquantized (BF16/F16/F32) K2-family checkpoint into the real serving formats, copying the tokenizer
/// files, so the result loads like a downloaded K2 Thinking or K2 Instruct folder.
/// </summary>
public static partial class PostTrainingQuantizer
{
    [GeneratedRegex(@"^model\.layers\.\d+\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$")]
    private static partial Regex RoutedExpert();

    [GeneratedRegex(@"^model\.layers\.\d+\.(self_attn\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj)|mlp\.experts\.\d+\.(gate|up|down)_proj|mlp\.shared_experts\.(gate|up|down)_proj)\.weight$")]
    private static partial Regex DecoderLinear();

    /// <summary>Writes the quantized copy of <paramref name="source"/> into <paramref name="destination"/>; returns tensors quantized.</summary>
    public static unsafe int Quantize(string source, string destination, QuantizationTarget target)
    {
        if (Path.GetFullPath(source) == Path.GetFullPath(destination)) throw new ArgumentException("write the quantized model to a new folder");
        var configNode = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        // A K2.5 folder keeps the language model's config (and its quantization_config) in text_config and its
        // tensors under language_model.; the vision tower beside them is copied as it is.
        var textNode = configNode["model_type"]?.GetValueKind() == JsonValueKind.String && (string?)configNode["model_type"] == Configuration.ModelConfig.K25ModelType
            && configNode["text_config"] is JsonObject nested ? nested : configNode;
        string tensorPrefix = ReferenceEquals(textNode, configNode) ? "" : Configuration.ModelConfig.K25TensorPrefix;
        if (configNode["quantization_config"] is not null || textNode["quantization_config"] is not null)
            throw new ArgumentException($"{source} is already quantized (config.json has quantization_config)");
        using var tensors = CheckpointTensors.Open(source);
        var writer = new SafetensorsWriter();
        int quantized = 0;
        foreach (string name in tensors.Names.Order(StringComparer.Ordinal))
        {
            var info = tensors.Info(name);
            if (target == QuantizationTarget.Bf16)
            {
                if (info.DType is SafetensorsDType.F32 or SafetensorsDType.F16 && !name.EndsWith("e_score_correction_bias", StringComparison.Ordinal))
                {
                    writer.Add(name, SafetensorsDType.BF16, info.Shape, ToBFloat16(tensors.Pointer(name), info));
                    quantized++;
                }
                else writer.Add(name, info.DType, info.Shape, new ReadOnlySpan<byte>(tensors.Pointer(name), checked((int)info.ByteLength)));
                continue;
            }
            bool pick = info.Shape.Length == 2 && name.StartsWith(tensorPrefix, StringComparison.Ordinal)
                && (target == QuantizationTarget.Int4Experts ? RoutedExpert() : DecoderLinear()).IsMatch(name[tensorPrefix.Length..]);
            if (!pick)
            {
                writer.Add(name, info.DType, info.Shape, new ReadOnlySpan<byte>(tensors.Pointer(name), checked((int)info.ByteLength)));
                continue;
            }
            int rows = checked((int)info.Shape[0]), cols = checked((int)info.Shape[1]);
            var weight = info.DType switch
            {
                SafetensorsDType.BF16 => WeightMatrix.FromBFloat16((ushort*)tensors.Pointer(name), rows, cols),
                SafetensorsDType.F16 => WeightMatrix.FromFloat16((Half*)tensors.Pointer(name), rows, cols),
                SafetensorsDType.F32 => WeightMatrix.FromFloat32((float*)tensors.Pointer(name), rows, cols),
                _ => throw new CheckpointFormatException($"tensor '{name}' is {info.DType}; only BF16/F16/F32 weights can be quantized"),
            };
            var values = new float[(long)rows * cols];
            for (int r = 0; r < rows; r++) MatrixKernels.DecodeRow(weight, r, values.AsSpan(r * cols, cols));
            string prefix = name[..^".weight".Length];
            if (target == QuantizationTarget.Int4Experts) writer.AddInt4Packed(prefix, WeightEncoding.QuantizeInt4Packed(values, rows, cols, 32));
            else writer.AddFp8Block(prefix, WeightEncoding.QuantizeFp8Block(values, rows, cols));
            quantized++;
        }
        Directory.CreateDirectory(destination);
        writer.Save(Path.Combine(destination, "model.safetensors"));
        if (target == QuantizationTarget.Bf16) configNode["torch_dtype"] = "bfloat16";
        else textNode["quantization_config"] = target == QuantizationTarget.Int4Experts
            ? JsonNode.Parse("""
                {"quant_method":"compressed-tensors","format":"pack-quantized","quantization_status":"compressed",
                 "config_groups":{"group_0":{"targets":["Linear"],"input_activations":null,"output_activations":null,
                 "weights":{"num_bits":4,"type":"int","symmetric":true,"strategy":"group","group_size":32,"dynamic":false,"actorder":null}}},
                 "ignore":["lm_head","re:.*self_attn.*","re:.*shared_experts.*","re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]}
                """)
            : JsonNode.Parse("""{"quant_method":"fp8","fmt":"e4m3","activation_scheme":"dynamic","weight_block_size":[128,128]}""");
        File.WriteAllText(Path.Combine(destination, "config.json"), configNode.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (string file in new[] { "tiktoken.model", "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "preprocessor_config.json" })
            if (File.Exists(Path.Combine(source, file))) File.Copy(Path.Combine(source, file), Path.Combine(destination, file), overwrite: true);
        return quantized;
    }

    private static unsafe byte[] ToBFloat16(byte* source, TensorInfo info)
    {
        long count = info.ElementCount;
        var bytes = new byte[checked(count * 2)];
        fixed (byte* destination = bytes)
        {
            var output = (ushort*)destination;
            for (long i = 0; i < count; i++)
            {
                float value = info.DType == SafetensorsDType.F16 ? (float)((Half*)source)[i] : ((float*)source)[i];
                uint bits = BitConverter.SingleToUInt32Bits(value);
                output[i] = float.IsNaN(value) ? (ushort)0x7FC0 : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
            }
        }
        return bytes;
    }
}
