using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine.Chat;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KimiSharp.Server;

/// <summary>
/// The browser chat UI: static files embedded in this assembly (wwwroot/**), served at <c>/</c> and <c>/ui/…</c>
/// without an API key (the page asks for one when the API answers 401), gzip-compressed once at startup, plus
/// GET /v1/ui/config, which tells the page the model, its context size and the server's defaults.
/// </summary>
public static class WebUi
{
    private const string ResourcePrefix = "wwwroot/";
    private static readonly Lazy<IReadOnlyDictionary<string, Asset>> s_assets = new(LoadAssets);

    /// <summary>One embedded file: its bytes, its gzip encoding, type and validator.</summary>
    public sealed record Asset(string Name, byte[] Content, byte[] Gzip, string ContentType, string ETag);

    /// <summary>Every embedded file by name (index.html, app.js, …).</summary>
    public static IReadOnlyDictionary<string, Asset> Assets => s_assets.Value;

    /// <summary>Paths that serve the page and its files; they need no API key.</summary>
    public static bool IsUiPath(PathString path) => path == "/" || path == "/index.html" || path.StartsWithSegments("/ui");

    internal static void Map(IEndpointRouteBuilder app, KimiChatService service, ServerOptions options)
    {
        _ = Assets; // read and compress the files now, not on the first page load
        // The first request through a fresh host builds the route matcher and JIT-compiles the pipeline (most of a
        // second on a busy machine): do it once at startup so the first person to open the page does not wait for it.
        var lifetime = app.ServiceProvider.GetRequiredService<IHostApplicationLifetime>();
        var server = app.ServiceProvider.GetRequiredService<IServer>();
        lifetime.ApplicationStarted.Register(() => _ = Task.Run(() => WarmUpAsync(server, lifetime.ApplicationStopping)));
        app.MapGet("/", (HttpContext c) => Serve(c, "index.html"));
        app.MapGet("/index.html", (HttpContext c) => Serve(c, "index.html"));
        app.MapGet("/ui/{**name}", (HttpContext c, string name) => Serve(c, name));
        app.MapGet("/v1/ui/config", (HttpContext c) => OpenAiApi.Json(c, 200, Config(service, options)));
    }

    private static async Task WarmUpAsync(IServer server, CancellationToken stopping)
    {
        string? address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        if (address is null) return;
        var uri = new UriBuilder(address.Replace("://+", "://localhost").Replace("://*", "://localhost"));
        if (uri.Host is "0.0.0.0" or "[::]" or "::") uri.Host = "127.0.0.1";
        try
        {
            using var http = new HttpClient { BaseAddress = uri.Uri, Timeout = TimeSpan.FromSeconds(30) };
            foreach (string path in new[] { "/", "/ui/app.js", "/v1/ui/config" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.AcceptEncoding.ParseAdd("gzip");
                using var response = await http.SendAsync(request, stopping);
            }
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or UriFormatException)
        {
            // Only a warm-up: the page still works, its first load is just slower.
        }
    }

    /// <summary>What the page needs to know about this server.</summary>
    internal static JsonObject Config(KimiChatService service, ServerOptions options)
    {
        int context = service.Model.Config.MaxPositionEmbeddings;
        var tools = new JsonArray();
        foreach (var tool in Toolbox.CreateDefault().Tools)
            tools.Add(new JsonObject { ["name"] = tool.Name, ["description"] = tool.Declaration["function"]?["description"]?.DeepClone() });
        return new JsonObject
        {
            ["model"] = service.ModelId,
            ["context_length"] = context,
            ["vision"] = AcceptsImages(service.Model.Directory),
            ["api_key_required"] = options.ApiKey is not null,
            // The same defaults /v1/chat/completions and /v1/agent/chat apply when a request leaves them out.
            ["defaults"] = new JsonObject { ["temperature"] = 1.0, ["top_p"] = 1.0, ["max_tokens"] = Math.Min(4096, context / 2) },
            ["agent_defaults"] = new JsonObject
            {
                ["temperature"] = 0.0, ["top_p"] = 1.0, ["max_tokens"] = AgentEndpoint.DefaultMaxTokensPerStep, ["max_steps"] = AgentEndpoint.DefaultMaxSteps,
            },
            ["tools"] = tools,
        };
    }

    /// <summary>True when the checkpoint has a vision tower (config.json names a vision_config).</summary>
    private static bool AcceptsImages(string modelDirectory)
    {
        try
        {
            string path = Path.Combine(modelDirectory, "config.json");
            return File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject config && config["vision_config"] is JsonObject;
        }
        catch (System.Text.Json.JsonException) { return false; }
    }

    private static async Task Serve(HttpContext context, string name)
    {
        if (!Assets.TryGetValue(name, out var asset))
            throw new ApiException(404, "invalid_request_error", $"no UI file '{name}'", code: "not_found");
        var response = context.Response;
        response.Headers.ETag = asset.ETag;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Content-Type-Options"] = "nosniff";
        if (asset.Name == "index.html")
        {
            // Scripts and styles only from this server; model output can never run code even if it got into the page.
            response.Headers.ContentSecurityPolicy =
                "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
            response.Headers["Referrer-Policy"] = "no-referrer";
        }
        if (context.Request.Headers.IfNoneMatch.ToString() == asset.ETag)
        {
            response.StatusCode = 304;
            return;
        }
        response.ContentType = asset.ContentType;
        response.Headers.Vary = "Accept-Encoding";
        bool gzip = context.Request.Headers.AcceptEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase);
        byte[] body = gzip ? asset.Gzip : asset.Content;
        if (gzip) response.Headers.ContentEncoding = "gzip";
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted);
    }

    private static IReadOnlyDictionary<string, Asset> LoadAssets()
    {
        var assembly = typeof(WebUi).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (string resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            byte[] content = buffer.ToArray();
            using var compressed = new MemoryStream();
            using (var gzip = new GZipStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true)) gzip.Write(content);
            string name = resource[ResourcePrefix.Length..];
            assets[name] = new Asset(name, content, compressed.ToArray(), ContentType(name),
                "\"" + Convert.ToHexString(SHA256.HashData(content), 0, 8) + "\"");
        }
        return assets;
    }

    private static string ContentType(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        ".json" => "application/json",
        _ => "application/octet-stream",
    };
}
