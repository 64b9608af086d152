using System.Text;

namespace KimiSharp.Client;

/// <summary>
/// Reads server-sent events off a response body and hands back each event's data. Strict where the spec is lenient:
/// a line that is no SSE field is the server speaking something else, so it is an error rather than skipped.
/// </summary>
internal sealed class SseReader(Stream stream, IdleTimeout idle)
{
    private readonly StreamReader _reader = new(stream, Encoding.UTF8);
    private readonly StringBuilder _data = new();

    /// <summary>The next event's data (lines joined by \n); null once the body ends.</summary>
    /// <exception cref="SseEventError">The server sent an <c>event: error</c>.</exception>
    /// <exception cref="InvalidDataException">A line that is not an SSE field.</exception>
    public async Task<string?> ReadEventAsync()
    {
        string? eventType = null;
        bool hasData = false;
        _data.Clear();
        while (true)
        {
            idle.Restart();
            string? line;
            try { line = await _reader.ReadLineAsync(idle.Token).ConfigureAwait(false); }
            finally { idle.Pause(); }

            if (line is null) return hasData ? Dispatch(eventType) : null;
            if (line.Length == 0)
            {
                if (hasData) return Dispatch(eventType);
                eventType = null;
                continue;
            }
            if (line[0] == ':') continue; // a comment: servers send these as keep-alives

            int colon = line.IndexOf(':');
            string field = colon < 0 ? line : line[..colon];
            string value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' ')) value = value[1..];
            switch (field)
            {
                case "data":
                    if (hasData) _data.Append('\n');
                    _data.Append(value);
                    hasData = true;
                    break;
                case "event":
                    eventType = value;
                    break;
                case "id" or "retry":
                    break;
                default:
                    throw new InvalidDataException($"the server sent a line that is not server-sent-event syntax: '{ChatEndpointException.Clip(line)}'");
            }
        }
    }

    private string Dispatch(string? eventType)
    {
        string data = _data.ToString();
        if (eventType == "error") throw new SseEventError(data);
        return data;
    }
}

/// <summary>An <c>event: error</c> in the stream; its data is the server's report.</summary>
internal sealed class SseEventError(string data) : Exception($"the server sent an error event: {ChatEndpointException.Clip(data)}")
{
    public string EventData { get; } = data;
}

/// <summary>
/// The silence limit of one attempt: armed while waiting on the server, paused while the caller holds an update, so a
/// slow consumer is never mistaken for a hung server.
/// </summary>
internal sealed class IdleTimeout(CancellationToken caller, TimeSpan limit) : IDisposable
{
    private readonly CancellationTokenSource _source = CancellationTokenSource.CreateLinkedTokenSource(caller);

    public CancellationToken Token => _source.Token;
    public TimeSpan Limit => limit;

    /// <summary>True when this limit, not the caller, cancelled the wait.</summary>
    public bool Expired => _source.IsCancellationRequested && !caller.IsCancellationRequested;

    public void Restart() => _source.CancelAfter(limit);
    public void Pause() => _source.CancelAfter(Timeout.InfiniteTimeSpan);
    public void Dispose() => _source.Dispose();
}
