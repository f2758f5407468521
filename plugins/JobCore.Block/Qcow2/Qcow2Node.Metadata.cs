using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using JobCore.Block.Options;

namespace JobCore.Block.Nodes;

// Mapping, allocation, refcounts and the ordered write-back of metadata. Everything here runs under _lock.
public sealed partial class Qcow2Node
{
    private byte[] _l1;
    private byte[] _refTable;
    private int _dirtyL1Min = int.MaxValue;
    private int _dirtyL1Max = -1;
    private readonly List<long> _pendingFrees = [];
    private long _freeCursor;
    private bool _firstWritePrepared;

    private int L1Size => _l1.Length / 8;

    private long RefTableEntries => _refTable.Length / 8;

    private ulong L1Entry(long index) => BinaryPrimitives.ReadUInt64BigEndian(_l1.AsSpan((int)(index * 8)));

    private void SetL1Entry(long index, ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_l1.AsSpan((int)(index * 8)), value);
        _dirtyL1Min = Math.Min(_dirtyL1Min, (int)index);
        _dirtyL1Max = Math.Max(_dirtyL1Max, (int)index);
    }

    private static ulong TableEntry(byte[] table, int index) => BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(index * 8));

    private static void SetTableEntry(byte[] table, int index, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(index * 8), value);

    // ---------------------------------------------------------------- mapping

    private async ValueTask<Qcow2Run> LookupRunAsync(long guestCluster, int maxClusters, CancellationToken cancellationToken)
    {
        int l2Entries = 1 << _l2Bits;
        long l1Index = guestCluster >> _l2Bits;
        int l2Index = (int)(guestCluster & (l2Entries - 1));
        int limit = Math.Max(1, Math.Min(maxClusters, l2Entries - l2Index));
        long l2Offset = L2OffsetOf(l1Index);
        if (l2Offset == 0)
        {
            return new Qcow2Run(ClusterKind.Unallocated, 0, limit, 0, false);
        }

        byte[] l2 = (await LoadTableAsync(_l2Cache, l2Offset, "L2 table", cancellationToken).ConfigureAwait(false)).Data;
        ulong first = TableEntry(l2, l2Index);
        ClusterKind kind = Classify(first, guestCluster);
        long host = (long)(first & OffsetMask);
        bool copied = (first & OflagCopied) != 0;
        if (kind == ClusterKind.Compressed)
        {
            return new Qcow2Run(kind, 0, 1, first, false);
        }

        int count = 1;
        while (count < limit)
        {
            ulong e = TableEntry(l2, l2Index + count);
            ClusterKind k = Classify(e, guestCluster + count);
            if (k != kind ||
                (kind is ClusterKind.Normal or ClusterKind.ZeroAllocated && (long)(e & OffsetMask) != host + ((long)count << _clusterBits)) ||
                (kind == ClusterKind.Normal && ((e & OflagCopied) != 0) != copied))
            {
                break;
            }

            count++;
        }

        return new Qcow2Run(kind, host, count, first, copied);
    }

    /// <summary>The L2 table offset of an L1 entry (0 = unallocated), validating the entry.</summary>
    private long L2OffsetOf(long l1Index)
    {
        if (l1Index >= L1Size)
        {
            return 0;
        }

        ulong e = L1Entry(l1Index);
        long offset = (long)(e & OffsetMask);
        if ((e & L1Reserved) != 0 || (offset & (_clusterSize - 1)) != 0)
        {
            throw new Qcow2CorruptionException($"L1 entry {l1Index} ({e:#x}) has reserved bits set or an unaligned L2 table offset");
        }

        // A table allocated since the last flush lives only in the cache (write-zeroes allocates no data that would
        // extend the file), so only an uncached table must lie inside the file.
        if (offset != 0 && offset >= _file.Size && !_l2Cache.Contains(offset))
        {
            throw new Qcow2CorruptionException($"L1 entry {l1Index} points to an L2 table at {offset:#x}, beyond the end of the file");
        }

        if (offset != 0 && offset < _clusterSize)
        {
            throw new Qcow2CorruptionException($"L1 entry {l1Index} points to an L2 table inside the header cluster");
        }

        return offset;
    }

    private ClusterKind Classify(ulong e, long guestCluster)
    {
        if ((e & OflagCompressed) != 0)
        {
            if ((e & OflagCopied) != 0)
            {
                throw new Qcow2CorruptionException($"compressed L2 entry {e:#x} of guest cluster {guestCluster} has the copied flag set");
            }

            return ClusterKind.Compressed;
        }

        long offset = (long)(e & OffsetMask);
        if ((e & L2Reserved) != 0 || (offset & (_clusterSize - 1)) != 0)
        {
            throw new Qcow2CorruptionException($"L2 entry {e:#x} of guest cluster {guestCluster} has reserved bits set or an unaligned offset");
        }

        if ((e & OflagZero) != 0)
        {
            if (_header.Version < 3)
            {
                throw new Qcow2CorruptionException($"L2 entry {e:#x} of guest cluster {guestCluster} has the zero flag in a version 2 image");
            }

            return offset == 0 ? ClusterKind.ZeroPlain : ClusterKind.ZeroAllocated;
        }

        if (offset == 0)
        {
            if ((e & OflagCopied) != 0)
            {
                throw new Qcow2CorruptionException($"L2 entry {e:#x} of guest cluster {guestCluster} has the copied flag but no offset");
            }

            return ClusterKind.Unallocated;
        }

        if (offset < _clusterSize)
        {
            throw new Qcow2CorruptionException($"L2 entry of guest cluster {guestCluster} points into the header cluster");
        }

        return ClusterKind.Normal;
    }

    private async ValueTask<Qcow2TableCache.Table> LoadTableAsync(Qcow2TableCache cache, long offset, string what, CancellationToken cancellationToken)
    {
        if (cache.TryGet(offset, out var table))
        {
            return table;
        }

        if (offset >= _file.Size)
        {
            throw new Qcow2CorruptionException($"{what} at {offset:#x} lies beyond the end of the file");
        }

        byte[] data = new byte[_clusterSize];
        await ReadClampedAsync(_file, offset, data, cancellationToken).ConfigureAwait(false);
        return cache.Add(offset, data, dirty: false);
    }

    /// <summary>Refuses an in-place data write that would land on metadata (QEMU's "cached" overlap check).</summary>
    private void CheckNoMetadataOverlap(long host, int count)
    {
        long end = host + ((long)count << _clusterBits);
        bool Overlaps(long start, long length) => length > 0 && start < end && host < start + length;
        if (Overlaps(0, _clusterSize) || Overlaps(_header.L1TableOffset, _l1.Length) ||
            Overlaps(_header.RefcountTableOffset, _refTable.Length))
        {
            throw new Qcow2CorruptionException($"data clusters at {host:#x} overlap the header, L1 table or refcount table");
        }

        for (long c = host; c < end; c += _clusterSize)
        {
            if (_l2Cache.Contains(c) || _refCache.Contains(c))
            {
                throw new Qcow2CorruptionException($"data cluster at {c:#x} overlaps an L2 table or refcount block");
            }
        }
    }

    private async ValueTask ReadCompressedAsync(ulong entry, int intra, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        byte[] cluster = ArrayPool<byte>.Shared.Rent(_clusterSize);
        try
        {
            await DecompressAsync(entry, cluster.AsMemory(0, _clusterSize), cancellationToken).ConfigureAwait(false);
            cluster.AsSpan(intra, buffer.Length).CopyTo(buffer.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(cluster);
        }
    }

    private (long Offset, long Length) CompressedRange(ulong entry)
    {
        int x = 62 - (_clusterBits - 8);
        long offset = (long)(entry & ((1UL << x) - 1));
        long sectors = (long)((entry >> x) & ((1UL << (_clusterBits - 8)) - 1)) + 1;
        return (offset, (sectors * 512) - (offset & 511));
    }

    private async ValueTask DecompressAsync(ulong entry, Memory<byte> output, CancellationToken cancellationToken)
    {
        var (offset, length) = CompressedRange(entry);
        long fileSize = _file.Size;
        if (offset >= fileSize || offset < _clusterSize)
        {
            throw new Qcow2CorruptionException($"compressed cluster data at {offset:#x} lies outside the data area of the file");
        }

        length = Math.Min(length, fileSize - offset);
        byte[] input = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            await _file.ReadAsync(offset, input.AsMemory(0, (int)length), cancellationToken).ConfigureAwait(false);
            int produced = 0;
            try
            {
                using var source = new MemoryStream(input, 0, (int)length, writable: false);
                using var inflater = new DeflateStream(source, CompressionMode.Decompress);
                while (produced < output.Length)
                {
                    int n = inflater.Read(output.Span[produced..]);
                    if (n == 0)
                    {
                        break;
                    }

                    produced += n;
                }
            }
            catch (InvalidDataException e)
            {
                throw new Qcow2CorruptionException($"compressed cluster at {offset:#x} does not decompress: {e.Message}");
            }

            if (produced < output.Length)
            {
                throw new Qcow2CorruptionException($"compressed cluster at {offset:#x} decompresses to {produced} bytes instead of {output.Length}");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(input);
        }
    }

    // ---------------------------------------------------------------- writes

    /// <summary>The L2 table covering <paramref name="l1Index"/>, allocating a zeroed one (refcounted, L1 entry pending) if needed.</summary>
    private async ValueTask<Qcow2TableCache.Table> GetL2ForWriteAsync(long l1Index, CancellationToken cancellationToken)
    {
        long offset = L2OffsetOf(l1Index);
        if (offset != 0)
        {
            ulong e = L1Entry(l1Index);
            if ((e & OflagCopied) == 0)
            {
                ulong refcount = await GetRefcountAsync(offset >> _clusterBits, cancellationToken).ConfigureAwait(false);
                if (refcount != 1)
                {
                    throw new Qcow2CorruptionException($"L2 table at {offset:#x} has refcount {refcount}; shared L2 tables (snapshots) are not supported");
                }

                SetL1Entry(l1Index, e | OflagCopied);
            }

            return await LoadTableAsync(_l2Cache, offset, "L2 table", cancellationToken).ConfigureAwait(false);
        }

        long table = await AllocateClustersAsync(1, cancellationToken).ConfigureAwait(false);
        _l2Cache.Remove(table);
        var l2 = _l2Cache.Add(table, new byte[_clusterSize], dirty: true);
        SetL1Entry(l1Index, (ulong)table | OflagCopied);
        return l2;
    }

    private async ValueTask ZeroClustersAsync(long firstCluster, long count, bool mayUnmap, CancellationToken cancellationToken)
    {
        await UpdateClustersAsync(firstCluster, count, (entry, kind) =>
        {
            if (kind == ClusterKind.ZeroPlain || (kind == ClusterKind.ZeroAllocated && !mayUnmap))
            {
                return entry;
            }

            if (!mayUnmap && kind is ClusterKind.Normal or ClusterKind.ZeroAllocated)
            {
                return (entry & (OffsetMask | OflagCopied)) | OflagZero;
            }

            return OflagZero;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask DiscardClustersAsync(long firstCluster, long count, CancellationToken cancellationToken)
    {
        // QEMU's guest discard on version 3: zero flag when something could show through or data was there.
        bool backing = _header.BackingFile is not null || _backing is not null;
        await UpdateClustersAsync(firstCluster, count, (entry, kind) =>
            kind == ClusterKind.ZeroPlain || (kind == ClusterKind.Unallocated && !backing) ? entry : OflagZero,
            cancellationToken, skipUnallocatedTables: !backing).ConfigureAwait(false);
    }

    /// <summary>Rewrites the L2 entries of whole clusters; host clusters no longer referenced are freed after the change is stable.</summary>
    private async ValueTask UpdateClustersAsync(long firstCluster, long count, Func<ulong, ClusterKind, ulong> update,
        CancellationToken cancellationToken, bool skipUnallocatedTables = false)
    {
        int l2Entries = 1 << _l2Bits;
        long cluster = firstCluster;
        long end = firstCluster + count;
        while (cluster < end)
        {
            int l2Index = (int)(cluster & (l2Entries - 1));
            int n = (int)Math.Min(end - cluster, l2Entries - l2Index);
            Task? busy;
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfNotWritable();
                // An allocating write in flight there would link its clusters over this change: let it finish first.
                busy = InflightOverlapping(cluster, n);
                if (busy is null)
                {
                    cancellationToken = CancellationToken.None; // see WriteAsync: no cancellation past the lock
                    await UpdateClustersLockedAsync(cluster, l2Index, n, update, skipUnallocatedTables).ConfigureAwait(false);
                }
            }
            finally
            {
                _lock.Release();
            }

            if (busy is not null)
            {
                await busy.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            cluster += n;
        }
    }

    /// <summary>Rewrites <paramref name="n"/> L2 entries of one table from <paramref name="cluster"/> (caller holds the lock).</summary>
    private async ValueTask UpdateClustersLockedAsync(long cluster, int l2Index, int n, Func<ulong, ClusterKind, ulong> update, bool skipUnallocatedTables)
    {
        await PrepareFirstWriteAsync(CancellationToken.None).ConfigureAwait(false);
        long l1Index = cluster >> _l2Bits;
        bool noTable = L2OffsetOf(l1Index) == 0;
        if (noTable && (skipUnallocatedTables || (_header.BackingFile is null && _backing is null)))
        {
            return;
        }

        var l2 = await GetL2ForWriteAsync(l1Index, CancellationToken.None).ConfigureAwait(false);
        bool changed = false;
        for (int i = 0; i < n; i++)
        {
            ulong old = TableEntry(l2.Data, l2Index + i);
            ulong updated = update(old, Classify(old, cluster + i));
            if (updated != old)
            {
                SetTableEntry(l2.Data, l2Index + i, updated);
                if ((updated & OffsetMask) != (old & OffsetMask) || (old & OflagCompressed) != 0)
                {
                    QueueFree(old);
                }

                changed = true;
            }
        }

        if (changed)
        {
            _l2Cache.MarkDirty(l2);
        }

        await TrimCachesAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Queues the host clusters of an old L2 entry for a refcount decrement once the new mapping is stable.</summary>
    private void QueueFree(ulong oldEntry)
    {
        if ((oldEntry & OflagCompressed) != 0)
        {
            var (offset, length) = CompressedRange(oldEntry);
            long start = offset & ~511L;
            long last = (start + (length + (offset & 511)) - 1) >> _clusterBits;
            for (long c = start >> _clusterBits; c <= last; c++)
            {
                _pendingFrees.Add(c);
            }

            return;
        }

        long host = (long)(oldEntry & OffsetMask);
        if (host != 0)
        {
            _pendingFrees.Add(host >> _clusterBits);
        }
    }

    // ---------------------------------------------------------------- refcounts and allocation

    private async ValueTask<ulong> GetRefcountAsync(long cluster, CancellationToken cancellationToken)
    {
        long tableIndex = cluster >> _refBlockBits;
        if (tableIndex >= RefTableEntries)
        {
            return 0;
        }

        long block = RefBlockOffset(tableIndex);
        if (block == 0)
        {
            return 0;
        }

        var table = await LoadTableAsync(_refCache, block, "refcount block", cancellationToken).ConfigureAwait(false);
        return Qcow2Refcounts.Get(table.Data, _header.RefcountOrder, (int)(cluster & ((1L << _refBlockBits) - 1)));
    }

    private long RefBlockOffset(long tableIndex)
    {
        ulong e = TableEntry(_refTable, (int)tableIndex);
        if ((e & 0x1ff) != 0 || (e & (ulong)(_clusterSize - 1)) != 0 || (e != 0 && ((e >= (ulong)_file.Size && !_refCache.Contains((long)e)) || e < (ulong)_clusterSize)))
        {
            throw new Qcow2CorruptionException($"refcount table entry {tableIndex} ({e:#x}) is unaligned, has reserved bits set or points outside the file");
        }

        return (long)e;
    }

    private async ValueTask SetRefcountAsync(long cluster, ulong value, CancellationToken cancellationToken)
    {
        long tableIndex = cluster >> _refBlockBits;
        long block = tableIndex < RefTableEntries ? RefBlockOffset(tableIndex) : 0;
        if (block == 0)
        {
            throw new Qcow2CorruptionException($"no refcount block covers cluster {cluster} whose refcount changes");
        }

        var table = await LoadTableAsync(_refCache, block, "refcount block", cancellationToken).ConfigureAwait(false);
        if (!Qcow2Refcounts.TrySet(table.Data, _header.RefcountOrder, (int)(cluster & ((1L << _refBlockBits) - 1)), value))
        {
            throw new BlockIOException(BlockIOException.EINVAL, $"Refcount of cluster {cluster} would overflow {_header.RefcountBits} bits in image '{_imageName}'");
        }

        _refCache.MarkDirty(table);
    }

    /// <summary>Finds <paramref name="count"/> contiguous free clusters from the free cursor and sets their refcounts to 1 (in the cache).</summary>
    private async ValueTask<long> AllocateClustersAsync(int count, CancellationToken cancellationToken)
    {
        var (host, got) = await AllocateRunAsync(count, allowShorter: false, cancellationToken).ConfigureAwait(false);
        System.Diagnostics.Debug.Assert(got == count, "a full run was requested");
        return host;
    }

    /// <summary>
    /// Finds the first run of free clusters from the free cursor — exactly <paramref name="count"/> long, or with
    /// <paramref name="allowShorter"/> possibly shorter — and sets their refcounts to 1 (in the cache). As in QEMU,
    /// clusters without a refcount block count as free; the missing blocks are then created behind the run (which
    /// may land in the run's way, so the search starts again from the same place, QEMU's <c>-EAGAIN</c>).
    /// </summary>
    private async ValueTask<(long Host, int Count)> AllocateRunAsync(int count, bool allowShorter, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (start, run) = await FindFreeRunAsync(_freeCursor, count, allowShorter, cancellationToken).ConfigureAwait(false);
            long missing = -1;
            for (long tableIndex = start >> _refBlockBits; tableIndex <= (start + run - 1) >> _refBlockBits; tableIndex++)
            {
                if (tableIndex >= RefTableEntries || RefBlockOffset(tableIndex) == 0)
                {
                    missing = tableIndex;
                    break;
                }
            }

            if (missing >= 0)
            {
                await CreateRefBlockAsync(missing, start + run, cancellationToken).ConfigureAwait(false);
                continue;
            }

            for (long c = start; c < start + run; c++)
            {
                await SetRefcountAsync(c, 1, cancellationToken).ConfigureAwait(false);
            }

            _freeCursor = start + run;
            return (start << _clusterBits, run);
        }
    }

    /// <summary>The first run of clusters with refcount 0 from <paramref name="from"/> (see <see cref="AllocateRunAsync"/>).</summary>
    private async ValueTask<(long Start, int Count)> FindFreeRunAsync(long from, int count, bool allowShorter, CancellationToken cancellationToken)
    {
        long start = from;
        int run = 0;
        for (long c = from; run < count; c++)
        {
            if ((c << _clusterBits) >= (1L << 56))
            {
                throw new BlockIOException(BlockIOException.EFBIG, $"Image '{_imageName}' cannot grow beyond the qcow2 offset limit");
            }

            if (await GetRefcountAsync(c, cancellationToken).ConfigureAwait(false) == 0)
            {
                if (run == 0)
                {
                    start = c;
                }

                run++;
            }
            else if (allowShorter && run > 0)
            {
                break;
            }
            else
            {
                run = 0;
            }
        }

        return (start, run);
    }

    /// <summary>
    /// Creates the refcount block for table entry <paramref name="tableIndex"/> in the first free cluster from
    /// <paramref name="searchFrom"/> (QEMU's placement). A block inside the range it covers describes itself; one
    /// outside gets its refcount in the block of its own range, which is made stable first (or, when that block is
    /// missing too, that one is created instead and the caller searches again). The block is written and flushed
    /// before the table entry that makes it live. A full table grows instead.
    /// </summary>
    private async ValueTask CreateRefBlockAsync(long tableIndex, long searchFrom, CancellationToken cancellationToken)
    {
        if (tableIndex >= RefTableEntries)
        {
            await GrowRefTableAsync(tableIndex, cancellationToken).ConfigureAwait(false);
            return;
        }

        var (blockCluster, _) = await FindFreeRunAsync(searchFrom, 1, allowShorter: false, cancellationToken).ConfigureAwait(false);
        long blockOffset = blockCluster << _clusterBits;
        long ownIndex = blockCluster >> _refBlockBits;
        byte[] block = new byte[_clusterSize];
        if (ownIndex == tableIndex)
        {
            Qcow2Refcounts.TrySet(block, _header.RefcountOrder, (int)(blockCluster & ((1L << _refBlockBits) - 1)), 1);
        }
        else if (ownIndex >= RefTableEntries || RefBlockOffset(ownIndex) == 0)
        {
            await CreateRefBlockAsync(ownIndex, blockCluster + 1, cancellationToken).ConfigureAwait(false);
            return;
        }
        else
        {
            await SetRefcountAsync(blockCluster, 1, cancellationToken).ConfigureAwait(false);
            await WriteDirtyAsync(_refCache, cancellationToken).ConfigureAwait(false);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        await _file.WriteAsync(blockOffset, block, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        byte[] entry = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(entry, (ulong)blockOffset);
        // Stable with the next metadata write-back's first flush, before anything counted in the block is referenced.
        await _file.WriteAsync(_header.RefcountTableOffset + (tableIndex * 8), entry, cancellationToken).ConfigureAwait(false);
        SetTableEntry(_refTable, (int)tableIndex, (ulong)blockOffset);
        _refCache.Remove(blockOffset);
        _l2Cache.Remove(blockOffset);
        _refCache.Add(blockOffset, block, dirty: false);
    }

    /// <summary>
    /// Replaces the refcount table by a larger one placed past everything the old table covers, together with the
    /// refcount blocks describing the new area; flushed, then switched in the header with one 12-byte write, then the
    /// old table's clusters are freed.
    /// </summary>
    private async ValueTask GrowRefTableAsync(long neededIndex, CancellationToken cancellationToken)
    {
        // Dirty refcount blocks must be on disk before the new table (which refers to them) becomes live.
        await WriteDirtyAsync(_refCache, cancellationToken).ConfigureAwait(false);
        long oldEntries = RefTableEntries;
        long entriesPerCluster = _clusterSize / 8;
        long start = Math.Max(oldEntries << _refBlockBits, (_file.Size + _clusterSize - 1) >> _clusterBits);
        long entries = Math.Max(neededIndex + 1, oldEntries + (oldEntries / 2));
        long tableClusters = (entries + entriesPerCluster - 1) / entriesPerCluster;
        long blocks = 0;
        while (true)
        {
            long areaEnd = start + blocks + tableClusters;
            long firstRange = start >> _refBlockBits;
            long lastRange = (areaEnd - 1) >> _refBlockBits;
            long neededBlocks = lastRange - firstRange + 1;
            long neededEntries = Math.Max(entries, lastRange + 1);
            long neededTableClusters = (neededEntries + entriesPerCluster - 1) / entriesPerCluster;
            if (neededBlocks == blocks && neededTableClusters == tableClusters)
            {
                break;
            }

            blocks = neededBlocks;
            tableClusters = neededTableClusters;
            entries = neededEntries;
        }

        if (tableClusters * _clusterSize > Qcow2Header.MaxRefcountTableBytes)
        {
            throw new BlockIOException(BlockIOException.EFBIG, $"Image '{_imageName}' would need a refcount table larger than {Qcow2Header.MaxRefcountTableBytes >> 20} MiB");
        }

        long areaClusters = blocks + tableClusters;
        long firstBlockRange = start >> _refBlockBits;
        var newBlocks = new byte[blocks][];
        byte[] blockArea = new byte[blocks * _clusterSize];
        for (long b = 0; b < blocks; b++)
        {
            newBlocks[b] = new byte[_clusterSize];
        }

        for (long c = start; c < start + areaClusters; c++)
        {
            long b = (c >> _refBlockBits) - firstBlockRange;
            Qcow2Refcounts.TrySet(newBlocks[b], _header.RefcountOrder, (int)(c & ((1L << _refBlockBits) - 1)), 1);
        }

        byte[] newTable = new byte[tableClusters * _clusterSize];
        _refTable.CopyTo(newTable, 0);
        for (long b = 0; b < blocks; b++)
        {
            newBlocks[b].CopyTo(blockArea, b * _clusterSize);
            SetTableEntry(newTable, (int)(firstBlockRange + b), (ulong)((start + b) << _clusterBits));
        }

        long tableOffset = (start + blocks) << _clusterBits;
        await _file.WriteAsync(start << _clusterBits, blockArea, cancellationToken).ConfigureAwait(false);
        await _file.WriteAsync(tableOffset, newTable, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

        byte[] pointer = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(pointer, (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(pointer.AsSpan(8), (uint)tableClusters);
        await _file.WriteAsync(48, pointer, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

        long oldOffset = _header.RefcountTableOffset;
        long oldClusters = _header.RefcountTableClusters;
        _header.RefcountTableOffset = tableOffset;
        _header.RefcountTableClusters = (int)tableClusters;
        _refTable = newTable;
        for (long b = 0; b < blocks; b++)
        {
            long offset = (start + b) << _clusterBits;
            _refCache.Remove(offset);
            _l2Cache.Remove(offset);
            _refCache.Add(offset, newBlocks[b], dirty: false);
        }

        // The header no longer points at the old table (stable), so its clusters can be freed right away.
        await DropReferencesNowAsync(oldOffset >> _clusterBits, oldClusters, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Decrements the refcounts of clusters nothing on disk references any more (in the cache; written back later).</summary>
    private async ValueTask DropReferencesNowAsync(long firstCluster, long count, CancellationToken cancellationToken)
    {
        for (long cluster = firstCluster; cluster < firstCluster + count; cluster++)
        {
            ulong refcount = await GetRefcountAsync(cluster, cancellationToken).ConfigureAwait(false);
            if (refcount > 0)
            {
                await SetRefcountAsync(cluster, refcount - 1, cancellationToken).ConfigureAwait(false);
                _freeCursor = Math.Min(_freeCursor, cluster);
            }
        }
    }

    // ---------------------------------------------------------------- write-back

    /// <summary>
    /// Writes back all cached metadata in dependency order and flushes: refcount blocks; flush (data and refcounts
    /// stable); L2 tables; flush; L1 entries; flush. Then applies queued reference drops (written at the next write-back).
    /// </summary>
    /// <param name="requested">A flush the user asked for (not an internal write-back): raises blkdebug's
    /// <c>flush_to_disk</c> before the final flush, where QEMU raises it (after the caches went to the file).</param>
    /// <param name="cancellationToken">Cancels the write-back.</param>
    private async ValueTask FlushMetadataAsync(CancellationToken cancellationToken, bool requested = false)
    {
        bool l2Dirty = _l2Cache.DirtyCount > 0;
        bool l1Dirty = _dirtyL1Max >= 0;
        await WriteDirtyAsync(_refCache, cancellationToken).ConfigureAwait(false);
        if (l2Dirty || l1Dirty)
        {
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        if (l2Dirty)
        {
            await WriteDirtyAsync(_l2Cache, cancellationToken).ConfigureAwait(false);
        }

        if (l1Dirty)
        {
            if (l2Dirty)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            int from = _dirtyL1Min * 8;
            int to = (_dirtyL1Max + 1) * 8;
            await _file.WriteAsync(_header.L1TableOffset + from, _l1.AsMemory(from, to - from), cancellationToken).ConfigureAwait(false);
            _dirtyL1Min = int.MaxValue;
            _dirtyL1Max = -1;
        }

        if (requested)
        {
            RaiseDebugEvent(BlkdebugEvent.FlushToDisk);
        }

        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

        // Reference drops: the tables that stopped referencing these clusters are stable now. A data request that
        // looked up its mapping before the change may still be using them, so wait for a quiet moment.
        if (_pendingFrees.Count > 0 && Volatile.Read(ref _dataOps) == 0)
        {
            foreach (long cluster in _pendingFrees)
            {
                ulong refcount = await GetRefcountAsync(cluster, cancellationToken).ConfigureAwait(false);
                if (refcount == 0)
                {
                    throw new Qcow2CorruptionException($"cluster {cluster} is freed but its refcount is already 0");
                }

                await SetRefcountAsync(cluster, refcount - 1, cancellationToken).ConfigureAwait(false);
                _freeCursor = Math.Min(_freeCursor, cluster);
            }

            _pendingFrees.Clear();
            await WriteDirtyAsync(_refCache, cancellationToken).ConfigureAwait(false);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask WriteDirtyAsync(Qcow2TableCache cache, CancellationToken cancellationToken)
    {
        if (cache.DirtyCount == 0)
        {
            return;
        }

        foreach (var table in cache.DirtyByOffset())
        {
            await _file.WriteAsync(table.Offset, table.Data, cancellationToken).ConfigureAwait(false);
        }

        cache.MarkAllClean();
    }

    /// <summary>Keeps the caches bounded: a full write-back when too many tables are dirty, then eviction of clean ones.</summary>
    private async ValueTask TrimCachesAsync(CancellationToken cancellationToken)
    {
        bool manyFrees = _pendingFrees.Count > 4096 && Volatile.Read(ref _dataOps) == 0;
        if (_l2Cache.OverCapacity || _refCache.OverCapacity || manyFrees)
        {
            if (_l2Cache.DirtyCount > _l2Cache.Capacity / 2 || _refCache.DirtyCount > _refCache.Capacity / 2 || manyFrees)
            {
                await FlushMetadataAsync(cancellationToken).ConfigureAwait(false);
            }

            _l2Cache.EvictClean();
            _refCache.EvictClean();
        }
    }

    // ---------------------------------------------------------------- header

    /// <summary>Before the first change: clears autoclear feature bits (we keep no bitmaps) with a synchronous header rewrite.</summary>
    private async ValueTask PrepareFirstWriteAsync(CancellationToken cancellationToken)
    {
        if (_firstWritePrepared)
        {
            return;
        }

        ulong autoclear = _header.AutoclearFeatures;
        if (autoclear != 0)
        {
            _header.AutoclearFeatures = 0;
            try
            {
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // Keep memory in step with the disk so the next write tries again.
                _header.AutoclearFeatures = autoclear;
                throw;
            }
        }

        _firstWritePrepared = true;
    }

    private async ValueTask WriteHeaderAsync(CancellationToken cancellationToken)
    {
        byte[] cluster0 = _header.Serialize();
        await _file.WriteAsync(0, cluster0, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Marks a read/write image corrupt (QEMU's behaviour) and turns the finding into an EIO error naming the image.</summary>
    private async ValueTask<Exception> OnCorruptionAsync(Qcow2CorruptionException e)
    {
        string message = $"Image '{_imageName}' is corrupt: {e.Message}";
        if (!ReadOnly)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!_corrupt && !_disposed)
                {
                    _corrupt = true;
                    _header.IncompatibleFeatures |= Qcow2Header.IncompatCorrupt;
                    try
                    {
                        await WriteHeaderAsync(CancellationToken.None).ConfigureAwait(false);
                        message += "; image marked as corrupt, further writes are refused";
                    }
                    catch (IOException io)
                    {
                        message += $"; marking it corrupt failed: {io.Message}";
                    }
                }
            }
            finally
            {
                _lock.Release();
            }
        }

        return new BlockIOException(BlockIOException.EIO, message, e);
    }

    /// <summary>A metadata inconsistency found at run time (turned into an EIO <see cref="BlockIOException"/>).</summary>
    private sealed class Qcow2CorruptionException(string message) : Exception(message);
}
