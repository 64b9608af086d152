using KimiSharp.Engine;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;
using KimiSharp.Model.Layers;
using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Engine.Tests;

/// <summary>A small random K2-architecture model shared by the engine tests.</summary>
public sealed class TinyModelFixture : IDisposable
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("kimi-engine-").FullName;
    public KimiModel Model { get; }

    public TinyModelFixture()
    {
        RandomCheckpoint.Write(Directory, new RandomCheckpointOptions
        {
            VocabSize = 300, HiddenSize = 64, NumHiddenLayers = 3, QLoraRank = 24, MaxPositionEmbeddings = 256,
            Format = CheckpointFormat.Int4, Seed = 21,
        });
        Model = KimiModel.Load(Directory);
    }

    public void Dispose()
    {
        Model.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

public sealed class EngineTests(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
{
    private KimiModel Model => fixture.Model;

    private static async Task<(List<int> Tokens, GenerationFinished Finished, PromptProcessed Prompt)> Collect(IAsyncEnumerable<GenerationEvent> events)
    {
        var tokens = new List<int>();
        GenerationFinished? finished = null;
        PromptProcessed? prompt = null;
        await foreach (var e in events)
            switch (e)
            {
                case TokenGenerated t: tokens.Add(t.Token); break;
                case GenerationFinished f: finished = f; break;
                case PromptProcessed p: prompt = p; break;
            }
        return (tokens, finished!, prompt!);
    }

    private List<int> ManualGreedy(int[] prompt, int count)
    {
        var cache = Model.CreateCache();
        var logits = new float[Model.Config.VocabSize];
        var output = new List<int>();
        Model.Forward(prompt, cache, logits, lastOnly: true);
        for (int i = 0; i < count; i++)
        {
            int best = 0;
            for (int t = 1; t < logits.Length; t++) if (logits[t] > logits[best]) best = t;
            output.Add(best);
            if (i + 1 < count) Model.Forward([best], cache, logits);
        }
        return output;
    }

    private static int[] Prompt(int seed, int length)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(300)).ToArray();
    }

    [Fact]
    public async Task Greedy_generation_equals_a_hand_written_decode_loop()
    {
        await using var engine = new GenerationEngine(Model, new EngineOptions { PrefillChunkTokens = 5 });
        var prompt = Prompt(1, 17);
        var (tokens, finished, processed) = await Collect(engine.GenerateAsync(prompt, new GenerationOptions { Temperature = 0, MaxTokens = 12 }));
        Assert.Equal(ManualGreedy(prompt, 12), tokens);
        Assert.Equal(FinishReason.Length, finished.Reason);
        Assert.Equal((17, 12), (finished.PromptTokens, finished.CompletionTokens));
        Assert.Equal(17, processed.PromptTokens);
    }

    [Fact]
    public async Task Sixteen_concurrent_requests_each_equal_their_solo_run()
    {
        var prompts = Enumerable.Range(0, 16).Select(i => Prompt(100 + i, 5 + i * 3)).ToArray();
        GenerationOptions Options(int i) => i % 2 == 0
            ? new GenerationOptions { Temperature = 0, MaxTokens = 10 + i }
            : new GenerationOptions { Temperature = 0.9f, TopP = 0.9f, Seed = i, MaxTokens = 10 + i };

        var solo = new List<int>[16];
        await using (var engine = new GenerationEngine(Model, new EngineOptions { EnablePrefixCache = false }))
            for (int i = 0; i < 16; i++) solo[i] = (await Collect(engine.GenerateAsync(prompts[i], Options(i)))).Tokens;

        await using (var engine = new GenerationEngine(Model, new EngineOptions { MaxBatchSize = 16, PrefillChunkTokens = 7 }))
        {
            var runs = Enumerable.Range(0, 16).Select(i => Collect(engine.GenerateAsync(prompts[i], Options(i)))).ToArray();
            var results = await Task.WhenAll(runs);
            for (int i = 0; i < 16; i++) Assert.Equal(solo[i], results[i].Tokens);
        }
    }

    [Fact]
    public async Task A_shared_prefix_is_reused_and_changes_nothing()
    {
        var system = Prompt(7, 40);
        var first = system.Concat(Prompt(8, 6)).ToArray();
        var second = system.Concat(Prompt(9, 9)).ToArray();
        var options = new GenerationOptions { Temperature = 0, MaxTokens = 8 };

        List<int> uncached;
        await using (var engine = new GenerationEngine(Model, new EngineOptions { EnablePrefixCache = false }))
            uncached = (await Collect(engine.GenerateAsync(second, options))).Tokens;

        await using (var engine = new GenerationEngine(Model))
        {
            var a = await Collect(engine.GenerateAsync(first, options));
            Assert.Equal(0, a.Finished.CachedTokens);
            var b = await Collect(engine.GenerateAsync(second, options));
            Assert.Equal(40, b.Finished.CachedTokens);
            Assert.Equal(40, b.Prompt.CachedTokens);
            Assert.Equal(uncached, b.Tokens);

            // A growing conversation: the previous prompt and answer are the prefix of the next prompt.
            var followUp = second.Concat(b.Tokens.Take(b.Tokens.Count - 1)).Concat(Prompt(10, 3)).ToArray();
            var c = await Collect(engine.GenerateAsync(followUp, options));
            Assert.Equal(second.Length + b.Tokens.Count - 1, c.Finished.CachedTokens);
            Assert.True(engine.Statistics.Snapshot().PrefixHitRate > 0);
        }
    }

    [Fact]
    public async Task Cancelling_frees_the_slot_for_waiting_requests()
    {
        await using var engine = new GenerationEngine(Model, new EngineOptions { MaxBatchSize = 1, EnablePrefixCache = false });
        using var cts = new CancellationTokenSource();
        var long1 = engine.GenerateAsync(Prompt(1, 8), new GenerationOptions { Temperature = 0, MaxTokens = 200 }, cts.Token);
        int seen = 0;
        var waiting = Collect(engine.GenerateAsync(Prompt(2, 8), new GenerationOptions { Temperature = 0, MaxTokens = 3 }));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in long1)
                if (e is TokenGenerated && ++seen == 3) cts.Cancel();
        });
        var result = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, result.Tokens.Count);
    }

    [Fact]
    public async Task Stop_tokens_end_generation_with_reason_stop()
    {
        await using var engine = new GenerationEngine(Model);
        var prompt = Prompt(3, 10);
        var greedy = ManualGreedy(prompt, 6);
        var (tokens, finished, _) = await Collect(engine.GenerateAsync(prompt,
            new GenerationOptions { Temperature = 0, MaxTokens = 50, StopTokens = [greedy[3]] }));
        Assert.Equal(greedy.Take(greedy.IndexOf(greedy[3]) + 1), tokens);
        Assert.Equal(FinishReason.Stop, finished.Reason);
    }

    [Fact]
    public async Task Requests_that_cannot_fit_are_refused_with_clear_errors()
    {
        await using var engine = new GenerationEngine(Model, new EngineOptions { KvCacheBudgetBytes = 64 * 1024, MaxQueueLength = 0, MaxBatchSize = 1 });
        var tooBig = Assert.Throws<RequestTooLargeException>(() => engine.GenerateAsync(Prompt(1, 100), new GenerationOptions { MaxTokens = 100 }));
        Assert.Contains("budget", tooBig.Message);
        var overContext = Assert.Throws<ContextLengthExceededException>(() => engine.GenerateAsync(Prompt(1, 256), new GenerationOptions()));
        Assert.Contains("context limit is 256", overContext.Message);
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync([5, 300], new GenerationOptions()));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync([5], new GenerationOptions { TopP = 0 }));

        using var cts = new CancellationTokenSource();
        var running = engine.GenerateAsync(Prompt(2, 4), new GenerationOptions { MaxTokens = 20 }, cts.Token);
        var busy = Assert.Throws<EngineBusyException>(() => engine.GenerateAsync(Prompt(3, 4), new GenerationOptions { MaxTokens = 2 }));
        Assert.Contains("busy", busy.Message);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { await foreach (var _ in running) { } });
    }

    [Fact]
    public async Task Cancelling_a_queued_request_that_was_never_read_frees_it()
    {
        // A server queues all of a request's runs before reading any, and cancels them if one is refused.
        await using var engine = new GenerationEngine(Model, new EngineOptions { MaxQueueLength = 1, MaxBatchSize = 1 });
        var first = engine.GenerateAsync(Prompt(2, 4), new GenerationOptions { MaxTokens = 240, Temperature = 0 });
        using var cts = new CancellationTokenSource();
        _ = engine.GenerateAsync(Prompt(3, 4), new GenerationOptions { MaxTokens = 240, Temperature = 0 }, cts.Token);
        cts.Cancel();
        var (tokens, _, _) = await Collect(first);
        for (int i = 0; i < 200 && engine.Statistics.Snapshot() is { Running: > 0 } or { Waiting: > 0 }; i++) await Task.Delay(10);
        var after = engine.Statistics.Snapshot();
        Assert.Equal(0, after.Running + after.Waiting);
        Assert.True(after.TokensComputed <= 4 + tokens.Count, $"the cancelled request was computed: {after}");
    }
}
