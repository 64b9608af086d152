using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;
using KimiSharp.Model.Tests.Reference;

namespace KimiSharp.Model.Tests;

/// <summary>Loading real and broken checkpoint folders: every failure is a clear message naming file and tensor.</summary>
public sealed class CheckpointLoadingTests
{
    private static string Golden(string name) => Path.Combine(GoldenCase.Root, name);

    private static Exception LoadFails(string dir) =>
        Assert.ThrowsAny<Exception>(() => { using var _ = KimiModel.Load(dir); });

    [Fact]
    public void Sharded_checkpoint_loads_and_gives_the_same_logits()
    {
        var golden = GoldenCase.Load("tiny-a-int4");
        using var dir = new TempModelDir();
        File.Copy(Path.Combine(golden.Directory, "config.json"), dir.File("config.json"));
        var writer = new SafetensorsWriter();
        using (var source = SafetensorsFile.Open(Path.Combine(golden.Directory, "model.safetensors")))
            foreach (var (name, info) in source.Tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
                writer.Add(name, info.DType, info.Shape, source.Bytes(info));
        var shards = writer.SaveSharded(dir.Path, maxShardBytes: 64 * 1024);
        Assert.True(shards.Count >= 3, $"expected several shards, got {shards.Count}");
        Assert.True(File.Exists(dir.File(CheckpointTensors.IndexFileName)));

        using var model = KimiModel.Load(dir.Path);
        Assert.Equal(shards.Count, model.CheckpointFiles.Count);
        var logits = model.Logits(golden.Tokens);
        Assert.True(golden.RelativeError(Array.ConvertAll(logits, v => (double)v)) <= GoldenParityTests.Tolerance);
    }

    [Fact]
    public void Index_naming_a_missing_shard_is_an_error_naming_it()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        File.WriteAllText(dir.File(CheckpointTensors.IndexFileName),
            """{"metadata":{},"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors"}}""");
        var e = LoadFails(dir.Path);
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);
    }

    [Fact]
    public void Truncated_file_is_an_error_naming_file_and_tensor()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        string file = dir.File("model.safetensors");
        using (var stream = new FileStream(file, FileMode.Open)) stream.SetLength(stream.Length - 1000);
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("tensor '", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void File_cut_inside_its_header_is_an_error()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        using (var stream = new FileStream(dir.File("model.safetensors"), FileMode.Open)) stream.SetLength(100);
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("header length", e.Message);
    }

    [Fact]
    public void Header_that_lies_about_offsets_is_an_error_naming_the_tensor()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        dir.EditHeader("model.safetensors", h =>
        {
            var offsets = h["model.norm.weight"]!["data_offsets"]!.AsArray();
            offsets[1] = offsets[1]!.GetValue<long>() + 2; // claims more bytes than BF16[64] holds
        });
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("data_offsets", e.Message);
    }

    [Fact]
    public void Overlapping_tensors_are_an_error()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        dir.EditHeader("model.safetensors", h =>
        {
            var a = h["model.norm.weight"]!["data_offsets"]!.AsArray();
            var b = h["model.layers.0.input_layernorm.weight"]!["data_offsets"]!.AsArray();
            b[0] = a[0]!.GetValue<long>();
            b[1] = a[1]!.GetValue<long>();
        });
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void Malformed_header_json_and_unknown_dtype_are_errors()
    {
        using (var dir = new TempModelDir(Golden("tiny-a-bf16")))
        {
            byte[] bytes = File.ReadAllBytes(dir.File("model.safetensors"));
            bytes[8] = (byte)'#';
            File.WriteAllBytes(dir.File("model.safetensors"), bytes);
            Assert.Contains("not valid JSON", LoadFails(dir.Path).Message);
        }
        using (var dir = new TempModelDir(Golden("tiny-a-bf16")))
        {
            dir.EditHeader("model.safetensors", h => h["model.norm.weight"]!["dtype"] = "C64");
            var e = LoadFails(dir.Path);
            Assert.Contains("model.norm.weight", e.Message);
            Assert.Contains("C64", e.Message);
        }
    }

    [Fact]
    public void Missing_tensor_is_an_error_naming_it()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        dir.EditHeader("model.safetensors", h => h.Remove("model.layers.2.self_attn.kv_b_proj.weight"));
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("missing tensor 'model.layers.2.self_attn.kv_b_proj.weight'", e.Message);
    }

    [Fact]
    public void Shape_that_disagrees_with_the_config_is_an_error_naming_file_and_tensor()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        dir.EditConfig(c => c["intermediate_size"] = 96);
        var e = Assert.IsType<CheckpointFormatException>(LoadFails(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("[128, 64]", e.Message);
        Assert.Contains("[96, 64]", e.Message);
    }

    [Fact]
    public void Fp8_weight_without_its_scale_is_an_error()
    {
        using var dir = new TempModelDir(Golden("tiny-a-fp8"));
        dir.EditHeader("model.safetensors", h => h.Remove("model.layers.1.self_attn.o_proj.weight_scale_inv"));
        var e = LoadFails(dir.Path);
        Assert.Contains("model.layers.1.self_attn.o_proj.weight_scale_inv", e.Message);
    }

    [Fact]
    public void Int4_scale_of_the_wrong_shape_or_declared_shape_is_an_error()
    {
        using (var dir = new TempModelDir(Golden("tiny-a-int4")))
        {
            dir.EditHeader("model.safetensors", h =>
            {
                var t = h["model.layers.1.mlp.experts.0.gate_proj.weight_scale"]!;
                t["shape"] = new JsonArray(64, 1); // same byte count, wrong layout
            });
            var e = LoadFails(dir.Path);
            Assert.Contains("model.layers.1.mlp.experts.0.gate_proj.weight_scale", e.Message);
        }
        using (var dir = new TempModelDir(Golden("tiny-a-int4")))
        {
            // Quantize nothing: the packed experts are then unexpected.
            dir.EditConfig(c => c["quantization_config"]!["ignore"]!.AsArray().Add("re:.*experts.*"));
            var e = LoadFails(dir.Path);
            Assert.Contains("weight_packed", e.Message);
            Assert.Contains("ignore", e.Message);
        }
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_and_prompts_over_the_context_are_rejected()
    {
        using var dir = new TempModelDir(Golden("tiny-a-bf16"));
        dir.EditConfig(c => c["max_position_embeddings"] = 16);
        using var model = KimiModel.Load(dir.Path);
        var logits = new float[32 * model.Config.VocabSize];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([1, 512], model.CreateCache(), logits));
        Assert.Contains("vocab", e.Message);
        var cache = model.CreateCache();
        var over = Assert.Throws<Layers.ContextLengthExceededException>(() => model.Forward(new int[17], cache, logits));
        Assert.Contains("context limit of 16", over.Message);
        Assert.Equal(0, cache.Length); // nothing half-appended
        model.Forward(new int[16], cache, logits);
        Assert.Throws<Layers.ContextLengthExceededException>(() => model.Forward([3], cache, logits));
    }

    /// <summary>
    /// A 16B-parameter BF16 tensor (32 GB, sparse on disk) opens without being read: mapping touches only the
    /// header and the pages a kernel reads, so resident memory stays far below the file size.
    /// </summary>
    [Fact]
    public unsafe void Checkpoint_larger_than_memory_opens_without_being_read()
    {
        using var dir = new TempModelDir();
        string path = dir.File("model.safetensors");
        const long rows = 131072, cols = 131072; // 2^34 ≈ 17.2B BF16 parameters
        long dataBytes = rows * cols * 2;
        string header = $"{{\"huge.weight\":{{\"dtype\":\"BF16\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{dataBytes}]}}}}";
        byte[] headerBytes = Encoding.UTF8.GetBytes(header.PadRight((header.Length + 7) / 8 * 8));
        using (var stream = new FileStream(path, FileMode.Create))
        {
            stream.Write(BitConverter.GetBytes((long)headerBytes.Length));
            stream.Write(headerBytes);
            stream.SetLength(8 + headerBytes.Length + dataBytes); // sparse: no blocks written
            stream.Position = 8 + headerBytes.Length + dataBytes - 2;
            stream.Write(BitConverter.GetBytes((ushort)0x3F80)); // last element = bf16 1.0
        }
        long before = CurrentRss();
        using var file = SafetensorsFile.Open(path);
        var info = file.Tensors["huge.weight"];
        Assert.Equal(rows * cols, info.ElementCount);
        byte* p = file.Pointer(info);
        var w = Kernels.WeightMatrix.FromBFloat16((ushort*)p, (int)rows, (int)cols);
        var lastRow = new float[cols];
        Kernels.MatrixKernels.DecodeRow(w, (int)rows - 1, lastRow);
        Assert.Equal(1f, lastRow[^1]);
        Assert.Equal(0f, lastRow[0]);
        long grown = CurrentRss() - before;
        Assert.True(grown < 256L << 20, $"resident memory grew by {grown >> 20} MiB opening a {dataBytes >> 30} GiB checkpoint");
    }

    private static long CurrentRss()
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.WorkingSet64;
    }
}
