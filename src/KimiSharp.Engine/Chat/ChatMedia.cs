using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Vision;

namespace KimiSharp.Engine.Chat;

/// <summary>How a chat service accepts images.</summary>
public sealed record ChatMediaOptions
{
    /// <summary>Fetch http(s) image URLs. Off by default: a server that fetches what clients name can be pointed at internal hosts.</summary>
    public bool AllowRemoteImages { get; init; }
    /// <summary>Size bounds checked from each image's header before any pixel buffer exists.</summary>
    public ImageDecodeLimits DecodeLimits { get; init; } = new();
    /// <summary>How long a remote image may take to arrive.</summary>
    public TimeSpan RemoteTimeout { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>Most images one request may carry.</summary>
    public int MaxImagesPerRequest { get; init; } = 16;
}

/// <summary>An image in a chat request that cannot be used; the message names the part and the problem (HTTP 400).</summary>
public sealed class ChatMediaException(string message, Exception? inner = null) : ArgumentException(message, inner);

/// <summary>
/// A chat model's K2.5 vision tower: the <c>vision_config</c>, the preprocessing and the encoder, and the prompt token
/// (<c>&lt;|media_pad|&gt;</c>) each image's features replace.
/// </summary>
public sealed class ChatVision : IDisposable
{
    private readonly VisionWeights _weights;

    private ChatVision(VisionConfig config, MediaProcessingConfig media, VisionWeights weights, int placeholderTokenId, KernelSettings kernels)
    {
        Config = config;
        Preprocessor = new ImagePreprocessor(media);
        Chunker = new VideoChunker(media);
        _weights = weights;
        Encoder = new VisionEncoder(weights) { Kernels = kernels };
        PlaceholderTokenId = placeholderTokenId;
    }

    public VisionConfig Config { get; }
    public ImagePreprocessor Preprocessor { get; }
    /// <summary>How a video becomes 4-frame chunks (K2.5's sampling and per-chunk resize).</summary>
    public VideoChunker Chunker { get; }
    public VisionEncoder Encoder { get; }
    /// <summary>The token standing for an image in the rendered prompt, expanded to one copy per feature row.</summary>
    public int PlaceholderTokenId { get; }

    /// <summary>
    /// Tower outputs of recent images and video chunks by content key (256 MiB by default; a cache of 0 bytes keeps
    /// nothing). A chat resends its images every turn, an agent every step, and n &gt; 1 asks for the same images n
    /// times: each is encoded once while it stays in the cache.
    /// </summary>
    public VisionFeatureCache FeatureCache { get; set; } = new(VisionFeatureCache.DefaultBudgetBytes);

    /// <summary>Whether <paramref name="directory"/>'s config.json has a <c>vision_config</c> (a K2.5 checkpoint with its tower).</summary>
    public static bool IsPresent(string directory)
    {
        string path = Path.Combine(directory, VisionConfig.FileName);
        if (!File.Exists(path)) return false;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException) { return false; } // the text model's loader reports a broken config.json
    }

    /// <summary>
    /// Loads the tower of the K2.5 checkpoint in <paramref name="directory"/>, checked against the text model's width
    /// and the tokenizer's <c>&lt;|media_pad|&gt;</c>; the tower runs with the text model's kernel settings (its threads).
    /// </summary>
    public static ChatVision Load(string directory, int textHiddenSize, KimiTokenizer tokenizer, KernelSettings? kernels = null)
    {
        var config = VisionConfig.Load(directory);
        var media = MediaProcessingConfig.Load(directory);
        media.CheckAgainst(config, Path.Combine(directory, MediaProcessingConfig.FileName));
        if (config.TextHiddenSize != textHiddenSize)
            throw new VisionConfigException($"{directory}: the vision projector writes {config.TextHiddenSize}-wide features but the text model's hidden_size is {textHiddenSize}");
        int? pad = tokenizer.TokenToId(KimiSpecialTokens.MediaPad);
        int placeholder = config.MediaPlaceholderTokenId ?? pad
            ?? throw new VisionConfigException($"{directory}: config.json has no media_placeholder_token_id and the tokenizer has no {KimiSpecialTokens.MediaPad}");
        if (placeholder < 0 || placeholder >= tokenizer.VocabSize)
            throw new VisionConfigException($"{directory}: media_placeholder_token_id {placeholder} is outside the tokenizer's {tokenizer.VocabSize} ids" +
                (pad is int p ? $" ({KimiSpecialTokens.MediaPad} is {p})" : ""));
        var weights = VisionWeights.Load(directory, config);
        return new ChatVision(config, media, weights, placeholder, kernels ?? KernelSettings.Default);
    }

    /// <summary>
    /// Runs every image through the tower in one batch; returns each image's features [tokens, text hidden] and a content
    /// key per image (a hash of its pixels), for the prefix cache. Images already in <see cref="FeatureCache"/> (or
    /// repeated in the list) are not encoded again; the returned arrays are shared, to be read only.
    /// </summary>
    public (float[][] Features, ulong[] Keys) Encode(IReadOnlyList<RgbImage> images, CancellationToken cancellationToken = default)
    {
        var keys = new ulong[images.Count];
        for (int i = 0; i < images.Count; i++) keys[i] = ContentKey(images[i]);
        return (EncodeMissing(keys, i => Preprocessor.Image(images[i]), cancellationToken), keys);
    }

    /// <summary>
    /// Runs every image and every video chunk through the tower in one batch (those not in <see cref="FeatureCache"/>).
    /// Returns one feature block per <c>&lt;|media_pad|&gt;</c> of the prompt (an image: one; a video: one per chunk), in
    /// order, each with its content key.
    /// </summary>
    public (float[][] Features, ulong[] Keys) Encode(IReadOnlyList<ChatMedia> media, CancellationToken cancellationToken = default)
    {
        var inputs = new List<Func<VisionInput>>();
        var keys = new List<ulong>();
        foreach (var item in media)
        {
            if (item.Image is { } image)
            {
                inputs.Add(() => Preprocessor.Image(image));
                keys.Add(ContentKey(image));
                continue;
            }
            foreach (var chunk in item.Chunks!)
            {
                inputs.Add(() => Chunker.Preprocess(chunk));
                ulong key = 0;
                foreach (var frame in chunk.Frames) key = (key * 0x100000001B3UL) ^ ContentKey(frame.Image);
                keys.Add(key | 1);
            }
        }
        ulong[] keyArray = [.. keys];
        return (EncodeMissing(keyArray, i => inputs[i](), cancellationToken), keyArray);
    }

    /// <summary>Features for each key: from the cache, or encoded (preprocessed only then) in one batch, once per distinct key.</summary>
    private float[][] EncodeMissing(ulong[] keys, Func<int, VisionInput> input, CancellationToken cancellationToken)
    {
        var cache = FeatureCache;
        var features = new float[keys.Length][];
        var firstWithKey = new Dictionary<ulong, int>();
        var toEncode = new List<int>();
        for (int i = 0; i < keys.Length; i++)
        {
            if (cache.TryGet(keys[i], out var cached)) { features[i] = cached; continue; }
            if (firstWithKey.TryAdd(keys[i], i)) toEncode.Add(i);
        }
        if (toEncode.Count > 0)
        {
            var inputs = new VisionInput[toEncode.Count];
            for (int j = 0; j < inputs.Length; j++) inputs[j] = input(toEncode[j]);
            var encoded = Encoder.Encode(inputs, cancellationToken);
            for (int j = 0; j < encoded.Length; j++)
            {
                features[toEncode[j]] = encoded[j];
                cache.Add(keys[toEncode[j]], encoded[j]);
            }
        }
        for (int i = 0; i < keys.Length; i++) features[i] ??= features[firstWithKey[keys[i]]];
        return features;
    }

    /// <summary>A non-zero 64-bit key of an image's size and pixels: equal keys mean equal features.</summary>
    public static ulong ContentKey(RgbImage image)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> size = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(size, image.Width);
        BinaryPrimitives.WriteInt32LittleEndian(size[4..], image.Height);
        hash.AppendData(size);
        hash.AppendData(image.Pixels);
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return BinaryPrimitives.ReadUInt64LittleEndian(digest) | 1;
    }

    public void Dispose() => _weights.Dispose();
}

/// <summary>The images of an OpenAI-shaped conversation: found in message order, fetched and decoded.</summary>
public static class ChatImages
{
    private static readonly HttpClient s_http = new() { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>A media part: where it is (messages[i].content[j]), its URL, and whether it is a video (<c>video_url</c>).</summary>
    public readonly record struct ImagePart(string Path, string Url, bool IsVideo = false);

    /// <summary>
    /// Every <c>image_url</c> and <c>video_url</c> content part, in message order (the order the template renders their
    /// placeholders).
    /// </summary>
    public static IReadOnlyList<ImagePart> Find(JsonArray messages)
    {
        var parts = new List<ImagePart>();
        for (int m = 0; m < messages.Count; m++)
        {
            if (messages[m] is not JsonObject message || message["content"] is not JsonArray content) continue;
            for (int p = 0; p < content.Count; p++)
            {
                if (content[p] is not JsonObject part || part["type"] is not JsonValue type || type.GetValueKind() != JsonValueKind.String
                    || type.GetValue<string>() is not ("image_url" or "video_url")) continue;
                string kind = type.GetValue<string>();
                string path = $"messages[{m}].content[{p}]";
                // {"image_url": {"url": ..., "detail": ...}} (detail is ignored: K2.5 always sees the whole image) or a bare string.
                string? url = part[kind] switch
                {
                    JsonObject o when o["url"] is JsonValue u && u.GetValueKind() == JsonValueKind.String => u.GetValue<string>(),
                    JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
                    _ => null,
                };
                if (url is null) throw new ChatMediaException($"{path}.{kind}.url is required (a data: URL or, where allowed, an http(s) URL)");
                parts.Add(new ImagePart(path, url, kind == "video_url"));
            }
        }
        return parts;
    }

    /// <summary>Decodes every part (data URLs; http(s) only when allowed), refusing the first bad one with its path and problem.</summary>
    public static RgbImage[] Decode(IReadOnlyList<ImagePart> parts, ChatMediaOptions options, CancellationToken cancellationToken = default)
    {
        if (parts.Count > options.MaxImagesPerRequest)
            throw new ChatMediaException($"the request has {parts.Count} images; at most {options.MaxImagesPerRequest} are accepted");
        var images = new RgbImage[parts.Count];
        for (int i = 0; i < parts.Count; i++)
        {
            byte[] bytes = Bytes(parts[i], options, cancellationToken);
            try { images[i] = ImageDecoder.Decode(bytes, options.DecodeLimits); }
            catch (ImageDecodeException e) { throw new ChatMediaException($"{parts[i].Path}: {e.Message}", e); }
        }
        return images;
    }

    /// <summary>
    /// Decodes images and videos (a video: an animated GIF or WebP, or, through ffmpeg, any <c>video/*</c> data), refusing
    /// the first bad one with its path and problem.
    /// </summary>
    public static ChatMedia[] DecodeMedia(IReadOnlyList<ImagePart> parts, ChatMediaOptions options, VideoChunker chunker,
        CancellationToken cancellationToken = default)
    {
        if (parts.Count > options.MaxImagesPerRequest)
            throw new ChatMediaException($"the request has {parts.Count} images and videos; at most {options.MaxImagesPerRequest} are accepted");
        var media = new ChatMedia[parts.Count];
        for (int i = 0; i < parts.Count; i++)
        {
            var part = parts[i];
            if (!part.IsVideo)
            {
                media[i] = new ChatMedia(Decode([part], options, cancellationToken)[0], null);
                continue;
            }
            byte[] bytes = Bytes(part, options, cancellationToken);
            try
            {
                var frames = IsAnimatedImage(bytes) ? VideoFrames.FromAnimation(bytes, chunker.Config) : FromVideoFile(bytes, chunker.Config, cancellationToken);
                media[i] = new ChatMedia(null, chunker.Chunks(frames));
            }
            catch (Exception e) when (e is ImageDecodeException or VideoDecodeException)
            {
                throw new ChatMediaException($"{part.Path}: {e.Message}", e);
            }
        }
        return media;
    }

    private static bool IsAnimatedImage(ReadOnlySpan<byte> data) =>
        data.StartsWith("GIF8"u8) || (data.Length >= 12 && data.StartsWith("RIFF"u8) && data[8..12].SequenceEqual("WEBP"u8));

    /// <summary>Other video data goes through ffmpeg, which reads files: a private temporary file, deleted afterwards.</summary>
    private static VideoFrames FromVideoFile(byte[] data, MediaProcessingConfig config, CancellationToken cancellationToken)
    {
        string path = Path.Combine(Path.GetTempPath(), "kimi-video-" + Guid.NewGuid().ToString("N"));
        try
        {
            File.WriteAllBytes(path, data);
            return VideoFrames.FromVideoFileAsync(path, config, cancellationToken: cancellationToken).GetAwaiter().GetResult();
        }
        catch (VideoDecodeException e) when (e.Message.Contains(path, StringComparison.Ordinal))
        {
            // The temporary file's name means nothing to the client.
            throw new VideoDecodeException(e.Message.Replace(path, "the video", StringComparison.Ordinal), e);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The encoded image a URL names.</summary>
    public static byte[] Bytes(ImagePart part, ChatMediaOptions options, CancellationToken cancellationToken = default)
    {
        string url = part.Url;
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return DataUrl(part, options.DecodeLimits.MaxBytes);
        if (url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            if (!options.AllowRemoteImages)
                throw new ChatMediaException($"{part.Path}: remote image URLs are not allowed on this server; send the image inline as a data: URL " +
                    "(data:image/png;base64,...)");
            return Fetch(part, options, cancellationToken);
        }
        string scheme = url.Length > 16 ? url[..16] + "…" : url;
        throw new ChatMediaException($"{part.Path}: image URL '{scheme}' is neither a data: URL nor http(s)");
    }

    private static byte[] DataUrl(ImagePart part, long maxBytes)
    {
        string url = part.Url;
        int comma = url.IndexOf(',');
        if (comma < 0) throw new ChatMediaException($"{part.Path}: the data URL has no ',' before its data");
        string header = url[5..comma];
        string[] fields = header.Split(';');
        string mediaType = fields[0].Trim().ToLowerInvariant();
        if (mediaType.Length > 0 && !mediaType.StartsWith("image/", StringComparison.Ordinal) && !(part.IsVideo && mediaType.StartsWith("video/", StringComparison.Ordinal)))
            throw new ChatMediaException($"{part.Path}: the data URL's media type '{mediaType}' is not an image type (image/png, image/jpeg, image/gif, image/bmp)");
        if (!fields.Skip(1).Any(f => f.Trim().Equals("base64", StringComparison.OrdinalIgnoreCase)))
            throw new ChatMediaException($"{part.Path}: the data URL is not base64-encoded (expected data:{(mediaType.Length > 0 ? mediaType : "image/png")};base64,...)");
        var data = url.AsSpan(comma + 1).Trim();
        // Checked on the encoded length so an oversized image is refused before its bytes are allocated.
        if ((long)data.Length / 4 * 3 > maxBytes + 3)
            throw new ChatMediaException($"{part.Path}: the image is about {(long)data.Length / 4 * 3:N0} bytes; at most {maxBytes:N0} are accepted");
        var bytes = new byte[data.Length / 4 * 3 + 3];
        if (!Convert.TryFromBase64Chars(data, bytes, out int written))
            throw new ChatMediaException($"{part.Path}: the data URL's data is not valid base64");
        if (written == 0) throw new ChatMediaException($"{part.Path}: the data URL holds no image data");
        return bytes.AsSpan(0, written).ToArray();
    }

    private static byte[] Fetch(ImagePart part, ChatMediaOptions options, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.RemoteTimeout);
        long maxBytes = options.DecodeLimits.MaxBytes;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, part.Url);
            using var response = s_http.Send(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
                throw new ChatMediaException($"{part.Path}: fetching the image gave HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            if (response.Content.Headers.ContentLength is long declared && declared > maxBytes)
                throw new ChatMediaException($"{part.Path}: the remote image is {declared:N0} bytes; at most {maxBytes:N0} are accepted");
            using var stream = response.Content.ReadAsStream(timeout.Token);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = stream.ReadAsync(chunk, timeout.Token).AsTask().GetAwaiter().GetResult()) > 0)
            {
                if (buffer.Length + read > maxBytes)
                    throw new ChatMediaException($"{part.Path}: the remote image is more than the {maxBytes:N0} bytes accepted");
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ChatMediaException($"{part.Path}: the remote image did not arrive within {options.RemoteTimeout.TotalSeconds:F0} s");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or InvalidOperationException or UriFormatException)
        {
            throw new ChatMediaException($"{part.Path}: the image could not be fetched ({e.Message})", e);
        }
    }

    /// <summary>
    /// Puts each image's features at its placeholder: <paramref name="tokens"/> (the rendered prompt) must hold exactly
    /// one placeholder per image, in image order, and each becomes one copy per feature row.
    /// </summary>
    public static (int[] Tokens, PromptEmbeddings Embeddings) Expand(IReadOnlyList<int> tokens, int placeholderId,
        IReadOnlyList<float[]> features, IReadOnlyList<ulong> keys, int hiddenSize)
    {
        int placeholders = tokens.Count(t => t == placeholderId);
        if (placeholders != features.Count)
            throw new ChatMediaException($"the chat template rendered {placeholders} media placeholder(s) (token {placeholderId}) for {features.Count} image(s); " +
                "the model folder's template must emit one <|media_pad|> per image part");
        var (expanded, patch) = MediaPlaceholders.Expand(tokens.ToArray(), placeholderId, features, hiddenSize);
        var rowKeys = new ulong[patch.Positions.Count];
        int at = 0;
        for (int i = 0; i < features.Count; i++)
            for (int r = 0; r < features[i].Length / hiddenSize; r++) rowKeys[at++] = keys[i];
        return (expanded, new PromptEmbeddings(patch, rowKeys));
    }
}

/// <summary>One decoded media part of a request: an image, or a video already cut into chunks.</summary>
public sealed record ChatMedia(RgbImage? Image, IReadOnlyList<VideoChunk>? Chunks);

/// <summary>
/// Vision-tower features by content key, the least recently used dropped first once their floats exceed the budget.
/// Thread-safe; cached arrays are shared and must not be written.
/// </summary>
public sealed class VisionFeatureCache(long budgetBytes)
{
    public const long DefaultBudgetBytes = 256L << 20;

    private readonly object _gate = new();
    private readonly Dictionary<ulong, LinkedListNode<(ulong Key, float[] Features)>> _byKey = [];
    private readonly LinkedList<(ulong Key, float[] Features)> _recency = new(); // most recent first
    private long _bytes, _hits, _misses;

    public long BudgetBytes { get; } = budgetBytes >= 0 ? budgetBytes : throw new ArgumentOutOfRangeException(nameof(budgetBytes));
    /// <summary>Bytes of the features held now.</summary>
    public long Bytes { get { lock (_gate) return _bytes; } }
    public int Count { get { lock (_gate) return _byKey.Count; } }
    /// <summary>Lookups answered from the cache, and lookups that had to encode.</summary>
    public (long Hits, long Misses) Lookups => (Interlocked.Read(ref _hits), Interlocked.Read(ref _misses));

    public bool TryGet(ulong key, out float[] features)
    {
        lock (_gate)
        {
            if (_byKey.TryGetValue(key, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                features = node.Value.Features;
                _hits++;
                return true;
            }
            _misses++;
            features = [];
            return false;
        }
    }

    public void Add(ulong key, float[] features)
    {
        long size = (long)features.Length * sizeof(float);
        if (size > BudgetBytes) return;
        lock (_gate)
        {
            if (_byKey.ContainsKey(key)) return;
            _byKey[key] = _recency.AddFirst((key, features));
            _bytes += size;
            while (_bytes > BudgetBytes)
            {
                var oldest = _recency.Last!;
                _recency.RemoveLast();
                _byKey.Remove(oldest.Value.Key);
                _bytes -= (long)oldest.Value.Features.Length * sizeof(float);
            }
        }
    }
}
