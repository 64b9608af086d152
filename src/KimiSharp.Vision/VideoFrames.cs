using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KimiSharp.Vision;

/// <summary>A video that cannot be read: missing tool, unreadable container, too many frames or pixels. The message says which.</summary>
public sealed class VideoDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One sampled frame: its pixels, its index among the source's frames and its time (index / average fps).</summary>
public sealed record VideoFrame(RgbImage Image, int SourceIndex, double Seconds);

/// <summary>Bounds on what reading one video may hold in memory, checked before frames are decoded.</summary>
public sealed record VideoLimits
{
    /// <summary>Most frames sampled from one video (the K2.5 rule sets none; at 2 fps this is 8½ minutes).</summary>
    public int MaxFrames { get; init; } = 1024;
    /// <summary>Most pixels over all sampled frames at source resolution (≈ 1.6 GB of RGB).</summary>
    public long MaxTotalPixels { get; init; } = 1L << 29;
    /// <summary>Per-frame limits (sides, pixels, encoded bytes of one image or animation file).</summary>
    public ImageDecodeLimits Frame { get; init; } = new();
}

/// <summary>Where the ffmpeg tools are and how long one run may take.</summary>
public sealed record FfmpegOptions
{
    /// <summary>The ffmpeg executable: a path, or a name looked up on PATH.</summary>
    public string FfmpegPath { get; init; } = "ffmpeg";
    /// <summary>The ffprobe executable (installed with ffmpeg).</summary>
    public string FfprobePath { get; init; } = "ffprobe";
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>The published K2.5 frame sampling (the processor's <c>split_video_chunks</c>) and its timestamp text.</summary>
public static class VideoSampling
{
    /// <summary>
    /// Which of <paramref name="totalFrames"/> frames (at <paramref name="videoFps"/>) are kept: n = max(round(total ·
    /// min(sample_fps, fps) / fps), 1) frames (capped by <paramref name="maxFrames"/> when set), at
    /// round(linspace(0, total − 1, n)), rounding half to even as numpy does.
    /// </summary>
    public static int[] FrameIndices(int totalFrames, double videoFps, double sampleFps, int? maxFrames = null)
    {
        int count = SampleCount(totalFrames, videoFps, sampleFps, maxFrames);
        var indices = new int[count];
        if (count == 1) return indices;
        // numpy.linspace: i · step for every point but the last, which is the stop value itself.
        double stop = totalFrames - 1, step = stop / (count - 1);
        for (int i = 0; i < count - 1; i++) indices[i] = (int)Math.Round(i * step, MidpointRounding.ToEven);
        indices[^1] = totalFrames - 1;
        return indices;
    }

    /// <summary>How many frames <see cref="FrameIndices"/> keeps, computed without allocating them (for limit checks).</summary>
    public static int SampleCount(int totalFrames, double videoFps, double sampleFps, int? maxFrames = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalFrames, 1);
        if (!(videoFps > 0) || double.IsInfinity(videoFps)) throw new ArgumentOutOfRangeException(nameof(videoFps), videoFps, "the video's frame rate must be positive");
        if (!(sampleFps > 0)) throw new ArgumentOutOfRangeException(nameof(sampleFps), sampleFps, "the sampling rate must be positive");
        double fps = Math.Min(sampleFps, videoFps);
        int count = Math.Max((int)Math.Round(totalFrames * fps / videoFps, MidpointRounding.ToEven), 1);
        return maxFrames is int most ? Math.Min(count, Math.Max(1, most)) : count;
    }

    /// <summary>
    /// The text written before a chunk for its start time, as <c>timestamp_as_str</c>: "hh:mm:ss.fff", "mm:ss.fff" or
    /// "mm:ss" of a UTC clock (hours wrap at 24), milliseconds truncated.
    /// </summary>
    public static string Timestamp(double seconds, string mode = "hh:mm:ss.fff")
    {
        if (!(seconds >= 0) || double.IsInfinity(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds), seconds, "a timestamp must be a finite, non-negative time");
        // datetime.fromtimestamp rounds to whole microseconds (half to even) before the clock fields are taken, while
        // the milliseconds come from the unrounded fraction.
        double whole = Math.Floor(seconds);
        if (Math.Round((seconds - whole) * 1e6, MidpointRounding.ToEven) >= 1e6) whole += 1;
        long clock = (long)whole;
        int hours = (int)(clock / 3600 % 24), minutes = (int)(clock / 60 % 60), secs = (int)(clock % 60);
        int millis = (int)(seconds % 1.0 * 1000);
        var c = CultureInfo.InvariantCulture;
        return mode switch
        {
            "hh:mm:ss.fff" => string.Create(c, $"{hours:00}:{minutes:00}:{secs:00}.{millis:000}"),
            "mm:ss.fff" => string.Create(c, $"{minutes:00}:{secs:00}.{millis:000}"),
            "mm:ss" => string.Create(c, $"{minutes:00}:{secs:00}"),
            _ => throw new ArgumentException($"unknown timestamp mode '{mode}' (hh:mm:ss.fff, mm:ss.fff or mm:ss)", nameof(mode)),
        };
    }
}

/// <summary>
/// The frames K2.5 sees of one video, sampled by the published rule (<see cref="VideoSampling.FrameIndices"/>) from an
/// animated GIF or WebP, an image sequence (a list of files or a directory, sorted by name), or any video file through
/// the <c>ffmpeg</c> tools.
/// </summary>
public sealed class VideoFrames
{
    /// <summary>File name extensions read from an image-sequence directory.</summary>
    public static readonly IReadOnlySet<string> SequenceExtensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp" };

    public VideoFrames(IReadOnlyList<VideoFrame> frames, int sourceFrameCount, double sourceFps)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.Count == 0) throw new ArgumentException("a video needs at least one frame", nameof(frames));
        Frames = frames;
        SourceFrameCount = sourceFrameCount;
        SourceFps = sourceFps;
    }

    public IReadOnlyList<VideoFrame> Frames { get; }
    /// <summary>Frames in the source before sampling.</summary>
    public int SourceFrameCount { get; }
    /// <summary>The source's average frame rate (frames / duration).</summary>
    public double SourceFps { get; }

    /// <summary>
    /// Frames of an animated GIF or WebP (a still image is a one-frame video). The frame rate is frames / total duration,
    /// where frames shorter than 20 ms count as 100 ms, as ffmpeg's GIF reader and browsers treat them.
    /// </summary>
    public static VideoFrames FromAnimation(ReadOnlySpan<byte> data, MediaProcessingConfig config, VideoLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        limits ??= new VideoLimits();
        var info = ImageDecoder.Probe(data, limits.Frame);
        double totalMs = info.FrameDurationsMs.Sum(d => d < 20 ? 100.0 : d);
        double fps = info.FrameCount / (totalMs / 1000);
        CheckBudget(VideoSampling.SampleCount(info.FrameCount, fps, config.SampleFps, config.MaxNumFramesEachVideo), info.Width, info.Height, limits, info.Format + " animation");
        var indices = VideoSampling.FrameIndices(info.FrameCount, fps, config.SampleFps, config.MaxNumFramesEachVideo);
        // The per-file limits cover one frame; the video limits cover the sampled set.
        var images = ImageDecoder.DecodeFrames(data, indices, limits.Frame, limits.MaxTotalPixels);
        return new VideoFrames([.. indices.Select((index, i) => new VideoFrame(images[i], index, index / fps))], info.FrameCount, fps);
    }

    /// <summary>
    /// An image sequence: the files are consecutive frames at <paramref name="framesPerSecond"/> (default: the sampling
    /// rate, so every file is kept). Only the sampled files are decoded.
    /// </summary>
    public static VideoFrames FromImages(IReadOnlyList<string> files, MediaProcessingConfig config, double? framesPerSecond = null, VideoLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(config);
        limits ??= new VideoLimits();
        if (files.Count == 0) throw new VideoDecodeException("the image sequence is empty");
        double fps = framesPerSecond ?? config.SampleFps;
        if (!(fps > 0) || double.IsInfinity(fps)) throw new VideoDecodeException($"the image sequence's frame rate must be positive, got {fps}");
        int count = VideoSampling.SampleCount(files.Count, fps, config.SampleFps, config.MaxNumFramesEachVideo);
        if (count > limits.MaxFrames)
            throw new VideoDecodeException($"the image sequence samples to {count:N0} frames; at most {limits.MaxFrames:N0} are accepted");
        var indices = VideoSampling.FrameIndices(files.Count, fps, config.SampleFps, config.MaxNumFramesEachVideo);
        var frames = new List<VideoFrame>(indices.Length);
        long pixels = 0;
        foreach (int index in indices)
        {
            var image = ImageDecoder.DecodeFile(files[index], limits.Frame);
            pixels += (long)image.Width * image.Height;
            if (pixels > limits.MaxTotalPixels)
                throw new VideoDecodeException($"the image sequence's sampled frames hold more than the {limits.MaxTotalPixels:N0} pixels accepted");
            frames.Add(new VideoFrame(image, index, index / fps));
        }
        return new VideoFrames(frames, files.Count, fps);
    }

    /// <summary>The image files (<see cref="SequenceExtensions"/>) of <paramref name="directory"/> in ordinal name order, as an image sequence.</summary>
    public static VideoFrames FromDirectory(string directory, MediaProcessingConfig config, double? framesPerSecond = null, VideoLimits? limits = null)
    {
        if (!Directory.Exists(directory)) throw new VideoDecodeException($"{directory}: no such directory");
        var files = Directory.EnumerateFiles(directory)
            .Where(f => SequenceExtensions.Contains(Path.GetExtension(f)))
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (files.Length == 0)
            throw new VideoDecodeException($"{directory}: no image files ({string.Join(", ", SequenceExtensions.Order())}) to read as a sequence");
        return FromImages(files, config, framesPerSecond, limits);
    }

    /// <summary>
    /// A directory (image sequence), an animated GIF/WebP or still image, or otherwise a video file read through ffmpeg.
    /// </summary>
    public static async Task<VideoFrames> LoadAsync(string path, MediaProcessingConfig config, FfmpegOptions? ffmpeg = null,
        VideoLimits? limits = null, CancellationToken cancellationToken = default)
    {
        limits ??= new VideoLimits();
        if (Directory.Exists(path)) return FromDirectory(path, config, null, limits);
        if (!File.Exists(path)) throw new VideoDecodeException($"{path}: no such video file or directory");
        var head = new byte[12];
        int read;
        await using (var stream = File.OpenRead(path))
            read = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        if (LooksLikeImage(head.AsSpan(0, read)))
        {
            if (new FileInfo(path).Length > limits.Frame.MaxBytes)
                throw new VideoDecodeException($"{path}: {new FileInfo(path).Length:N0} bytes; at most {limits.Frame.MaxBytes:N0} are accepted for an animation");
            try { return FromAnimation(await File.ReadAllBytesAsync(path, cancellationToken), config, limits); }
            catch (ImageDecodeException e) { throw new ImageDecodeException($"{path}: {e.Message}", e.InnerException); }
        }
        return await FromVideoFileAsync(path, config, ffmpeg, limits, cancellationToken);
    }

    private static bool LooksLikeImage(ReadOnlySpan<byte> head) =>
        head.StartsWith("GIF8"u8) || head.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47]) || head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])
        || head.StartsWith("BM"u8) || (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8));

    /// <summary>
    /// A video file through <c>ffprobe</c> (frame count, average frame rate, size) and <c>ffmpeg</c> (the sampled frames,
    /// picked by index with the select filter and piped out as raw RGB; rotation metadata is ignored, as decord does).
    /// </summary>
    public static async Task<VideoFrames> FromVideoFileAsync(string path, MediaProcessingConfig config, FfmpegOptions? ffmpeg = null,
        VideoLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ffmpeg ??= new FfmpegOptions();
        limits ??= new VideoLimits();
        if (!File.Exists(path)) throw new VideoDecodeException($"{path}: no such video file");
        var (width, height, totalFrames, fps) = await ProbeAsync(path, ffmpeg, cancellationToken);
        if (width > limits.Frame.MaxSide || height > limits.Frame.MaxSide || (long)width * height > limits.Frame.MaxPixels)
            throw new VideoDecodeException($"{path}: the video is {width}×{height}; frames of at most {limits.Frame.MaxSide:N0} pixels a side and {limits.Frame.MaxPixels:N0} pixels are accepted");
        // The count is checked before the index list exists: a container may claim any number of frames.
        CheckBudget(VideoSampling.SampleCount(totalFrames, fps, config.SampleFps, config.MaxNumFramesEachVideo), width, height, limits, path);
        var indices = VideoSampling.FrameIndices(totalFrames, fps, config.SampleFps, config.MaxNumFramesEachVideo);

        string select = "select='" + string.Join("+", indices.Select(i => string.Create(CultureInfo.InvariantCulture, $"eq(n,{i})"))) + "'";
        var arguments = new List<string> { "-v", "error", "-nostdin", "-noautorotate", "-i", path, "-map", "0:v:0", "-vf", select,
            "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1" };
        var frames = new List<VideoFrame>(indices.Length);
        int frameBytes = checked(width * height * 3);
        await RunToolAsync(ffmpeg.FfmpegPath, "ffmpeg", arguments, ffmpeg.Timeout, async stdout =>
        {
            while (true)
            {
                var pixels = new byte[frameBytes];
                int got = await stdout.ReadAtLeastAsync(pixels, frameBytes, throwOnEndOfStream: false, cancellationToken);
                if (got == 0) return;
                if (got < frameBytes) throw new VideoDecodeException($"{path}: ffmpeg's output ended inside a frame ({got:N0} of {frameBytes:N0} bytes)");
                if (frames.Count == indices.Length) throw new VideoDecodeException($"{path}: ffmpeg returned more frames than the {indices.Length} selected");
                int index = indices[frames.Count];
                frames.Add(new VideoFrame(new RgbImage(width, height, pixels), index, index / fps));
            }
        }, cancellationToken);
        if (frames.Count != indices.Length)
            throw new VideoDecodeException($"{path}: ffmpeg decoded {frames.Count} of the {indices.Length} sampled frames (the container reports {totalFrames} frames, fewer decode)");
        return new VideoFrames(frames, totalFrames, fps);
    }

    private static void CheckBudget(int frames, int width, int height, VideoLimits limits, string what)
    {
        if (frames > limits.MaxFrames)
            throw new VideoDecodeException($"{what}: sampling keeps {frames:N0} frames; at most {limits.MaxFrames:N0} are accepted (lower sample_fps or max_num_frames_each_video, or cut the video)");
        if ((long)frames * width * height > limits.MaxTotalPixels)
            throw new VideoDecodeException($"{what}: {frames:N0} sampled frames of {width}×{height} hold more than the {limits.MaxTotalPixels:N0} pixels accepted");
    }

    private static async Task<(int Width, int Height, int Frames, double Fps)> ProbeAsync(string path, FfmpegOptions ffmpeg, CancellationToken cancellationToken)
    {
        var arguments = new List<string> { "-v", "error", "-select_streams", "v:0", "-count_packets",
            "-show_entries", "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets", "-of", "json", path };
        string json = "";
        await RunToolAsync(ffmpeg.FfprobePath, "ffprobe", arguments, ffmpeg.Timeout, async stdout =>
        {
            using var reader = new StreamReader(stdout, Encoding.UTF8);
            var buffer = new char[1 << 16];
            var text = new StringBuilder();
            int n;
            // The answer is a few hundred bytes; anything past 1 MB is not ffprobe's JSON.
            while ((n = await reader.ReadAsync(buffer, cancellationToken)) > 0)
                if (text.Length < 1 << 20) text.Append(buffer, 0, n);
            json = text.ToString();
        }, cancellationToken);
        try
        {
            using var document = JsonDocument.Parse(json);
            if (!document.RootElement.TryGetProperty("streams", out var streams) || streams.GetArrayLength() == 0)
                throw new VideoDecodeException($"{path}: ffprobe found no video stream");
            var stream = streams[0];
            int width = stream.TryGetProperty("width", out var w) ? w.GetInt32() : 0;
            int height = stream.TryGetProperty("height", out var h) ? h.GetInt32() : 0;
            int frames = Count(stream, "nb_read_packets") is int packets and > 0 ? packets : Count(stream, "nb_frames") ?? 0;
            double fps = Rate(stream, "avg_frame_rate") is double average and > 0 ? average : Rate(stream, "r_frame_rate") ?? 0;
            if (width <= 0 || height <= 0 || frames <= 0 || !(fps > 0))
                throw new VideoDecodeException($"{path}: ffprobe reports a {width}×{height} video of {frames} frames at {fps} fps; cannot sample it");
            return (width, height, frames, fps);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new VideoDecodeException($"{path}: ffprobe's answer is not the expected JSON ({e.Message})", e);
        }

        static int? Count(JsonElement stream, string key) =>
            stream.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && int.TryParse(v.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : null;

        static double? Rate(JsonElement stream, string key)
        {
            if (!stream.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.String) return null;
            var parts = (v.GetString() ?? "").Split('/');
            if (parts.Length != 2 || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double num)
                || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double den) || den == 0)
                return null;
            return num / den;
        }
    }

    /// <summary>Runs a tool with <paramref name="readOutput"/> consuming its stdout; a missing tool, a failure or a timeout becomes a <see cref="VideoDecodeException"/>.</summary>
    private static async Task RunToolAsync(string executable, string tool, IReadOnlyList<string> arguments, TimeSpan timeout,
        Func<Stream, Task> readOutput, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        Process process;
        try { process = Process.Start(start) ?? throw new Win32Exception($"{executable} did not start"); }
        catch (Win32Exception e)
        {
            throw new VideoDecodeException($"{tool} could not be run ('{executable}': {e.Message}). Reading video files needs ffmpeg and ffprobe: " +
                "install ffmpeg (e.g. `apt install ffmpeg`) or pass the video as an image sequence (a directory of frames) or an animated GIF/WebP", e);
        }
        using (process)
        {
            using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeoutSource.CancelAfter(timeout);
            var errorText = new StringBuilder();
            var errorTask = Task.Run(async () =>
            {
                var buffer = new char[4096];
                int n;
                while ((n = await process.StandardError.ReadAsync(buffer, CancellationToken.None)) > 0)
                    if (errorText.Length < 4096) errorText.Append(buffer, 0, Math.Min(n, 4096 - errorText.Length));
            }, CancellationToken.None);
            try
            {
                await readOutput(process.StandardOutput.BaseStream).WaitAsync(timeoutSource.Token);
                await process.WaitForExitAsync(timeoutSource.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or VideoDecodeException)
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                if (e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
                    throw new VideoDecodeException($"{tool} ran past its {timeout.TotalSeconds:N0} s limit and was stopped", e);
                throw;
            }
            await errorTask;
            if (process.ExitCode != 0)
                throw new VideoDecodeException($"{tool} failed (exit code {process.ExitCode}): {errorText.ToString().Trim()}");
        }
    }
}
