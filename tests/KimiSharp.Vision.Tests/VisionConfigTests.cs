using System.Text.Json.Nodes;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

public sealed class VisionConfigTests
{
    // The vision part of moonshotai/Kimi-K2.5's config.json, as published.
    private const string K25 = """
        {"architectures": ["KimiK25ForConditionalGeneration"], "model_type": "kimi_k25", "media_placeholder_token_id": 163605,
         "text_config": {"hidden_size": 7168},
         "vision_config": {"init_pos_emb_height": 64, "init_pos_emb_time": 4, "init_pos_emb_width": 64, "merge_kernel_size": [2, 2],
           "merge_type": "sd2_tpool", "mm_hidden_size": 1152, "mm_projector_type": "patchmerger", "model_type": "", "patch_size": 14,
           "pos_emb_type": "divided_fixed", "projector_hidden_act": "gelu", "projector_ln_eps": 1e-05, "text_hidden_size": 7168,
           "video_attn_type": "spatial_temporal", "vt_hidden_size": 1152, "vt_intermediate_size": 4304, "vt_num_attention_heads": 16,
           "vt_num_hidden_layers": 27}}
        """;

    private static string With(Action<JsonObject> edit)
    {
        var root = JsonNode.Parse(K25)!.AsObject();
        edit(root["vision_config"]!.AsObject());
        return root.ToJsonString();
    }

    [Fact]
    public void ParsesTheK25VisionConfig()
    {
        var c = VisionConfig.Parse(K25);
        Assert.Equal((14, 1152, 4304, 27, 16, 72), (c.PatchSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.HeadDim));
        Assert.Equal((64, 64, 4, 2, 2), (c.PosEmbHeight, c.PosEmbWidth, c.PosEmbTime, c.MergeKernelHeight, c.MergeKernelWidth));
        Assert.Equal((7168, 163605, 1e-5), (c.TextHiddenSize, c.MediaPlaceholderTokenId, c.ProjectorLayerNormEps));
        // Without text_hidden_size the projector width comes from text_config.hidden_size.
        Assert.Equal(7168, VisionConfig.Parse(With(v => v.Remove("text_hidden_size"))).TextHiddenSize);
    }

    [Theory]
    [InlineData("vt_num_attention_heads", "5", "not divisible")]
    [InlineData("vt_num_attention_heads", "64", "multiple of 4")]
    [InlineData("vt_hidden_size", "-1", "vt_hidden_size")]
    [InlineData("vt_hidden_size", "\"big\"", "vt_hidden_size must be an integer")]
    [InlineData("pos_emb_type", "\"learned\"", "pos_emb_type")]
    [InlineData("merge_type", "\"sd2\"", "merge_type")]
    [InlineData("mm_projector_type", "\"patchmergerv2\"", "mm_projector_type")]
    [InlineData("norm_type", "\"rmsnorm\"", "norm_type")]
    [InlineData("attn_bias", "false", "attn_bias")]
    [InlineData("merge_kernel_size", "[2]", "merge_kernel_size")]
    [InlineData("projector_ln_eps", "0", "projector_ln_eps")]
    [InlineData("mm_hidden_size", "1024", "mm_hidden_size")]
    [InlineData("qkv_hidden_size", "1536", "qkv_hidden_size")]
    public void BadValuesAreNamed(string key, string value, string expected)
    {
        var e = Assert.Throws<VisionConfigException>(() => VisionConfig.Parse(With(v => v[key] = JsonNode.Parse(value))));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingVisionConfigOrTextWidthIsExplained()
    {
        Assert.Contains("no vision_config", Assert.Throws<VisionConfigException>(() => VisionConfig.Parse("""{"hidden_size": 64}""")).Message);
        var noWidth = JsonNode.Parse(K25)!.AsObject();
        noWidth.Remove("text_config");
        noWidth["vision_config"]!.AsObject().Remove("text_hidden_size");
        Assert.Contains("text_hidden_size", Assert.Throws<VisionConfigException>(() => VisionConfig.Parse(noWidth.ToJsonString())).Message);
        Assert.Contains("not valid JSON", Assert.Throws<VisionConfigException>(() => VisionConfig.Parse("{")).Message);
    }

    [Fact]
    public void PreprocessorConfigIsReadAndChecked()
    {
        var media = MediaProcessingConfig.Parse("""{"media_proc_cfg": {"in_patch_limit": 4096, "patch_limit_on_one_side": 256, "merge_kernel_size": 2, "patch_size": 14, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "fixed_output_tokens": null}}""");
        Assert.Equal((4096, 256), (media.InPatchLimit, media.PatchLimitOnOneSide));
        Assert.Contains("fixed_output_tokens", Assert.Throws<VisionConfigException>(() => MediaProcessingConfig.Parse("""{"media_proc_cfg": {"fixed_output_tokens": 64}}""")).Message);
        Assert.Contains("image_std", Assert.Throws<VisionConfigException>(() => MediaProcessingConfig.Parse("""{"image_std": [0.5, 0, 0.5]}""")).Message);
        Assert.Contains("patch_size", Assert.Throws<VisionConfigException>(() => new MediaProcessingConfig { PatchSize = 16 }.CheckAgainst(VisionConfig.Parse(K25))).Message);
    }

    [Fact]
    public void MissingAndMisShapedTensorsAreEachNamed()
    {
        using var model = new TinyVisionModel(SafetensorsDType.BF16);
        // One block more than the file holds: every tensor of block 2 is missing.
        var deeper = model.Config with { NumHiddenLayers = 3 };
        var missing = Assert.Throws<CheckpointFormatException>(() => VisionWeights.Load(model.Directory, deeper));
        Assert.Contains("missing tensor 'vision_tower.encoder.blocks.2.norm0.weight'", missing.Message);
        Assert.Contains("missing tensor 'vision_tower.encoder.blocks.2.mlp.fc1.bias'", missing.Message);
        // A wider MLP than stored: both fc layers of both blocks are mis-shaped, and say so with both shapes.
        var wider = model.Config with { IntermediateSize = 40 };
        var shaped = Assert.Throws<CheckpointFormatException>(() => VisionWeights.Load(model.Directory, wider));
        Assert.Contains("'vision_tower.encoder.blocks.0.mlp.fc0.weight' has shape [48, 32] but vision_config implies [40, 32]", shaped.Message);
        Assert.Contains("'vision_tower.encoder.blocks.1.mlp.fc1.weight' has shape [32, 48]", shaped.Message);
        // A different text width breaks only the projector's last layer.
        var text = Assert.Throws<CheckpointFormatException>(() => VisionWeights.Load(model.Directory, model.Config with { TextHiddenSize = 16 }));
        Assert.Contains("mm_projector.proj.2.weight", text.Message);
        Assert.DoesNotContain("vision_tower", text.Message);
    }
}
