namespace JobCore.Block.Nodes;

/// <summary>
/// A node of the block graph: a driver instance (file, raw, qcow2, blkdebug, ...) with a node name and
/// asynchronous, offset-addressed I/O. Offsets and lengths are in bytes. Drivers derive from this class;
/// callers use only the public members.
/// </summary>
public abstract class BlockNode : IAsyncDisposable
{
    /// <summary>Creates a node.</summary>
    /// <param name="nodeName">The node name (QEMU's <c>node-name</c>); unique within a graph.</param>
    /// <param name="readOnly">Whether writes are refused.</param>
    protected BlockNode(string nodeName, bool readOnly)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        NodeName = nodeName;
        ReadOnly = readOnly;
    }

    /// <summary>The node name.</summary>
    public string NodeName { get; }

    /// <summary>The driver name as QEMU spells it: <c>file</c>, <c>raw</c>, <c>qcow2</c>, <c>blkdebug</c>.</summary>
    public abstract string DriverName { get; }

    /// <summary>Whether this node refuses writes.</summary>
    public bool ReadOnly { get; protected set; }

    /// <summary>
    /// QEMU's <c>detect-zeroes</c> for writes into this node (set by the graph from <c>blockdev-add</c>): all-zero data
    /// is written as write-zeroes, which formats store without data clusters.
    /// </summary>
    public DetectZeroes DetectZeroes { get; internal set; }

    /// <summary>The virtual size in bytes (what a guest sees).</summary>
    public abstract long Size { get; }

    /// <summary>The protocol/format child this node stores its data in (for raw/qcow2: the file node), if any.</summary>
    public virtual BlockNode? File => null;

    /// <summary>The backing node (for formats with a backing chain), if any.</summary>
    public virtual BlockNode? Backing => null;

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; reads past <see cref="Size"/> are an error.</summary>
    public abstract ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public abstract ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>
    /// For drivers, first thing in <see cref="WriteAsync"/>: whether <see cref="DetectZeroes"/> turns this write into
    /// <see cref="WriteZeroesAsync"/> (all-zero data and detection on), and whether that may deallocate.
    /// </summary>
    /// <param name="data">The data to be written.</param>
    /// <param name="mayUnmap">Whether the write-zeroes may deallocate (<see cref="DetectZeroes.Unmap"/>).</param>
    protected bool WritesAsZeroes(ReadOnlyMemory<byte> data, out bool mayUnmap)
    {
        mayUnmap = DetectZeroes == DetectZeroes.Unmap;
        return DetectZeroes != DetectZeroes.Off && !data.Span.ContainsAnyExcept((byte)0);
    }

    /// <summary>Makes a range read as zeroes; <paramref name="mayUnmap"/> allows deallocation.</summary>
    public abstract ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default);

    /// <summary>Hints that a range is no longer needed; afterwards it reads as zeroes or backing data, per driver.</summary>
    public abstract ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>Makes every acknowledged write stable on the host.</summary>
    public abstract ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Describes the allocation of the range starting at <paramref name="offset"/> in this node only (not its backing):
    /// the returned extent starts at <paramref name="offset"/> and covers at most <paramref name="length"/> bytes that
    /// share one status.
    /// </summary>
    public abstract ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <inheritdoc />
    public abstract ValueTask DisposeAsync();

    /// <inheritdoc />
    public override string ToString() => $"{DriverName} node '{NodeName}'";
}

/// <summary>The allocation status of an extent of a node.</summary>
/// <param name="Offset">Start of the extent in bytes.</param>
/// <param name="Length">Length of the extent in bytes (&gt; 0).</param>
/// <param name="Allocated">The extent is allocated in this node (reads do not fall through to the backing node).</param>
/// <param name="Zero">The extent reads as zeroes.</param>
/// <param name="Data">The extent has data stored (as opposed to a zero or unallocated extent).</param>
public readonly record struct BlockStatus(long Offset, long Length, bool Allocated, bool Zero, bool Data)
{
    /// <summary>
    /// Where the extent starts in the node's file child, when the driver maps it there one to one (QEMU's
    /// <c>BDRV_BLOCK_OFFSET_VALID</c>: qcow2 normal and preallocated zero clusters); <see langword="null"/> otherwise.
    /// </summary>
    public long? HostOffset { get; init; }
}
