using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using KimiSharp.Kernels;
using KimiSharp.Vision;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi image-features</c>: the vision counterpart of <c>kimi logits</c>. Writes the projector output for one image as
/// little-endian float32 [tokens, text hidden]. Reads only vision_config, preprocessor_config.json and the
/// vision_tower.* / mm_projector.* tensors, so a folder holding just the vision part works.
/// </summary>
public static class ImageFeaturesCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The K2.5 model folder (config.json with vision_config, and *.safetensors)");
        var image = CliOptions.Required("--image", "FILE", "The image (PNG, JPEG, GIF first frame or BMP)");
        var output = CliOptions.Required("--out", "FILE", "Where to write the features (little-endian float32, [tokens, text hidden])");
        var threads = CliOptions.Threads();
        var command = new Command("image-features",
            "Run the vision tower and projector over one image and write little-endian float32 features [tokens, text hidden].")
        {
            model, image, output, threads,
        };
        command.SetAction((r, ct) => RunAsync(r.GetValue(model)!, r.GetValue(image)!, r.GetValue(output)!, r.GetValue(threads), r.Err(), ct));
        return command;
    }

    public static async Task<int> RunAsync(string modelDir, string imagePath, string outPath, int? threads, TextWriter stderr,
        CancellationToken cancellationToken)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        var config = VisionConfig.Load(modelDir);
        var media = MediaProcessingConfig.Load(modelDir);
        media.CheckAgainst(config, Path.Combine(modelDir, MediaProcessingConfig.FileName));
        var decoded = ImageDecoder.DecodeFile(imagePath);
        var input = new ImagePreprocessor(media).Image(decoded);
        using var weights = VisionWeights.Load(modelDir, config);
        var clock = Stopwatch.StartNew();
        float[] features = new VisionEncoder(weights)
        {
            Kernels = threads is int count ? new KernelSettings { MaxThreads = count } : KernelSettings.Default,
        }.Encode([input], cancellationToken)[0];
        double seconds = clock.Elapsed.TotalSeconds;

        // Write beside the target and rename, so an interrupted run never leaves a half-written file behind.
        string full = Path.GetFullPath(outPath);
        string temporary = full + ".partial";
        await using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
            await stream.WriteAsync(MemoryMarshal.AsBytes(features.AsSpan()).ToArray(), cancellationToken);
        File.Move(temporary, full, overwrite: true);
        int tokens = features.Length / config.TextHiddenSize;
        stderr.WriteLine($"wrote {tokens}×{config.TextHiddenSize} float32 features to {outPath} (image {decoded.Width}×{decoded.Height}, " +
            $"{input.Grid.Rows}×{input.Grid.Columns} patches, {seconds:F2} s)");
        return 0;
    }
}
