using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using KimiSharp.Model;
using KimiSharp.Model.Layers;
using KimiSharp.Tokens.Parsing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Engine;

/// <summary>Limits of a <see cref="GenerationEngine"/>.</summary>
public sealed record EngineOptions
{
    /// <summary>Bytes of KV cache (active sequences plus the prefix cache) the engine may hold.</summary>
    public long KvCacheBudgetBytes { get; init; } = 2L << 30;
    /// <summary>Requests admitted at once; more wait in the queue.</summary>
    public int MaxBatchSize { get; init; } = 16;
    /// <summary>Requests waiting for admission before new ones are refused (HTTP 429).</summary>
    public int MaxQueueLength { get; init; } = 64;
    /// <summary>Prompt tokens computed per sequence per step, so long prompts do not stall running decodes.</summary>
    public int PrefillChunkTokens { get; init; } = 256;
    /// <summary>Keep finished sequences' caches for prefix reuse.</summary>
    public bool EnablePrefixCache { get; init; } = true;
}

/// <summary>Something the engine reports about a request, in order.</summary>
public abstract record GenerationEvent;

/// <summary>The prompt has been read: <paramref name="CachedTokens"/> of it came from the prefix cache.</summary>
public sealed record PromptProcessed(int PromptTokens, int CachedTokens) : GenerationEvent;

/// <summary>A sampled token; <paramref name="TopLogprobs"/> is set when requested.</summary>
public sealed record TokenGenerated(int Token, float Logprob, TokenLogprob[]? TopLogprobs) : GenerationEvent;

/// <summary>The request is over.</summary>
public sealed record GenerationFinished(FinishReason Reason, int PromptTokens, int CompletionTokens, int CachedTokens) : GenerationEvent;

/// <summary>The request can never fit the configured memory budget or context.</summary>
public sealed class RequestTooLargeException(string message) : Exception(message);

/// <summary>The queue is full; try again later (HTTP 429).</summary>
public sealed class EngineBusyException(string message) : Exception(message);

/// <summary>
/// Runs generation requests against one model with continuous batching: new requests join between steps,
/// finished ones leave, each sequence has its own KV cache, and the total stays within a memory budget.
/// Results do not depend on what else is running: every sequence computes exactly what it would alone.
/// </summary>
public sealed class GenerationEngine : IAsyncDisposable
{
    private readonly KimiModel _model;
    private readonly EngineOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _active = [];
    private readonly PrefixCache _prefixCache = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Thread _loop;
    private long _reservedBytes;
    private int _queued;

    public KimiModel Model => _model;
    public EngineStatistics Statistics { get; } = new();

    public GenerationEngine(KimiModel model, EngineOptions? options = null, ILogger<GenerationEngine>? logger = null)
    {
        _model = model;
        _options = options ?? new EngineOptions();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _loop = new Thread(RunLoop) { IsBackground = true, Name = "kimi-engine" };
        _loop.Start();
    }

    /// <summary>
    /// Queues <paramref name="prompt"/> and streams what happens to it. Cancelling <paramref name="cancellationToken"/>
    /// (or abandoning the enumeration) frees the request's slot and cache at the next step.
    /// </summary>
    public IAsyncEnumerable<GenerationEvent> GenerateAsync(IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty");
        int vocab = _model.Config.VocabSize;
        foreach (int token in prompt)
            if ((uint)token >= (uint)vocab) throw new ArgumentException($"prompt token {token} is outside the vocabulary (vocab_size {vocab})");
        int limit = _model.Config.MaxPositionEmbeddings;
        if (prompt.Count >= limit)
            throw new ContextLengthExceededException(
                $"the prompt has {prompt.Count} tokens; the model's context limit is {limit} (max_position_embeddings), leaving no room to generate", prompt.Count, limit);
        int reservedTokens = Math.Min(limit, prompt.Count + options.MaxTokens);
        long bytes = (long)reservedTokens * new KvCacheSize(_model).BytesPerToken;
        if (bytes > _options.KvCacheBudgetBytes)
            throw new RequestTooLargeException(
                $"the request needs {bytes >> 20} MiB of KV cache ({prompt.Count} prompt + {options.MaxTokens} max tokens) but the budget is {_options.KvCacheBudgetBytes >> 20} MiB");
        if (Interlocked.Increment(ref _queued) > _options.MaxQueueLength + _options.MaxBatchSize)
        {
            Interlocked.Decrement(ref _queued);
            throw new EngineBusyException($"the server is busy: {_options.MaxQueueLength} requests are already waiting");
        }
        var channel = Channel.CreateUnbounded<GenerationEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequence = new Sequence(prompt.ToArray(), options, reservedTokens, bytes, channel.Writer, vocab);
        // Registered now, not when enumeration starts: a caller that queued several requests and then gives up
        // (one of them was refused) frees the others by cancelling, without ever reading them.
        var registration = cancellationToken.Register(() => { sequence.Cancel(); _wake.Release(); });
        _incoming.Enqueue(sequence);
        _wake.Release();
        return Read(channel.Reader, sequence, registration, cancellationToken);
    }

    private async IAsyncEnumerable<GenerationEvent> Read(ChannelReader<GenerationEvent> reader, Sequence sequence,
        CancellationTokenRegistration registration, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var _ = registration;
        try
        {
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                while (reader.TryRead(out var e))
                {
                    cancellationToken.ThrowIfCancellationRequested(); // a cancelled caller always sees the cancellation
                    yield return e;
                    if (e is GenerationFinished) yield break;
                }
        }
        finally
        {
            sequence.Cancel(); // no-op when finished; frees the slot when the caller stopped listening
            _wake.Release();
        }
    }

    private void RunLoop()
    {
        var token = _shutdown.Token;
        while (!token.IsCancellationRequested)
        {
            Admit();
            if (_active.Count == 0)
            {
                try { _wake.Wait(token); } catch (OperationCanceledException) { break; }
                continue;
            }
            var stopwatch = Stopwatch.StartNew();
            int tokensThisStep = 0;
            for (int i = 0; i < _active.Count; i++)
            {
                var s = _active[i];
                try { tokensThisStep += Step(s); }
                catch (Exception e)
                {
                    _logger.LogError(e, "generation failed");
                    s.Fail(e);
                }
                if (s.IsDone)
                {
                    Retire(s);
                    _active.RemoveAt(i--);
                }
            }
            Statistics.RecordStep(tokensThisStep, stopwatch.Elapsed, _active.Count, _waiting.Count);
        }
        foreach (var s in _active) s.Fail(new ObjectDisposedException(nameof(GenerationEngine)));
        foreach (var s in _waiting) s.Fail(new ObjectDisposedException(nameof(GenerationEngine)));
    }

    /// <summary>Moves queued requests into the batch while slots and memory allow (first come, first served).</summary>
    private void Admit()
    {
        while (_incoming.TryDequeue(out var s)) _waiting.AddLast(s);
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            var s = node.Value;
            if (s.IsCancelled)
            {
                _waiting.Remove(node);
                s.Finish(FinishReason.Cancelled);
                Interlocked.Decrement(ref _queued);
            }
            node = next;
        }
        while (_waiting.First is { } first && _active.Count < _options.MaxBatchSize)
        {
            var s = first.Value;
            // Parked prefix caches are evictable; running sequences are not, so a request that does not fit
            // beside them waits until some finish.
            if (s.ReservedBytes > _options.KvCacheBudgetBytes - _reservedBytes) break;
            _prefixCache.TrimTo(_options.KvCacheBudgetBytes - _reservedBytes - s.ReservedBytes);
            _waiting.RemoveFirst();
            _reservedBytes += s.ReservedBytes;
            s.Cache = _model.CreateCache(s.ReservedTokens);
            _active.Add(s);
        }
    }

    /// <summary>One step of one sequence: a prompt chunk, or one decoded token. Returns tokens computed.</summary>
    private int Step(Sequence s)
    {
        if (s.IsCancelled) { s.Finish(FinishReason.Cancelled); return 0; }
        var cache = s.Cache!;
        int vocab = _model.Config.VocabSize;
        if (!s.PromptDone)
        {
            if (cache.Length == 0 && _options.EnablePrefixCache)
            {
                s.CachedTokens = _prefixCache.Reuse(s.Prompt, cache);
                Statistics.RecordPrefix(s.Prompt.Length, s.CachedTokens);
            }
            int start = cache.Length;
            int count = Math.Min(_options.PrefillChunkTokens, s.Prompt.Length - start);
            bool last = start + count == s.Prompt.Length;
            _model.Forward(s.Prompt.AsSpan(start, count), cache, s.Logits, lastOnly: true);
            if (!last) return count;
            s.PromptDone = true;
            s.Post(new PromptProcessed(s.Prompt.Length, s.CachedTokens));
            SampleNext(s);
            return count;
        }
        _model.Forward([s.LastToken], cache, s.Logits, lastOnly: true);
        SampleNext(s);
        return 1;
    }

    private void SampleNext(Sequence s)
    {
        var top = s.Options.TopLogprobs > 0 ? new TokenLogprob[s.Options.TopLogprobs] : null;
        int token = s.Sampler.Sample(s.Logits, out float logprob, top);
        s.Generated.Add(token);
        s.LastToken = token;
        s.Post(new TokenGenerated(token, logprob, top));
        if (s.Options.StopTokens.Contains(token) || s.Options.Constraint?.IsComplete == true) s.Finish(FinishReason.Stop);
        else if (s.Generated.Count >= s.Options.MaxTokens || s.Cache!.Length + 1 >= _model.Config.MaxPositionEmbeddings)
            s.Finish(FinishReason.Length);
    }

    private void Retire(Sequence s)
    {
        _reservedBytes -= s.ReservedBytes;
        Interlocked.Decrement(ref _queued);
        if (_options.EnablePrefixCache && s.Cache is { Length: > 0 } cache && s.Error is null)
        {
            cache.ReleaseWorkspace();
            // The cache holds the prompt and every generated token but the last (it was never fed back).
            var tokens = new int[cache.Length];
            s.Prompt.AsSpan(0, Math.Min(s.Prompt.Length, cache.Length)).CopyTo(tokens);
            for (int i = s.Prompt.Length; i < cache.Length; i++) tokens[i] = s.Generated[i - s.Prompt.Length];
            _prefixCache.Add(tokens, cache);
            _prefixCache.TrimTo(Math.Max(0, _options.KvCacheBudgetBytes - _reservedBytes));
        }
        s.Cache = null;
    }

    public async ValueTask DisposeAsync()
    {
        _shutdown.Cancel();
        _wake.Release();
        await Task.Run(() => _loop.Join()).ConfigureAwait(false);
        _shutdown.Dispose();
    }

    /// <summary>Per-token KV-cache size of a model, without allocating a cache.</summary>
    private readonly record struct KvCacheSize(KimiModel Model)
    {
        public long BytesPerToken => 4L * Model.Config.NumHiddenLayers * (Model.Config.KvLoraRank + Model.Config.QkRopeHeadDim);
    }

    private sealed class Sequence(int[] prompt, GenerationOptions options, int reservedTokens, long reservedBytes,
        ChannelWriter<GenerationEvent> writer, int vocab)
    {
        private volatile bool _cancelled;
        public int[] Prompt { get; } = prompt;
        public GenerationOptions Options { get; } = options;
        public int ReservedTokens { get; } = reservedTokens;
        public long ReservedBytes { get; } = reservedBytes;
        public Sampler Sampler { get; } = new(options, vocab);
        public float[] Logits { get; } = new float[vocab];
        public List<int> Generated { get; } = [];
        public KvCache? Cache { get; set; }
        public bool PromptDone { get; set; }
        public int CachedTokens { get; set; }
        public int LastToken { get; set; }
        public bool IsDone { get; private set; }
        public bool IsCancelled => _cancelled;
        public Exception? Error { get; private set; }

        public void Cancel() => _cancelled = true;
        public void Post(GenerationEvent e) => writer.TryWrite(e);

        public void Finish(FinishReason reason)
        {
            if (IsDone) return;
            IsDone = true;
            writer.TryWrite(new GenerationFinished(reason, Prompt.Length, Generated.Count, CachedTokens));
            writer.TryComplete();
        }

        public void Fail(Exception e)
        {
            if (IsDone) return;
            IsDone = true;
            Error = e;
            writer.TryComplete(e);
        }
    }
}
