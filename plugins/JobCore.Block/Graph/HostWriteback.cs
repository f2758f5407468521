using System.Runtime.InteropServices;
using JobCore.Block.Nodes;
using Microsoft.Win32.SafeHandles;

namespace JobCore.Block.Graph;

/// <summary>
/// Starts the host's write-back of the data a copy job writes into an image early, so the disk writes run while the
/// job is still copying instead of all at the final flush. A job that copies a whole image otherwise leaves it all
/// dirty in the page cache (the kernel's background write-back starts only at a share of RAM, or after 30 s) and then
/// waits for all of it in its closing fsync; with the write-back started every few MiB that fsync finds little left.
/// <para>This is only a hint (<c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>: start writing dirty pages, wait for
/// nothing, make no durability promise): the job's flushes still decide what is stable. The hint runs on a pool
/// thread, at most one at a time, on a read-only descriptor of its own for the image's host file (write-back works
/// on the file's page cache, whichever descriptor wrote the pages).</para>
/// </summary>
internal sealed partial class HostWriteback : IDisposable
{
    /// <summary>How many bytes the job writes between two hints.</summary>
    public const long Interval = 8 << 20;

    private const uint SyncFileRangeWrite = 2;

    private readonly SafeFileHandle _handle;
    private long _sinceLastHint;
    private int _hintRunning;
    private int _hintsDone;
    private int _disposed;

    private HostWriteback(SafeFileHandle handle) => _handle = handle;

    /// <summary>
    /// A write-back starter for the host file under <paramref name="node"/> (through filters and the format's file
    /// child), or <see langword="null"/> when the node has no host file or it cannot be opened (then the job just
    /// relies on its final flush, as before).
    /// </summary>
    /// <param name="node">The node the job writes into.</param>
    public static HostWriteback? For(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (!OperatingSystem.IsLinux() || BackingChain.TryGetFilename(BackingChain.SkipFilters(node)) is not { } filename)
        {
            return null;
        }

        try
        {
            return new HostWriteback(File.OpenHandle(filename, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Counts <paramref name="bytes"/> the job wrote; every <see cref="Interval"/> bytes a hint starts (unless one is still running).</summary>
    /// <param name="bytes">Bytes just written into the node.</param>
    public void Written(long bytes)
    {
        _sinceLastHint += bytes;
        if (_sinceLastHint < Interval || Volatile.Read(ref _disposed) != 0 || Interlocked.CompareExchange(ref _hintRunning, 1, 0) != 0)
        {
            return;
        }

        _sinceLastHint = 0;
        LastHint = Task.Run(Hint);
    }

    /// <summary>The last hint started (completed when none has been); for tests.</summary>
    internal Task LastHint { get; private set; } = Task.CompletedTask;

    /// <summary>How many hints reached the kernel and succeeded; for tests.</summary>
    internal int HintsDone => Volatile.Read(ref _hintsDone);

    /// <summary>Closes the descriptor (a running hint keeps it open until it returns).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _handle.Dispose();
        }
    }

    private void Hint()
    {
        try
        {
            if (Volatile.Read(ref _disposed) == 0)
            {
                // Offset 0 and length 0 mean the whole file: pages already under write-back are skipped by the kernel.
                if (SyncFileRange(_handle, 0, 0, SyncFileRangeWrite) == 0)
                {
                    Interlocked.Increment(ref _hintsDone);
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // Disposed between the check and the call: nothing left to hint.
        }
        finally
        {
            Volatile.Write(ref _hintRunning, 0);
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle fd, long offset, long nbytes, uint flags);
}
