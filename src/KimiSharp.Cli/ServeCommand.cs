using Microsoft.Extensions.Logging;
using KimiSharp.Engine;
using KimiSharp.Server;

namespace KimiSharp.Cli;

/// <summary><c>kimi serve</c>: the OpenAI- and Anthropic-compatible server.</summary>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(CommandLine options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        options.AllowOnly("model", "host", "port", "api-key", "name", "kv-budget-mb", "max-batch", "threads", "int8", "no-ui");
        using var activations = ModelLocator.ActivationMode(options);
        if (options.Int("threads") is int threads) Kernels.KernelThreading.MaxThreads = Math.Max(1, threads);
        var engine = new EngineOptions
        {
            KvCacheBudgetBytes = (options.Int("kv-budget-mb") ?? 2048) * (1L << 20),
            MaxBatchSize = options.Int("max-batch") ?? 16,
        };
        await using var service = ModelLocator.LoadChat(options, stderr, engine);
        var server = new KimiServer(service, new ServerOptions
        {
            Host = options.Get("host") ?? "127.0.0.1",
            Port = options.Int("port") ?? 8000,
            ApiKey = options.Get("api-key") ?? Environment.GetEnvironmentVariable("KIMI_API_KEY"),
            ServeUi = !options.Has("no-ui"),
        }, logging => logging.AddSimpleConsoleLogging());
        await using (server)
        {
            await server.StartAsync(cancellationToken);
            stdout.WriteLine($"serving {service.ModelId} on {string.Join(", ", server.Urls)} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages{(options.Has("no-ui") ? "" : "; chat UI: " + server.Urls.First() + "/")}). Ctrl+C stops.");
            await server.WaitForShutdownAsync(cancellationToken);
        }
        return 0;
    }

    private static void AddSimpleConsoleLogging(this ILoggingBuilder logging)
    {
        logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft", LogLevel.Warning);
    }
}
