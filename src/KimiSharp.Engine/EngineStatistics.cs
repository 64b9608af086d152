namespace KimiSharp.Engine;

/// <summary>Running totals for /metrics: throughput, queue, and prefix-cache effectiveness.</summary>
public sealed class EngineStatistics
{
    private readonly object _lock = new();
    private long _tokens, _promptTokens, _cachedTokens, _steps;
    private double _busySeconds;
    private int _running, _waiting;

    internal void RecordStep(int tokens, TimeSpan elapsed, int running, int waiting)
    {
        lock (_lock)
        {
            _tokens += tokens;
            _steps++;
            _busySeconds += elapsed.TotalSeconds;
            _running = running;
            _waiting = waiting;
        }
    }

    internal void RecordPrefix(int promptTokens, int cachedTokens)
    {
        lock (_lock)
        {
            _promptTokens += promptTokens;
            _cachedTokens += cachedTokens;
        }
    }

    public EngineSnapshot Snapshot()
    {
        lock (_lock)
            return new EngineSnapshot(_tokens, _steps, _busySeconds, _running, _waiting, _promptTokens, _cachedTokens);
    }
}

/// <param name="TokensComputed">Prompt and generated tokens pushed through the model.</param>
/// <param name="BusySeconds">Time spent computing (idle time excluded).</param>
public readonly record struct EngineSnapshot(long TokensComputed, long Steps, double BusySeconds, int Running, int Waiting,
    long PromptTokens, long CachedPromptTokens)
{
    public double TokensPerSecond => BusySeconds > 0 ? TokensComputed / BusySeconds : 0;
    public double PrefixHitRate => PromptTokens > 0 ? (double)CachedPromptTokens / PromptTokens : 0;
}
