using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using JobCore.Block.Options;

namespace JobCore.Block.Nodes;

/// <summary>Options of <see cref="Qcow2Node.CreateAsync"/> (QEMU's <c>qemu-img create -f qcow2</c> options).</summary>
public sealed class Qcow2CreateOptions
{
    /// <summary>The virtual size in bytes; 0 with a <see cref="BackingFile"/> means "the backing image's size".</summary>
    public long Size { get; init; }

    /// <summary>The cluster size: a power of two from 512 B to 2 MiB (default 64 KiB).</summary>
    public int ClusterSize { get; init; } = 65536;

    /// <summary>The backing file name recorded in the header (relative names are relative to the new image's folder).</summary>
    public string? BackingFile { get; init; }

    /// <summary>The backing file format recorded in the backing-format extension (<c>qcow2</c>, <c>raw</c>); probed when omitted.</summary>
    public string? BackingFormat { get; init; }
}

/// <summary>
/// The <c>qcow2</c> format driver: version 3 read/write, version 2 read-only, cluster sizes 512 B to 2 MiB, backing
/// files, zero clusters, compressed clusters (read; copied on overwrite), refcount table and L1 growth.
/// </summary>
/// <remarks>
/// <para>Metadata (L2 tables, refcount blocks, L1 entries) is cached and written back in QEMU's dependency order:
/// refcount blocks, then a flush, then L2 tables, then a flush, then L1 entries; reference drops are applied only
/// after the tables no longer referencing the clusters are stable. So the image on disk is consistent at every
/// instant (at worst it leaks clusters), and <see cref="FlushAsync"/> makes every acknowledged write stable.</para>
/// <para>Requests may run concurrently: mapping lookups and every metadata change are serialized by one async lock;
/// data I/O runs outside it: reads, overwrites of allocated clusters, and allocating writes, which reserve host
/// clusters under the lock, write (with copy-on-write) without it, then link the clusters under it again; requests
/// touching guest clusters of an allocation in flight wait for it.</para>
/// <para>An image whose dirty bit is set (lazy refcounts after a crash) opens read-only only: run
/// <c>qemu-img check -r all</c> first. The corrupt bit likewise allows only read-only opens.</para>
/// </remarks>
public sealed partial class Qcow2Node : BlockNode
{
    private const ulong OflagCopied = 1UL << 63;
    private const ulong OflagCompressed = 1UL << 62;
    private const ulong OflagZero = 1UL;
    private const ulong OffsetMask = 0x00fffffffffffe00UL;
    private const ulong L1Reserved = 0x7f000000000001ffUL;
    private const ulong L2Reserved = 0x3f000000000001feUL;

    private readonly BlockNode _file;
    private readonly string _imageName;
    private readonly Qcow2Header _header;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2Bits;
    private readonly int _refBlockBits;
    private readonly Qcow2TableCache _l2Cache;
    private readonly Qcow2TableCache _refCache;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private BlockNode? _backing;
    private int _dataOps;
    private bool _corrupt;
    private bool _disposed;

    private Qcow2Node(string nodeName, BlockNode file, bool readOnly, Qcow2Header header, byte[] l1, byte[] refTable)
        : base(nodeName, readOnly)
    {
        _file = file;
        _imageName = file is FileNode f ? f.Filename : file.NodeName;
        _header = header;
        AutoBackingFile = header.BackingFile;
        _clusterBits = header.ClusterBits;
        _clusterSize = header.ClusterSize;
        _l2Bits = _clusterBits - 3;
        _refBlockBits = _clusterBits + 3 - header.RefcountOrder;
        _l1 = l1;
        _refTable = refTable;
        int tables = Math.Max(16, (4 << 20) / _clusterSize);
        _l2Cache = new Qcow2TableCache(tables);
        _refCache = new Qcow2TableCache(tables);
    }

    /// <inheritdoc />
    public override string DriverName => "qcow2";

    /// <inheritdoc />
    public override long Size => _header.Size;

    /// <inheritdoc />
    public override BlockNode? File => _file;

    /// <summary>The backing node wired by the graph (<see cref="SetBackingNode"/>); reads of unallocated clusters go to it.</summary>
    public override BlockNode? Backing => _backing;

    /// <summary>The backing file name recorded in the header, if any (as written; relative names are relative to the image's folder).</summary>
    public string? BackingFileName => _header.BackingFile;

    /// <summary>
    /// QEMU's <c>auto_backing_file</c>: where this image's backing would come from unless told otherwise — the header's
    /// name at open and after a header change, or the backing node's file name once the graph opened the backing from
    /// the header. When the attached backing differs (given by reference, or <c>"backing": null</c> although the header
    /// names one), node queries show a <c>json:</c> pseudo-filename, as QEMU does.
    /// </summary>
    internal string? AutoBackingFile { get; set; }

    /// <summary>The backing format from the backing-format header extension, if any.</summary>
    public string? BackingFormat => _header.BackingFormat;

    /// <summary>The cluster size in bytes.</summary>
    public int ClusterSize => _clusterSize;

    /// <summary>The qcow2 version (2 or 3).</summary>
    public int Version => _header.Version;

    /// <summary>The refcount width in bits (1 to 64; QEMU's default 16).</summary>
    public int RefcountBits => _header.RefcountBits;

    /// <summary>Opens a qcow2 image stored in <paramref name="file"/>. The backing file is not opened (the graph does that).</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="file">The protocol node holding the image (not disposed by this node).</param>
    /// <param name="readOnly">Refuse writes; required for version 2, corrupt and dirty images.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The node.</returns>
    /// <exception cref="BlockFormatException">The header is invalid or uses an unsupported feature; the image is not modified.</exception>
    public static async ValueTask<Qcow2Node> OpenAsync(string nodeName, BlockNode file, bool readOnly, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (file is BlkdebugNode debug)
        {
            debug.EventsRaisedByParent = true;
            try
            {
                return await OpenCheckedAsync(nodeName, file, readOnly, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                debug.EventsRaisedByParent = false;
                throw;
            }
        }

        return await OpenCheckedAsync(nodeName, file, readOnly, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask<Qcow2Node> OpenCheckedAsync(string nodeName, BlockNode file, bool readOnly, CancellationToken cancellationToken)
    {
        string name = file is FileNode f ? f.Filename : file.NodeName;
        long fileLength = file.Size;
        byte[] first = new byte[(int)Math.Min(fileLength, 512)];
        await file.ReadAsync(0, first, cancellationToken).ConfigureAwait(false);
        if (first.Length >= 24 && BinaryPrimitives.ReadUInt32BigEndian(first) == Qcow2Header.Magic)
        {
            uint bits = BinaryPrimitives.ReadUInt32BigEndian(first.AsSpan(20));
            if (bits is >= 9 and <= 21 && fileLength > first.Length)
            {
                first = new byte[(int)Math.Min(fileLength, 1L << (int)bits)];
                await file.ReadAsync(0, first, cancellationToken).ConfigureAwait(false);
            }
        }

        Qcow2Header header = Qcow2Header.Parse(first, fileLength, name);
        if (!readOnly)
        {
            string? refusal = file.ReadOnly ? $"its file node '{file.NodeName}' is read-only"
                : header.Version == 2 ? "version 2 images are supported read-only (convert with 'qemu-img amend -o compat=1.1')"
                : (header.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0 ? "the image is marked corrupt; repair it with 'qemu-img check -r all'"
                : (header.IncompatibleFeatures & Qcow2Header.IncompatDirty) != 0 ? "the dirty bit is set (refcounts may be stale); repair it with 'qemu-img check -r all'"
                : null;
            if (refusal is not null)
            {
                throw new BlockFormatException($"Image '{name}' cannot be opened read/write: {refusal}");
            }
        }

        int cs = header.ClusterSize;
        byte[] l1 = new byte[header.L1Size * 8];
        await ReadClampedAsync(file, header.L1TableOffset, l1, cancellationToken).ConfigureAwait(false);
        byte[] refTable = new byte[header.RefcountTableClusters * cs];
        await ReadClampedAsync(file, header.RefcountTableOffset, refTable, cancellationToken).ConfigureAwait(false);
        return new Qcow2Node(nodeName, file, readOnly, header, l1, refTable);
    }

    /// <summary>Wires the backing node (or removes it): reads of unallocated clusters go to it. Does not touch the header.</summary>
    /// <param name="node">The backing node, or <see langword="null"/> for none.</param>
    public void SetBackingNode(BlockNode? node) => _backing = node;

    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, buffer.Length);
        try
        {
            while (!buffer.IsEmpty)
            {
                long guestCluster = offset >> _clusterBits;
                int intra = (int)(offset & (_clusterSize - 1));
                int maxClusters = (int)Math.Min(int.MaxValue, ((long)intra + buffer.Length + _clusterSize - 1) >> _clusterBits);
                Qcow2Run run;
                await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    ThrowIfDisposed();
                    run = await LookupRunAsync(guestCluster, maxClusters, cancellationToken).ConfigureAwait(false);
                    if (run.Kind is ClusterKind.Normal or ClusterKind.Compressed)
                    {
                        Interlocked.Increment(ref _dataOps);
                    }

                    EvictCleanTables();
                }
                finally
                {
                    _lock.Release();
                }

                int n = (int)Math.Min(buffer.Length, ((long)run.Count << _clusterBits) - intra);
                Memory<byte> part = buffer[..n];
                try
                {
                    switch (run.Kind)
                    {
                        case ClusterKind.Normal:
                            RaiseDebugEvent(BlkdebugEvent.ReadAio);
                            await ReadHostAsync(run.Host + intra, part, cancellationToken).ConfigureAwait(false);
                            break;
                        case ClusterKind.Compressed:
                            await ReadCompressedAsync(run.Entry, intra, part, cancellationToken).ConfigureAwait(false);
                            break;
                        case ClusterKind.Unallocated:
                            await ReadBackingAsync(offset, part, cancellationToken).ConfigureAwait(false);
                            break;
                        default:
                            part.Span.Clear();
                            break;
                    }
                }
                finally
                {
                    if (run.Kind is ClusterKind.Normal or ClusterKind.Compressed)
                    {
                        Interlocked.Decrement(ref _dataOps);
                    }
                }

                offset += n;
                buffer = buffer[n..];
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, data.Length);
        if (WritesAsZeroes(data, out bool mayUnmap))
        {
            await WriteZeroesAsync(offset, data.Length, mayUnmap, cancellationToken).ConfigureAwait(false);
            return;
        }

        await WriteDataAsync(offset, data, cancellationToken).ConfigureAwait(false);
    }

    // The data path of WriteAsync (also for zero bytes that must be stored as data).
    private async ValueTask WriteDataAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            while (!data.IsEmpty)
            {
                long guestCluster = offset >> _clusterBits;
                int intra = (int)(offset & (_clusterSize - 1));
                int maxClusters = (int)Math.Min(int.MaxValue, ((long)intra + data.Length + _clusterSize - 1) >> _clusterBits);
                Qcow2Run run;
                int written = 0;
                InflightAllocation? allocation = null;
                Task? wait = null;
                await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    ThrowIfNotWritable();
                    // Past the lock, metadata work is not cancelled halfway: memory and disk must stay in step.
                    await PrepareFirstWriteAsync(CancellationToken.None).ConfigureAwait(false);
                    run = await LookupRunAsync(guestCluster, maxClusters, CancellationToken.None).ConfigureAwait(false);
                    if (run.Kind == ClusterKind.Normal && run.Copied)
                    {
                        CheckNoMetadataOverlap(run.Host, run.Count);
                        Interlocked.Increment(ref _dataOps);
                    }
                    else
                    {
                        (allocation, wait) = await ReserveAllocationAsync(offset, data.Length, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _lock.Release();
                }

                if (run.Kind == ClusterKind.Normal && run.Copied)
                {
                    written = (int)Math.Min(data.Length, ((long)run.Count << _clusterBits) - intra);
                    try
                    {
                        RaiseDebugEvent(BlkdebugEvent.WriteAio);
                        await _file.WriteAsync(run.Host + intra, data[..written], cancellationToken).ConfigureAwait(false);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _dataOps);
                    }
                }
                else if (allocation is not null)
                {
                    written = await CompleteAllocationAsync(allocation, data).ConfigureAwait(false);
                }
                else if (wait is not null)
                {
                    await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                offset += written;
                data = data[written..];
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whole clusters become zero clusters (with <paramref name="mayUnmap"/> their host clusters are freed, otherwise
    /// normal clusters stay preallocated); partial clusters at the edges are written with zeroes.
    /// </summary>
    /// <inheritdoc />
    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, length);
        await ForEachClusterPieceAsync(offset, length, (start, count) => ZeroClustersAsync(start, count, mayUnmap, cancellationToken),
            (start, len) => WriteZeroBytesAsync(start, len, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Whole clusters are deallocated (they read as zeroes afterwards, like QEMU's guest discard on version 3 images);
    /// partial clusters are left alone.
    /// </summary>
    /// <inheritdoc />
    public override async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, length);
        await ForEachClusterPieceAsync(offset, length, (start, count) => DiscardClustersAsync(start, count, cancellationToken),
            static (_, _) => ValueTask.CompletedTask).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
        {
            return;
        }

        try
        {
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfDisposed();
                await FlushMetadataAsync(CancellationToken.None, requested: true).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    /// <summary>Reports per cluster extent: unallocated (zero when nothing lies below), zero clusters, data (normal or compressed).</summary>
    /// <inheritdoc />
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        if (length == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "Block status needs a non-empty range.");
        }

        try
        {
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfDisposed();
                BlockStatus? status = null;
                long pos = offset;
                long end = offset + length;
                // Merge runs of equal status, bounded so a huge sparse query stays cheap.
                for (int i = 0; i < 1024 && pos < end; i++)
                {
                    long guestCluster = pos >> _clusterBits;
                    int intra = (int)(pos & (_clusterSize - 1));
                    int maxClusters = (int)Math.Min(int.MaxValue, (end - pos + intra + _clusterSize - 1) >> _clusterBits);
                    Qcow2Run run = await LookupRunAsync(guestCluster, maxClusters, cancellationToken).ConfigureAwait(false);
                    long runEnd = Math.Min(end, ((guestCluster + run.Count) << _clusterBits));
                    BlockStatus s = StatusOf(run, intra, pos, runEnd);
                    if (status is null)
                    {
                        status = s;
                    }
                    else if (status.Value.Allocated == s.Allocated && status.Value.Zero == s.Zero && status.Value.Data == s.Data &&
                        status.Value.HostOffset.HasValue == s.HostOffset.HasValue &&
                        (status.Value.HostOffset is not { } host || host + status.Value.Length == s.HostOffset))
                    {
                        status = status.Value with { Length = status.Value.Length + s.Length };
                    }
                    else
                    {
                        break;
                    }

                    pos += s.Length;
                    if (s.Offset + s.Length < runEnd)
                    {
                        break;
                    }
                }

                EvictCleanTables();
                return status!.Value;
            }
            finally
            {
                _lock.Release();
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    /// <summary>Writes back cached metadata (a clean close); does not dispose the file node (the graph owns it).</summary>
    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        // Allocating writes still in flight finish first (their data I/O runs outside the lock).
        while (true)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            Task? busy = AllInflight();
            if (busy is null)
            {
                break;
            }

            _lock.Release();
            await busy.ConfigureAwait(false);
        }

        bool closing = !_disposed;
        try
        {
            if (!closing)
            {
                return;
            }

            _disposed = true;
            if (!ReadOnly && !_corrupt)
            {
                await FlushMetadataAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw new BlockIOException(BlockIOException.EIO, $"Image '{_imageName}' is corrupt: {e.Message}", e);
        }
        finally
        {
            if (closing && _file is BlkdebugNode debug)
            {
                debug.EventsRaisedByParent = false;
            }

            _lock.Release();
        }
    }

    /// <summary>The status of a run from <paramref name="pos"/> (<paramref name="intra"/> bytes into its first cluster).</summary>
    private BlockStatus StatusOf(Qcow2Run run, int intra, long pos, long runEnd)
    {
        // Like QEMU, normal and preallocated zero clusters report where they live in the file; compressed ones do not.
        switch (run.Kind)
        {
            case ClusterKind.Normal:
                return new BlockStatus(pos, runEnd - pos, true, false, true) { HostOffset = run.Host + intra };
            case ClusterKind.Compressed:
                return new BlockStatus(pos, runEnd - pos, true, false, true);
            case ClusterKind.ZeroAllocated:
                return new BlockStatus(pos, runEnd - pos, true, true, false) { HostOffset = run.Host + intra };
            case ClusterKind.ZeroPlain:
                return new BlockStatus(pos, runEnd - pos, true, true, false);
            default:
                if (_backing is null)
                {
                    return new BlockStatus(pos, runEnd - pos, false, _header.BackingFile is null, false);
                }

                long backingSize = _backing.Size;
                if (pos >= backingSize)
                {
                    return new BlockStatus(pos, runEnd - pos, false, true, false);
                }

                return new BlockStatus(pos, Math.Min(runEnd, backingSize) - pos, false, false, false);
        }
    }

    private async ValueTask ForEachClusterPieceAsync(long offset, long length, Func<long, long, ValueTask> wholeClusters,
        Func<long, long, ValueTask> partial)
    {
        try
        {
            long end = offset + length;
            long firstWhole = (offset + _clusterSize - 1) & ~((long)_clusterSize - 1);
            long lastWhole = end & ~((long)_clusterSize - 1);
            if (end == Size)
            {
                // The image's last cluster may be partial; it still counts as a whole cluster.
                lastWhole = (end + _clusterSize - 1) & ~((long)_clusterSize - 1);
            }

            if (firstWhole >= lastWhole)
            {
                await partial(offset, length).ConfigureAwait(false);
                return;
            }

            if (firstWhole > offset)
            {
                await partial(offset, firstWhole - offset).ConfigureAwait(false);
            }

            await wholeClusters(firstWhole >> _clusterBits, (lastWhole - firstWhole) >> _clusterBits).ConfigureAwait(false);
            if (lastWhole < end)
            {
                await partial(lastWhole, end - lastWhole).ConfigureAwait(false);
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    private async ValueTask WriteZeroBytesAsync(long offset, long length, CancellationToken cancellationToken)
    {
        byte[] zeros = ArrayPool<byte>.Shared.Rent((int)Math.Min(length, _clusterSize));
        try
        {
            Array.Clear(zeros);
            for (long done = 0; done < length;)
            {
                // One cluster at a time. As QEMU's qcow2_co_pwrite_zeroes: a cluster that reads as zeroes throughout
                // becomes (or stays) a zero cluster, decided under the metadata lock; any other gets zero bytes.
                int n = (int)Math.Min(_clusterSize - ((offset + done) & (_clusterSize - 1)), length - done);
                if (!await ZeroClusterIfZeroAsync((offset + done) >> _clusterBits, cancellationToken).ConfigureAwait(false))
                {
                    await WriteDataAsync(offset + done, zeros.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }

                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }

    // Whether the cluster reads as zeroes throughout (a zero cluster, or unallocated with nothing below); an unallocated
    // one in an existing L2 table is made a zero cluster, as QEMU widens a partial write-zeroes to the whole cluster
    // then (without a table and a backing file there is nothing to change: the update is not called).
    private async ValueTask<bool> ZeroClusterIfZeroAsync(long cluster, CancellationToken cancellationToken)
    {
        bool zero = true;
        await UpdateClustersAsync(cluster, 1, (entry, kind) =>
        {
            if (kind is ClusterKind.ZeroPlain or ClusterKind.ZeroAllocated)
            {
                return entry;
            }

            if (kind == ClusterKind.Unallocated && _backing is null && _header.BackingFile is null)
            {
                return OflagZero;
            }

            zero = false;
            return entry;
        }, cancellationToken).ConfigureAwait(false);
        return zero;
    }

    private async ValueTask ReadHostAsync(long host, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long fileSize = _file.Size;
        if (host >= fileSize)
        {
            throw new Qcow2CorruptionException($"data cluster at host offset {host & ~((long)_clusterSize - 1):#x} lies beyond the end of the file ({fileSize} bytes)");
        }

        await ReadClampedAsync(_file, host, buffer, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask ReadBackingAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        BlockNode? backing = _backing;
        long inBacking = backing is null ? 0 : Math.Clamp(backing.Size - offset, 0, buffer.Length);
        if (inBacking > 0)
        {
            await backing!.ReadAsync(offset, buffer[..(int)inBacking], cancellationToken).ConfigureAwait(false);
        }

        buffer.Span[(int)inBacking..].Clear();
    }

    /// <summary>Reads from a node, zero-filling whatever lies past its end.</summary>
    private static async ValueTask ReadClampedAsync(BlockNode node, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long inside = Math.Clamp(node.Size - offset, 0, buffer.Length);
        if (inside > 0)
        {
            await node.ReadAsync(offset, buffer[..(int)inside], cancellationToken).ConfigureAwait(false);
        }

        buffer.Span[(int)inside..].Clear();
    }

    private void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset + length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Request {offset}+{length} lies beyond the end of qcow2 node '{NodeName}' ({Size} bytes).");
        }
    }

    private void CheckWrite(long offset, long length)
    {
        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EPERM, $"Block node '{NodeName}' is read-only");
        }

        CheckRange(offset, length);
    }

    private void EvictCleanTables()
    {
        if (_l2Cache.OverCapacity || _refCache.OverCapacity)
        {
            _l2Cache.EvictClean();
            _refCache.EvictClean();
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Raises a blkdebug event for data I/O, as QEMU's qcow2 does (metadata I/O raises none of the events JobCore's rules use).</summary>
    private void RaiseDebugEvent(BlkdebugEvent blkdebugEvent) => (_file as BlkdebugNode)?.RaiseEvent(blkdebugEvent);

    private void ThrowIfNotWritable()
    {
        ThrowIfDisposed();
        if (_corrupt)
        {
            throw new BlockIOException(BlockIOException.EIO, $"Image '{_imageName}' is marked corrupt; writes are refused");
        }
    }

    /// <summary>Kinds of guest clusters (spec table of §8.6).</summary>
    private enum ClusterKind
    {
        Unallocated,
        ZeroPlain,
        ZeroAllocated,
        Normal,
        Compressed,
    }

    /// <summary>A run of guest clusters of one kind; for normal and preallocated zero clusters the host clusters are contiguous.</summary>
    private readonly record struct Qcow2Run(ClusterKind Kind, long Host, int Count, ulong Entry, bool Copied);
}
