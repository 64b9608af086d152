using System.Diagnostics;

namespace KimiSharp.Jinja;

/// <summary>
/// Resource limits of one render, so that a hostile or broken template (say, one shipped in a model folder) fails
/// fast with a <see cref="TemplateLimitExceededException"/> naming the limit instead of exhausting memory or time.
/// The defaults are far above what chat templates need (a long conversation renders to well under a megabyte).
/// </summary>
public sealed record JinjaLimits
{
    /// <summary>The defaults below.</summary>
    public static readonly JinjaLimits Default = new();

    /// <summary>No limits (trusted templates only).</summary>
    public static readonly JinjaLimits None = new()
    {
        MaxOutputLength = int.MaxValue,
        MaxStringLength = int.MaxValue,
        MaxCollectionLength = int.MaxValue,
        MaxLoopIterations = long.MaxValue,
        Timeout = System.Threading.Timeout.InfiniteTimeSpan,
    };

    /// <summary>
    /// Characters (UTF-16 code units) of rendered text: the result, and every block rendered into a variable or a
    /// macro's return value. Default 4 Mi (4 MiB of ASCII).
    /// </summary>
    public int MaxOutputLength { get; init; } = 4 * 1024 * 1024;

    /// <summary>Characters of any string an expression builds (<c>~</c>, <c>+</c>, <c>*</c>, filters, methods). Default 4 Mi.</summary>
    public int MaxStringLength { get; init; } = 4 * 1024 * 1024;

    /// <summary>Items of a list or tuple an expression builds (<c>*</c>, <c>+</c>). Default 1 Mi.</summary>
    public int MaxCollectionLength { get; init; } = 1024 * 1024;

    /// <summary><c>{% for %}</c> iterations, counted over the whole render (nested loops multiply). Default 1 000 000.</summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Wall-clock time of one render; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for none. Default 5 s.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// The limits of the render running on this thread. A render is synchronous, and the Python-semantics helpers
/// (<c>PyOps</c>, string methods, filters) are static and get no interpreter, so they find the budget here to
/// refuse a result before allocating it (<c>"x" * 10**9</c> must not allocate first and check after).
/// </summary>
internal sealed class RenderBudget
{
    [ThreadStatic] private static RenderBudget? t_current;

    private readonly long _deadline;
    private readonly CancellationToken _cancellationToken;
    private long _iterations;

    public RenderBudget(JinjaLimits limits, CancellationToken cancellationToken = default)
    {
        Limits = limits;
        _cancellationToken = cancellationToken;
        _deadline = limits.Timeout == System.Threading.Timeout.InfiniteTimeSpan
            ? long.MaxValue
            : Stopwatch.GetTimestamp() + (long)(limits.Timeout.TotalSeconds * Stopwatch.Frequency);
    }

    public JinjaLimits Limits { get; }

    /// <summary>Makes this the thread's budget until the returned scope is disposed (renders may nest: macros of other templates).</summary>
    public Scope Enter()
    {
        var previous = t_current;
        t_current = this;
        return new Scope(previous);
    }

    public readonly struct Scope(RenderBudget? previous) : IDisposable
    {
        public void Dispose() => t_current = previous;
    }

    /// <summary>A string of <paramref name="length"/> characters may be built (no-op outside a render).</summary>
    public static void CheckString(long length)
    {
        if (t_current is { } b && length > b.Limits.MaxStringLength)
            throw new LimitHit(nameof(JinjaLimits.MaxStringLength), $"a string of {length} characters exceeds the limit of {b.Limits.MaxStringLength}");
    }

    /// <summary>A list or tuple of <paramref name="count"/> items may be built.</summary>
    public static void CheckCollection(long count)
    {
        if (t_current is { } b && count > b.Limits.MaxCollectionLength)
            throw new LimitHit(nameof(JinjaLimits.MaxCollectionLength), $"a list of {count} items exceeds the limit of {b.Limits.MaxCollectionLength}");
    }

    public void CheckOutput(long length)
    {
        if (length > Limits.MaxOutputLength)
            throw new LimitHit(nameof(JinjaLimits.MaxOutputLength), $"the rendered text exceeds the limit of {Limits.MaxOutputLength} characters");
    }

    public void CountIteration()
    {
        if (++_iterations > Limits.MaxLoopIterations)
            throw new LimitHit(nameof(JinjaLimits.MaxLoopIterations), $"more than {Limits.MaxLoopIterations} loop iterations");
        CheckTime();
    }

    public void CheckTime()
    {
        _cancellationToken.ThrowIfCancellationRequested();
        if (Stopwatch.GetTimestamp() > _deadline)
            throw new LimitHit(nameof(JinjaLimits.Timeout), $"the render took longer than {Limits.Timeout.TotalSeconds:0.###} s");
    }
}

/// <summary>A limit was hit; the interpreter turns it into a <see cref="TemplateLimitExceededException"/> with the location.</summary>
internal sealed class LimitHit(string limit, string message) : Exception(message)
{
    public string Limit { get; } = limit;
}
