using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using KimiSharp.Kernels;
using KimiSharp.Vision;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi image-features</c>: the vision counterpart of <c>kimi logits</c>. Writes the projector output for one image,
/// or for every chunk of one video in order, as little-endian float32 [tokens, text hidden]. Reads only vision_config,
/// preprocessor_config.json and the vision_tower.* / mm_projector.* tensors, so a folder holding just the vision part works.
/// </summary>
public static class ImageFeaturesCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The K2.5 model folder (config.json with vision_config, and *.safetensors)");
        var image = CliOptions.Text("--image", "FILE", "The image (PNG, JPEG, WebP, GIF first frame or BMP)");
        var video = CliOptions.Text("--video", "FILE|DIR",
            "A video instead of an image: a directory of frames (sorted by name), an animated GIF/WebP, or a video file read through ffmpeg");
        var output = CliOptions.Required("--out", "FILE", "Where to write the features (little-endian float32, [tokens, text hidden]; a video's chunks one after another)");
        var threads = CliOptions.Threads();
        var command = new Command("image-features",
            "Run the vision tower and projector over one image or one video and write little-endian float32 features [tokens, text hidden].")
        {
            model, image, video, output, threads,
        };
        command.Exclusive(image, video);
        command.Validators.Add(r =>
        {
            if (r.GetResult(image) is null && r.GetResult(video) is null) r.AddError("give --image FILE or --video FILE|DIR");
        });
        command.SetAction((r, ct) => r.GetValue(video) is string videoPath
            ? RunVideoAsync(r.GetValue(model)!, videoPath, r.GetValue(output)!, r.GetValue(threads), r.Err(), ct)
            : RunAsync(r.GetValue(model)!, r.GetValue(image)!, r.GetValue(output)!, r.GetValue(threads), r.Err(), ct));
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
        await WriteAsync(outPath, [features], cancellationToken);
        int tokens = features.Length / config.TextHiddenSize;
        stderr.WriteLine($"wrote {tokens}×{config.TextHiddenSize} float32 features to {outPath} (image {decoded.Width}×{decoded.Height}, " +
            $"{input.Grid.Rows}×{input.Grid.Columns} patches, {seconds:F2} s)");
        return 0;
    }

    /// <summary>
    /// Samples the video by the K2.5 rule, cuts it into chunks and writes every chunk's features in order; stderr lists
    /// each chunk's timestamp, frames and token count (the <c>&lt;|media_pad|&gt;</c> copies it stands for).
    /// </summary>
    public static async Task<int> RunVideoAsync(string modelDir, string videoPath, string outPath, int? threads, TextWriter stderr,
        CancellationToken cancellationToken)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        var config = VisionConfig.Load(modelDir);
        var media = MediaProcessingConfig.Load(modelDir);
        media.CheckAgainst(config, Path.Combine(modelDir, MediaProcessingConfig.FileName));
        var video = await VideoFrames.LoadAsync(videoPath, media, cancellationToken: cancellationToken);
        var chunker = new VideoChunker(media);
        var chunks = chunker.Chunks(video);
        using var weights = VisionWeights.Load(modelDir, config);
        var encoder = new VisionEncoder(weights)
        {
            Kernels = threads is int count ? new KernelSettings { MaxThreads = count } : KernelSettings.Default,
        };
        var clock = Stopwatch.StartNew();
        // One chunk at a time: a long video never holds all of its tower input at once.
        var features = new List<float[]>(chunks.Count);
        foreach (var chunk in chunks) features.Add(encoder.Encode([chunker.Preprocess(chunk)], cancellationToken)[0]);
        double seconds = clock.Elapsed.TotalSeconds;
        await WriteAsync(outPath, features, cancellationToken);
        int tokens = features.Sum(f => f.Length) / config.TextHiddenSize;
        var first = video.Frames[0].Image;
        stderr.WriteLine($"wrote {tokens}×{config.TextHiddenSize} float32 features to {outPath} ({chunks.Count} chunk(s) of " +
            $"{video.Frames.Count} frame(s) sampled from {video.SourceFrameCount} at {video.SourceFps:0.###} fps, {first.Width}×{first.Height}, {seconds:F2} s)");
        foreach (var chunk in chunks)
            stderr.WriteLine($"  {chunk.Timestamp}: {chunk.Frames.Count} frame(s) [{string.Join(", ", chunk.Frames.Select(f => f.SourceIndex))}], " +
                $"{chunk.Plan.PatchRows}×{chunk.Plan.PatchColumns} patches, {chunk.Tokens} tokens");
        return 0;
    }

    /// <summary>Writes the feature blocks one after another, beside the target then renamed, so an interrupted run never leaves a half-written file.</summary>
    private static async Task WriteAsync(string outPath, IReadOnlyList<float[]> blocks, CancellationToken cancellationToken)
    {
        string full = Path.GetFullPath(outPath);
        string temporary = full + ".partial";
        await using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
            foreach (var block in blocks)
                await stream.WriteAsync(MemoryMarshal.AsBytes(block.AsSpan()).ToArray(), cancellationToken);
        File.Move(temporary, full, overwrite: true);
    }
}
