using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Layers;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi bench</c>: prefill and decode throughput on a checkpoint, the weight bytes one decoded token reads, the
/// machine's streaming-read bandwidth (measured here), and decode speed as a fraction of the bandwidth roofline; on a
/// K2.5 checkpoint also image-encode time per megapixel (<see cref="VisionBench"/>).
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var model = CliOptions.Required("--model", "DIR", "The model folder to measure");
        var threads = CliOptions.Threads();
        var prompt = CliOptions.Int("--prompt", "Prompt tokens per prefill (pp)", 512, min: 1);
        var gen = CliOptions.Int("--gen", "Tokens decoded per round (tg)", 64, min: 1);
        var rounds = CliOptions.Int("--rounds", "Measured rounds (the medians are reported)", 3, min: 1);
        var int8 = CliOptions.Flag("--int8", "Int8 activations on repacked INT4 weights (the default; as llama.cpp's quantized kernels run)");
        var float32 = CliOptions.Flag("--float32", "Measure the exact float32 path instead");
        var bandwidthMb = CliOptions.Int("--bandwidth-mb", "Buffer size of the memory bandwidth probe, in MiB", 1024, min: 1, helpName: "MB");
        var profile = CliOptions.Flag("--profile", "Add the time spent in each part of the forward pass (attention, experts, lm_head, …)");
        var imageSize = CliOptions.Int("--image-size", "Side in pixels of the square test image encoded on a checkpoint with a vision tower", 448, min: 28, helpName: "PIXELS");
        var concurrency = CliOptions.Parsed("--concurrency", "N,N,…",
            "Also run N requests at once through the engine for each N (e.g. 1,4,16): aggregate and per-sequence decode t/s, time to first token, batch roofline",
            ParseLevels);
        var command = new Command("bench", """
            Prefill and decode tokens/s, weight bytes per decoded token, measured memory bandwidth, roofline fraction.
            Measures int8 activations on repacked INT4 weights by default (the fast mode); --float32 the exact path.
            """)
        {
            model, threads, prompt, gen, rounds, int8, float32, bandwidthMb, profile, concurrency, imageSize,
        };
        command.Exclusive(int8, float32, "--int8 and --float32 exclude each other");
        command.SetAction((r, ct) => Task.FromResult(Run(r.GetValue(model)!, r.GetValue(threads), r.GetValue(prompt), r.GetValue(gen),
            r.GetValue(rounds), r.GetValue(float32), r.GetValue(bandwidthMb), r.GetValue(profile), r.GetValue(concurrency) ?? [], r.Out(), ct,
            r.GetValue(imageSize))));
        return command;
    }

    public static int Run(string modelDir, int? threads, int prompt, int gen, int rounds, bool float32, int bandwidthMb, bool profile,
        int[] concurrency, TextWriter stdout, CancellationToken cancellationToken, int imageSize = 448)
    {
        // Quantized CPU engines multiply quantized weights with quantized activations (llama.cpp's Q4_0 × Q8_0), so the
        // bench measures that mode by default (as chat, generate and serve run); --float32 measures the exact path (--exact).
        var kernels = new KernelSettings { Activations = float32 ? ActivationPrecision.Float32 : ActivationPrecision.Int8 };
        if (threads is int count) kernels = kernels with { MaxThreads = count };
        int code = Measure(modelDir, kernels, profile ? new ForwardProfile() : null, prompt, gen, rounds, bandwidthMb, concurrency, stdout, cancellationToken);
        if (code == 0 && VisionBench.HasVisionTower(modelDir)) VisionBench.Measure(modelDir, kernels, imageSize, rounds, stdout, cancellationToken);
        return code;
    }

    private static int Measure(string modelDir, KernelSettings kernels, ForwardProfile? profile, int prompt, int gen, int rounds, int bandwidthMb,
        int[] concurrency, TextWriter stdout, CancellationToken cancellationToken)
    {
        var loadClock = Stopwatch.StartNew();
        // Int8 runs repack the INT4 weights in memory into the int8 kernels' 16-row layout (counted in the load time).
        bool repack = kernels.Int8Activations;
        using var model = KimiModel.Load(modelDir, new KimiModelLoadOptions { Kernels = kernels, Profile = profile });
        double loadSeconds = loadClock.Elapsed.TotalSeconds;
        var c = model.Config;
        if (prompt + gen > c.MaxPositionEmbeddings) throw new UsageException($"--prompt + --gen exceed the context limit {c.MaxPositionEmbeddings}");
        long perToken = DecodeBytesPerToken(model);
        stdout.WriteLine($"model        {model.Directory}: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, {c.NRoutedExperts} experts top-{c.NumExpertsPerTok}, checkpoint {model.CheckpointBytes / 1e6:F1} MB, loaded in {loadSeconds:F2} s{(repack ? $" ({model.RepackedWeights} INT4 weights repacked into 16-row blocks)" : "")}");
        stdout.WriteLine($"machine      {Environment.ProcessorCount} logical CPUs, {KernelInfo.Describe()}; load average {LoadAverage()}; threads {kernels.MaxThreads}; activations {(kernels.Int8Activations ? "int8 (per-32 block scales, integer dot products)" : "float32")}");

        var random = new Random(42);
        int[] promptTokens = new int[prompt];
        for (int i = 0; i < prompt; i++) promptTokens[i] = random.Next(c.VocabSize);
        var logits = new float[c.VocabSize];
        var cache = model.CreateCache(prompt + gen);

        // Warm-up, as llama-bench's: one whole prefill and a few decode steps touch every weight page and give the
        // tiered JIT the calls it needs to compile the prefill-only paths (attention blocks, expert jobs) at full tier.
        model.Forward(promptTokens, cache, logits, lastOnly: true, cancellationToken: cancellationToken);
        for (int i = 0; i < Math.Min(4, gen); i++) model.Forward([Argmax(logits)], cache, logits, cancellationToken: cancellationToken);
        cache.Reset();

        var prefill = new List<double>();
        var decode = new List<double>();
        var decodeEmpty = new List<double>();
        var bandwidth = new List<double>();
        var roofFraction = new List<double>();
        var roofFractionEmpty = new List<double>();
        // Decoding after the prompt also reads the cached latents and rope keys of every layer (the mean context is prompt + gen/2).
        long cacheReadPerToken = cache.BytesPerToken * (prompt + gen / 2);
        long peakModel = 0;
        IReadOnlyDictionary<ForwardPhase, double>? prefillProfile = null, decodeProfile = null;
        for (int round = 0; round < rounds; round++)
        {
            bandwidth.Add(MemoryBandwidth.Measure(bandwidthMb * (1L << 20), kernels.MaxThreads, passes: 3));
            cache.Reset();
            profile?.Reset();
            var clock = Stopwatch.StartNew();
            model.Forward(promptTokens, cache, logits, lastOnly: true, cancellationToken: cancellationToken);
            prefill.Add(prompt / clock.Elapsed.TotalSeconds);
            prefillProfile = profile?.Seconds();
            peakModel = Math.Max(peakModel, ResidentBytes("VmRSS:"));

            profile?.Reset();
            clock.Restart();
            for (int i = 0; i < gen; i++)
                model.Forward([Argmax(logits)], cache, logits, cancellationToken: cancellationToken);
            decode.Add(gen / clock.Elapsed.TotalSeconds);
            decodeProfile = profile?.Seconds();
            peakModel = Math.Max(peakModel, ResidentBytes("VmRSS:"));

            // Decode from an empty context, as llama-bench's tg test runs: the weights dominate, attention is short.
            cache.Reset();
            int next = promptTokens[0];
            clock.Restart();
            for (int i = 0; i < gen; i++)
            {
                model.Forward([next], cache, logits, cancellationToken: cancellationToken);
                next = Argmax(logits);
            }
            decodeEmpty.Add(gen / clock.Elapsed.TotalSeconds);
            // The machine's bandwidth drifts (other tenants, frequency): probe again right after decoding and pair the
            // round's decode rates with the mean of the probes on either side of them.
            double after = MemoryBandwidth.Measure(bandwidthMb * (1L << 20), kernels.MaxThreads, passes: 3);
            bandwidth[^1] = (bandwidth[^1] + after) / 2;
            roofFraction.Add(decode[^1] / (bandwidth[^1] * 1e9 / (perToken + cacheReadPerToken)));
            roofFractionEmpty.Add(decodeEmpty[^1] / (bandwidth[^1] * 1e9 / perToken));
            stdout.WriteLine($"round {round + 1}/{rounds}  bandwidth {bandwidth[^1]:F1} GB/s  pp{prompt} {prefill[^1]:F1} t/s  tg{gen} {decode[^1]:F2} t/s (empty context {decodeEmpty[^1]:F2})");
        }

        double bw = Median(bandwidth), pp = Median(prefill), tg = Median(decode), tgEmpty = Median(decodeEmpty);
        double roofline = bw * 1e9 / perToken;
        long kvBytes = cache.BytesPerToken * (prompt + gen);
        long peak = peakModel;
        stdout.WriteLine();
        stdout.WriteLine($"prefill      {pp,8:F1} tokens/s   (pp{prompt}, median of {rounds}; range {prefill.Min():F1}–{prefill.Max():F1})");
        stdout.WriteLine($"decode       {tg,8:F2} tokens/s   (tg{gen} after the prompt, median of {rounds}; range {decode.Min():F2}–{decode.Max():F2})");
        stdout.WriteLine($"decode (0)   {tgEmpty,8:F2} tokens/s   (tg{gen} from an empty context, as llama-bench's tg; median of {rounds}; range {decodeEmpty.Min():F2}–{decodeEmpty.Max():F2})");
        stdout.WriteLine($"weights/tok  {perToken / 1e6,8:F1} MB         (every non-expert weight + {c.NumExpertsPerTok} routed experts per MoE layer + lm_head)");
        stdout.WriteLine($"cache/tok    {cacheReadPerToken / 1e6,8:F1} MB         (latent cache read per token decoded after the prompt, at its mean context {prompt + gen / 2})");
        stdout.WriteLine($"bandwidth    {bw,8:F1} GB/s       (streaming read of {bandwidthMb} MiB on {kernels.MaxThreads} threads, before and after each round's decoding, averaged per round; median of {rounds}; range {bandwidth.Min():F1}–{bandwidth.Max():F1})");
        stdout.WriteLine($"roofline     {roofline,8:F1} tokens/s   (bandwidth ÷ weights per token; {bw * 1e9 / (perToken + cacheReadPerToken):F1} after the prompt, its cache reads counted)");
        stdout.WriteLine($"decode/roof  {Median(roofFractionEmpty) * 100,8:F1} %        (from an empty context; {Median(roofFraction) * 100:F1} % after the prompt; each round against its own bandwidth, median of {rounds})");
        stdout.WriteLine($"effective    {tg * perToken / 1e9,8:F1} GB/s of weights streamed while decoding");
        stdout.WriteLine($"load         {LoadAverage()} (1/5/15-minute load average at the end; other processes compete for the cores when it exceeds the thread count)");
        if (prefillProfile is not null && decodeProfile is not null)
        {
            stdout.WriteLine();
            stdout.WriteLine($"profile (last round; ms per prefill of {prompt} tokens, ms per decoded token after it, share of each)");
            double prefillTotal = prefillProfile.Values.Sum(), decodeTotal = decodeProfile.Values.Sum();
            foreach (var phase in Enum.GetValues<ForwardPhase>())
                stdout.WriteLine($"  {phase,-22} {prefillProfile[phase] * 1e3,9:F1} ms {prefillProfile[phase] / prefillTotal * 100,5:F1} %   {decodeProfile[phase] * 1e3 / gen,7:F3} ms {decodeProfile[phase] / decodeTotal * 100,5:F1} %");
        }
        if (peak > 0)
            stdout.WriteLine($"peak RSS     {peak / 1e6,8:F1} MB         ({(double)peak / (model.CheckpointBytes + kvBytes):F3}× checkpoint {model.CheckpointBytes / 1e6:F1} MB + KV cache {kvBytes / 1e6:F1} MB; largest resident set after a prefill or decode phase, the bandwidth probe's buffer excluded; process high-water mark {ResidentBytes("VmHWM:") / 1e6:F1} MB)");
        if (concurrency.Length > 0)
            ConcurrencyBench.RunAsync(model, concurrency, prompt, gen, bandwidthMb, stdout, cancellationToken).GetAwaiter().GetResult();
        return 0;
    }

    /// <summary><c>--concurrency 1,4,16</c>: the request counts to measure side by side (none when absent).</summary>
    internal static int[] ParseLevels(string text)
    {
        var levels = new List<int>();
        foreach (string item in text.Split(','))
        {
            if (!int.TryParse(item.Trim(), out int n) || n < 1 || n > 1024)
                throw new UsageException($"--concurrency takes request counts between 1 and 1024 separated by commas (got '{item}' in '{text}')");
            levels.Add(n);
        }
        return levels.ToArray();
    }

    /// <summary>Bytes of weights one decode step reads: all dense weights, k experts per MoE layer (all experts are the same size), lm_head, one embedding row.</summary>
    public static long DecodeBytesPerToken(KimiModel model)
    {
        var c = model.Config;
        long total = model.LmHead.StoredBytes + model.Embedding.StoredBytes / model.Embedding.Rows;
        static long Mlp(FeedForward f) => f.Gate.StoredBytes + f.Up.StoredBytes + f.Down.StoredBytes;
        foreach (var layer in model.Layers)
        {
            var a = layer.Attention;
            foreach (var w in new[] { a.QProj, a.QAProj, a.QBProj, a.KvAProj, a.KvBProj, a.OProj })
                if (w is not null) total += w.StoredBytes;
            total += 4L * (layer.InputNorm.Length + layer.PostAttentionNorm.Length + a.KvANorm.Length + (a.QANorm?.Length ?? 0));
            if (layer.Dense is { } dense) total += Mlp(dense);
            if (layer.Moe is { } moe)
            {
                total += moe.Router.StoredBytes + 4L * moe.ChoiceBias.Length;
                if (moe.Shared is { } shared) total += Mlp(shared);
                total += (long)c.NumExpertsPerTok * Mlp(moe.Experts[0]);
            }
        }
        return total + 4L * model.FinalNorm.Length;
    }

    private static int Argmax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
        catch (UnauthorizedAccessException) { return "n/a"; }
    }

    /// <summary>A /proc/self/status size field (VmRSS:, VmHWM:) in bytes (Linux), or 0 where that does not exist.</summary>
    public static long ResidentBytes(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(field.Length).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return 0;
    }
}

/// <summary>
/// The vision part of <c>kimi bench</c>: preprocessing and tower + projector time for one square test image, per
/// megapixel of the image as given (below the 16384-patch limit the image is not resized, so this is the tower's rate).
/// </summary>
internal static class VisionBench
{
    public static bool HasVisionTower(string modelDir)
    {
        string path = Path.Combine(modelDir, "config.json");
        return File.Exists(path) && File.ReadAllText(path).Contains("\"vision_config\"", StringComparison.Ordinal);
    }

    public static void Measure(string modelDir, KernelSettings kernels, int side, int rounds, TextWriter stdout, CancellationToken cancellationToken)
    {
        var config = KimiSharp.Vision.VisionConfig.Load(modelDir);
        var media = KimiSharp.Vision.MediaProcessingConfig.Load(modelDir);
        media.CheckAgainst(config);
        using var weights = KimiSharp.Vision.VisionWeights.Load(modelDir, config);
        var encoder = new KimiSharp.Vision.VisionEncoder(weights) { Kernels = kernels };
        var preprocessor = new KimiSharp.Vision.ImagePreprocessor(media);
        var pixels = new byte[side * side * 3];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 2654435761u >> 24);
        var image = KimiSharp.Vision.RgbImage.Create(side, side, pixels);
        double megapixels = side * (double)side / 1e6;

        encoder.Encode([preprocessor.Image(image)], cancellationToken); // warm-up: JIT and first touch of the weights
        var prepare = new List<double>();
        var encode = new List<double>();
        KimiSharp.Vision.VisionInput input = null!;
        for (int round = 0; round < rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            input = preprocessor.Image(image);
            prepare.Add(clock.Elapsed.TotalSeconds);
            clock.Restart();
            encoder.Encode([input], cancellationToken);
            encode.Add(clock.Elapsed.TotalSeconds);
        }
        double total = Median([.. prepare.Zip(encode, (a, b) => a + b)]);
        stdout.WriteLine();
        stdout.WriteLine($"vision       {config.NumHiddenLayers} tower layers, width {config.HiddenSize}, {config.NumAttentionHeads} heads; test image {side}×{side} ({megapixels:F3} MP) → {input.Grid.Rows}×{input.Grid.Columns} patches → {encoder.TokensFor(input.Grid)} tokens");
        stdout.WriteLine($"image encode {total / megapixels,8:F3} s/MP       ({total * 1e3:F1} ms per image: preprocess {Median(prepare) * 1e3:F1} ms + tower and projector {Median(encode) * 1e3:F1} ms; median of {rounds}; range {encode.Min() * 1e3:F1}–{encode.Max() * 1e3:F1} ms)");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
