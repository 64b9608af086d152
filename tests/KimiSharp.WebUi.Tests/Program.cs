using System.Diagnostics;
using KimiSharp.Engine.Chat;
using KimiSharp.Server;
using Microsoft.Playwright;

namespace KimiSharp.WebUi.Tests;

/// <summary>
/// Commands beside the tests (<c>dotnet run --project tests/KimiSharp.WebUi.Tests -c Release -- …</c>):
/// <c>screenshot FILE [phone] [dark]</c> saves the page answering a k2-nano tool question; <c>render FILE.md FILE.png [dark]</c> shows how the page renders a Markdown answer; <c>report</c> prints the page's load time
/// from a cold server and the size of its assets.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (ChromiumLocator.Path is null) { Console.Error.WriteLine(ChromiumLocator.SkipReason); return 1; }
        switch (args.FirstOrDefault())
        {
            case "screenshot" when args.Length >= 2 && args.Skip(2).All(a => a is "phone" or "dark"):
                await Screenshot(args[1], phone: args.Contains("phone"), dark: args.Contains("dark"));
                return 0;
            case "report": await Report(); return 0;
            case "render" when args.Length is 3 or 4 && args.Skip(3).All(a => a == "dark"):
                await RenderMarkdown(args[1], args[2], dark: args.Length == 4);
                return 0;
            default:
                Console.Error.WriteLine("usage: screenshot FILE.png [phone] [dark] | report | render FILE.md FILE.png [dark]");
                return 2;
        }
    }

    private static async Task<(KimiChatService, KimiServer)> StartServer()
    {
        var service = KimiChatService.Load(WebUiFixture.ModelDirectory);
        var server = new KimiServer(service, new ServerOptions { Port = 0 }, _ => { });
        await server.StartAsync();
        return (service, server);
    }

    private static Task<IBrowser> Launch(IPlaywright playwright) => playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
    {
        ExecutablePath = ChromiumLocator.Path, Headless = true, Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    });

    /// <summary>A k2-nano server and headless Chromium with the page loaded and ready; disposing closes both.</summary>
    private sealed class ReadyPage : IAsyncDisposable
    {
        private readonly IAsyncDisposable _service, _server, _browser;
        private readonly IPlaywright _playwright;
        public IPage Page { get; }

        private ReadyPage(IAsyncDisposable service, IAsyncDisposable server, IPlaywright playwright, IAsyncDisposable browser, IPage page) =>
            (_service, _server, _playwright, _browser, Page) = (service, server, playwright, browser, page);

        public static async Task<ReadyPage> OpenAsync(ViewportSize viewport, bool dark)
        {
            var (service, server) = await StartServer();
            var playwright = await Playwright.CreateAsync();
            var browser = await Launch(playwright);
            var page = await browser.NewPageAsync(new BrowserNewPageOptions
            {
                BaseURL = WebUiFixture.BaseUrl(server), ViewportSize = viewport, ColorScheme = dark ? ColorScheme.Dark : ColorScheme.Light,
            });
            await page.GotoAsync("/");
            await page.WaitForSelectorAsync("body[data-ready='true']");
            return new ReadyPage(service, server, playwright, browser, page);
        }

        public async ValueTask DisposeAsync()
        {
            await _browser.DisposeAsync();
            _playwright.Dispose();
            await _server.DisposeAsync();
            await _service.DisposeAsync();
        }
    }

    private static async Task Screenshot(string file, bool phone, bool dark)
    {
        await using var ready = await ReadyPage.OpenAsync(
            phone ? new ViewportSize { Width = 390, Height = 844 } : new ViewportSize { Width = 1100, Height = 720 }, dark);
        var page = ready.Page;
        // Two chats, so the sidebar has a list; the second (shown) is the README's tool question.
        foreach (string question in new[] { "How many days are there between 2024-03-01 and 2024-12-25?", "What is 17.5% of 2,340 plus 99?" })
        {
            await page.ClickAsync(phone ? "#new-chat-top" : "#new-chat");
            await page.FillAsync("#input", question);
            await page.PressAsync("#input", "Enter");
            await page.WaitForFunctionAsync("() => !document.body.classList.contains('streaming')");
        }
        // Show the first step's reasoning opened, as a reader would click it.
        await page.Locator("details.reasoning").First.Locator("summary").ClickAsync();
        await page.Locator("#messages").EvaluateAsync("m => m.scrollTop = m.scrollHeight");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = file });
        Console.WriteLine($"wrote {file}");
    }

    private static async Task RenderMarkdown(string markdownFile, string file, bool dark)
    {
        await using var ready = await ReadyPage.OpenAsync(new ViewportSize { Width = 900, Height = 1000 }, dark);
        var page = ready.Page;
        await page.EvaluateAsync("""
            async text => { const { renderMarkdown } = await import('/ui/markdown.js');
              const msg = document.createElement('div'); msg.className = 'msg assistant';
              const md = document.createElement('div'); md.className = 'markdown'; md.append(renderMarkdown(text));
              msg.append(md); document.getElementById('messages').replaceChildren(msg); }
            """, File.ReadAllText(markdownFile));
        await page.Locator("#messages").ScreenshotAsync(new LocatorScreenshotOptions { Path = file });
        Console.WriteLine($"wrote {file}");
    }

    private static async Task Report()
    {
        long raw = 0, compressed = 0;
        foreach (var asset in KimiSharp.Server.WebUi.Assets.Values.OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            Console.WriteLine($"  {asset.Name,-12} {asset.Content.Length,7:N0} B  gzip {asset.Gzip.Length,6:N0} B");
            raw += asset.Content.Length;
            compressed += asset.Gzip.Length;
        }
        Console.WriteLine($"assets: {KimiSharp.Server.WebUi.Assets.Count} files, {raw:N0} B, {compressed:N0} B gzip-compressed");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await Launch(playwright);
        var watch = Stopwatch.StartNew();
        var (service, server) = await StartServer(); // cold: a new server, nothing served yet
        await using var _ = service;
        await using var __ = server;
        double started = watch.Elapsed.TotalMilliseconds;
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { BaseURL = WebUiFixture.BaseUrl(server) });
        watch.Restart();
        await page.GotoAsync("/");
        double loaded = watch.Elapsed.TotalMilliseconds;
        await page.WaitForSelectorAsync("body[data-ready='true']");
        double ready = watch.Elapsed.TotalMilliseconds;
        var timing = await page.EvaluateAsync<double[]>("""
            () => { const n = performance.getEntriesByType('navigation')[0];
              return [n.responseStart - n.requestStart, n.domContentLoadedEventEnd, n.loadEventEnd]; }
            """);
        Console.WriteLine($"cold server: model loaded and listening in {started:F0} ms; then the first page: first byte of / after {timing[0]:F0} ms, " +
            $"DOMContentLoaded {timing[1]:F0} ms, load {timing[2]:F0} ms (browser clock); ready to chat (config fetched, chats listed) {ready:F0} ms " +
            $"(wall clock, {loaded:F0} ms to the load event)");
        watch.Restart();
        await page.ReloadAsync();
        await page.WaitForSelectorAsync("body[data-ready='true']");
        Console.WriteLine($"warm reload to ready: {watch.Elapsed.TotalMilliseconds:F0} ms");
    }
}
