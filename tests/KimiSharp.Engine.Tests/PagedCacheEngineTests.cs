using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Engine.Tests;

/// <summary>
/// The engine over the paged KV cache: blocks come back after cancellations, requests wait for blocks instead of
/// failing, and shared prompt prefixes are stored once.
/// </summary>
public sealed class PagedCacheEngineTests(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
{
    private static int[] Prompt(int seed, int length)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(300)).ToArray();
    }

    private static async Task<(List<int> Tokens, GenerationFinished? Finished)> Collect(IAsyncEnumerable<GenerationEvent> events)
    {
        var tokens = new List<int>();
        GenerationFinished? finished = null;
        await foreach (var e in events)
            if (e is TokenGenerated t) tokens.Add(t.Token);
            else if (e is GenerationFinished f) finished = f;
        return (tokens, finished);
    }

    /// <summary>Waits (bounded) until nothing runs or waits; the cache snapshot is recorded before the running count.</summary>
    private static async Task<EngineSnapshot> Idle(GenerationEngine engine)
    {
        for (int i = 0; i < 1000; i++)
        {
            var snapshot = engine.Statistics.Snapshot();
            if (snapshot.Running == 0 && snapshot.Waiting == 0) return snapshot;
            await Task.Delay(10);
        }
        throw new TimeoutException("the engine did not go idle");
    }

    private long BlockBytes(int blockTokens) => blockTokens * Model.Layers.KvCache.BytesPerTokenFor(fixture.Model.Config);

    [Fact]
    public async Task Cancelled_abandoned_and_finished_requests_leak_no_blocks()
    {
        await using var engine = new GenerationEngine(fixture.Model, new EngineOptions { KvCacheBlockTokens = 8, MaxBatchSize = 4, MaxQueueLength = 16 });
        var options = new GenerationOptions { Temperature = 0, MaxTokens = 60 };
        var runs = new List<Task>();
        for (int i = 0; i < 10; i++)
        {
            var prompt = Prompt(200 + i, 9 + 4 * i);
            switch (i % 3)
            {
                case 0: // cancelled mid-stream
                    runs.Add(Task.Run(async () =>
                    {
                        using var cts = new CancellationTokenSource();
                        int seen = 0;
                        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
                        {
                            await foreach (var e in engine.GenerateAsync(prompt, options, cts.Token))
                                if (e is TokenGenerated && ++seen == 2 + i) cts.Cancel();
                        });
                    }));
                    break;
                case 1: // the client stops reading (a disconnect): the enumerator is disposed mid-stream
                    runs.Add(Task.Run(async () =>
                    {
                        int seen = 0;
                        await foreach (var e in engine.GenerateAsync(prompt, options))
                            if (e is TokenGenerated && ++seen == 3) break;
                    }));
                    break;
                default: // runs to the end
                    runs.Add(Task.Run(async () => Assert.Equal(60, (await Collect(engine.GenerateAsync(prompt, options))).Tokens.Count)));
                    break;
            }
        }
        // And one cancelled before it was ever admitted or read.
        using (var early = new CancellationTokenSource())
        {
            _ = engine.GenerateAsync(Prompt(300, 12), options, early.Token);
            early.Cancel();
        }
        await Task.WhenAll(runs).WaitAsync(TimeSpan.FromMinutes(2));

        var idle = (await Idle(engine)).Cache;
        Assert.True(idle.UsedBlocks > 0, "finished and cancelled sequences are parked in the prefix cache");
        Assert.Equal(idle.PrefixCacheBlocks, idle.UsedBlocks);
        Assert.Equal(0, idle.Sequences);
        Assert.True(idle.PeakUsedBlocks >= idle.UsedBlocks);

        await engine.ClearPrefixCacheAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var cleared = engine.Statistics.Snapshot().Cache;
        Assert.Equal(0, cleared.UsedBlocks);
        Assert.Equal(0, cleared.PrefixCacheBlocks);
        Assert.Equal(cleared.TotalBlocks, cleared.FreeBlocks);
    }

    [Fact]
    public async Task Requests_beyond_the_free_blocks_wait_and_all_complete_as_they_would_alone()
    {
        // Each request takes up to 10 + 14 = 24 positions: 3 blocks of 8. The budget holds 7, so at most two run at
        // once and the rest wait for blocks (the prefix cache's parked blocks are evicted for them).
        var prompts = Enumerable.Range(0, 6).Select(i => Prompt(400 + i, 10)).ToArray();
        var options = new GenerationOptions { Temperature = 0, MaxTokens = 14 };
        var solo = new List<int>[prompts.Length];
        await using (var engine = new GenerationEngine(fixture.Model, new EngineOptions { EnablePrefixCache = false }))
            for (int i = 0; i < prompts.Length; i++) solo[i] = (await Collect(engine.GenerateAsync(prompts[i], options))).Tokens;

        var engineOptions = new EngineOptions { KvCacheBlockTokens = 8, KvCacheBudgetBytes = 7 * BlockBytes(8), MaxBatchSize = 6 };
        await using (var engine = new GenerationEngine(fixture.Model, engineOptions))
        {
            var runs = prompts.Select(p => Collect(engine.GenerateAsync(p, options))).ToArray();
            int mostRunning = 0;
            while (!runs.All(r => r.IsCompleted))
            {
                mostRunning = Math.Max(mostRunning, engine.Statistics.Snapshot().Running);
                await Task.WhenAny(Task.WhenAll(runs), Task.Delay(2));
            }
            var results = await Task.WhenAll(runs).WaitAsync(TimeSpan.FromMinutes(1));
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.Equal(FinishReason.Length, results[i].Finished!.Reason);
                Assert.Equal(solo[i], results[i].Tokens);
            }
            var cache = (await Idle(engine)).Cache;
            Assert.Equal(7, cache.TotalBlocks);
            Assert.True(cache.PeakUsedBlocks <= 7);
            Assert.True(mostRunning <= 2, $"{mostRunning} requests ran at once in a budget for two");
            Assert.Equal(cache.PrefixCacheBlocks, cache.UsedBlocks);
        }

        // A request that could never fit, even alone, is still refused at once with a clear error.
        await using (var engine = new GenerationEngine(fixture.Model, engineOptions))
        {
            var error = Assert.Throws<RequestTooLargeException>(() => engine.GenerateAsync(Prompt(1, 50), new GenerationOptions { MaxTokens = 20 }));
            Assert.Contains("needs 9 KV cache blocks of 8 tokens", error.Message);
            Assert.Contains("holds 7", error.Message);
        }
    }

    [Fact]
    public async Task A_shared_prefix_is_stored_once()
    {
        await using var engine = new GenerationEngine(fixture.Model, new EngineOptions { KvCacheBlockTokens = 8 });
        var system = Prompt(7, 40);
        var options = new GenerationOptions { Temperature = 0, MaxTokens = 8 };
        var first = await Collect(engine.GenerateAsync(system.Concat(Prompt(8, 6)).ToArray(), options));
        var afterFirst = (await Idle(engine)).Cache;
        // 46 prompt tokens + 7 fed-back generated ones = 53 positions: 7 blocks.
        Assert.Equal(7, afterFirst.UsedBlocks);

        var second = await Collect(engine.GenerateAsync(system.Concat(Prompt(9, 9)).ToArray(), options));
        Assert.Equal(40, second.Finished!.CachedTokens);
        var afterSecond = (await Idle(engine)).Cache;
        // 49 + 7 = 56 positions, 7 blocks of its own but the 5 full blocks of the 40-token prefix are the first's:
        // both kept, in 9 distinct blocks rather than 14.
        Assert.Equal(9, afterSecond.UsedBlocks);
        Assert.Equal(9, afterSecond.PrefixCacheBlocks);
        Assert.Equal(2, afterSecond.PrefixCacheEntries);
    }

    [Fact]
    public void The_cache_snapshot_reports_blocks_bytes_per_sequence_and_fragmentation()
    {
        // The engine's parts driven by hand for one step, so the caches' lengths are exact: two prompts of 13 and 21.
        var model = fixture.Model;
        var options = new EngineOptions { KvCacheBlockTokens = 8, KvCacheBudgetBytes = 20 * BlockBytes(8), EnablePrefixCache = false };
        var statistics = new EngineStatistics();
        var scheduler = new Scheduler(model, options, statistics);
        var runner = new ModelRunner(model, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var generation = new GenerationOptions { Temperature = 0, MaxTokens = 30 };
        foreach (var prompt in new[] { Prompt(11, 13), Prompt(12, 21) })
        {
            var channel = System.Threading.Channels.Channel.CreateUnbounded<GenerationEvent>();
            scheduler.Enqueue(new Sequence(prompt, generation, prompt.Length + 30, 0, channel.Writer, model.Config.VocabSize));
        }
        scheduler.Admit();
        var batch = new List<Sequence>();
        Assert.Equal(34, scheduler.ScheduleStep(batch));
        runner.Run(batch);
        scheduler.RetireFinished();

        var kv = statistics.Snapshot().Cache;
        Assert.Equal(kv, scheduler.CacheSnapshot());
        Assert.Equal((20, 8, 8 * Model.Layers.KvCache.BytesPerTokenFor(model.Config)), (kv.TotalBlocks, kv.BlockTokens, kv.BlockBytes));
        // ⌈13/8⌉ + ⌈21/8⌉ = 2 + 3 blocks: 40 slots for 34 tokens.
        Assert.Equal((2, 5, 34L), (kv.Sequences, kv.SequenceBlocks, kv.SequenceTokens));
        Assert.Equal((5, 15), (kv.UsedBlocks, kv.FreeBlocks));
        Assert.Equal(5 * BlockBytes(8) / 2.0, kv.BytesPerSequence);
        Assert.Equal(6 / 40.0, kv.Fragmentation, 12);

        scheduler.FailAll(new OperationCanceledException());
        Assert.Equal(0, statistics.Snapshot().Cache.UsedBlocks);
    }
}
