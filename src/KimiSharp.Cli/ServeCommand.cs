using System.CommandLine;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.Logging;
using KimiSharp.Engine;
using KimiSharp.Server;

namespace KimiSharp.Cli;

/// <summary><c>kimi serve</c>: the OpenAI- and Anthropic-compatible server.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = ModelLocator.ModelOption();
        var host = CliOptions.Text("--host", "ADDRESS", "The address to listen on", "127.0.0.1");
        var port = CliOptions.Int("--port", "The port to listen on", 8000, min: 0, helpName: "PORT");
        var apiKey = CliOptions.Text("--api-key", "KEY", "Require this key (Bearer or x-api-key) [default: $KIMI_API_KEY, else none]");
        var name = ModelLocator.NameOption();
        var kvBudget = CliOptions.Int("--kv-budget-mb", "KV cache memory shared by the running requests, in MiB", 2048, min: 1, helpName: "MB");
        var maxBatch = CliOptions.Int("--max-batch", "Requests decoded together", 16, min: 1);
        var kernels = new KernelOptions();
        var noUi = CliOptions.Flag("--no-ui", "Do not serve the web chat UI at /");
        var remoteImages = CliOptions.Flag("--allow-remote-images", "Fetch http(s) image URLs in requests (off: images must be sent inline as data: URLs)");
        var maxBody = CliOptions.OptionalInt("--max-body-mb", "Largest request body of the chat, completion and messages endpoints, in MiB; inline images count [default: 4, or 64 for a model with a vision tower]", min: 1, helpName: "MB");
        var command = new Command("serve", "OpenAI- and Anthropic-compatible HTTP server (/v1/chat/completions, /v1/messages, …).")
        {
            model, host, port, apiKey, name, kvBudget, maxBatch, noUi, remoteImages, maxBody,
        };
        kernels.AddTo(command);
        command.SetAction(async (r, ct) =>
        {
            var engine = new EngineOptions
            {
                KvCacheBudgetBytes = r.GetValue(kvBudget) * (1L << 20),
                MaxBatchSize = r.GetValue(maxBatch),
            };
            if (r.GetValue(maxBody) > 1024) throw new UsageException($"--max-body-mb: {r.GetValue(maxBody)} MiB is above the 1024 MiB a request body may take");
            await using var service = ModelLocator.LoadChat(r.GetValue(model), r.GetValue(name), r.Err(), kernels.Settings(r), engine);
            if (r.GetValue(remoteImages)) service.MediaOptions = service.MediaOptions with { AllowRemoteImages = true };
            var server = new KimiServer(service, new ServerOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                ApiKey = r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("KIMI_API_KEY"),
                ServeUi = !r.GetValue(noUi),
                MaxRequestBodyBytes = r.GetValue(maxBody) is int mb ? mb << 20
                    : service.Vision is null ? ServerOptions.DefaultMaxRequestBodyBytes : ServerOptions.DefaultVisionMaxRequestBodyBytes,
            }, logging => logging.AddSimpleConsoleLogging());
            return await RunAsync(service, server, r.Out(), ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(KimiChatService service, KimiServer server, TextWriter stdout, CancellationToken cancellationToken)
    {
        await using (server)
        {
            await server.StartAsync(cancellationToken);
            stdout.WriteLine($"serving {service.ModelId} on {string.Join(", ", server.Urls)} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages{(server.ServesUi ? "; chat UI: " + server.Urls.First() + "/" : "")}). Ctrl+C stops.");
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
