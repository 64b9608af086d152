using KimiSharp.Engine.Chat;

namespace KimiSharp.Server;

/// <summary>
/// Queues every generation a request needs before its response starts, so a refusal (a full queue, the context
/// limit, the KV budget) is an HTTP status, never a 200 stream that ends in an error event.
/// </summary>
internal static class Admission
{
    /// <summary>
    /// Starts one generation per run under <paramref name="admission"/>'s token. If one is refused, the ones already
    /// queued are cancelled (freeing their slots at once) and the refusal propagates.
    /// </summary>
    public static IAsyncEnumerable<ChatEvent>[] Start<T>(IReadOnlyList<T> runs, Func<T, CancellationToken, IAsyncEnumerable<ChatEvent>> start,
        CancellationTokenSource admission)
    {
        var streams = new IAsyncEnumerable<ChatEvent>[runs.Count];
        try
        {
            for (int i = 0; i < runs.Count; i++) streams[i] = start(runs[i], admission.Token);
        }
        catch
        {
            admission.Cancel();
            throw;
        }
        return streams;
    }
}
