using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Testing;
using OpenAI;
using OpenAI.Chat;

namespace KimiSharp.Server.Tests;

/// <summary>A real server on a loopback port over a tiny K2.5-style model (random text model + MoonViT tower).</summary>
public sealed class VisionServerFixture : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-vision-server-").FullName;
    public KimiServer Server { get; private set; } = null!;
    public Uri BaseUri { get; private set; } = null!;
    public string ModelId => Server.Service.ModelId;

    public async Task InitializeAsync()
    {
        RandomVisionChatModel.Write(_directory);
        var service = KimiChatService.Load(_directory, new EngineOptions { MaxBatchSize = 4 }, modelId: "kimi-vision-test");
        Server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = ServerFixture.ApiKey });
        await Server.StartAsync();
        BaseUri = new Uri(Server.Urls.First().Replace("[::]", "127.0.0.1") + "/");
    }

    public HttpClient Http()
    {
        var client = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", ServerFixture.ApiKey);
        return client;
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await Server.Service.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Images through /v1/chat/completions and /v1/messages: answers, usage counting image tokens, hostile images as 400s.</summary>
public sealed class VisionServerTests(VisionServerFixture fixture) : IClassFixture<VisionServerFixture>
{
    // 60×45 pads to 84×56 pixels: a 6×4 patch grid merged 2×2 = 6 image tokens.
    private static readonly byte[] Picture = RandomVisionChatModel.Png(60, 45, seed: 4);
    private const int PictureTokens = 6;
    private const string Question = "What is in this picture?";

    /// <summary>Prompt tokens of [user: image, text] on this model: the rendered template with the placeholder expanded.</summary>
    private int ExpectedPromptTokens()
    {
        var service = fixture.Server.Service;
        var messages = new JsonArray(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(
                new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = "data:," } },
                new JsonObject { ["type"] = "text", ["text"] = Question }),
        });
        var tokens = service.Tokenizer.Encode(service.RenderPrompt(new ChatRequest { Messages = messages }), allowSpecial: true);
        Assert.Equal(1, tokens.Count(t => t == service.Vision!.PlaceholderTokenId));
        return tokens.Count - 1 + PictureTokens;
    }

    private async Task<(HttpStatusCode Status, JsonNode Body)> Post(string path, JsonObject body)
    {
        using var http = fixture.Http();
        using var response = await http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    [Fact]
    public async Task The_OpenAI_sdk_sends_an_image_and_usage_counts_its_tokens()
    {
        var client = new ChatClient(fixture.ModelId, new ApiKeyCredential(ServerFixture.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUri, "v1") });
        var message = new UserChatMessage(
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(Picture), "image/png", ChatImageDetailLevel.High),
            ChatMessageContentPart.CreateTextPart(Question));
        ChatCompletion completion = await client.CompleteChatAsync([message], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 });
        Assert.Equal(ExpectedPromptTokens(), completion.Usage.InputTokenCount);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 8);

        // The same request raw: prompt_tokens_details names the image tokens, and streaming agrees.
        var body = new JsonObject
        {
            ["model"] = fixture.ModelId, ["temperature"] = 0, ["max_tokens"] = 8,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = RandomVisionChatModel.DataUrl(Picture) } },
                    new JsonObject { ["type"] = "text", ["text"] = Question }),
            }),
        };
        var (status, json) = await Post("v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(PictureTokens, json["usage"]!["prompt_tokens_details"]!["image_tokens"]!.GetValue<int>());
        Assert.Equal(ExpectedPromptTokens(), json["usage"]!["prompt_tokens"]!.GetValue<int>());
        string content = string.Concat(completion.Content.Select(p => p.Text));
        Assert.Equal(content, json["choices"]![0]!["message"]!["content"]?.GetValue<string>() ?? "");

        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync([message], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            usage ??= update.Usage;
        }
        Assert.Equal(content, streamed.ToString());
        Assert.Equal(ExpectedPromptTokens(), usage!.InputTokenCount);
    }

    [Fact]
    public async Task The_Anthropic_sdk_sends_a_base64_image_and_gets_the_same_answer()
    {
        string folder = NodeSdkTests.NodeFolder;
        await NodeSdkTests.EnsurePackagesAsync(folder);
        string baseUrl = fixture.BaseUri.ToString().TrimEnd('/');
        var (code, output, error) = await NodeSdkTests.Run("node", $"vision.mjs {baseUrl} {fixture.ModelId} {ServerFixture.ApiKey} {Convert.ToBase64String(Picture)}", folder);
        Assert.True(code == 0, $"node exited {code}: {error}");
        using var doc = JsonDocument.Parse(output);
        var r = doc.RootElement;
        var anthropic = r.GetProperty("anthropic");
        int expected = ExpectedPromptTokens();
        Assert.Equal(expected, anthropic.GetProperty("usage").GetProperty("input_tokens").GetInt32() + anthropic.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.InRange(anthropic.GetProperty("usage").GetProperty("output_tokens").GetInt32(), 1, 6);
        // Temperature 0 either way (Anthropic's is scaled by 0.6): the same image and text give the same tokens.
        var openai = r.GetProperty("openai");
        Assert.Equal(openai.GetProperty("text").GetString(), anthropic.GetProperty("text").GetString());
        Assert.Equal(openai.GetProperty("thinking").GetString(), anthropic.GetProperty("thinking").GetString());
        Assert.Equal(expected, openai.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(PictureTokens, openai.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("image_tokens").GetInt32());

        var failure = r.GetProperty("anthropicError");
        Assert.Equal(400, failure.GetProperty("status").GetInt32());
        Assert.Equal("invalid_request_error", failure.GetProperty("type").GetString());
        Assert.Contains("not a PNG, JPEG, WebP, GIF or BMP", failure.GetProperty("message").GetString());
    }

    public static TheoryData<string, string> HostileImages() => new()
    {
        { "bad base64", "not valid base64" },
        { "wrong magic", "not a PNG, JPEG, WebP, GIF or BMP" },
        { "truncated", "truncated" },
        { "decompression bomb", "decompression bomb" },
        { "50,001-pixel side", "sides of at most 50,000 pixels" },
        { "corrupt WebP", "the WebP file is corrupt" },
    };

    private static string HostileBase64(string name) => name switch
    {
        "bad base64" => "%%%not base64%%%",
        "wrong magic" => Convert.ToBase64String("GIF? no, plain text"u8.ToArray()),
        "truncated" => Convert.ToBase64String(Picture[..(Picture.Length / 2)]),
        "decompression bomb" => Convert.ToBase64String(RandomVisionChatModel.PngHeaderOnly(30_000, 30_000)),
        "50,001-pixel side" => Convert.ToBase64String(RandomVisionChatModel.PngHeaderOnly(50_001, 8)),
        "corrupt WebP" => Convert.ToBase64String([.. "RIFF\0\0\0\0WEBPVP8 "u8.ToArray(), .. new byte[40]]),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(HostileImages))]
    public async Task Hostile_images_get_a_400_naming_the_problem_on_both_apis(string name, string problem)
    {
        string data = HostileBase64(name);
        var (status, json) = await Post("v1/chat/completions", new JsonObject
        {
            ["model"] = fixture.ModelId, ["max_tokens"] = 4,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "text", ["text"] = "look" },
                    new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = $"data:image/png;base64,{data}" } }),
            }),
        });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        string message = json["error"]!["message"]!.GetValue<string>();
        Assert.Contains(problem, message);
        Assert.Contains("messages[0].content[1]", message);
        Assert.Equal("invalid_image", json["error"]!["code"]!.GetValue<string>());

        (status, json) = await Post("v1/messages", new JsonObject
        {
            ["model"] = fixture.ModelId, ["max_tokens"] = 4,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(new JsonObject
                {
                    ["type"] = "image",
                    ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = name == "WebP" ? "image/webp" : "image/png", ["data"] = data },
                }),
            }),
        });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request_error", json["error"]!["type"]!.GetValue<string>());
        Assert.Contains(problem, json["error"]!["message"]!.GetValue<string>());

        // Still serving.
        using var http = fixture.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
    }

    public static TheoryData<string, string, string> MalformedParts() => new()
    {
        { "v1/chat/completions", """{"type":"image_url"}""", "image_url is required" },
        { "v1/chat/completions", """{"type":"image_url","image_url":{"detail":"low"}}""", "image_url.url is required" },
        { "v1/chat/completions", """{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}""", "remote image URLs are not allowed" },
        { "v1/messages", """{"type":"image"}""", "source is required" },
        { "v1/messages", """{"type":"image","source":{"type":"base64","media_type":"text/plain","data":"aGk="}}""", "media_type 'text/plain'" },
        { "v1/messages", """{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}""", "remote image URLs are not allowed" },
        { "v1/messages", """{"type":"image","source":{"type":"file","file_id":"f"}}""", "is not base64 or url" },
    };

    [Theory]
    [MemberData(nameof(MalformedParts))]
    public async Task Malformed_image_parts_and_remote_urls_are_400s(string path, string part, string problem)
    {
        var (status, json) = await Post(path, new JsonObject
        {
            ["model"] = fixture.ModelId, ["max_tokens"] = 4,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(JsonNode.Parse(part)) }),
        });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(problem, json["error"]!["message"]!.GetValue<string>());
    }
}

/// <summary>A text-only model's server refuses images with a 400 that says why.</summary>
[Collection("server")]
public sealed class TextModelImageTests(ServerFixture fixture)
{
    [Fact]
    public async Task An_image_to_a_model_without_a_vision_tower_is_a_400()
    {
        using var http = fixture.Http();
        string png = RandomVisionChatModel.DataUrl(RandomVisionChatModel.Png(30, 30));
        var body = new JsonObject
        {
            ["model"] = fixture.ModelId, ["max_tokens"] = 4,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = png } },
                    new JsonObject { ["type"] = "text", ["text"] = "hi" }),
            }),
        };
        using var response = await http.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains("no vision tower", json["error"]!["message"]!.GetValue<string>());
    }
}
