using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Server;
using Microsoft.Playwright;

namespace KimiSharp.WebUi.Tests;

/// <summary>Where the system Chromium is (Debian's <c>chromium</c> package), or null; <c>KIMI_CHROMIUM</c> overrides.</summary>
public static class ChromiumLocator
{
    public static readonly string? Path = Find();

    public static string SkipReason =>
        "SKIPPED: no Chromium browser found (install the Debian package 'chromium', e.g. `apt-get install -y chromium`, or set KIMI_CHROMIUM); the web UI was NOT tested in a browser";

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("KIMI_CHROMIUM") is { Length: > 0 } env) return File.Exists(env) ? env : null;
        string[] names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator).Append("/usr/bin"))
            foreach (string name in names)
                if (dir.Length > 0 && File.Exists(System.IO.Path.Combine(dir, name))) return System.IO.Path.Combine(dir, name);
        return null;
    }
}

/// <summary>A [Fact] that runs only where a Chromium exists, and says loudly that it was skipped otherwise.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute([System.Runtime.CompilerServices.CallerMemberName] string test = "")
    {
        if (ChromiumLocator.Path is null)
        {
            Skip = ChromiumLocator.SkipReason;
            // dotnet test's default output lists skipped tests by name only, so the name carries the reason.
            DisplayName = $"{test} — SKIPPED: no Chromium, the web UI was not tested in a browser (apt-get install chromium)";
        }
    }
}

/// <summary>
/// Real servers over the committed k2-nano, shared by all browser tests: the plain one, one started with an API key
/// (same model), and one whose engine admits a single request and queues none (so a second one gets 429).
/// The browser (system Chromium, headless) starts on first use.
/// </summary>
public sealed class WebUiFixture : IAsyncLifetime
{
    public const string ApiKey = "webui-test-key";
    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private readonly SemaphoreSlim _browserGate = new(1);

    public KimiChatService Service { get; private set; } = null!;
    public KimiChatService BusyService { get; private set; } = null!;
    public KimiServer Server { get; private set; } = null!;
    public KimiServer KeyedServer { get; private set; } = null!;
    public KimiServer BusyServer { get; private set; } = null!;

    public static string ModelDirectory { get; } = FindModel();

    public async Task InitializeAsync()
    {
        // Answers take well under a second alone, but the whole suite shares two busy cores: wait generously.
        Assertions.SetDefaultExpectTimeout(30_000);
        Service = KimiChatService.Load(ModelDirectory, new EngineOptions { MaxBatchSize = 4, MaxQueueLength = 16 });
        BusyService = KimiChatService.Load(ModelDirectory, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 0 });
        Server = await Start(Service, null);
        KeyedServer = await Start(Service, ApiKey);
        BusyServer = await Start(BusyService, null);
    }

    private static async Task<KimiServer> Start(KimiChatService service, string? key)
    {
        var server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = key }, _ => { });
        await server.StartAsync();
        return server;
    }

    public static string BaseUrl(KimiServer server) => server.Urls.First().Replace("[::]", "127.0.0.1");

    public async Task<IBrowser> Browser()
    {
        await _browserGate.WaitAsync();
        try
        {
            if (_browser is not null) return _browser;
            _playwright = await Playwright.CreateAsync();
            _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ChromiumLocator.Path ?? throw new InvalidOperationException(ChromiumLocator.SkipReason),
                Headless = true,
                // Running as root (CI containers) needs --no-sandbox.
                Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            });
            return _browser;
        }
        finally { _browserGate.Release(); }
    }

    /// <summary>A fresh browser context (its own IndexedDB and localStorage) with the page open on <paramref name="server"/>.</summary>
    public async Task<IPage> OpenPage(KimiServer? server = null, ViewportSize? viewport = null)
    {
        var browser = await Browser();
        var context = await browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = BaseUrl(server ?? Server), AcceptDownloads = true, ViewportSize = viewport ?? new ViewportSize { Width = 1200, Height = 800 },
        });
        context.SetDefaultTimeout(60_000);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/");
        await page.WaitForSelectorAsync("body[data-ready='true']");
        return page;
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        _playwright?.Dispose();
        foreach (var server in new[] { Server, KeyedServer, BusyServer }) if (server is not null) await server.DisposeAsync();
        if (Service is not null) await Service.DisposeAsync();
        if (BusyService is not null) await BusyService.DisposeAsync();
    }

    private static string FindModel()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "models", "k2-nano");
            if (File.Exists(System.IO.Path.Combine(candidate, "config.json"))) return candidate;
        }
        throw new DirectoryNotFoundException("models/k2-nano not found above " + AppContext.BaseDirectory);
    }
}

[CollectionDefinition("webui")]
public sealed class WebUiCollection : ICollectionFixture<WebUiFixture>;
