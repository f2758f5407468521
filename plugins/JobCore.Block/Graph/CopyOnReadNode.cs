using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// QEMU's <c>copy-on-read</c> filter as block-stream uses it: every read through it first copies the data that the
/// child shows from its backing chain (above <see cref="Base"/>) into the child, and <see cref="PrefetchAsync"/>
/// does only that (stream's prefetch). Writes through the filter and copies never overlap in time, so a copy can
/// not overwrite newer data; route the child's other writers through the filter (insert it with
/// <see cref="BlockGraph.InsertFilterAsync"/>).
/// </summary>
public sealed class CopyOnReadNode : FilterNode
{
    private readonly RangeLock _ranges = new();

    /// <summary>Creates the filter over <paramref name="child"/>.</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="child">The node receiving the copies (writable).</param>
    /// <param name="base">The first backing layer whose data is not copied, or <see langword="null"/> for the whole chain.</param>
    public CopyOnReadNode(string nodeName, BlockNode child, BlockNode? @base)
        : base(nodeName, child, readOnly: false)
    {
        Base = @base;
    }

    /// <inheritdoc />
    public override string DriverName => "copy-on-read";

    /// <summary>The first backing layer whose data is not copied (<see langword="null"/> = copy from the whole chain).</summary>
    public BlockNode? Base { get; }

    /// <summary>Copies what the range shows from below the child (above <see cref="Base"/>) into the child.</summary>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="cancellationToken">Cancels between requests.</param>
    /// <returns>The bytes copied.</returns>
    /// <exception cref="BlockIOException">A read or write failed.</exception>
    public async ValueTask<long> PrefetchAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        using IDisposable range = await _ranges.AcquireAsync(offset, length, exclusive: true, cancellationToken).ConfigureAwait(false);
        return await BackingChain.CopyOnReadAsync(Child, Base, offset, length, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using IDisposable range = await _ranges.AcquireAsync(offset, buffer.Length, exclusive: true, cancellationToken).ConfigureAwait(false);
        await BackingChain.CopyOnReadAsync(Child, Base, offset, buffer.Length, cancellationToken).ConfigureAwait(false);
        await Child.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        using IDisposable range = await _ranges.AcquireAsync(offset, data.Length, exclusive: false, cancellationToken).ConfigureAwait(false);
        await base.WriteAsync(offset, data, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        using IDisposable range = await _ranges.AcquireAsync(offset, length, exclusive: false, cancellationToken).ConfigureAwait(false);
        await base.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        using IDisposable range = await _ranges.AcquireAsync(offset, length, exclusive: false, cancellationToken).ConfigureAwait(false);
        await base.DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
    }
}
