using System.Text.Json;

namespace KimiSharp.Vision;

/// <summary>
/// The image preprocessing settings of <c>preprocessor_config.json</c>'s <c>media_proc_cfg</c>. Defaults are the
/// values K2.5 ships (16384 patches per image, 512 per side, 4096 per video frame, 4-frame chunks, mean = std = 0.5).
/// </summary>
public sealed record MediaProcessingConfig
{
    public const string FileName = "preprocessor_config.json";

    public int PatchSize { get; init; } = 14;
    public int MergeKernelSize { get; init; } = 2;
    /// <summary>Most patches one image may cover after scaling (<c>in_patch_limit</c>).</summary>
    public int InPatchLimit { get; init; } = 16384;
    /// <summary>Most patches along either side (<c>patch_limit_on_one_side</c>).</summary>
    public int PatchLimitOnOneSide { get; init; } = 512;
    /// <summary>Most patches per frame of a video chunk (<c>in_patch_limit_each_frame</c>).</summary>
    public int InPatchLimitEachFrame { get; init; } = 4096;
    /// <summary>Frames per video chunk (<c>temporal_merge_kernel_size</c>).</summary>
    public int TemporalMergeKernelSize { get; init; } = 4;
    /// <summary>Most patches over all frames of one video chunk (<c>in_patch_limit_video</c>); null (K2.5) for no total limit.</summary>
    public int? InPatchLimitVideo { get; init; }
    /// <summary>Frames sampled per second of video (<c>sample_fps</c>), at most the video's own rate.</summary>
    public double SampleFps { get; init; } = 2.0;
    /// <summary>Most frames sampled from one video (<c>max_num_frames_each_video</c>); null (K2.5) for no limit.</summary>
    public int? MaxNumFramesEachVideo { get; init; }
    /// <summary>How each chunk's start time is written before it (<c>timestamp_mode</c>): hh:mm:ss.fff, mm:ss.fff or mm:ss.</summary>
    public string TimestampMode { get; init; } = "hh:mm:ss.fff";
    public double[] ImageMean { get; init; } = [0.5, 0.5, 0.5];
    public double[] ImageStd { get; init; } = [0.5, 0.5, 0.5];

    /// <summary>Reads <c>preprocessor_config.json</c> in <paramref name="modelDirectory"/>; K2.5's defaults when the file is absent.</summary>
    public static MediaProcessingConfig Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, FileName);
        return File.Exists(path) ? Parse(File.ReadAllText(path), path) : new MediaProcessingConfig();
    }

    public static MediaProcessingConfig Parse(string json, string source = FileName)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new VisionConfigException($"{source}: not valid JSON ({e.Message})", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new VisionConfigException($"{source}: expected a JSON object");
            // The HF processor keeps its settings under media_proc_cfg; accept them at the top level too.
            bool isNested = root.TryGetProperty("media_proc_cfg", out var nested) && nested.ValueKind == JsonValueKind.Object;
            var cfg = isNested ? nested : root;
            string where = isNested ? source + ": media_proc_cfg" : source;
            var d = new MediaProcessingConfig();
            int Int(string key, int fallback)
            {
                if (!cfg.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
                if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0 && v[0].TryGetInt32(out int first)) return first;
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i) || i <= 0)
                    throw new VisionConfigException($"{where}.{key} must be a positive integer, got {v.GetRawText()}");
                return i;
            }
            int? OptionalInt(string key)
            {
                if (!cfg.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i) || i <= 0)
                    throw new VisionConfigException($"{where}.{key} must be a positive integer or null, got {v.GetRawText()}");
                return i;
            }
            double[] Triple(string key, double[] fallback)
            {
                if (!cfg.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
                if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != 3 || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number))
                    throw new VisionConfigException($"{where}.{key} must be three numbers (one per RGB channel), got {v.GetRawText()}");
                return [.. v.EnumerateArray().Select(e => e.GetDouble())];
            }
            if (cfg.TryGetProperty("fixed_output_tokens", out var fixedTokens) && fixedTokens.ValueKind != JsonValueKind.Null)
                throw new VisionConfigException($"{where}.fixed_output_tokens is {fixedTokens.GetRawText()}; only null (tokens follow the image size, as K2.5 ships) is supported");
            var config = new MediaProcessingConfig
            {
                PatchSize = Int("patch_size", d.PatchSize),
                MergeKernelSize = Int("merge_kernel_size", d.MergeKernelSize),
                InPatchLimit = Int("in_patch_limit", d.InPatchLimit),
                PatchLimitOnOneSide = Int("patch_limit_on_one_side", d.PatchLimitOnOneSide),
                // The processor falls back to in_patch_limit when the per-frame limit is null.
                InPatchLimitEachFrame = cfg.TryGetProperty("in_patch_limit_each_frame", out var each) && each.ValueKind == JsonValueKind.Null
                    ? Int("in_patch_limit", d.InPatchLimit)
                    : Int("in_patch_limit_each_frame", d.InPatchLimitEachFrame),
                InPatchLimitVideo = OptionalInt("in_patch_limit_video"),
                MaxNumFramesEachVideo = OptionalInt("max_num_frames_each_video"),
                SampleFps = SampleFpsValue(cfg, where, d.SampleFps),
                TimestampMode = TimestampModeValue(cfg, where, d.TimestampMode),
                TemporalMergeKernelSize = Int("temporal_merge_kernel_size", d.TemporalMergeKernelSize),
                ImageMean = Triple("image_mean", d.ImageMean),
                ImageStd = Triple("image_std", d.ImageStd),
            };
            foreach (double s in config.ImageStd)
                if (!(s > 0)) throw new VisionConfigException($"{where}.image_std must be positive, got {s}");
            return config;
        }
    }

    private static double SampleFpsValue(JsonElement cfg, string where, double fallback)
    {
        if (!cfg.TryGetProperty("sample_fps", out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !(v.GetDouble() > 0) || double.IsInfinity(v.GetDouble()))
            throw new VisionConfigException($"{where}.sample_fps must be a positive number, got {v.GetRawText()}");
        return v.GetDouble();
    }

    private static string TimestampModeValue(JsonElement cfg, string where, string fallback)
    {
        if (!cfg.TryGetProperty("timestamp_mode", out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        string? mode = v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        if (mode is not ("hh:mm:ss.fff" or "mm:ss.fff" or "mm:ss"))
            throw new VisionConfigException($"{where}.timestamp_mode must be \"hh:mm:ss.fff\", \"mm:ss.fff\" or \"mm:ss\", got {v.GetRawText()}");
        return mode;
    }

    /// <summary>Throws when the preprocessing does not fit the tower it feeds.</summary>
    public void CheckAgainst(VisionConfig vision, string source = FileName)
    {
        if (PatchSize != vision.PatchSize)
            throw new VisionConfigException($"{source}: patch_size {PatchSize} differs from vision_config.patch_size {vision.PatchSize}");
        if (MergeKernelSize != vision.MergeKernelHeight || MergeKernelSize != vision.MergeKernelWidth)
            throw new VisionConfigException($"{source}: merge_kernel_size {MergeKernelSize} differs from vision_config.merge_kernel_size [{vision.MergeKernelHeight}, {vision.MergeKernelWidth}]");
        if (PatchLimitOnOneSide > VisionConfig.RopeMaxSide)
            throw new VisionConfigException($"{source}: patch_limit_on_one_side {PatchLimitOnOneSide} exceeds the tower's {VisionConfig.RopeMaxSide}-patch rotary table");
        if (TemporalMergeKernelSize > vision.PosEmbTime)
            throw new VisionConfigException($"{source}: temporal_merge_kernel_size {TemporalMergeKernelSize} exceeds vision_config.init_pos_emb_time {vision.PosEmbTime}");
    }
}
