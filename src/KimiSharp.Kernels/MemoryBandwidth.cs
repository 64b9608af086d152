using System.Runtime.CompilerServices;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace KimiSharp.Kernels;

/// <summary>A streaming-read probe: how many bytes per second the machine's cores can pull from memory together.</summary>
public static unsafe class MemoryBandwidth
{
    /// <summary>
    /// Reads a <paramref name="bytes"/>-byte buffer (first touched by the same threads) <paramref name="passes"/> times on
    /// <paramref name="threads"/> threads of the kernel pool and returns the median rate in GB/s (1e9 bytes).
    /// </summary>
    public static double Measure(long bytes, int threads, int passes = 5)
    {
        bytes = Math.Max(bytes / 4096 * 4096, 1 << 20);
        var buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            int parts = Math.Max(1, threads);
            var job = new ReadJob(buffer, bytes, parts);
            job.Fill = true;
            KernelThreading.ParallelRows(parts, parts, job, parts);
            job.Fill = false;
            var rates = new double[passes];
            for (int p = 0; p < passes; p++)
            {
                var clock = Stopwatch.StartNew();
                KernelThreading.ParallelRows(parts, parts, job, parts);
                rates[p] = bytes / clock.Elapsed.TotalSeconds / 1e9;
            }
            Array.Sort(rates);
            GC.KeepAlive(job.Sink);
            return rates[passes / 2];
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private sealed class ReadJob(byte* buffer, long bytes, int parts) : IRowJob
    {
        public bool Fill;
        public long Sink;
        private readonly int _parts = parts;

        public void Run(int start, int end)
        {
            for (int part = start; part < end; part++)
            {
                long chunk = bytes / Math.Max(1, _parts) / 256 * 256;
                long lo = part * chunk, hi = part == _parts - 1 ? bytes : lo + chunk;
                if (Fill)
                {
                    new Span<byte>(buffer + lo, (int)Math.Min(int.MaxValue, hi - lo)).Fill(1);
                    for (long o = lo + int.MaxValue; o < hi; o += int.MaxValue)
                        new Span<byte>(buffer + o, (int)Math.Min(int.MaxValue, hi - o)).Fill(1);
                    continue;
                }
                Interlocked.Add(ref Sink, (long)Sum(buffer + lo, hi - lo));
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static ulong Sum(byte* p, long n)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                Vector512<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
                long i = 0;
                for (; i + 256 <= n; i += 256)
                {
                    a0 += Vector512.Load((ulong*)(p + i));
                    a1 += Vector512.Load((ulong*)(p + i + 64));
                    a2 += Vector512.Load((ulong*)(p + i + 128));
                    a3 += Vector512.Load((ulong*)(p + i + 192));
                }
                return Vector512.Sum((a0 + a1) + (a2 + a3));
            }
            else
            {
                Vector256<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
                long i = 0;
                for (; i + 128 <= n; i += 128)
                {
                    a0 += Vector256.Load((ulong*)(p + i));
                    a1 += Vector256.Load((ulong*)(p + i + 32));
                    a2 += Vector256.Load((ulong*)(p + i + 64));
                    a3 += Vector256.Load((ulong*)(p + i + 96));
                }
                return Vector256.Sum((a0 + a1) + (a2 + a3));
            }
        }
    }
}
