namespace KimiSharp.Kernels;

/// <summary>A unit of work over a contiguous range of output rows.</summary>
public interface IRowJob
{
    void Run(int rowStart, int rowEnd);
}

/// <summary>How kernels split work across cores.</summary>
public static class KernelThreading
{
    private static int s_maxThreads = Environment.ProcessorCount;

    /// <summary>Threads a kernel may use (default: all cores).</summary>
    public static int MaxThreads
    {
        get => s_maxThreads;
        set => s_maxThreads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "at least one thread");
    }

    /// <summary>Below this many multiply-adds a kernel runs on the calling thread: the hand-off costs more than it saves.</summary>
    public const long MinParallelWork = 1 << 15;

    public static int PartsFor(long work, int rows)
    {
        if (s_maxThreads <= 1 || work < MinParallelWork || rows < 2) return 1;
        return (int)Math.Min(rows, Math.Min(s_maxThreads * 4L, work / MinParallelWork + 1));
    }

    /// <summary>Runs <paramref name="job"/> over [0, rows) split into <paramref name="parts"/> contiguous ranges.</summary>
    public static void ParallelRows(int rows, int parts, IRowJob job)
    {
        var options = new ParallelOptions { MaxDegreeOfParallelism = s_maxThreads };
        Parallel.For(0, parts, options, part =>
        {
            int start = (int)((long)rows * part / parts);
            int end = (int)((long)rows * (part + 1) / parts);
            if (end > start) job.Run(start, end);
        });
    }
}
