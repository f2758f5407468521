using System.Buffers;
using JobCore.Block.Options;

namespace JobCore.Block.Nodes;

// Allocating writes in three steps, as QEMU's qcow2 does them: under the lock, decide and reserve (host clusters with
// their refcounts raised in the cache, plus an in-flight record for the guest clusters); without the lock, write the
// data and the copy-on-write edges; under the lock again, point the L2 entries at the new clusters. So writes into a
// fresh image overlap their data I/O instead of queueing behind one another. A request touching guest clusters of an
// in-flight allocation waits for it (QEMU's handle_dependencies): a guest cluster never gets two allocations, and
// nobody sees a half-linked cluster. Reads meanwhile see the old mapping (the write is not acknowledged yet).
public sealed partial class Qcow2Node
{
    private readonly List<InflightAllocation> _inflight = [];

    /// <summary>
    /// Under the lock: reserves new host clusters for the start of the write at <paramref name="offset"/> (one
    /// contiguous run for as many of its clusters as possible). Returns the reservation; or, when an in-flight
    /// allocation covers the first cluster, a task to wait for before looking again; or neither (look again now).
    /// </summary>
    private async ValueTask<(InflightAllocation? Allocation, Task? Wait)> ReserveAllocationAsync(long offset, int length, CancellationToken cancellationToken)
    {
        long guestCluster = offset >> _clusterBits;
        int intra = (int)(offset & (_clusterSize - 1));
        int l2Entries = 1 << _l2Bits;
        int l2Index = (int)(guestCluster & (l2Entries - 1));
        int maxClusters = (int)Math.Min(l2Entries - l2Index, ((long)intra + length + _clusterSize - 1) >> _clusterBits);
        foreach (var other in _inflight)
        {
            if (other.FirstCluster <= guestCluster && guestCluster < other.FirstCluster + other.Count)
            {
                return (null, other.Done.Task);
            }

            if (other.FirstCluster > guestCluster && other.FirstCluster < guestCluster + maxClusters)
            {
                // Stop short of it; the rest of the request comes back here once this part is done.
                maxClusters = (int)(other.FirstCluster - guestCluster);
            }
        }

        var l2 = await GetL2ForWriteAsync(guestCluster >> _l2Bits, cancellationToken).ConfigureAwait(false);

        // A normal cluster without the copied flag is overwritten in place when its refcount is 1.
        ulong firstEntry = TableEntry(l2.Data, l2Index);
        if (Classify(firstEntry, guestCluster) == ClusterKind.Normal && (firstEntry & OflagCopied) == 0 &&
            await GetRefcountAsync((long)(firstEntry & OffsetMask) >> _clusterBits, cancellationToken).ConfigureAwait(false) == 1)
        {
            SetTableEntry(l2.Data, l2Index, firstEntry | OflagCopied);
            _l2Cache.MarkDirty(l2);
            return (null, null);
        }

        int count = 1;
        while (count < maxClusters && Classify(TableEntry(l2.Data, l2Index + count), guestCluster + count) != ClusterKind.Normal)
        {
            count++;
        }

        (long host, count) = await AllocateRunAsync(count, allowShorter: true, cancellationToken).ConfigureAwait(false);
        ulong[] oldEntries = new ulong[count];
        for (int k = 0; k < count; k++)
        {
            oldEntries[k] = TableEntry(l2.Data, l2Index + k);
        }

        int n = (int)Math.Min(length, ((long)count << _clusterBits) - intra);
        var allocation = new InflightAllocation(guestCluster, count, host, intra, n, oldEntries);
        _inflight.Add(allocation);
        return (allocation, null);
    }

    /// <summary>
    /// Without the lock: writes the reserved clusters (the request's bytes, old content around partial ones); then,
    /// under the lock, links them into the L2 table and queues the old host clusters for freeing. A failed data write
    /// gives the reserved clusters back instead of linking them. Returns the bytes of <paramref name="data"/> consumed.
    /// </summary>
    private async ValueTask<int> CompleteAllocationAsync(InflightAllocation allocation, ReadOnlyMemory<byte> data)
    {
        try
        {
            await WriteNewClustersAsync(allocation, data, CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            // Nothing references the new clusters yet (ENOSPC, EIO...): give them back at once instead of leaking them.
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await DropReferencesNowAsync(allocation.Host >> _clusterBits, allocation.Count, CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                EndAllocation(allocation);
                _lock.Release();
            }

            throw;
        }

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            // Marked corrupt meanwhile: no more metadata changes (the reserved clusters leak, which check repairs).
            ThrowIfNotWritable();
            int l2Index = (int)(allocation.FirstCluster & ((1 << _l2Bits) - 1));
            var l2 = await GetL2ForWriteAsync(allocation.FirstCluster >> _l2Bits, CancellationToken.None).ConfigureAwait(false);
            for (int k = 0; k < allocation.Count; k++)
            {
                ulong old = TableEntry(l2.Data, l2Index + k);
                SetTableEntry(l2.Data, l2Index + k, (ulong)(allocation.Host + ((long)k << _clusterBits)) | OflagCopied);
                QueueFree(old);
            }

            _l2Cache.MarkDirty(l2);
            EndAllocation(allocation);
            await TrimCachesAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            EndAllocation(allocation);
            _lock.Release();
        }

        return allocation.Length;
    }

    /// <summary>Under the lock: forgets an in-flight allocation and wakes the requests waiting for it (idempotent).</summary>
    private void EndAllocation(InflightAllocation allocation)
    {
        if (_inflight.Remove(allocation))
        {
            allocation.Done.TrySetResult();
        }
    }

    /// <summary>Under the lock: a task completing when an in-flight allocation overlapping the guest clusters ends, or null.</summary>
    private Task? InflightOverlapping(long firstCluster, long count)
    {
        foreach (var a in _inflight)
        {
            if (a.FirstCluster < firstCluster + count && firstCluster < a.FirstCluster + a.Count)
            {
                return a.Done.Task;
            }
        }

        return null;
    }

    /// <summary>Under the lock: a task completing when every allocation now in flight has ended, or null when none is.</summary>
    private Task? AllInflight() => _inflight.Count == 0 ? null : Task.WhenAll(_inflight.Select(static a => a.Done.Task));

    /// <summary>Writes the request's bytes into the reserved host clusters, filling partial clusters from their old content.</summary>
    private async ValueTask WriteNewClustersAsync(InflightAllocation a, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        int fullStart = -1;
        for (int k = 0; k < a.Count; k++)
        {
            long clusterStart = (long)k << _clusterBits;
            int from = (int)Math.Max(a.Intra, clusterStart);
            int to = (int)Math.Min(a.Intra + (long)a.Length, clusterStart + _clusterSize);
            bool full = from == clusterStart && to == clusterStart + _clusterSize;
            if (full)
            {
                if (fullStart < 0)
                {
                    fullStart = k;
                }

                continue;
            }

            await WriteFullRunAsync(a.Host, fullStart, k, a.Intra, data, cancellationToken).ConfigureAwait(false);
            fullStart = -1;
            await WritePartialClusterAsync(a.Host + clusterStart, a.OldEntries[k], a.FirstCluster + k,
                from - (int)clusterStart, data.Slice(from - a.Intra, to - from), cancellationToken).ConfigureAwait(false);
        }

        await WriteFullRunAsync(a.Host, fullStart, a.Count, a.Intra, data, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask WriteFullRunAsync(long host, int fromCluster, int toCluster, int intra, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (fromCluster < 0 || toCluster <= fromCluster)
        {
            return;
        }

        long start = (long)fromCluster << _clusterBits;
        int length = (toCluster - fromCluster) << _clusterBits;
        RaiseDebugEvent(BlkdebugEvent.WriteAio);
        await _file.WriteAsync(host + start, data.Slice((int)(start - intra), length), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask WritePartialClusterAsync(long host, ulong oldEntry, long guestCluster, int at, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(_clusterSize);
        try
        {
            Memory<byte> cluster = buffer.AsMemory(0, _clusterSize);
            await ReadOldClusterAsync(oldEntry, guestCluster, cluster, cancellationToken).ConfigureAwait(false);
            data.CopyTo(cluster[at..]);
            RaiseDebugEvent(BlkdebugEvent.WriteAio);
            await _file.WriteAsync(host, cluster, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The current content of a guest cluster (for copy-on-write); its mapping cannot change while the allocation is in flight.</summary>
    private async ValueTask ReadOldClusterAsync(ulong entry, long guestCluster, Memory<byte> cluster, CancellationToken cancellationToken)
    {
        switch (Classify(entry, guestCluster))
        {
            case ClusterKind.Normal:
                await ReadHostAsync((long)(entry & OffsetMask), cluster, cancellationToken).ConfigureAwait(false);
                break;
            case ClusterKind.Compressed:
                await DecompressAsync(entry, cluster, cancellationToken).ConfigureAwait(false);
                break;
            case ClusterKind.Unallocated:
                long guest = guestCluster << _clusterBits;
                long inImage = Math.Clamp(Size - guest, 0, cluster.Length);
                await ReadBackingAsync(guest, cluster[..(int)inImage], cancellationToken).ConfigureAwait(false);
                cluster.Span[(int)inImage..].Clear();
                break;
            default:
                cluster.Span.Clear();
                break;
        }
    }

    /// <summary>
    /// New host clusters reserved for guest clusters <see cref="FirstCluster"/>.. (<see cref="Count"/>), receiving
    /// <see cref="Length"/> bytes of the request from byte <see cref="Intra"/> of the first cluster.
    /// </summary>
    private sealed class InflightAllocation(long firstCluster, int count, long host, int intra, int length, ulong[] oldEntries)
    {
        internal long FirstCluster { get; } = firstCluster;

        internal int Count { get; } = count;

        internal long Host { get; } = host;

        internal int Intra { get; } = intra;

        internal int Length { get; } = length;

        /// <summary>The L2 entries before the write (what copy-on-write reads).</summary>
        internal ulong[] OldEntries { get; } = oldEntries;

        internal TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
