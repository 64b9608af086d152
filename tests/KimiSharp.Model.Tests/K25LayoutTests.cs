using System.Text.Json.Nodes;
using KimiSharp.Kernels;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;
using KimiSharp.Model.Tests.Reference;

namespace KimiSharp.Model.Tests;

/// <summary>
/// A Kimi K2.5 checkpoint in the released layout (config under text_config, tensors under <c>language_model.</c>, a
/// vision tower beside them) loads exactly like the same weights in the K2 layout.
/// </summary>
public sealed class K25LayoutTests
{
    private static readonly int[] s_tokens = [5, 17, 3, 250, 42, 9, 77];

    private static RandomCheckpointOptions Options(CheckpointFormat format, bool int4All = false) => new()
    {
        Format = format, Int4AllLinears = int4All, QLoraRank = 24, NRoutedExperts = 4, NumExpertsPerTok = 2, Seed = 99,
    };

    private static float[] Logits(string directory, out ModelConfig config, out WeightFormat lmHead, out WeightFormat expert)
    {
        using var model = KimiModel.Load(directory);
        config = model.Config;
        lmHead = model.LmHead.Format;
        expert = model.Layers[1].Moe!.Experts[0].Gate.Format;
        return model.Logits(s_tokens);
    }

    public static TheoryData<CheckpointFormat, bool> Formats() => new()
    {
        { CheckpointFormat.Bf16, false },
        { CheckpointFormat.Fp8, false },
        { CheckpointFormat.Int4, false },
        { CheckpointFormat.Int4, true },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void K25_layout_gives_bit_identical_logits_to_the_same_weights_in_the_K2_layout(CheckpointFormat format, bool int4All)
    {
        using var k2 = new TempModelDir();
        using var k25 = new TempModelDir();
        RandomCheckpoint.Write(k2.Path, Options(format, int4All));
        RandomCheckpoint.Write(k25.Path, Options(format, int4All) with { Layout = CheckpointLayout.K25 });

        // The K2.5 folder really is in the released layout: every tensor prefixed, the config nested.
        using (var tensors = CheckpointTensors.Open(k25.Path))
        {
            Assert.All(tensors.Names, name => Assert.StartsWith("language_model.", name, StringComparison.Ordinal));
            Assert.True(tensors.Contains("language_model.model.embed_tokens.weight"));
            Assert.True(tensors.Contains("language_model.lm_head.weight") || tensors.Contains("language_model.lm_head.weight_packed"));
        }
        var written = JsonNode.Parse(File.ReadAllText(k25.File("config.json")))!.AsObject();
        Assert.Equal("kimi_k25", (string?)written["model_type"]);
        Assert.Equal("KimiK25ForConditionalGeneration", (string?)written["architectures"]![0]);
        Assert.Null(written["hidden_size"]);
        Assert.Equal(64, (int?)written["text_config"]!["hidden_size"]);
        Assert.Equal(format is CheckpointFormat.Bf16, written["text_config"]!["quantization_config"] is null);

        var expected = Logits(k2.Path, out _, out var k2Head, out var k2Expert);
        var actual = Logits(k25.Path, out var config, out var head, out var expert);
        Assert.Equal(expected, actual);
        Assert.Equal((k2Head, k2Expert), (head, expert));
        Assert.Equal((ModelConfig.K25Architecture, ModelConfig.K25TensorPrefix), (config.Architecture, config.TensorPrefix));
        // The released ignore list names "lm_head" unprefixed; it must still keep language_model.lm_head unquantized.
        Assert.Equal(int4All ? WeightFormat.PackedInt : WeightFormat.BF16, head);
        Assert.Equal(format switch { CheckpointFormat.Int4 => WeightFormat.PackedInt, CheckpointFormat.Fp8 => WeightFormat.Fp8Block, _ => WeightFormat.BF16 }, expert);
    }

    /// <summary>Renames every tensor of <paramref name="source"/> to the K2.5 layout and adds vision tensors the text model must skip.</summary>
    private static void WriteAsK25(string source, string destination, Action<JsonObject>? editQuantization = null)
    {
        var writer = new SafetensorsWriter();
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
            foreach (var (name, info) in file.Tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
                writer.Add("language_model." + name, info.DType, info.Shape, file.Bytes(info));
        // Vision tensors in a shard of their own, some of them with shapes no text tensor has: the text loader must not read them.
        var vision = new SafetensorsWriter();
        vision.AddF32("vision_tower.patch_embed.proj.weight", [4, 3, 2, 2], new float[48]);
        vision.AddF32("vision_tower.encoder.blocks.0.wqkv.weight", [12, 4], new float[48]);
        vision.AddF32("mm_projector.proj.0.weight", [16, 16], new float[256]);
        writer.Save(Path.Combine(destination, "model-00001-of-00002.safetensors"));
        vision.Save(Path.Combine(destination, "model-00002-of-00002.safetensors"));
        var map = new JsonObject();
        foreach (string name in writer.Names) map[name] = "model-00001-of-00002.safetensors";
        foreach (string name in vision.Names) map[name] = "model-00002-of-00002.safetensors";
        File.WriteAllText(Path.Combine(destination, CheckpointTensors.IndexFileName), new JsonObject { ["weight_map"] = map }.ToJsonString());

        var text = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        if (text["quantization_config"] is JsonObject quantization) editQuantization?.Invoke(quantization);
        var wrapper = new JsonObject
        {
            ["architectures"] = new JsonArray("KimiK25ForConditionalGeneration"),
            ["model_type"] = "kimi_k25",
            ["media_placeholder_token_id"] = 7,
            ["ignore_index"] = -100,
            ["use_unified_vision_chunk"] = true,
            ["video_placeholder"] = "<|kimi_k25_video_placeholder|>",
            ["text_config"] = text,
            ["vision_config"] = new JsonObject { ["vt_hidden_size"] = 4, ["patch_size"] = 2 },
        };
        File.WriteAllText(Path.Combine(destination, "config.json"), wrapper.ToJsonString());
    }

    [Fact]
    public void Golden_int4_checkpoint_renamed_to_the_K25_layout_keeps_its_reference_logits()
    {
        var golden = GoldenCase.Load("tiny-a-int4");
        using var dir = new TempModelDir();
        WriteAsK25(golden.Directory, dir.Path);

        using var original = KimiModel.Load(golden.Directory);
        using var model = KimiModel.Load(dir.Path);
        Assert.True(model.Config.HasVisionConfig);
        Assert.Empty(model.Config.UnknownKeys);
        var logits = model.Logits(golden.Tokens);
        Assert.Equal(original.Logits(golden.Tokens), logits);
        // The reference logits were computed outside the engine.
        Assert.True(golden.RelativeError(Array.ConvertAll(logits, v => (double)v)) <= GoldenParityTests.Tolerance);
    }

    [Fact]
    public void An_ignore_list_naming_the_prefixed_modules_works_too()
    {
        var golden = GoldenCase.Load("tiny-a-int4");
        using var dir = new TempModelDir();
        WriteAsK25(golden.Directory, dir.Path, q =>
        {
            var ignore = q["ignore"]!.AsArray();
            Assert.Contains(ignore, p => (string?)p == "lm_head");
            var replaced = new JsonArray();
            foreach (var pattern in ignore) replaced.Add((string?)pattern == "lm_head" ? "language_model.lm_head" : (string?)pattern);
            q["ignore"] = replaced;
        });
        using var original = KimiModel.Load(golden.Directory);
        using var model = KimiModel.Load(dir.Path);
        Assert.Equal(WeightFormat.BF16, model.LmHead.Format);
        Assert.Equal(original.Logits(golden.Tokens), model.Logits(golden.Tokens));
    }

    [Fact]
    public void Weights_in_one_layout_under_a_config_of_the_other_are_an_error_naming_both()
    {
        using var k2 = new TempModelDir();
        RandomCheckpoint.Write(k2.Path, Options(CheckpointFormat.Bf16));
        using var mixed = new TempModelDir(copyFrom: k2.Path);
        File.WriteAllBytes(mixed.File("config.json"), RandomCheckpoint.BuildConfigJson(Options(CheckpointFormat.Bf16) with { Layout = CheckpointLayout.K25 }));
        var e = Assert.Throws<CheckpointFormatException>(() => { using var _ = KimiModel.Load(mixed.Path); });
        Assert.Contains("'language_model.model.embed_tokens.weight'", e.Message);
        Assert.Contains("'model.embed_tokens.weight' is there", e.Message);

        using var reverse = new TempModelDir();
        RandomCheckpoint.Write(reverse.Path, Options(CheckpointFormat.Bf16) with { Layout = CheckpointLayout.K25 });
        File.WriteAllBytes(reverse.File("config.json"), RandomCheckpoint.BuildConfigJson(Options(CheckpointFormat.Bf16)));
        e = Assert.Throws<CheckpointFormatException>(() => { using var _ = KimiModel.Load(reverse.Path); });
        Assert.Contains("'language_model.model.embed_tokens.weight' is there", e.Message);
    }

    [Fact]
    public void A_missing_quantized_tensor_is_named_as_stored()
    {
        using var dir = new TempModelDir();
        RandomCheckpoint.Write(dir.Path, Options(CheckpointFormat.Int4) with { Layout = CheckpointLayout.K25 });
        const string packed = "language_model.model.layers.1.mlp.experts.0.gate_proj.weight_packed";
        dir.EditHeader("model.safetensors", h =>
        {
            var entry = h[packed];
            h.Remove(packed);
            h[packed + "_renamed"] = entry;
        });
        var e = Assert.ThrowsAny<Exception>(() => { using var _ = KimiModel.Load(dir.Path); });
        Assert.Contains("language_model.model.layers.1.mlp.experts.0.gate_proj.weight_packed", e.Message);
    }

    [Theory]
    [InlineData(QuantizationTarget.Int4Experts)]
    [InlineData(QuantizationTarget.Fp8Block)]
    public void Post_training_quantization_of_a_K25_folder_equals_that_of_the_K2_folder(QuantizationTarget target)
    {
        using var k2 = new TempModelDir();
        using var k25 = new TempModelDir();
        RandomCheckpoint.Write(k2.Path, Options(CheckpointFormat.Bf16));
        RandomCheckpoint.Write(k25.Path, Options(CheckpointFormat.Bf16) with { Layout = CheckpointLayout.K25 });
        using var k2Out = new TempModelDir();
        using var k25Out = new TempModelDir();
        int count = PostTrainingQuantizer.Quantize(k2.Path, k2Out.Path, target);
        Assert.Equal(count, PostTrainingQuantizer.Quantize(k25.Path, k25Out.Path, target));
        Assert.True(count > 0);

        // quantization_config goes into text_config, where K2.5 keeps it.
        var config = JsonNode.Parse(File.ReadAllText(k25Out.File("config.json")))!.AsObject();
        Assert.Null(config["quantization_config"]);
        Assert.NotNull(config["text_config"]!["quantization_config"]);
        var expected = Logits(k2Out.Path, out _, out _, out var k2Expert);
        Assert.Equal(expected, Logits(k25Out.Path, out _, out _, out var expert));
        Assert.Equal(k2Expert, expert);
        Assert.NotEqual(WeightFormat.BF16, expert);
        Assert.Contains("already quantized", Assert.Throws<ArgumentException>(() => PostTrainingQuantizer.Quantize(k25Out.Path, k2.Path + "-again", target)).Message);
    }
}
