using System.CommandLine;
using KimiSharp.Kernels;
using KimiSharp.Model;

namespace KimiSharp.Cli;

/// <summary><c>kimi info</c>: what a model folder holds.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder");
        var command = new Command("info", "Print the model's architecture, weight formats and size.") { model };
        command.SetAction(r => Run(r.GetValue(model)!, r.Out(), r.Err()));
        return command;
    }

    public static int Run(string modelDir, TextWriter stdout, TextWriter stderr)
    {
        using var model = KimiModel.Load(modelDir);
        ConfigWarnings.Report(model.Config, stderr);
        var c = model.Config;
        int moeLayers = Enumerable.Range(0, c.NumHiddenLayers).Count(c.IsMoeLayer);
        stdout.WriteLine($"model        {model.Directory} ({c.ModelType})");
        stdout.WriteLine($"architecture {c.Architecture}" + (c.TensorPrefix.Length > 0 ? $" (language model tensors under {c.TensorPrefix})" : ""));
        stdout.WriteLine($"size         {model.CheckpointBytes / 1e6:F1} MB on disk, memory-mapped");
        stdout.WriteLine($"layers       {c.NumHiddenLayers} ({c.NumHiddenLayers - moeLayers} dense, {moeLayers} MoE), hidden {c.HiddenSize}, vocab {c.VocabSize}");
        stdout.WriteLine($"attention    MLA, {c.NumAttentionHeads} heads, q_lora {(c.QLoraRank?.ToString() ?? "none")}, kv_lora {c.KvLoraRank}, head dims nope {c.QkNopeHeadDim} / rope {c.QkRopeHeadDim} / v {c.VHeadDim}");
        if (c.NRoutedExperts > 0)
            stdout.WriteLine($"experts      {c.NRoutedExperts} routed (top {c.NumExpertsPerTok}, {c.NGroup} groups keep {c.TopkGroup}) + {c.NSharedExperts} shared, width {c.MoeIntermediateSize}");
        stdout.WriteLine($"rope         theta {c.RopeTheta}, " + (c.Yarn is { } y ? $"YaRN ×{y.Factor} from {y.OriginalMaxPositionEmbeddings}" : "no scaling") + $", context {c.MaxPositionEmbeddings}");
        var formats = model.Layers.SelectMany(l => new[] { l.Attention.KvBProj, l.Attention.OProj }
                .Concat(l.Moe?.Experts.SelectMany(e => new[] { e.Gate, e.Up, e.Down }) ?? [])
                .Concat(l.Dense is { } d ? [d.Gate, d.Up, d.Down] : []))
            .GroupBy(m => m.Format).Select(g => $"{g.Key} ×{g.Count()}");
        stdout.WriteLine($"weights      {string.Join(", ", formats)}");
        if (c.HasVisionConfig) stdout.WriteLine($"vision       {DescribeVision(modelDir)}");
        return 0;
    }

    /// <summary>The vision tower a K2.5 folder holds, after checking its tensors against vision_config; or why it cannot run.</summary>
    private static string DescribeVision(string modelDir)
    {
        try
        {
            var v = KimiSharp.Vision.VisionConfig.Load(modelDir);
            using var weights = KimiSharp.Vision.VisionWeights.Load(modelDir, v);
            return $"MoonViT tower present: {v.NumHiddenLayers} blocks, width {v.HiddenSize}, {v.NumAttentionHeads} heads, {v.PatchSize}-pixel patches, "
                + $"{v.MergeKernelHeight}×{v.MergeKernelWidth} merge, projector to {v.TextHiddenSize} ({weights.ProjectorLinear2.Format}), "
                + $"media placeholder {(v.MediaPlaceholderTokenId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none")}";
        }
        catch (Exception e) when (e is KimiSharp.Vision.VisionConfigException or KimiSharp.Model.Safetensors.CheckpointFormatException)
        {
            return $"vision_config present, but the tower cannot run: {e.Message}";
        }
    }
}
