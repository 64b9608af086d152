namespace KimiSharp.Kernels;

/// <summary>A unit of work over a contiguous range of output rows.</summary>
public interface IRowJob
{
    void Run(int rowStart, int rowEnd);
}

/// <summary>
/// How kernels split work across cores: a job asked to run on N threads runs on the calling thread plus a persistent
/// pool of N − 1 workers (one process-wide pool per thread count, created on first use; an idle pool sleeps). The
/// thread count is the caller's (<see cref="KernelSettings.MaxThreads"/>), never a process-wide setting. A job is cut
/// into contiguous row ranges that threads claim one at a time, so which thread computes a row never changes the row's
/// arithmetic. Dispatch allocates nothing: workers spin briefly, then sleep until woken.
/// </summary>
public static class KernelThreading
{
    /// <summary>Pools by worker count (index); grown under <see cref="s_poolGate"/>, read without a lock.</summary>
    private static WorkerPool?[] s_pools = [];
    private static readonly object s_poolGate = new();

    /// <summary>Below this many multiply-adds a kernel runs on the calling thread: the hand-off costs more than it saves.</summary>
    public const long MinParallelWork = 1 << 15;

    /// <summary>How many parts a job of <paramref name="work"/> multiply-adds over <paramref name="rows"/> rows is cut into on <paramref name="threads"/> threads.</summary>
    public static int PartsFor(long work, int rows, int threads)
    {
        if (threads <= 1 || work < MinParallelWork || rows < 2) return 1;
        // Many small parts, claimed dynamically: a thread the OS preempts mid-job holds up only a small part.
        return (int)Math.Min(rows, Math.Min(threads * 16L, work / MinParallelWork + 1));
    }

    /// <summary>
    /// Runs <paramref name="job"/> over [0, rows) split into <paramref name="parts"/> contiguous ranges. With
    /// <paramref name="taper"/> the ranges shrink linearly from first to last (the first twice the mean, the last about
    /// 2/parts of it), so the threads finish together: a job ends when its slowest thread's last range does, and
    /// decode runs dozens of jobs a token. At most <paramref name="threads"/> threads (the caller's included) work on
    /// it; a job started from inside another job's part runs on that part's thread.
    /// </summary>
    public static void ParallelRows(int rows, int parts, IRowJob job, int threads, bool taper = false)
    {
        parts = Math.Min(parts, rows);
        if (parts <= 1 || threads <= 1 || WorkerPool.InsideJob)
        {
            if (rows > 0) job.Run(0, rows);
            return;
        }
        PoolFor(threads - 1).Run(rows, parts, job, taper);
    }

    private static WorkerPool PoolFor(int workers)
    {
        var pools = Volatile.Read(ref s_pools);
        if (workers < pools.Length && pools[workers] is { } pool) return pool;
        lock (s_poolGate)
        {
            pools = s_pools;
            if (workers < pools.Length && pools[workers] is { } existing) return existing;
            var grown = new WorkerPool?[Math.Max(pools.Length, workers + 1)];
            pools.CopyTo(grown, 0);
            var created = grown[workers] = new WorkerPool(workers);
            Volatile.Write(ref s_pools, grown);
            return created;
        }
    }

    /// <summary>Where part <paramref name="part"/> of <paramref name="parts"/> starts: uniform, or tapered (rows·(1 − (1 − p/P)²)).</summary>
    internal static int PartStart(int rows, int part, int parts, bool taper) => taper
        ? (int)((long)rows * part * (2L * parts - part) / ((long)parts * parts))
        : (int)((long)rows * part / parts);

    /// <summary>
    /// One job at a time: the caller publishes it, wakes the workers, claims parts like they do, then waits for the
    /// last part. A second caller that finds the pool busy runs its job alone (same results, no waiting).
    /// </summary>
    private sealed class WorkerPool
    {
        [ThreadStatic] private static bool t_insideJob;
        public static bool InsideJob => t_insideJob;

        private readonly object _runGate = new();
        private readonly object _sleepGate = new();
        private readonly Thread[] _threads;

        // The published job. _generation changes once per job; _jobGeneration is -1 while the job fields are being rewritten.
        private long _generation;
        private long _jobGeneration = -1;
        private int _users;
        private IRowJob? _job;
        private int _rows, _parts, _nextPart, _doneParts;
        private bool _taper;
        private Exception? _failure;
        private int _sleepers;

        public WorkerPool(int workers)
        {
            _threads = new Thread[workers];
            for (int i = 0; i < workers; i++)
            {
                _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"kimi-kernel-{i + 1}" };
                _threads[i].Start();
            }
        }

        public void Run(int rows, int parts, IRowJob job, bool taper)
        {
            if (!Monitor.TryEnter(_runGate))
            {
                job.Run(0, rows); // another thread owns the pool right now
                return;
            }
            try
            {
                // Invalidate the slot, wait out any worker still looking at the previous job, then publish the new one.
                Interlocked.Exchange(ref _jobGeneration, -1);
                var spin = new SpinWait();
                while (Volatile.Read(ref _users) != 0) spin.SpinOnce(-1);
                _job = job; _rows = rows; _parts = parts; _taper = taper; _failure = null;
                _nextPart = 0; _doneParts = 0;
                long generation = _generation + 1;
                Volatile.Write(ref _jobGeneration, generation);
                // A full fence (not just a release store): the read of _sleepers below must not move before this write,
                // or a worker going to sleep at the same moment could miss the job.
                Interlocked.Exchange(ref _generation, generation);
                if (Volatile.Read(ref _sleepers) > 0)
                    lock (_sleepGate) Monitor.PulseAll(_sleepGate);

                bool wasInside = t_insideJob;
                t_insideJob = true;
                try { Work(); }
                finally { t_insideJob = wasInside; }

                spin = new SpinWait();
                while (Volatile.Read(ref _doneParts) < parts) spin.SpinOnce(-1);
                _job = null;
                if (_failure is { } failure) throw new AggregateException("a kernel job failed", failure);
            }
            finally
            {
                Monitor.Exit(_runGate);
            }
        }

        /// <summary>Claims and runs parts of the published job until none are left.</summary>
        private void Work()
        {
            var job = _job!;
            int rows = _rows, parts = _parts;
            bool taper = _taper;
            while (true)
            {
                int part = Interlocked.Increment(ref _nextPart) - 1;
                if (part >= parts) return;
                int start = PartStart(rows, part, parts, taper), end = PartStart(rows, part + 1, parts, taper);
                try
                {
                    if (end > start) job.Run(start, end);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, e, null);
                }
                Interlocked.Increment(ref _doneParts);
            }
        }

        private void WorkerLoop()
        {
            t_insideJob = true;
            long seen = Volatile.Read(ref _generation);
            while (true)
            {
                // Spin a little (the next kernel usually follows within microseconds), then sleep.
                long generation = seen;
                for (int i = 0; i < 4000 && (generation = Volatile.Read(ref _generation)) == seen; i++)
                    Thread.SpinWait(4);
                if (generation == seen)
                {
                    lock (_sleepGate)
                    {
                        Interlocked.Increment(ref _sleepers);
                        while ((generation = Volatile.Read(ref _generation)) == seen)
                            Monitor.Wait(_sleepGate, 50);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
                seen = generation;

                Interlocked.Increment(ref _users);
                if (Volatile.Read(ref _jobGeneration) == generation) Work();
                Interlocked.Decrement(ref _users);
            }
        }
    }
}
