using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobCore.Block.Nodes;

/// <summary>
/// The <c>file</c> protocol driver: a host file accessed with positional reads and writes
/// (<see cref="RandomAccess"/>). Writes go through the page cache and become stable only on <see cref="FlushAsync"/>
/// (fsync), exactly like QEMU's <c>cache=writeback</c>; nothing is reordered or held back in user space, so a
/// format driver's flush barriers are real barriers. Writes past the end grow the file.
/// </summary>
public sealed partial class FileNode : BlockNode
{
    private const int FallocFlKeepSize = 0x01;
    private const int FallocFlPunchHole = 0x02;
    private const int FallocFlZeroRange = 0x10;
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int ZeroChunk = 1 << 20;

    private readonly SafeFileHandle _handle;

    // Buffered writes into one host file serialize on the kernel's inode lock anyway; taking turns here parks the
    // waiting writers as continuations instead of as thread-pool threads blocked in pwrite (with 2 cores, 8 blocked
    // writers starve the pool and throughput drops well below one writer's).
    private readonly SemaphoreSlim _writeTurn = new(1, 1);
    private long _size;
    private int _disposed;

    private FileNode(string nodeName, string filename, SafeFileHandle handle, bool readOnly)
        : base(nodeName, readOnly)
    {
        Filename = filename;
        _handle = handle;
        _size = RandomAccess.GetLength(handle);
    }

    /// <summary>The host file name as given when opening.</summary>
    public string Filename { get; }

    /// <inheritdoc />
    public override string DriverName => "file";

    /// <summary>The current length of the host file in bytes.</summary>
    public override long Size => Volatile.Read(ref _size);

    /// <summary>Opens an existing host file.</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="filename">The host file; it must exist.</param>
    /// <param name="readOnly">Open without write access.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The node; dispose it to close the file.</returns>
    /// <exception cref="BlockIOException">The file cannot be opened (ENOENT, EACCES, ...), with QEMU's message shape.</exception>
    public static ValueTask<FileNode> OpenAsync(string nodeName, string filename, bool readOnly, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        cancellationToken.ThrowIfCancellationRequested();
        SafeFileHandle handle;
        try
        {
            handle = System.IO.File.OpenHandle(filename, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite,
                FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BlockIOException(BlockIOException.ENOENT, $"Could not open '{filename}': No such file or directory", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new BlockIOException(BlockIOException.EACCES, $"Could not open '{filename}': Permission denied", e);
        }
        catch (IOException e)
        {
            throw ToBlockIOException(e, $"Could not open '{filename}'");
        }

        return ValueTask.FromResult(new FileNode(nodeName, filename, handle, readOnly));
    }

    /// <summary>Reads; bytes past the end of the host file (after a concurrent truncation) read as zeroes.</summary>
    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, buffer.Length, refresh: true);
        try
        {
            int done = 0;
            while (done < buffer.Length)
            {
                int n = await RandomAccess.ReadAsync(_handle, buffer[done..], offset + done, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    buffer.Span[done..].Clear();
                    break;
                }

                done += n;
            }
        }
        catch (IOException e)
        {
            throw ToBlockIOException(e, null);
        }
    }

    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        CheckWritable(offset, data.Length);
        if (WritesAsZeroes(data, out bool mayUnmap))
        {
            await WriteZeroesAsync(offset, data.Length, mayUnmap, cancellationToken).ConfigureAwait(false);
            return;
        }

        await _writeTurn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await RandomAccess.WriteAsync(_handle, data, offset, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw ToBlockIOException(e, null);
        }
        finally
        {
            _writeTurn.Release();
        }

        GrowTo(offset + data.Length);
    }

    /// <inheritdoc />
    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        CheckWritable(offset, length);
        if (length == 0)
        {
            return;
        }

        long size = Size;
        long inside = Math.Min(length, Math.Max(0, size - offset));
        if (inside > 0 && fallocate(_handle, mayUnmap ? FallocFlPunchHole | FallocFlKeepSize : FallocFlZeroRange, offset, inside) != 0)
        {
            await WriteZeroBuffersAsync(offset, inside, cancellationToken).ConfigureAwait(false);
        }

        if (offset + length > size)
        {
            // The part past the end becomes a hole of the grown file, which reads as zeroes.
            await TruncateAsync(offset + length, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Punches a hole where the file system supports it (the range then reads as zeroes); otherwise does nothing.</summary>
    /// <inheritdoc />
    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable(offset, length);
        long inside = Math.Min(length, Math.Max(0, Size - offset));
        if (inside > 0)
        {
            // A discard is a hint: a file system without hole punching simply keeps the data.
            _ = fallocate(_handle, FallocFlPunchHole | FallocFlKeepSize, offset, inside);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>fsync(2) of the host file.</summary>
    /// <inheritdoc />
    public override async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (ReadOnly)
        {
            return;
        }

        try
        {
            await Task.Run(() => RandomAccess.FlushToDisk(_handle), cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw ToBlockIOException(e, null);
        }
    }

    /// <summary>Reports holes (zero, no data) and data extents with SEEK_DATA/SEEK_HOLE; everything is allocated at this layer.</summary>
    /// <inheritdoc />
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length, refresh: true);
        if (length == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "Block status needs a non-empty range.");
        }

        long data = lseek(_handle, offset, SeekData);
        if (data < 0)
        {
            // ENXIO: no data after offset (the rest is a hole); other errors: report data, the safe answer.
            bool hole = Marshal.GetLastPInvokeError() == 6;
            return ValueTask.FromResult(new BlockStatus(offset, length, true, hole, !hole));
        }

        if (data > offset)
        {
            return ValueTask.FromResult(new BlockStatus(offset, Math.Min(length, data - offset), true, true, false));
        }

        long holeAt = lseek(_handle, offset, SeekHole);
        long run = holeAt > offset ? Math.Min(length, holeAt - offset) : length;
        return ValueTask.FromResult(new BlockStatus(offset, run, true, false, true));
    }

    /// <summary>Sets the file length (ftruncate); growing adds a hole that reads as zeroes.</summary>
    /// <param name="size">The new length in bytes.</param>
    /// <param name="cancellationToken">Cancels before the call.</param>
    /// <returns>A task that completes when the length is set.</returns>
    public ValueTask TruncateAsync(long size, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        CheckWritable(0, 0);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            RandomAccess.SetLength(_handle, size);
        }
        catch (IOException e)
        {
            throw ToBlockIOException(e, null);
        }

        Volatile.Write(ref _size, size);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public override ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _handle.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Maps a .NET I/O exception to a <see cref="BlockIOException"/> carrying the errno (Unix HResult).</summary>
    internal static BlockIOException ToBlockIOException(IOException e, string? prefix)
    {
        if (e is BlockIOException b)
        {
            return b;
        }

        int errno = e.HResult is > 0 and < 4096 ? e.HResult : BlockIOException.EIO;
        string text = BlockIOException.StrError(errno);
        return new BlockIOException(errno, prefix is null ? text : $"{prefix}: {text}", e);
    }

    private async ValueTask WriteZeroBuffersAsync(long offset, long length, CancellationToken cancellationToken)
    {
        byte[] zeros = new byte[(int)Math.Min(length, ZeroChunk)];
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(zeros.Length, length - done);
            try
            {
                await RandomAccess.WriteAsync(_handle, zeros.AsMemory(0, n), offset + done, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw ToBlockIOException(e, null);
            }

            done += n;
        }
    }

    private void GrowTo(long end)
    {
        long current = Volatile.Read(ref _size);
        while (end > current)
        {
            long seen = Interlocked.CompareExchange(ref _size, end, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private void CheckRange(long offset, long length, bool refresh)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset + length > Size && refresh)
        {
            GrowTo(RandomAccess.GetLength(_handle));
        }

        if (offset + length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"Request {offset}+{length} lies beyond the end of '{Filename}' ({Size} bytes).");
        }
    }

    private void CheckWritable(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EPERM, $"Block node '{NodeName}' is read-only");
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long len);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);
}
