using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Testing;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi chat --image</c>, <c>/image</c> and <c>kimi generate --image</c> on a tiny K2.5-style model.</summary>
[Collection(nameof(ConsoleInputCollection))] // not parallel: one test swaps Console.In
public sealed class ImageChatCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-image-chat-").FullName;
    private readonly string _model;
    private readonly string _first, _second;

    public ImageChatCommandTests()
    {
        _model = Path.Combine(_scratch, "k25");
        RandomVisionChatModel.Write(_model);
        _first = Path.Combine(_scratch, "first.png");
        _second = Path.Combine(_scratch, "second.png");
        File.WriteAllBytes(_first, RandomVisionChatModel.Png(60, 45, seed: 1));
        File.WriteAllBytes(_second, RandomVisionChatModel.Png(60, 45, seed: 9));
    }

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    /// <summary>What the chat service itself answers (reasoning + content, greedy) to [user: images…, text].</summary>
    private Task<string> DirectAnswer(string question, int maxTokens, params string[] images) =>
        DirectAnswer(question, maxTokens, images.Select(image =>
            new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = RandomVisionChatModel.DataUrl(File.ReadAllBytes(image)) } }).ToArray());

    private async Task<string> DirectAnswer(string question, int maxTokens, JsonObject[] media)
    {
        await using var service = KimiChatService.Load(_model); // the exact (float32) path: the CLI runs below pass --exact
        var parts = new JsonArray();
        foreach (var part in media) parts.Add(part);
        parts.Add(new JsonObject { ["type"] = "text", ["text"] = question });
        var request = new ChatRequest
        {
            Messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = parts }),
            Generation = new GenerationOptions { MaxTokens = maxTokens, Temperature = 0 },
        };
        var text = new StringBuilder();
        await foreach (var e in service.ChatAsync(request))
            if (e is ChatOutput { Piece: ReasoningDelta r }) text.Append(r.Text);
            else if (e is ChatOutput { Piece: ContentDelta c }) text.Append(c.Text);
        return text.ToString();
    }

    /// <summary>The streamed reasoning and content in <c>kimi chat</c>'s plain (uncoloured) output, without its labels and notes.</summary>
    private static string Answer(string stdout) =>
        stdout.Replace("thinking: ", "").Replace("(stopped at the token limit)", "").Replace("\n", "");

    [Fact]
    public async Task Chat_answers_about_the_image_as_the_service_does()
    {
        var (code, stdout, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--exact", "--temperature", "0", "--max-tokens", "6",
            "--image", _first, "--image", _second, "what", "differs?");
        Assert.True(code == 0, stderr);
        string expected = await DirectAnswer("what differs?", 6, _first, _second);
        Assert.NotEqual("", expected.Trim());
        Assert.Equal(expected.Replace("\n", ""), Answer(stdout));

        // The tool-using default (the agent loop) carries the image too.
        (code, _, stderr) = await Kimi.Run("chat", "--model", _model, "--max-tokens", "4", "--max-steps", "1", "--image", _first, "what is it?");
        Assert.True(code == 0, stderr);
    }

    [Fact]
    public async Task Interactive_image_command_attaches_to_the_next_message()
    {
        var original = Console.In;
        Console.SetIn(new StringReader($"/image {Path.Combine(_scratch, "missing.png")}\n/image {_first}\nwhat is it?\n/exit\n"));
        try
        {
            var (code, stdout, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--exact", "--temperature", "0", "--max-tokens", "5");
            Assert.True(code == 0, stderr);
            Assert.Contains("image not attached", stdout);
            Assert.Contains("no such image file", stdout);
            Assert.Contains($"image {_first} attached", stdout);
            string expected = await DirectAnswer("what is it?", 5, _first);
            Assert.Contains(expected.Replace("\n", ""), stdout.Replace("\n", "").Replace("thinking: ", ""));
        }
        finally { Console.SetIn(original); }
    }

    private static string AnimatedGif => Path.Combine(LogitsCommandTests.RepositoryRoot, "tests", "KimiSharp.Vision.Tests", "Fixtures", "video-ten.gif");

    [Fact]
    public async Task Chat_answers_about_a_video_as_the_service_does_and_refuses_what_is_no_video()
    {
        var (code, stdout, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--exact", "--temperature", "0", "--max-tokens", "6",
            "--video", AnimatedGif, "what", "happens?");
        Assert.True(code == 0, stderr);
        var video = new JsonObject
        {
            ["type"] = "video_url",
            ["video_url"] = new JsonObject { ["url"] = "data:image/gif;base64," + Convert.ToBase64String(File.ReadAllBytes(AnimatedGif)) },
        };
        string expected = await DirectAnswer("what happens?", 6, [video]);
        Assert.NotEqual("", expected.Trim());
        Assert.Equal(expected.Replace("\n", ""), Answer(stdout));
        string notVideo = Path.Combine(_scratch, "clip.mp4");
        File.WriteAllText(notVideo, "just text");
        (code, _, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--video", notVideo, "hi");
        Assert.Equal(2, code);
        Assert.Contains("--video", stderr);
        Assert.Contains("clip.mp4", stderr);
        (code, _, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--video", _scratch, "hi");
        Assert.Equal(2, code);
        Assert.Contains("is a directory", stderr);
        string textOnly = Path.Combine(_scratch, "text-v");
        RandomChatModel.Write(textOnly);
        (code, _, stderr) = await Kimi.Run("chat", "--model", textOnly, "--no-tools", "--video", AnimatedGif, "hi");
        Assert.NotEqual(0, code);
        Assert.Contains("cannot read videos", stderr);
    }

    [Fact]
    public async Task Generate_puts_each_image_at_a_placeholder_and_counts_its_tokens()
    {
        // No placeholder in the prompt: each image's K2.5 media block goes first.
        var (code, stdout, stderr) = await Kimi.Run("generate", "--model", _model, "--max-tokens", "4", "--image", _first, "--prompt", "A picture of");
        Assert.True(code == 0, stderr);
        Assert.Contains("(6 image)", stderr);
        string prepended = stdout;
        (code, stdout, stderr) = await Kimi.Run("generate", "--model", _model, "--max-tokens", "4", "--image", _first,
            "--prompt", "<|media_begin|>image<|media_content|><|media_pad|><|media_end|>A picture of");
        Assert.True(code == 0, stderr);
        Assert.Equal(prepended, stdout);
        (code, _, stderr) = await Kimi.Run("generate", "--model", _model, "--max-tokens", "4", "--image", _first, "--image", _second,
            "--prompt", "<|media_pad|> and <|media_pad|>");
        Assert.True(code == 0, stderr);
        Assert.Contains("(12 image)", stderr);
        // One placeholder, two images.
        (code, _, stderr) = await Kimi.Run("generate", "--model", _model, "--image", _first, "--image", _second, "--prompt", "<|media_pad|> only one");
        Assert.NotEqual(0, code);
        Assert.Contains("1 media placeholder(s)", stderr);
    }

    [Fact]
    public async Task Bad_images_and_text_only_models_are_errors_naming_the_problem()
    {
        string notImage = Path.Combine(_scratch, "notes.png");
        File.WriteAllText(notImage, "just text");
        var (code, _, stderr) = await Kimi.Run("chat", "--model", _model, "--no-tools", "--image", notImage, "hi");
        Assert.NotEqual(0, code);
        Assert.Contains("not a PNG, JPEG, WebP, GIF or BMP", stderr);
        Assert.Contains("notes.png", stderr);
        string bomb = Path.Combine(_scratch, "bomb.png");
        File.WriteAllBytes(bomb, RandomVisionChatModel.PngHeaderOnly(20_000, 20_000));
        (code, _, stderr) = await Kimi.Run("generate", "--model", _model, "--image", bomb, "--prompt", "x");
        Assert.NotEqual(0, code);
        Assert.Contains("decompression bomb", stderr);

        string textOnly = Path.Combine(_scratch, "text");
        RandomChatModel.Write(textOnly);
        (code, _, stderr) = await Kimi.Run("chat", "--model", textOnly, "--no-tools", "--image", _first, "hi");
        Assert.NotEqual(0, code);
        Assert.Contains("no vision tower", stderr);
    }
}

/// <summary>Tests that replace the process-wide <see cref="Console.In"/> run alone.</summary>
[CollectionDefinition(nameof(ConsoleInputCollection), DisableParallelization = true)]
public sealed class ConsoleInputCollection;
