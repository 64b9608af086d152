using System.Diagnostics;
using KimiSharp.Engine;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi bench --concurrency 1,4,16</c>: N requests at once through the generation engine (what <c>kimi serve</c>
/// runs), reporting aggregate and per-sequence decode tokens/s, time to first token, and the batch roofline — the
/// weight bytes one step actually touches (every non-expert weight once, plus each distinct routed expert the
/// step's tokens chose) against the measured bandwidth.
/// </summary>
internal static class ConcurrencyBench
{
    public static async Task RunAsync(KimiModel model, IReadOnlyList<int> levels, int prompt, int gen, int bandwidthMb,
        TextWriter stdout, CancellationToken cancellationToken)
    {
        var c = model.Config;
        long expertBytes = 0;
        int moeLayers = 0;
        foreach (var layer in model.Layers)
            if (layer.Moe is { } moe)
            {
                moeLayers++;
                var e = moe.Experts[0];
                expertBytes = e.Gate.StoredBytes + e.Up.StoredBytes + e.Down.StoredBytes;
            }
        // Everything a step reads once whatever the batch: the per-token figure less its k routed experts per layer.
        long sharedBytes = BenchCommand.DecodeBytesPerToken(model) - (long)c.NumExpertsPerTok * moeLayers * expertBytes;

        stdout.WriteLine();
        stdout.WriteLine($"concurrency  (each level: N requests of {prompt} prompt + {gen} generated tokens submitted at once to the engine; greedy, no stop tokens)");
        stdout.WriteLine("   N  aggregate t/s  per-seq t/s  TTFT mean ms  TTFT max ms  experts/layer/step  batch roofline t/s  of roofline  RSS MB  KV budget MB  KV MB/seq  KV frag  peak RSS MB");
        foreach (int n in levels)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double bandwidth = MemoryBandwidth.Measure(bandwidthMb * (1L << 20), model.Kernels.MaxThreads, passes: 3);
            model.Profile?.Reset();
            ResetPeakResident();
            var result = await RunLevelAsync(model, n, prompt, gen, cancellationToken);
            long peakResident = BenchCommand.ResidentBytes("VmHWM:");
            var kv = result.Cache;
            double experts = result.Passes > 0 ? (double)result.ExpertsTouched / result.Passes : 0;
            double bytesPerStep = sharedBytes + experts * moeLayers * expertBytes;
            double roofline = n * bandwidth * 1e9 / bytesPerStep;
            string profile = model.Profile is { } recorded ? "  " + ProfileSummary(recorded) : "";
            stdout.WriteLine($"{n,4}  {result.Aggregate,13:F1}  {result.Aggregate / n,11:F2}  {result.TtftMeanMs,12:F0}  {result.TtftMaxMs,11:F0}  {experts,18:F1}  {roofline,18:F1}  {result.Aggregate / roofline * 100,9:F1} %  {BenchCommand.ResidentBytes("VmRSS:") / 1e6,6:F0}  {kv.BudgetBytes / 1e6,12:F3}  {kv.BytesPerSequence / 1e6,9:F3}  {kv.Fragmentation * 100,5:F1} %  {peakResident / 1e6,11:F0}{profile}");
        }
        stdout.WriteLine("  (aggregate: decode tokens of all sequences ÷ the time from the last first token to the last finish; experts/layer/step:");
        stdout.WriteLine($"   distinct routed experts a decode step's tokens touched per MoE layer, of {c.NRoutedExperts}; batch roofline: N × bandwidth ÷ bytes one such step reads;");
        stdout.WriteLine($"   KV budget: the engine's cache budget, N × ⌈(prompt + gen) / {KvBlockPool.DefaultBlockTokens}⌉ blocks of {KvBlockPool.DefaultBlockTokens} tokens × {KvCache.BytesPerTokenFor(c)} B/token;");
        stdout.WriteLine("   KV MB/seq and frag: one sequence's block table and the share of its slots holding no token, when the running sequences held most tokens;");
        stdout.WriteLine("   peak RSS: the process's resident high-water mark (VmHWM) over the level, reset before it where the kernel allows)");
    }

    /// <summary>--profile: the forward's largest parts over the whole level (prefill and decode steps), as shares.</summary>
    private static string ProfileSummary(ForwardProfile profile)
    {
        var seconds = profile.Seconds();
        double total = seconds.Values.Sum();
        if (total <= 0) return "";
        return string.Join(", ", seconds.OrderByDescending(p => p.Value).Take(4).Select(p => $"{p.Key} {p.Value / total * 100:F0}%"));
    }

    private readonly record struct LevelResult(double Aggregate, double TtftMeanMs, double TtftMaxMs, long Passes, long ExpertsTouched, KvCacheSnapshot Cache);

    /// <summary>Restarts the kernel's VmHWM count at the current resident size (Linux 4.0+: "5" to clear_refs); best effort.</summary>
    private static void ResetPeakResident()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static async Task<LevelResult> RunLevelAsync(KimiModel model, int n, int prompt, int gen, CancellationToken cancellationToken)
    {
        var c = model.Config;
        // Exactly the blocks N sequences of prompt + gen tokens take, so all run at once and the budget is the measured bound.
        int blockTokens = KvBlockPool.DefaultBlockTokens;
        long kvBytes = (long)n * ((prompt + gen + blockTokens - 1) / blockTokens) * blockTokens * KvCache.BytesPerTokenFor(c);
        await using var engine = new GenerationEngine(model, new EngineOptions
        {
            MaxBatchSize = n, MaxQueueLength = n, EnablePrefixCache = false, KvCacheBudgetBytes = kvBytes, KvCacheBlockTokens = blockTokens,
        });
        var random = new Random(1234 + n);
        var options = new GenerationOptions { Temperature = 0, MaxTokens = gen };
        var firstToken = new double[n];
        var finished = new double[n];
        var usageBefore = Usage(model);
        var clock = Stopwatch.StartNew();
        var runs = new Task[n];
        for (int i = 0; i < n; i++)
        {
            int index = i;
            var tokens = new int[prompt];
            for (int t = 0; t < prompt; t++) tokens[t] = random.Next(c.VocabSize);
            runs[i] = Task.Run(async () =>
            {
                bool first = true;
                await foreach (var e in engine.GenerateAsync(tokens, options, cancellationToken))
                {
                    if (e is TokenGenerated && first)
                    {
                        first = false;
                        firstToken[index] = clock.Elapsed.TotalSeconds;
                    }
                    else if (e is GenerationFinished) finished[index] = clock.Elapsed.TotalSeconds;
                }
            }, cancellationToken);
        }
        await Task.WhenAll(runs);
        var end = Usage(model);
        double decodeSeconds = finished.Max() - firstToken.Max();
        double aggregate = decodeSeconds > 0 ? (double)n * (gen - 1) / decodeSeconds : 0;
        return new LevelResult(aggregate, firstToken.Average() * 1e3, firstToken.Max() * 1e3,
            end.Passes - usageBefore.Passes, end.Touched - usageBefore.Touched, engine.Statistics.Snapshot().FullestCache);
    }

    private static (long Passes, long Touched) Usage(KimiModel model)
    {
        long passes = 0, touched = 0;
        foreach (var layer in model.Layers)
            if (layer.Moe is { } moe)
            {
                var (p, t) = moe.DecodeUsage;
                passes += p;
                touched += t;
            }
        return (passes, touched);
    }
}
