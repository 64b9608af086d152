using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

/// <summary>A fact that runs only where ffmpeg and ffprobe are on PATH, and otherwise is reported skipped with the reason.</summary>
public sealed class RequiresFfmpegFactAttribute : FactAttribute
{
    public RequiresFfmpegFactAttribute()
    {
        if (!FfmpegTools.Available) Skip = "ffmpeg/ffprobe are not on PATH (install ffmpeg, e.g. `apt install ffmpeg`, to run this test)";
    }
}

internal static class FfmpegTools
{
    public static readonly bool Available = Runs("ffmpeg") && Runs("ffprobe");

    private static bool Runs(string tool)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(tool, "-version") { RedirectStandardOutput = true, RedirectStandardError = true });
            if (process is null) return false;
            process.StandardOutput.ReadToEnd();
            process.WaitForExit(10_000);
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}

public sealed class VideoTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static byte[] Frame(int width, int height, int shift)
    {
        var pixels = TestImages.Pattern(width, height);
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(pixels[i] + shift);
        return pixels;
    }

    [Fact]
    public void SamplingAndTimestampsMatchThePublishedProcessor()
    {
        // Computed by Fixtures/make_video_fixtures.py with numpy.linspace(...).round() and datetime.strftime, as the
        // K2.5 processor's split_video_chunks and timestamp_as_str do.
        using var document = JsonDocument.Parse(File.ReadAllText(Fixture("video-sampling.json")));
        int checkedCases = 0;
        foreach (var c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            int frames = c.GetProperty("frames").GetInt32();
            double fps = c.GetProperty("fps").GetDouble(), sampleFps = c.GetProperty("sample_fps").GetDouble();
            var expected = c.GetProperty("indices").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var indices = VideoSampling.FrameIndices(frames, fps, sampleFps);
            Assert.Equal(expected, indices);
            foreach (var mode in c.GetProperty("timestamps").EnumerateObject())
            {
                var stamps = Enumerable.Range(0, (indices.Length + 3) / 4).Select(k => VideoSampling.Timestamp(indices[4 * k] / fps, mode.Name));
                Assert.Equal(mode.Value.EnumerateArray().Select(e => e.GetString()), stamps);
            }
            checkedCases++;
        }
        Assert.True(checkedCases >= 10);
        foreach (var clock in document.RootElement.GetProperty("clock").EnumerateArray())
            Assert.Equal(clock.GetProperty("text").GetString(), VideoSampling.Timestamp(clock.GetProperty("seconds").GetDouble()));
        // A configured max_num_frames_each_video caps the count; the spread stays linspace over the whole video.
        Assert.Equal([0, 50, 99], VideoSampling.FrameIndices(100, 10, 2, maxFrames: 3));
    }

    [Fact]
    public void AnimatedGifSamplesAtTwoFpsIntoChunksOfFour()
    {
        // Ten frames of 250 ms (4 fps) sample at 2 fps to five frames: linspace(0, 9, 5) = 0, 2.25, 4.5, 6.75, 9 → 0, 2, 4, 7, 9.
        var video = VideoFrames.FromAnimation(File.ReadAllBytes(Fixture("video-ten.gif")), new MediaProcessingConfig());
        Assert.Equal((10, 4.0), (video.SourceFrameCount, video.SourceFps));
        Assert.Equal([0, 2, 4, 7, 9], video.Frames.Select(f => f.SourceIndex));
        var pillow = File.ReadAllBytes(Fixture("video-ten.rgb"));
        foreach (var frame in video.Frames)
            Assert.Equal(pillow.AsSpan(frame.SourceIndex * 3600, 3600).ToArray(), frame.Image.Pixels);

        var chunker = new VideoChunker(new MediaProcessingConfig());
        var chunks = chunker.Chunks(video);
        Assert.Equal(2, chunks.Count);
        Assert.Equal([4, 1], chunks.Select(c => c.Frames.Count)); // the last chunk keeps what is left
        Assert.Equal(["00:00:00.000", "00:00:02.250"], chunks.Select(c => c.Timestamp));
        var input = chunker.Preprocess(chunks[0]);
        Assert.Equal(new VisionGrid(4, 4, 4), input.Grid); // 40×30 pads to 56×56
        Assert.Equal(4, chunks[0].Tokens);
        Assert.Equal(new VisionGrid(1, 4, 4), chunker.Preprocess(chunks[1]).Grid);
        // Each frame of the chunk is the frame preprocessed alone, in order.
        var preprocessor = new ImagePreprocessor(new MediaProcessingConfig());
        int framePatches = input.Patches.Length / 4;
        for (int f = 0; f < 4; f++)
            Assert.Equal(preprocessor.Image(chunks[0].Frames[f].Image).Patches, input.Patches.AsSpan(f * framePatches, framePatches).ToArray());
    }

    [Fact]
    public void ImageSequenceDirectoryIsSortedAndSampled()
    {
        string directory = Path.Combine(Path.GetTempPath(), "kimisharp-frames-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        try
        {
            for (int i = 0; i < 6; i++) File.WriteAllBytes(Path.Combine(directory, $"frame{i:00}.png"), TestImages.Png(30, 20, Frame(30, 20, 40 * i)));
            File.WriteAllText(Path.Combine(directory, "notes.txt"), "not a frame");
            // By default a sequence is already sampled: every file is a frame, 0.5 s apart at the 2 fps rate.
            var video = VideoFrames.FromDirectory(directory, new MediaProcessingConfig());
            Assert.Equal([0, 1, 2, 3, 4, 5], video.Frames.Select(f => f.SourceIndex));
            for (int i = 0; i < 6; i++) Assert.Equal(Frame(30, 20, 40 * i), video.Frames[i].Image.Pixels);
            var chunks = new VideoChunker(new MediaProcessingConfig()).Chunks(video);
            Assert.Equal(["00:00:00.000", "00:00:02.000"], chunks.Select(c => c.Timestamp));
            // Declared as 4 fps, three frames are kept: linspace(0, 5, 3) = 0, 2.5, 5 rounds half to even → 0, 2, 5.
            var sparse = VideoFrames.FromDirectory(directory, new MediaProcessingConfig(), framesPerSecond: 4);
            Assert.Equal([0, 2, 5], sparse.Frames.Select(f => f.SourceIndex));
            Assert.Equal(Frame(30, 20, 80), sparse.Frames[1].Image.Pixels);
            // Too many sampled frames for the limits: refused before decoding.
            Assert.Contains("at most 4", Assert.Throws<VideoDecodeException>(() =>
                VideoFrames.FromDirectory(directory, new MediaProcessingConfig(), limits: new VideoLimits { MaxFrames = 4 })).Message);
        }
        finally { Directory.Delete(directory, recursive: true); }
        Assert.Contains("no such directory", Assert.Throws<VideoDecodeException>(() => VideoFrames.FromDirectory(directory, new MediaProcessingConfig())).Message);
    }

    [Fact]
    public void VideoPromptFollowsTheProcessorLayout()
    {
        var frames = Enumerable.Range(0, 6).Select(i => new VideoFrame(RgbImage.Create(60, 40, Frame(60, 40, i)), i * 5, i * 2.5)).ToArray();
        var chunks = new VideoChunker(new MediaProcessingConfig()).Chunks(new VideoFrames(frames, 30, 2));
        const string first = "00:00:00.000<|media_begin|>video<|media_content|><|media_pad|><|media_end|>";
        const string second = "00:00:10.000<|media_begin|>video<|media_content|><|media_pad|><|media_end|>";
        Assert.Equal(first + second, VideoPrompt.Text(chunks));
        // 60×40 pads to 84×56: a 4×6 patch grid, 2×3 merged tokens per chunk whatever its frame count.
        Assert.Equal([6, 6], VideoPrompt.TokensPerChunk(chunks));
        string rendered = "<|im_user|>user<|im_middle|><|kimi_k25_video_placeholder|>What happens?<|im_end|>";
        Assert.Equal("<|im_user|>user<|im_middle|>" + first + second + "What happens?<|im_end|>", VideoPrompt.ReplacePlaceholders(rendered, [chunks]));
        Assert.Contains("1 video placeholder(s)", Assert.Throws<ArgumentException>(() => VideoPrompt.ReplacePlaceholders(rendered, [chunks, chunks])).Message);
    }

    [Fact]
    public void TotalVideoPatchLimitSharesOutAmongAChunksFrames()
    {
        // in_patch_limit_video 120 over a 4-frame chunk leaves round(120 / 4) = 30 patches a frame, under the 4096 per frame.
        var config = new MediaProcessingConfig { InPatchLimitVideo = 120 };
        var plan = new ImagePreprocessor(config).VideoChunkPlan(280, 280, 4);
        Assert.Equal(new ImagePreprocessor(new MediaProcessingConfig { InPatchLimit = 30 }).Plan(280, 280), plan);
        Assert.Equal(new ImagePreprocessor(new MediaProcessingConfig { InPatchLimit = 120 }).Plan(280, 280),
            new ImagePreprocessor(config).VideoChunkPlan(280, 280, 1));
        var parsed = MediaProcessingConfig.Parse("""{"media_proc_cfg": {"in_patch_limit_video": 120, "sample_fps": 1.5, "max_num_frames_each_video": 64, "timestamp_mode": "mm:ss", "in_patch_limit_each_frame": null, "in_patch_limit": 9000}}""");
        Assert.Equal((120, 1.5, 64, "mm:ss", 9000), ((int)parsed.InPatchLimitVideo!, parsed.SampleFps, (int)parsed.MaxNumFramesEachVideo!, parsed.TimestampMode, parsed.InPatchLimitEachFrame));
        Assert.Throws<VisionConfigException>(() => MediaProcessingConfig.Parse("""{"timestamp_mode": "seconds"}"""));
        Assert.Throws<VisionConfigException>(() => MediaProcessingConfig.Parse("""{"sample_fps": 0}"""));
    }

    [Theory]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.BF16)]
    public void FourFrameChunkThroughTheTowerMatchesTheReference(SafetensorsDType dtype)
    {
        using var model = new TinyVisionModel(dtype);
        var reference = new VisionReference(model.Directory);
        using var weights = VisionWeights.Load(model.Directory, model.Config);
        var encoder = new VisionEncoder(weights);
        var video = VideoFrames.FromAnimation(File.ReadAllBytes(Fixture("video-ten.gif")), new MediaProcessingConfig());
        var chunker = new VideoChunker(new MediaProcessingConfig());
        var chunks = chunker.Chunks(video);
        var inputs = chunks.Select(chunker.Preprocess).ToArray();
        var features = encoder.Encode(inputs);
        for (int c = 0; c < chunks.Count; c++)
        {
            var g = inputs[c].Grid;
            Assert.Equal(chunks[c].Tokens * reference.TextHidden, features[c].Length);
            var expected = reference.Forward(inputs[c].Patches, g.Frames, g.Rows, g.Columns);
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < features[c].Length; i++)
            {
                double r = expected[i / reference.TextHidden, i % reference.TextHidden];
                maxDiff = Math.Max(maxDiff, Math.Abs(r - features[c][i]));
                maxRef = Math.Max(maxRef, Math.Abs(r));
            }
            Assert.True(maxRef > 0.1 && maxDiff <= 1e-5 * maxRef, $"chunk {c} ({g}): max |diff| {maxDiff:E3} vs max |ref| {maxRef:E3}");
        }
        // The four frames differ, so the chunk is not the first frame alone: the time embedding and mean are in play.
        Assert.NotEqual(encoder.Encode([new ImagePreprocessor(new MediaProcessingConfig()).Image(chunks[0].Frames[0].Image)])[0], features[0]);
    }

    [Fact]
    public async Task MissingFfmpegGetsAClearError()
    {
        string video = Path.Combine(Path.GetTempPath(), "kimisharp-" + Guid.NewGuid().ToString("N")[..12] + ".mp4");
        await File.WriteAllBytesAsync(video, [0, 0, 0, 0x18, (byte)'f', (byte)'t', (byte)'y', (byte)'p', 1, 2, 3, 4]);
        try
        {
            var tools = new FfmpegOptions { FfmpegPath = "/nonexistent/ffmpeg", FfprobePath = "/nonexistent/ffprobe" };
            var error = await Assert.ThrowsAsync<VideoDecodeException>(() => VideoFrames.LoadAsync(video, new MediaProcessingConfig(), tools));
            Assert.Contains("install ffmpeg", error.Message);
            Assert.Contains("image sequence", error.Message);
        }
        finally { File.Delete(video); }
        Assert.Contains("no such video", (await Assert.ThrowsAsync<VideoDecodeException>(() => VideoFrames.LoadAsync(video, new MediaProcessingConfig()))).Message);
    }

    [RequiresFfmpegFact]
    public async Task VideoFileThroughFfmpegSamplesTheRightFrames()
    {
        string directory = Path.Combine(Path.GetTempPath(), "kimisharp-ffmpeg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        try
        {
            // Twenty distinct frames at 10 fps in a lossless RGB stream: the 2 fps rule keeps linspace(0, 19, 4) → 0, 6, 13, 19.
            for (int i = 0; i < 20; i++) File.WriteAllBytes(Path.Combine(directory, $"f{i:00}.png"), TestImages.Png(32, 24, Frame(32, 24, 11 * i)));
            string video = Path.Combine(directory, "clip.mkv");
            using (var encode = Process.Start(new ProcessStartInfo("ffmpeg",
                ["-v", "error", "-nostdin", "-framerate", "10", "-i", Path.Combine(directory, "f%02d.png"), "-c:v", "png", video]) { RedirectStandardError = true })!)
            {
                string log = await encode.StandardError.ReadToEndAsync();
                await encode.WaitForExitAsync();
                Assert.True(encode.ExitCode == 0, log);
            }
            var frames = await VideoFrames.LoadAsync(video, new MediaProcessingConfig());
            Assert.Equal((20, 10.0), (frames.SourceFrameCount, frames.SourceFps));
            Assert.Equal([0, 6, 13, 19], frames.Frames.Select(f => f.SourceIndex));
            foreach (var frame in frames.Frames) Assert.Equal(Frame(32, 24, 11 * frame.SourceIndex), frame.Image.Pixels);
            Assert.Equal([0.0, 0.6, 1.3, 1.9], frames.Frames.Select(f => Math.Round(f.Seconds, 9)));
            // The frame budget is checked from ffprobe's answer, before any frame is decoded.
            Assert.Contains("at most 3", (await Assert.ThrowsAsync<VideoDecodeException>(() =>
                VideoFrames.LoadAsync(video, new MediaProcessingConfig(), limits: new VideoLimits { MaxFrames = 3 }))).Message);
            // Not a video: ffprobe's own complaint comes through.
            string junk = Path.Combine(directory, "junk.mp4");
            await File.WriteAllTextAsync(junk, "this is not a video file at all");
            Assert.Contains("ffprobe failed", (await Assert.ThrowsAsync<VideoDecodeException>(() => VideoFrames.LoadAsync(junk, new MediaProcessingConfig()))).Message);
        }
        finally { Directory.Delete(directory, recursive: true); }
    }
}
