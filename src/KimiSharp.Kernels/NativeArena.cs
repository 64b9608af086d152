using System.Runtime.InteropServices;

namespace KimiSharp.Kernels;

/// <summary>
/// Bump allocator over large native chunks for weights rewritten at load (e.g. repacked). Chunks are 2 MB-aligned
/// and, on Linux, advised as transparent huge pages: filling a few GB through 4 KB page faults costs tens of
/// seconds on a VM, through 2 MB pages well under one. Everything is freed together on <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class NativeArena : IDisposable
{
    private const nuint HugePage = 2 << 20;
    private readonly long _chunkBytes;
    private readonly List<nint> _chunks = [];
    private byte* _next, _end;
    private bool _disposed;

    public NativeArena(long chunkBytes = 256L << 20)
    {
        if (chunkBytes <= 0) throw new ArgumentOutOfRangeException(nameof(chunkBytes), "chunks must hold at least one byte");
        _chunkBytes = chunkBytes;
    }

    /// <summary>Bytes reserved in chunks so far.</summary>
    public long ReservedBytes { get; private set; }

    /// <summary>Bytes handed out so far.</summary>
    public long UsedBytes { get; private set; }

    /// <summary>Uninitialised memory for <paramref name="bytes"/> bytes, 64-byte aligned, valid until the arena is disposed.</summary>
    public byte* Allocate(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        long aligned = (bytes + 63) & ~63L;
        if (_next is null || _end - _next < aligned)
        {
            long size = Math.Max(_chunkBytes, (aligned + (long)HugePage - 1) & ~((long)HugePage - 1));
            var chunk = (byte*)NativeMemory.AlignedAlloc((nuint)size, HugePage);
            MemoryAdvice.HugePages(chunk, size);
            _chunks.Add((nint)chunk);
            ReservedBytes += size;
            _next = chunk;
            _end = chunk + size;
        }
        byte* result = _next;
        _next += aligned;
        UsedBytes += aligned;
        return result;
    }

    public void Dispose()
    {
        foreach (var chunk in _chunks) NativeMemory.AlignedFree((void*)chunk);
        _chunks.Clear();
        _next = _end = null;
        _disposed = true;
    }
}

/// <summary>Hints to the OS about native and mapped memory (Linux <c>madvise</c>; no-ops elsewhere). Failures only cost speed or memory.</summary>
public static unsafe class MemoryAdvice
{
    private const int MadvDontNeed = 4, MadvHugePage = 14, PageSize = 4096;

    /// <summary>Back [start, start+bytes) with transparent huge pages when it is first touched.</summary>
    public static void HugePages(void* start, long bytes)
    {
        if (OperatingSystem.IsLinux() && bytes > 0) _ = Madvise(start, (nuint)bytes, MadvHugePage);
    }

    /// <summary>
    /// Drops this process's pages of a read-only file mapping over [start, start+bytes) (widened to whole pages): they
    /// leave the resident set and stay in the page cache; touching them again maps them back, so it is always safe.
    /// </summary>
    public static void DropMappedPages(void* start, long bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0) return;
        nint first = (nint)start & ~(nint)(PageSize - 1);
        nint end = ((nint)start + (nint)bytes + PageSize - 1) & ~(nint)(PageSize - 1);
        _ = Madvise((void*)first, (nuint)(end - first), MadvDontNeed);
    }

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(void* address, nuint length, int advice);
}
