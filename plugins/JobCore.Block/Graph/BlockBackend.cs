using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// A user of a node from outside the graph (QEMU's <c>BlockBackend</c>: a guest device, or a test's writer):
/// requests go to the node it is attached to now, so inserting a filter above that node or replacing the node
/// (mirror pivot, active commit) redirects them without the user noticing. Create with
/// <see cref="BlockGraph.AttachBackend"/>.
/// </summary>
public sealed class BlockBackend
{
    private BlockNode _node;

    internal BlockBackend(string name, BlockNode node)
    {
        Name = name;
        _node = node;
    }

    /// <summary>The backend's name (QEMU's device id).</summary>
    public string Name { get; }

    /// <summary>The node requests go to now.</summary>
    public BlockNode Node => Volatile.Read(ref _node);

    /// <summary>The guest-visible size.</summary>
    public long Size => Node.Size;

    /// <summary>Reads through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="buffer">Receives the data.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Node.ReadAsync(offset, buffer, cancellationToken);

    /// <summary>Writes through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="data">The data.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        Node.WriteAsync(offset, data, cancellationToken);

    /// <summary>Writes zeroes through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="mayUnmap">Whether deallocation is allowed.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default) =>
        Node.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken);

    /// <summary>Discards through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        Node.DiscardAsync(offset, length, cancellationToken);

    /// <summary>Flushes the current node.</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => Node.FlushAsync(cancellationToken);

    internal void Retarget(BlockNode node) => Volatile.Write(ref _node, node);
}
