using System.Buffers.Binary;
using System.Numerics;
using JobCore.Block.Nodes;
using Microsoft.Win32.SafeHandles;

namespace JobCore.Block.Tools;

/// <summary>
/// A fresh qcow2 (version 3) output of <see cref="ImageConvert"/>, laid out in one pass: data clusters are appended
/// in arrival order after the header cluster, the L2 tables live in memory, and <see cref="CompleteAsync"/> appends
/// the L2 tables, the L1 table and self-describing refcount blocks and table, then writes the header last. Every
/// cluster of the finished file is in use with refcount 1, so <c>qemu-img check</c> finds neither errors nor leaks.
/// Like qemu-img convert's default (<c>cache=unsafe</c>) nothing is flushed: a crash leaves an invalid file
/// (the header is written last), never a wrong one.
/// </summary>
internal sealed class Qcow2ConvertTarget : ConvertTarget
{
    private const ulong CopiedFlag = 1UL << 63;
    private const int RefcountBytes = 2; // refcount order 4, QEMU's default
    private const int DefaultMetadataBatch = 4 << 20;

    private readonly SafeFileHandle _handle;
    private readonly long _size;
    private readonly int _clusterSize;
    private readonly int _clusterBits;
    private readonly int _l2Entries;
    private readonly ulong[]?[] _l2Tables;
    private readonly Lock _allocation = new();
    private readonly int _metadataBatch;
    private long _nextHostOffset;

    private Qcow2ConvertTarget(SafeFileHandle handle, long size, int clusterSize, int metadataBatch)
    {
        _metadataBatch = Math.Max(metadataBatch, clusterSize);
        _handle = handle;
        _size = RoundUpToSector(size);
        _clusterSize = clusterSize;
        _clusterBits = BitOperations.Log2((uint)clusterSize);
        _l2Entries = clusterSize / 8;
        var l1Size = DivideRoundingUp(DivideRoundingUp(_size, clusterSize), _l2Entries);
        _l2Tables = new ulong[]?[l1Size];
        _nextHostOffset = clusterSize; // cluster 0 is the header
    }

    /// <summary>Creates (or truncates) <paramref name="path"/> for a qcow2 image of <paramref name="size"/> bytes (rounded up to 512).</summary>
    /// <exception cref="ImageToolException">The cluster size is not a power of two between 512 and 2 MiB, or the image is too large.</exception>
    /// <param name="path">The output file.</param>
    /// <param name="size">The virtual size.</param>
    /// <param name="clusterSize">The cluster size.</param>
    /// <param name="metadataBatch">How many bytes of metadata are written per request at the end (tests make it small).</param>
    public static Qcow2ConvertTarget Create(string path, long size, int clusterSize, int metadataBatch = DefaultMetadataBatch)
    {
        ArgumentNullException.ThrowIfNull(path);
        Qcow2CreateValidation.ValidateClusterSize(clusterSize);
        var l1Size = DivideRoundingUp(DivideRoundingUp(RoundUpToSector(size), clusterSize), clusterSize / 8);
        if (l1Size * 8 > Qcow2Header.MaxL1Bytes)
        {
            throw new ImageToolException($"Image size {size} is too large for cluster size {clusterSize}");
        }

        return new Qcow2ConvertTarget(OutputFile.CreateTruncated(path, FileAccess.ReadWrite), size, clusterSize, metadataBatch);
    }

    /// <inheritdoc />
    public override int Granularity => _clusterSize;

    /// <inheritdoc />
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        if (offset % _clusterSize != 0 || offset < 0 || offset + data.Length > _size
            || (data.Length % _clusterSize != 0 && offset + data.Length <= (_size - 1) / _clusterSize * _clusterSize))
        {
            throw new ArgumentException($"Unaligned qcow2 output write at {offset}+{data.Length}.", nameof(offset));
        }

        var host = Allocate(offset, data.Length);
        await RandomAccess.WriteAsync(_handle, data, host, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Appends host clusters for a guest range and maps them (writes may run concurrently).</summary>
    private long Allocate(long offset, int length)
    {
        var clusters = (int)DivideRoundingUp(length, _clusterSize);
        var guestCluster = offset >> _clusterBits;
        lock (_allocation)
        {
            var host = _nextHostOffset;
            for (var i = 0; i < clusters; i++, guestCluster++)
            {
                var table = _l2Tables[guestCluster / _l2Entries] ??= new ulong[_l2Entries];
                ref var entry = ref table[guestCluster % _l2Entries];
                if (entry != 0)
                {
                    throw new InvalidOperationException($"Guest cluster at {guestCluster << _clusterBits} written twice.");
                }

                entry = (ulong)(host + ((long)i << _clusterBits)) | CopiedFlag;
            }

            _nextHostOffset += (long)clusters << _clusterBits;
            return host;
        }
    }

    /// <inheritdoc />
    public override async ValueTask CompleteAsync(CancellationToken cancellationToken = default)
    {
        var dataClusters = _nextHostOffset >> _clusterBits;
        var l2Count = _l2Tables.Count(t => t is not null);
        var l1Clusters = DivideRoundingUp(_l2Tables.Length * 8L, _clusterSize);

        // Refcount blocks and table cover every cluster, themselves included: iterate to the fixed point.
        var refcountsPerBlock = _clusterSize / RefcountBytes;
        long blocks = 0, tableClusters = 0;
        while (true)
        {
            var total = dataClusters + l2Count + l1Clusters + blocks + tableClusters;
            var needBlocks = DivideRoundingUp(total, refcountsPerBlock);
            var needTable = DivideRoundingUp(needBlocks * 8, _clusterSize);
            if (needBlocks == blocks && needTable == tableClusters)
            {
                break;
            }

            blocks = needBlocks;
            tableClusters = needTable;
        }

        if (tableClusters * _clusterSize > Qcow2Header.MaxRefcountTableBytes)
        {
            throw new ImageToolException(
                $"The output needs a {tableClusters * _clusterSize}-byte refcount table, more than QEMU accepts ({Qcow2Header.MaxRefcountTableBytes}); use a larger cluster_size");
        }

        var l2Start = dataClusters;
        var l1Start = l2Start + l2Count;
        var blocksStart = l1Start + l1Clusters;
        var tableStart = blocksStart + blocks;
        var totalClusters = tableStart + tableClusters;

        // L2 tables in L1 order, then the L1 table pointing at them, the refcount blocks (refcount 1 for clusters
        // 0 .. totalClusters-1) and the refcount table; each region is streamed through one reused buffer.
        var tables = _l2Tables.Where(t => t is not null).Select(t => t!).ToArray();
        var l1Bytes = new byte[checked((int)(l1Clusters * _clusterSize))];
        for (int i = 0, k = 0; i < _l2Tables.Length; i++)
        {
            if (_l2Tables[i] is not null)
            {
                BinaryPrimitives.WriteUInt64BigEndian(l1Bytes.AsSpan(i * 8), ((ulong)(l2Start + k++) << _clusterBits) | CopiedFlag);
            }
        }

        var buffer = new byte[_metadataBatch];
        await WriteRegionAsync(buffer, l2Start, l2Count, (span, first) =>
        {
            for (var t = 0; t < span.Length / _clusterSize; t++)
            {
                var table = tables[first + t];
                var dest = span.Slice(t * _clusterSize, _clusterSize);
                for (var j = 0; j < table.Length; j++)
                {
                    BinaryPrimitives.WriteUInt64BigEndian(dest[(j * 8)..], table[j]);
                }
            }
        }, cancellationToken).ConfigureAwait(false);
        await RandomAccess.WriteAsync(_handle, l1Bytes, l1Start << _clusterBits, cancellationToken).ConfigureAwait(false);
        await WriteRegionAsync(buffer, blocksStart, blocks, (span, first) =>
        {
            var firstEntry = first * refcountsPerBlock;
            for (var e = 0; e < span.Length / RefcountBytes && firstEntry + e < totalClusters; e++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(span[(e * RefcountBytes)..], 1);
            }
        }, cancellationToken).ConfigureAwait(false);
        await WriteRegionAsync(buffer, tableStart, tableClusters, (span, first) =>
        {
            var firstBlock = first * (_clusterSize / 8);
            for (var e = 0; e < span.Length / 8 && firstBlock + e < blocks; e++)
            {
                BinaryPrimitives.WriteUInt64BigEndian(span[(e * 8)..], (ulong)(blocksStart + firstBlock + e) << _clusterBits);
            }
        }, cancellationToken).ConfigureAwait(false);
        RandomAccess.SetLength(_handle, totalClusters << _clusterBits);

        var header = SerializeHeader(l1Clusters == 0 ? 0 : l1Start << _clusterBits, tableStart << _clusterBits, (int)tableClusters);
        await RandomAccess.WriteAsync(_handle, header, 0, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes <paramref name="clusters"/> clusters from cluster <paramref name="startCluster"/> on, batch by batch:
    /// <paramref name="fill"/> gets a zeroed span of whole clusters and the index (within the region) of its first cluster.
    /// </summary>
    private async ValueTask WriteRegionAsync(byte[] buffer, long startCluster, long clusters, FillRegion fill, CancellationToken cancellationToken)
    {
        var perBatch = buffer.Length / _clusterSize;
        for (long first = 0; first < clusters; first += perBatch)
        {
            var count = (int)Math.Min(perBatch, clusters - first);
            var span = buffer.AsSpan(0, count * _clusterSize);
            span.Clear();
            fill(span, first);
            await RandomAccess.WriteAsync(_handle, buffer.AsMemory(0, count * _clusterSize), (startCluster + first) << _clusterBits, cancellationToken)
                .ConfigureAwait(false);
        }
    }

    private delegate void FillRegion(Span<byte> clusters, long firstCluster);

    /// <summary>Cluster 0 as QEMU writes it (version 3, refcount order 4, feature name table), via the qcow2 driver's header code.</summary>
    private byte[] SerializeHeader(long l1Offset, long refcountTableOffset, int refcountTableClusters)
    {
        var header = Qcow2Header.CreateV3(_clusterBits);
        header.Size = _size;
        header.L1Size = _l2Tables.Length;
        header.L1TableOffset = l1Offset;
        header.RefcountTableOffset = refcountTableOffset;
        header.RefcountTableClusters = refcountTableClusters;
        return header.Serialize();
    }

    /// <summary>qcow2 sizes are whole 512-byte sectors; qemu-img rounds up.</summary>
    private static long RoundUpToSector(long size) => DivideRoundingUp(size, 512) * 512;

    private static long DivideRoundingUp(long value, long divisor) => (value + divisor - 1) / divisor;

    /// <inheritdoc />
    public override ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
