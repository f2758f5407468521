using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// A node that shows its one child's data unchanged (QEMU's filter drivers: blkdebug, mirror_top, ...).
/// Every request goes to <see cref="Child"/> by default; derived filters hook into the requests they care about.
/// The graph may point the filter at another child (mirror pivot, filter insertion).
/// </summary>
public abstract class FilterNode : BlockNode
{
    private BlockNode _child;

    /// <summary>Creates the filter over <paramref name="child"/>.</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="child">The filtered node.</param>
    /// <param name="readOnly">Whether writes are refused.</param>
    protected FilterNode(string nodeName, BlockNode child, bool readOnly)
        : base(nodeName, readOnly)
    {
        ArgumentNullException.ThrowIfNull(child);
        _child = child;
    }

    /// <summary>The filtered node.</summary>
    public BlockNode Child => Volatile.Read(ref _child);

    /// <summary>The filtered node (QEMU keeps a filter's child in its <c>file</c> slot).</summary>
    public override BlockNode? File => Child;

    /// <inheritdoc />
    public override long Size => Child.Size;

    /// <inheritdoc />
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Child.ReadAsync(offset, buffer, cancellationToken);

    /// <inheritdoc />
    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        return Child.WriteAsync(offset, data, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        return Child.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        return Child.DiscardAsync(offset, length, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask FlushAsync(CancellationToken cancellationToken = default) => Child.FlushAsync(cancellationToken);

    /// <inheritdoc />
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        Child.GetBlockStatusAsync(offset, length, cancellationToken);

    /// <summary>Releases nothing: the graph owns and closes the child.</summary>
    public override ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>Points the filter at another child (graph rewiring only).</summary>
    internal void SetChild(BlockNode child)
    {
        ArgumentNullException.ThrowIfNull(child);
        Volatile.Write(ref _child, child);
    }

    /// <summary>Switches the filter between read-only and read-write (graph reopen only).</summary>
    internal void SetReadOnly(bool readOnly) => ReadOnly = readOnly;

    /// <summary>Throws EROFS (QEMU's text for a write to a read-only node) when the node is read-only.</summary>
    protected void ThrowIfReadOnly()
    {
        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EROFS, $"Node '{NodeName}' is read-only");
        }
    }
}
