using System.Text;

namespace KimiSharp.Vision;

/// <summary>
/// One video chunk as K2.5 sees it: up to <see cref="MediaProcessingConfig.TemporalMergeKernelSize"/> consecutive
/// sampled frames, the start time of its first frame, the prompt text that stands for it and the number of
/// <c>&lt;|media_pad|&gt;</c> tokens (tower output rows) it becomes.
/// </summary>
public sealed record VideoChunk(IReadOnlyList<VideoFrame> Frames, double StartSeconds, string Timestamp, ImageResizePlan Plan)
{
    /// <summary>Projected feature rows of this chunk: the merged spatial grid, time pooled into one.</summary>
    public int Tokens => Plan.Tokens;
    /// <summary>The chunk's prompt text (<see cref="VideoPrompt.ChunkText"/>).</summary>
    public string Prompt => VideoPrompt.ChunkText(Timestamp);
}

/// <summary>
/// The K2.5 media-processing step for video: sampled frames are cut into chunks of
/// <see cref="MediaProcessingConfig.TemporalMergeKernelSize"/> (the last may hold fewer), each stamped with its first
/// frame's time and planned from its first frame (<see cref="ImagePreprocessor.VideoChunkPlan"/>). Pixels are prepared
/// one chunk at a time by <see cref="Preprocess"/>, so a long video never holds all its tower input at once.
/// </summary>
public sealed class VideoChunker(MediaProcessingConfig config)
{
    private readonly ImagePreprocessor preprocessor = new(config);

    public MediaProcessingConfig Config { get; } = config;

    public IReadOnlyList<VideoChunk> Chunks(VideoFrames video)
    {
        ArgumentNullException.ThrowIfNull(video);
        int size = Config.TemporalMergeKernelSize;
        var chunks = new List<VideoChunk>((video.Frames.Count + size - 1) / size);
        for (int start = 0; start < video.Frames.Count; start += size)
        {
            var frames = video.Frames.Skip(start).Take(size).ToArray();
            var first = frames[0];
            var plan = preprocessor.VideoChunkPlan(first.Image.Width, first.Image.Height, frames.Length);
            chunks.Add(new VideoChunk(frames, first.Seconds, VideoSampling.Timestamp(first.Seconds, Config.TimestampMode), plan));
        }
        return chunks;
    }

    /// <summary>The tower input of one chunk: its frames resized to the chunk's plan, padded, normalised and cut into patches.</summary>
    public VisionInput Preprocess(VideoChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        var input = preprocessor.VideoChunk([.. chunk.Frames.Select(f => f.Image)]);
        if (input.Grid.Rows != chunk.Plan.PatchRows || input.Grid.Columns != chunk.Plan.PatchColumns)
            throw new InvalidOperationException($"chunk at {chunk.Timestamp} was planned for a {chunk.Plan.PatchRows}×{chunk.Plan.PatchColumns} grid but preprocessed to {input.Grid}");
        return input;
    }
}

/// <summary>
/// The prompt text for video, as the K2.5 processor and vLLM build it: the chat template writes
/// <see cref="Placeholder"/> once per video, and each is replaced by the video's chunk texts in order — the timestamp,
/// then <c>&lt;|media_begin|&gt;video&lt;|media_content|&gt;&lt;|media_pad|&gt;&lt;|media_end|&gt;</c>. Each
/// <c>&lt;|media_pad|&gt;</c> later expands to the chunk's <see cref="VideoChunk.Tokens"/> copies
/// (<see cref="MediaPlaceholders.Expand"/>), whose embeddings are the chunk's features.
/// </summary>
public static class VideoPrompt
{
    public const string Placeholder = "<|kimi_k25_video_placeholder|>";
    public const string MediaBegin = "<|media_begin|>";
    public const string MediaContent = "<|media_content|>";
    public const string MediaPad = "<|media_pad|>";
    public const string MediaEnd = "<|media_end|>";

    /// <summary>One chunk's text: its timestamp, then the video media block with a single <c>&lt;|media_pad|&gt;</c>.</summary>
    public static string ChunkText(string timestamp) => $"{timestamp}{MediaBegin}video{MediaContent}{MediaPad}{MediaEnd}";

    /// <summary>A whole video's text: its chunks' texts, concatenated.</summary>
    public static string Text(IReadOnlyList<VideoChunk> chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var text = new StringBuilder();
        foreach (var chunk in chunks) text.Append(chunk.Prompt);
        return text.ToString();
    }

    /// <summary>
    /// Replaces the <see cref="Placeholder"/>s of a rendered prompt with the videos' texts, in order. The counts must
    /// agree (vLLM only warns and leaves the prompt unreplaced; here that is an error).
    /// </summary>
    public static string ReplacePlaceholders(string renderedPrompt, IReadOnlyList<IReadOnlyList<VideoChunk>> videos)
    {
        ArgumentNullException.ThrowIfNull(renderedPrompt);
        ArgumentNullException.ThrowIfNull(videos);
        var parts = renderedPrompt.Split(Placeholder);
        if (parts.Length - 1 != videos.Count)
            throw new ArgumentException($"the prompt has {parts.Length - 1} video placeholder(s) ({Placeholder}) but {videos.Count} video(s) were given");
        var text = new StringBuilder(parts[0]);
        for (int i = 0; i < videos.Count; i++) text.Append(Text(videos[i])).Append(parts[i + 1]);
        return text.ToString();
    }

    /// <summary>The <c>&lt;|media_pad|&gt;</c> count of each chunk, in prompt order: what <see cref="MediaPlaceholders.Expand"/> will produce.</summary>
    public static int[] TokensPerChunk(IReadOnlyList<VideoChunk> chunks) => [.. chunks.Select(c => c.Tokens)];
}
