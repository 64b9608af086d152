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
    /// <summary>Positions per KV cache block: the unit the budget is handed out and prefixes are shared in.</summary>
    public int KvCacheBlockTokens { get; init; } = KvBlockPool.DefaultBlockTokens;
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
/// finished ones leave, each sequence has its own KV cache, and the total stays within a memory budget. Each step is
/// one forward pass over every running sequence (prompt chunks and decode tokens together), so the weights stream
/// once per step however many sequences run.
/// Results do not depend on what else is running: every sequence computes exactly what it would alone.
/// </summary>
public sealed class GenerationEngine : IAsyncDisposable
{
    private readonly KimiModel _model;
    private readonly EngineOptions _options;
    private readonly Scheduler _scheduler;
    private readonly ModelRunner _runner;
    private readonly List<Sequence> _batch = [];
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Thread _loop;

    public KimiModel Model => _model;
    public EngineStatistics Statistics { get; } = new();

    public GenerationEngine(KimiModel model, EngineOptions? options = null, ILogger<GenerationEngine>? logger = null)
    {
        _model = model;
        _options = options ?? new EngineOptions();
        if (_options.KvCacheBudgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(options), _options.KvCacheBudgetBytes, "KvCacheBudgetBytes is negative");
        if (_options.KvCacheBlockTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), _options.KvCacheBlockTokens, "KvCacheBlockTokens must be at least 1");
        _scheduler = new Scheduler(model, _options, Statistics);
        _runner = new ModelRunner(model, (ILogger?)logger ?? NullLogger.Instance);
        _loop = new Thread(RunLoop) { IsBackground = true, Name = "kimi-engine" };
        _loop.Start();
    }

    /// <summary>
    /// Queues <paramref name="prompt"/> and streams what happens to it. Cancelling <paramref name="cancellationToken"/>
    /// (or abandoning the enumeration) frees the request's slot and cache at the next step.
    /// </summary>
    public IAsyncEnumerable<GenerationEvent> GenerateAsync(IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, embeddings: null, options, cancellationToken);

    /// <summary>
    /// <see cref="GenerateAsync(IReadOnlyList{int}, GenerationOptions, CancellationToken)"/> with some prompt positions'
    /// input embeddings given by <paramref name="embeddings"/> (a multimodal prompt's image features); prefill applies
    /// them chunk by chunk, and the prefix cache tells different images apart by their content keys.
    /// </summary>
    public IAsyncEnumerable<GenerationEvent> GenerateAsync(IReadOnlyList<int> prompt, PromptEmbeddings? embeddings, GenerationOptions options,
        CancellationToken cancellationToken = default)
    {
        options.Validate();
        embeddings?.Validate(prompt.Count, _model.Config.HiddenSize);
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty");
        int vocab = _model.Config.VocabSize;
        foreach (int token in prompt)
            if ((uint)token >= (uint)vocab) throw new ArgumentException($"prompt token {token} is outside the vocabulary (vocab_size {vocab})");
        int limit = _model.Config.MaxPositionEmbeddings;
        if (prompt.Count >= limit)
            throw new ContextLengthExceededException(
                $"the prompt has {prompt.Count} tokens; the model's context limit is {limit} (max_position_embeddings), leaving no room to generate", prompt.Count, limit);
        int reservedTokens = Math.Min(limit, prompt.Count + options.MaxTokens);
        long bytes = (long)reservedTokens * KvCache.BytesPerTokenFor(_model.Config);
        var pool = _scheduler.Pool;
        int blocks = pool.BlocksFor(reservedTokens);
        if (blocks > pool.TotalBlocks)
            throw new RequestTooLargeException(
                $"the request needs {blocks} KV cache blocks of {pool.BlockTokens} tokens ({blocks * pool.BlockBytes / 1048576.0:F1} MiB for {prompt.Count} prompt + {options.MaxTokens} max tokens) but the budget of {_options.KvCacheBudgetBytes / 1048576.0:F1} MiB holds {pool.TotalBlocks}");
        var channel = Channel.CreateUnbounded<GenerationEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequence = new Sequence(prompt.ToArray(), options, reservedTokens, bytes, channel.Writer, vocab) { PromptEmbeddings = embeddings };
        _scheduler.Enqueue(sequence);
        // Registered now, not when enumeration starts: a caller that queued several requests and then gives up
        // (one of them was refused) frees the others by cancelling, without ever reading them.
        var registration = cancellationToken.Register(() => { sequence.Cancel(); _wake.Release(); });
        _wake.Release();
        return Read(channel.Reader, sequence, registration, cancellationToken);
    }

    /// <summary>
    /// Drops every prefix-cache entry, returning blocks no running sequence shares to the pool; completes once done
    /// (at the engine's next step).
    /// </summary>
    public Task ClearPrefixCacheAsync()
    {
        ObjectDisposedException.ThrowIf(_shutdown.IsCancellationRequested, this);
        var done = _scheduler.ClearPrefixCacheAsync();
        _wake.Release();
        return done;
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

    /// <summary>The engine's thread: admit, schedule a step, run it, retire what finished; sleep when idle.</summary>
    private void RunLoop()
    {
        var token = _shutdown.Token;
        while (!token.IsCancellationRequested)
        {
            _scheduler.Admit();
            if (_scheduler.Running == 0)
            {
                try { _wake.Wait(token); } catch (OperationCanceledException) { break; }
                continue;
            }
            var stopwatch = Stopwatch.StartNew();
            int tokens = _scheduler.ScheduleStep(_batch);
            _runner.Run(_batch);
            _scheduler.RetireFinished();
            Statistics.RecordStep(tokens, stopwatch.Elapsed, _scheduler.Running, _scheduler.Waiting);
        }
        _scheduler.FailAll(new ObjectDisposedException(nameof(GenerationEngine)));
    }

    public async ValueTask DisposeAsync()
    {
        _shutdown.Cancel();
        _wake.Release();
        await Task.Run(() => _loop.Join()).ConfigureAwait(false);
        _shutdown.Dispose();
    }
}
