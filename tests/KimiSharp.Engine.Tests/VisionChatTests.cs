using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Testing;
using KimiSharp.Vision;

namespace KimiSharp.Engine.Tests;

/// <summary>A tiny K2.5-style checkpoint (random text model + MoonViT tower) in a temporary folder.</summary>
public sealed class VisionModelFixture : IDisposable
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("kimi-vision-chat-").FullName;
    public string TextOnlyDirectory { get; } = System.IO.Directory.CreateTempSubdirectory("kimi-text-chat-").FullName;

    public VisionModelFixture()
    {
        RandomVisionChatModel.Write(Directory);
        RandomChatModel.Write(TextOnlyDirectory, new RandomCheckpointOptions { HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 4096, Seed = 3 });
    }

    public void Dispose()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
        System.IO.Directory.Delete(TextOnlyDirectory, recursive: true);
    }
}

public sealed class VisionChatTests(VisionModelFixture fixture) : IClassFixture<VisionModelFixture>
{
    private static readonly byte[] Red = RandomVisionChatModel.Png(60, 45, seed: 1);
    private static readonly byte[] Blue = RandomVisionChatModel.Png(60, 45, seed: 2);
    private static readonly byte[] Wide = RandomVisionChatModel.Png(90, 30, seed: 3);

    private static JsonObject ImagePart(byte[] png) =>
        new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = RandomVisionChatModel.DataUrl(png), ["detail"] = "high" } };

    private static ChatRequest Request(params JsonNode[] userParts) => new()
    {
        Messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "Describe images." },
            new JsonObject { ["role"] = "user", ["content"] = new JsonArray([.. userParts]) }),
        Generation = new GenerationOptions { MaxTokens = 2, Temperature = 0, Logprobs = true },
    };

    private static JsonObject Text(string text) => new() { ["type"] = "text", ["text"] = text };

    private static async Task<(ChatStarted Started, ChatToken First, ChatCompleted Done)> Run(KimiChatService service, ChatRequest request)
    {
        ChatStarted? started = null;
        ChatToken? first = null;
        ChatCompleted? done = null;
        await foreach (var e in service.ChatAsync(request))
            switch (e)
            {
                case ChatStarted s: started = s; break;
                case ChatToken t: first ??= t; break;
                case ChatCompleted c: done = c; break;
            }
        return (started!, first!, done!);
    }

    /// <summary>The next-token log-probabilities the model gives the expanded prompt with these images, computed without the engine.</summary>
    private static (int[] Tokens, double[] LogProbs) Direct(KimiChatService service, ChatRequest request, params byte[][] images)
    {
        var prompt = service.Tokenizer.Encode(service.RenderPrompt(request), allowSpecial: true).ToArray();
        var vision = service.Vision!;
        var inputs = images.Select(i => vision.Preprocessor.Image(ImageDecoder.Decode(i))).ToArray();
        var features = vision.Encoder.Encode(inputs);
        int hidden = service.Model.Config.HiddenSize, vocab = service.Model.Config.VocabSize;
        var (tokens, patch) = MediaPlaceholders.Expand(prompt, vision.PlaceholderTokenId, features, hidden);
        var logits = new float[vocab];
        service.Model.Forward(tokens, patch, service.Model.CreateCache(tokens.Length), logits, lastOnly: true);
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return (tokens, logits.Select(l => l - max - Math.Log(sum)).ToArray());
    }

    private static int ArgMax(double[] values) => Array.IndexOf(values, values.Max());

    [Fact]
    public async Task An_image_request_prefills_the_tower_features_in_one_pass_or_in_chunks()
    {
        await using var whole = KimiChatService.Load(fixture.Directory, new EngineOptions { EnablePrefixCache = false });
        // Chunks of 3 tokens split each image's 4 feature rows across prefill steps.
        await using var chunked = KimiChatService.Load(fixture.Directory, new EngineOptions { EnablePrefixCache = false, PrefillChunkTokens = 3 });
        var request = Request(ImagePart(Red), Text("and"), ImagePart(Wide), Text("what differs?"));
        var (tokens, expected) = Direct(whole, request, Red, Wide);
        var (otherTokens, other) = Direct(whole, request, Blue, Wide);
        Assert.Equal(tokens, otherTokens);
        Assert.True(Math.Abs(expected[ArgMax(expected)] - other[ArgMax(expected)]) > 1e-4, "a different image should change the logits");

        foreach (var service in new[] { whole, chunked })
        {
            var (started, first, done) = await Run(service, request);
            Assert.Equal(tokens.Length, started.PromptTokens);
            Assert.Equal(ArgMax(expected), first.Token);
            Assert.Equal(expected[first.Token], first.Logprob, 3e-4);
            // 60×45 pads to 84×56 pixels = 3×2 merged tokens; 90×30 pads to 112×56 = 4×2.
            Assert.Equal(6 + 8, done.Usage.ImageTokens);
            Assert.Equal(tokens.Length, done.Usage.PromptTokens);
        }
    }

    [Fact]
    public async Task The_prefix_cache_reuses_an_identical_image_but_never_a_different_one()
    {
        await using var service = KimiChatService.Load(fixture.Directory, new EngineOptions { PrefillChunkTokens = 4 });
        var red = Request(ImagePart(Red), Text("what is this?"));
        var blue = Request(ImagePart(Blue), Text("what is this?"));
        var (tokens, blueExpected) = Direct(service, blue, Blue);
        int firstPad = Array.IndexOf(tokens, service.Vision!.PlaceholderTokenId);
        int lastPad = Array.LastIndexOf(tokens, service.Vision.PlaceholderTokenId);

        var first = await Run(service, red);
        Assert.Equal(0, first.Started.CachedTokens);
        // Same tokens, other pixels: only the text before the image may come from the cache.
        var other = await Run(service, blue);
        Assert.InRange(other.Started.CachedTokens, 1, firstPad);
        Assert.Equal(blueExpected[other.First.Token], other.First.Logprob, 3e-4);
        Assert.Equal(ArgMax(blueExpected), other.First.Token);
        // The same image again: the cache covers it and the text after it.
        var again = await Run(service, red);
        Assert.True(again.Started.CachedTokens > lastPad, $"cached {again.Started.CachedTokens}, image ends at {lastPad}");
        Assert.Equal(first.First.Token, again.First.Token);
        Assert.Equal(first.First.Logprob, again.First.Logprob, 3e-4);
    }

    [Fact]
    public async Task Each_image_goes_through_the_tower_once_while_its_features_stay_cached()
    {
        await using var service = KimiChatService.Load(fixture.Directory);
        var vision = service.Vision!;
        RgbImage red = ImageDecoder.Decode(Red), blue = ImageDecoder.Decode(Blue), wide = ImageDecoder.Decode(Wide);
        var direct = vision.Encoder.Encode([vision.Preprocessor.Image(red), vision.Preprocessor.Image(blue)]);

        // Blue, red and blue again: two encodes, the repeat shares the first's features; all equal a plain encode.
        var (features, keys) = vision.Encode([blue, red, blue]);
        Assert.Equal((0L, 3L), vision.FeatureCache.Lookups); // three lookups before anything was cached
        Assert.Same(features[0], features[2]);
        Assert.Equal(keys[0], keys[2]);
        Assert.Equal(direct[1], features[0]);
        Assert.Equal(direct[0], features[1]);
        Assert.Equal(2, vision.FeatureCache.Count);

        // The next request (a chat turn resending them) is answered from the cache, without the tower.
        var (again, _) = vision.Encode([red, blue]);
        Assert.Same(features[1], again[0]);
        Assert.Same(features[0], again[1]);
        Assert.Equal(2L, vision.FeatureCache.Lookups.Hits);

        // A budget that holds one image's features keeps the most recent only.
        vision.FeatureCache = new VisionFeatureCache(features[0].Length * sizeof(float));
        vision.Encode([red]);
        vision.Encode([blue]);
        Assert.Equal(1, vision.FeatureCache.Count);
        Assert.True(vision.FeatureCache.Bytes <= vision.FeatureCache.BudgetBytes);
        vision.Encode([blue]);
        Assert.Equal(1L, vision.FeatureCache.Lookups.Hits);
        // An image larger than the whole budget is encoded, not kept.
        vision.FeatureCache = new VisionFeatureCache(0);
        vision.Encode([wide]);
        vision.Encode([wide]);
        Assert.Equal((0L, 0), (vision.FeatureCache.Lookups.Hits, vision.FeatureCache.Count));

        // Through the service: a second turn with the same image hits the cache.
        vision.FeatureCache = new VisionFeatureCache(VisionFeatureCache.DefaultBudgetBytes);
        await Run(service, Request(ImagePart(Red), Text("what is this?")));
        await Run(service, Request(ImagePart(Red), Text("and now?")));
        Assert.Equal((1L, 1L), vision.FeatureCache.Lookups);
    }

    [Fact]
    public async Task A_model_without_a_vision_tower_refuses_images_by_name()
    {
        await using var service = KimiChatService.Load(fixture.TextOnlyDirectory);
        Assert.Null(service.Vision);
        var e = Assert.Throws<ChatMediaException>(() => service.ChatAsync(Request(ImagePart(Red), Text("hi?"))));
        Assert.Contains("no vision tower", e.Message);
        Assert.Contains("messages[1].content[0]", e.Message);
    }

    public static TheoryData<string, string> HostileUrls()
    {
        var truncated = RandomVisionChatModel.Png(40, 40)[..60];
        return new()
        {
            { "data:image/png;base64,@@not-base64@@", "not valid base64" },
            { RandomVisionChatModel.DataUrl("just some text"u8.ToArray()), "not a PNG, JPEG, WebP, GIF or BMP" },
            { RandomVisionChatModel.DataUrl(truncated), "truncated" },
            { RandomVisionChatModel.DataUrl(RandomVisionChatModel.PngHeaderOnly(60_000, 16)), "sides of at most 50,000" },
            { RandomVisionChatModel.DataUrl(RandomVisionChatModel.PngHeaderOnly(20_000, 20_000)), "decompression bomb" },
            { RandomVisionChatModel.DataUrl([.. "RIFF\0\0\0\0WEBPVP8 "u8.ToArray(), .. new byte[32]], "image/webp"), "WebP" },
            { "data:text/plain;base64,aGVsbG8=", "not an image type" },
            { "data:image/png,rawbytes", "not base64-encoded" },
            { "http://127.0.0.1:9/cat.png", "remote image URLs are not allowed" },
            { "ftp://example.com/cat.png", "neither a data: URL nor http(s)" },
        };
    }

    [Theory]
    [MemberData(nameof(HostileUrls))]
    public async Task Hostile_images_are_refused_before_generation_with_the_problem_named(string url, string problem)
    {
        await using var service = KimiChatService.Load(fixture.Directory);
        var request = Request(Text("look:"), new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } });
        var e = Assert.Throws<ChatMediaException>(() => service.ChatAsync(request));
        Assert.Contains(problem, e.Message);
        Assert.Contains("messages[1].content[1]", e.Message);
    }

    [Fact]
    public async Task Too_many_images_and_a_part_without_a_url_are_refused()
    {
        await using var service = KimiChatService.Load(fixture.Directory);
        service.MediaOptions = service.MediaOptions with { MaxImagesPerRequest = 2 };
        var e = Assert.Throws<ChatMediaException>(() => service.ChatAsync(Request(ImagePart(Red), ImagePart(Red), ImagePart(Blue))));
        Assert.Contains("at most 2", e.Message);
        e = Assert.Throws<ChatMediaException>(() => service.ChatAsync(Request(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject() })));
        Assert.Contains("image_url.url is required", e.Message);
    }

    [Fact]
    public async Task Remote_images_are_fetched_only_when_allowed()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var serving = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); } catch (Exception) { return; }
                byte[] body = context.Request.Url!.AbsolutePath == "/red.png" ? Red : [];
                context.Response.StatusCode = body.Length > 0 ? 200 : 404;
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        });
        await using var service = KimiChatService.Load(fixture.Directory, new EngineOptions { EnablePrefixCache = false });
        JsonObject Remote(string path) => new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = $"http://127.0.0.1:{port}{path}" } };
        Assert.Contains("not allowed", Assert.Throws<ChatMediaException>(() => service.ChatAsync(Request(Remote("/red.png")))).Message);

        service.MediaOptions = service.MediaOptions with { AllowRemoteImages = true };
        var inline = await Run(service, Request(ImagePart(Red), Text("?")));
        var remote = await Run(service, Request(Remote("/red.png"), Text("?")));
        Assert.Equal(inline.First.Token, remote.First.Token);
        Assert.Equal(inline.First.Logprob, remote.First.Logprob);
        Assert.Contains("HTTP 404", Assert.Throws<ChatMediaException>(() => service.ChatAsync(Request(Remote("/missing.png")))).Message);
        listener.Stop();
        await serving;
    }

    [Fact]
    public async Task The_chat_client_carries_data_content_images()
    {
        await using var service = KimiChatService.Load(fixture.Directory, new EngineOptions { EnablePrefixCache = false });
        var client = new KimiChatClient(service);
        var message = new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User,
            [new Microsoft.Extensions.AI.DataContent(Red, "image/png"), new Microsoft.Extensions.AI.TextContent("what is this?")]);
        var request = client.ToChatRequest([message], null);
        var parts = request.Messages[0]!["content"]!.AsArray();
        Assert.Equal("image_url", parts[0]!["type"]!.GetValue<string>());
        Assert.Equal(RandomVisionChatModel.DataUrl(Red), parts[0]!["image_url"]!["url"]!.GetValue<string>());
        var (tokens, _) = Direct(service, request, Red);
        var response = await client.GetResponseAsync([message], new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 2, Temperature = 0 });
        Assert.Equal(tokens.Length, response.Usage!.InputTokenCount);
    }

    /// <summary>The Vision tests' 10-frame, 4 fps animated GIF (40×30).</summary>
    private static byte[] TenFrameGif()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx"))) dir = dir.Parent;
        return File.ReadAllBytes(Path.Combine(dir!.FullName, "tests", "KimiSharp.Vision.Tests", "Fixtures", "video-ten.gif"));
    }

    [Fact]
    public async Task A_video_part_becomes_timestamped_chunks_whose_features_fill_their_placeholders()
    {
        byte[] gif = TenFrameGif();
        await using var service = KimiChatService.Load(fixture.Directory, new EngineOptions { EnablePrefixCache = false });
        var video = new JsonObject { ["type"] = "video_url", ["video_url"] = new JsonObject { ["url"] = "data:image/gif;base64," + Convert.ToBase64String(gif) } };
        var request = Request(video, Text("what happens?"));

        // The reference: K2.5's sampling (2 of 4 fps: 5 frames), chunks of 4 + 1, each chunk's timestamped media block in
        // place of the template's video placeholder, and each chunk's features at its <|media_pad|>.
        var vision = service.Vision!;
        var chunks = vision.Chunker.Chunks(VideoFrames.FromAnimation(gif, vision.Chunker.Config));
        Assert.Equal([4, 1], chunks.Select(c => c.Frames.Count));
        string rendered = service.RenderPrompt(request);
        Assert.Contains(VideoPrompt.Placeholder, rendered);
        string prompt = VideoPrompt.ReplacePlaceholders(rendered, [chunks]);
        Assert.Contains("00:00:00.000<|media_begin|>video", prompt);
        Assert.Contains(chunks[1].Timestamp + "<|media_begin|>video", prompt); // frame 9 of 10 at 4 fps: 00:00:02.250
        var features = vision.Encoder.Encode([.. chunks.Select(vision.Chunker.Preprocess)]);
        int hidden = service.Model.Config.HiddenSize, vocab = service.Model.Config.VocabSize;
        var (tokens, patch) = MediaPlaceholders.Expand(service.Tokenizer.Encode(prompt, allowSpecial: true).ToArray(), vision.PlaceholderTokenId, features, hidden);
        var logits = new float[vocab];
        service.Model.Forward(tokens, patch, service.Model.CreateCache(tokens.Length), logits, lastOnly: true);
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        var expected = logits.Select(l => l - max - Math.Log(sum)).ToArray();

        var (started, first, done) = await Run(service, request);
        Assert.Equal(tokens.Length, started.PromptTokens);
        Assert.Equal(ArgMax(expected), first.Token);
        Assert.Equal(expected[first.Token], first.Logprob, 3e-4);
        Assert.Equal(chunks.Sum(c => c.Tokens), done.Usage.ImageTokens);

        // An image and a video in one request: placeholders in message order, one tower batch.
        var both = Request(ImagePart(Red), video.DeepClone(), Text("same?"));
        var (_, _, bothDone) = await Run(service, both);
        Assert.Equal(6 + chunks.Sum(c => c.Tokens), bothDone.Usage.ImageTokens);

        // Bad video data names the part; a text-only model refuses video.
        var broken = Request(Text("look"), new JsonObject { ["type"] = "video_url", ["video_url"] = new JsonObject { ["url"] = "data:image/gif;base64," + Convert.ToBase64String(gif[..40]) } });
        var error = await Assert.ThrowsAsync<ChatMediaException>(async () => await Run(service, broken));
        Assert.StartsWith("messages[1].content[1]: ", error.Message);
        await using var textOnly = KimiChatService.Load(fixture.TextOnlyDirectory);
        error = await Assert.ThrowsAsync<ChatMediaException>(async () => await Run(textOnly, request));
        Assert.Contains("no vision tower", error.Message);
    }
}
