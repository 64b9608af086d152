using KimiSharp.Testing;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Server;

namespace KimiSharp.Server.Tests;

/// <summary>A real server on a free loopback port over a random-weight chat model.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ApiKey = "test-key-123";
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-server-").FullName;

    public KimiServer Server { get; private set; } = null!;
    public Uri BaseUri { get; private set; } = null!;
    public string ModelId => Server.Service.ModelId;

    public async Task InitializeAsync()
    {
        RandomChatModel.Write(_directory, new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 2048, Format = CheckpointFormat.Int4, Seed = 17,
        });
        var service = KimiChatService.Load(_directory, new EngineOptions { MaxBatchSize = 16, MaxQueueLength = 64 }, modelId: "kimi-test");
        Server = new KimiServer(service, new ServerOptions { Port = 0, ApiKey = ApiKey });
        await Server.StartAsync();
        BaseUri = new Uri(Server.Urls.First().Replace("[::]", "127.0.0.1") + "/");
    }

    public HttpClient Http(string? key = ApiKey)
    {
        var client = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromMinutes(2) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return client;
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await Server.Service.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

[CollectionDefinition("server")]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>;
