using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision;

/// <summary>
/// Random-weight K2.5 vision towers in the checkpoint's own names and layout, so tests and benchmarks need no download.
/// Weights are scaled so activations stay O(1) through the blocks (linear rows ~ N(0, 1/cols), norms near 1).
/// </summary>
public static class RandomVisionCheckpoint
{
    /// <summary>The file the vision tensors go to when they join a text checkpoint.</summary>
    public const string VisionFileName = "model-vision.safetensors";

    /// <summary>A tiny tower for tests: 2 blocks of width 32 (4 heads of 8), 14-pixel patches, a 4×6 position table.</summary>
    public static VisionConfig Tiny(int textHiddenSize = 24) => new()
    {
        PatchSize = 14,
        HiddenSize = 32,
        IntermediateSize = 48,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        PosEmbHeight = 4,
        PosEmbWidth = 6,
        PosEmbTime = 4,
        TextHiddenSize = textHiddenSize,
        MediaPlaceholderTokenId = 163605,
    };

    /// <summary>Adds every <c>vision_tower.*</c> and <c>mm_projector.*</c> tensor of <paramref name="config"/> to <paramref name="writer"/>.</summary>
    public static void AddTensors(SafetensorsWriter writer, VisionConfig config, SafetensorsDType dtype, int seed)
    {
        config.Validate();
        var random = new Random(seed);
        int d = config.HiddenSize, p = config.PatchSize, inter = config.IntermediateSize, merged = config.MergedWidth;
        void Matrix(string name, int rows, int cols, params long[] shape) =>
            writer.AddFloats(name, dtype, shape.Length > 0 ? shape : [rows, cols], Normal(random, (long)rows * cols, 1 / Math.Sqrt(cols), 0));
        void Vector(string name, int length, double std, double mean = 0) => writer.AddFloats(name, dtype, [length], Normal(random, length, std, mean));
        Matrix("vision_tower.patch_embed.proj.weight", d, 3 * p * p, d, 3, p, p);
        Vector("vision_tower.patch_embed.proj.bias", d, 0.1);
        writer.AddFloats("vision_tower.patch_embed.pos_emb.weight", dtype, [config.PosEmbHeight, config.PosEmbWidth, d],
            Normal(random, (long)config.PosEmbHeight * config.PosEmbWidth * d, 0.5, 0));
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string b = $"vision_tower.encoder.blocks.{i}.";
            Vector(b + "norm0.weight", d, 0.1, 1);
            Vector(b + "norm0.bias", d, 0.1);
            Matrix(b + "wqkv.weight", 3 * d, d);
            Vector(b + "wqkv.bias", 3 * d, 0.1);
            Matrix(b + "wo.weight", d, d);
            Vector(b + "wo.bias", d, 0.1);
            Vector(b + "norm1.weight", d, 0.1, 1);
            Vector(b + "norm1.bias", d, 0.1);
            Matrix(b + "mlp.fc0.weight", inter, d);
            Vector(b + "mlp.fc0.bias", inter, 0.1);
            Matrix(b + "mlp.fc1.weight", d, inter);
            Vector(b + "mlp.fc1.bias", d, 0.1);
        }
        Vector("vision_tower.encoder.final_layernorm.weight", d, 0.1, 1);
        Vector("vision_tower.encoder.final_layernorm.bias", d, 0.1);
        Vector("mm_projector.pre_norm.weight", d, 0.1, 1);
        Vector("mm_projector.pre_norm.bias", d, 0.1);
        Matrix("mm_projector.proj.0.weight", merged, merged);
        Vector("mm_projector.proj.0.bias", merged, 0.1);
        Matrix("mm_projector.proj.2.weight", config.TextHiddenSize, merged);
        Vector("mm_projector.proj.2.bias", config.TextHiddenSize, 0.1);
    }

    /// <summary>The <c>vision_config</c> object as K2.5's config.json spells it.</summary>
    public static JsonObject VisionConfigJson(VisionConfig c) => new()
    {
        ["init_pos_emb_height"] = c.PosEmbHeight,
        ["init_pos_emb_time"] = c.PosEmbTime,
        ["init_pos_emb_width"] = c.PosEmbWidth,
        ["merge_kernel_size"] = new JsonArray(c.MergeKernelHeight, c.MergeKernelWidth),
        ["merge_type"] = "sd2_tpool",
        ["mm_hidden_size"] = c.HiddenSize,
        ["mm_projector_type"] = "patchmerger",
        ["patch_size"] = c.PatchSize,
        ["pos_emb_type"] = "divided_fixed",
        ["projector_hidden_act"] = "gelu",
        ["projector_ln_eps"] = c.ProjectorLayerNormEps,
        ["text_hidden_size"] = c.TextHiddenSize,
        ["video_attn_type"] = "spatial_temporal",
        ["vt_hidden_size"] = c.HiddenSize,
        ["vt_intermediate_size"] = c.IntermediateSize,
        ["vt_num_attention_heads"] = c.NumAttentionHeads,
        ["vt_num_hidden_layers"] = c.NumHiddenLayers,
    };

    /// <summary>A <c>preprocessor_config.json</c> with K2.5's media settings and this tower's patch size.</summary>
    public static JsonObject PreprocessorJson(VisionConfig c) => new()
    {
        ["media_proc_cfg"] = new JsonObject
        {
            ["in_patch_limit"] = 16384,
            ["patch_size"] = c.PatchSize,
            ["image_mean"] = new JsonArray(0.5, 0.5, 0.5),
            ["image_std"] = new JsonArray(0.5, 0.5, 0.5),
            ["merge_kernel_size"] = c.MergeKernelHeight,
            ["fixed_output_tokens"] = null,
            ["patch_limit_on_one_side"] = 512,
            ["in_patch_limit_each_frame"] = 4096,
            ["in_patch_limit_video"] = null,
            ["sample_fps"] = 2.0,
            ["max_num_frames_each_video"] = null,
            ["temporal_merge_kernel_size"] = c.PosEmbTime,
            ["timestamp_mode"] = "hh:mm:ss.fff",
        },
    };

    /// <summary>Writes a folder holding only the vision part: config.json, preprocessor_config.json and model.safetensors.</summary>
    public static void WriteVisionOnly(string directory, VisionConfig config, SafetensorsDType dtype = SafetensorsDType.BF16, int seed = 1)
    {
        Directory.CreateDirectory(directory);
        var writer = new SafetensorsWriter();
        AddTensors(writer, config, dtype, seed);
        writer.Save(Path.Combine(directory, CheckpointTensors.SingleFileName));
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray("KimiK25ForConditionalGeneration"),
            ["model_type"] = "kimi_k25",
            ["vision_config"] = VisionConfigJson(config),
        };
        if (config.MediaPlaceholderTokenId is int id) root["media_placeholder_token_id"] = id;
        WriteJson(Path.Combine(directory, VisionConfig.FileName), root);
        WriteJson(Path.Combine(directory, MediaProcessingConfig.FileName), PreprocessorJson(config));
    }

    /// <summary>
    /// Writes a whole random Kimi K2.5 checkpoint in the released layout: the language model of <paramref name="text"/>
    /// (its <see cref="RandomCheckpointOptions.Format"/>, sharding and seed) under <c>language_model.</c> with its config
    /// as text_config, plus the tower of <paramref name="vision"/> (projecting to the text width) as <c>vision_tower.*</c> /
    /// <c>mm_projector.*</c>, vision_config, media_placeholder_token_id and preprocessor_config.json. The text weights
    /// equal those <see cref="RandomCheckpoint.Write"/> gives the same options in the K2 layout. Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> WriteK25(string directory, RandomCheckpointOptions text, VisionConfig vision,
        SafetensorsDType visionDType = SafetensorsDType.BF16, int? visionSeed = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(vision);
        var files = RandomCheckpoint.Write(directory, text with { Layout = CheckpointLayout.K25 });
        var visionFiles = AddToCheckpoint(directory, vision with { TextHiddenSize = text.HiddenSize }, visionDType, visionSeed ?? text.Seed + 1);
        return [.. files.Union(visionFiles)];
    }

    /// <summary>
    /// Adds a vision tower to a text checkpoint written by <c>kimi init-random</c> or <see cref="RandomCheckpoint.Write"/>
    /// (<see cref="WriteK25"/> uses it for the released layout; on a K2-layout checkpoint the result is a hybrid that
    /// KimiSharp loads but no released model has): the tensors go to
    /// <see cref="VisionFileName"/>, the safetensors index gains them (one is created over model.safetensors if the
    /// checkpoint was a single file), config.json gains vision_config and media_placeholder_token_id, and
    /// preprocessor_config.json is written. Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> AddToCheckpoint(string directory, VisionConfig config, SafetensorsDType dtype, int seed)
    {
        var writer = new SafetensorsWriter();
        AddTensors(writer, config, dtype, seed);
        writer.Save(Path.Combine(directory, VisionFileName));

        string indexPath = Path.Combine(directory, CheckpointTensors.IndexFileName);
        string singlePath = Path.Combine(directory, CheckpointTensors.SingleFileName);
        JsonObject index;
        if (File.Exists(indexPath)) index = JsonNode.Parse(File.ReadAllText(indexPath))!.AsObject();
        else
        {
            var map = new JsonObject();
            if (File.Exists(singlePath))
                using (var text = SafetensorsFile.Open(singlePath))
                    foreach (string name in text.Tensors.Keys) map[name] = CheckpointTensors.SingleFileName;
            index = new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map };
        }
        var weightMap = index["weight_map"]!.AsObject();
        foreach (string name in writer.Names) weightMap[name] = VisionFileName;
        WriteJson(indexPath, index);

        string configPath = Path.Combine(directory, VisionConfig.FileName);
        var root = File.Exists(configPath) ? JsonNode.Parse(File.ReadAllText(configPath))!.AsObject() : new JsonObject();
        root["vision_config"] = VisionConfigJson(config);
        if (config.MediaPlaceholderTokenId is int id) root["media_placeholder_token_id"] = id;
        WriteJson(configPath, root);
        WriteJson(Path.Combine(directory, MediaProcessingConfig.FileName), PreprocessorJson(config));
        return [VisionFileName, CheckpointTensors.IndexFileName, VisionConfig.FileName, MediaProcessingConfig.FileName];
    }

    private static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    private static float[] Normal(Random random, long count, double std, double mean)
    {
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            // Box–Muller: one standard normal per pair of uniforms is plenty here.
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = (float)(mean + std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }

}
