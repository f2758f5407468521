using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// A user of a node from outside the graph (QEMU's <c>BlockBackend</c>: a guest device, or a test's writer):
/// requests go to the node it is attached to now, so inserting a filter above that node or replacing the node
/// (mirror pivot, active commit) redirects them without the user noticing. The graph drains the backend around each
/// such change (new requests wait, those in flight finish first), so no request runs half on the old node and half
/// on the new one. Create with <see cref="BlockGraph.AttachBackend"/>.
/// </summary>
public sealed class BlockBackend
{
    private readonly RequestGate _gate = new();
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
        AdmitAsync(static (node, r, ct) => node.ReadAsync(r.offset, r.buffer, ct), (offset, buffer), cancellationToken);

    /// <summary>Writes through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="data">The data.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        AdmitAsync(static (node, r, ct) => node.WriteAsync(r.offset, r.data, ct), (offset, data), cancellationToken);

    /// <summary>Writes zeroes through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="mayUnmap">Whether deallocation is allowed.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default) =>
        AdmitAsync(static (node, r, ct) => node.WriteZeroesAsync(r.offset, r.length, r.mayUnmap, ct), (offset, length, mayUnmap), cancellationToken);

    /// <summary>Discards through the current node.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        AdmitAsync(static (node, r, ct) => node.DiscardAsync(r.offset, r.length, ct), (offset, length), cancellationToken);

    /// <summary>Flushes the current node.</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        AdmitAsync(static (node, _, ct) => node.FlushAsync(ct), 0, cancellationToken);

    /// <summary>The backend's admission of requests, drained by the graph around rewiring.</summary>
    internal RequestGate Gate => _gate;

    internal void Retarget(BlockNode node) => Volatile.Write(ref _node, node);

    // Every request: admitted by the gate (waits while the graph drains the backend), sent to the node current then.
    private async ValueTask AdmitAsync<TState>(
        Func<BlockNode, TState, CancellationToken, ValueTask> request, TState state, CancellationToken cancellationToken)
    {
        await _gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await request(Node, state, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Exit();
        }
    }
}
