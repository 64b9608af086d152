using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Client.Tests;

/// <summary>Keeps every formatted log line, for asserting what the client reported.</summary>
public sealed class ListLogger : ILogger
{
    private readonly ConcurrentQueue<string> _entries = new();

    public IReadOnlyList<string> Entries => _entries.ToArray();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _entries.Enqueue($"{logLevel}: {formatter(state, exception)}");
}
