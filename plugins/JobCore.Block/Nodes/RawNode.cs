namespace JobCore.Block.Nodes;

/// <summary>
/// The <c>raw</c> format driver: the guest sees the bytes of its <see cref="File"/> child one to one. Every extent is
/// allocated at this layer (a raw image has no backing); holes of the file read as zeroes.
/// </summary>
public sealed class RawNode : BlockNode
{
    private readonly BlockNode _file;

    private RawNode(string nodeName, BlockNode file, bool readOnly)
        : base(nodeName, readOnly)
    {
        _file = file;
    }

    /// <inheritdoc />
    public override string DriverName => "raw";

    /// <inheritdoc />
    public override long Size => _file.Size;

    /// <inheritdoc />
    public override BlockNode? File => _file;

    /// <summary>Opens a raw format node over <paramref name="file"/>.</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="file">The protocol node holding the bytes (not disposed by this node).</param>
    /// <param name="readOnly">Refuse writes.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The node.</returns>
    public static ValueTask<RawNode> OpenAsync(string nodeName, BlockNode file, bool readOnly, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        cancellationToken.ThrowIfCancellationRequested();
        if (!readOnly && file.ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EPERM, $"Cannot open raw node '{nodeName}' read/write: its file node '{file.NodeName}' is read-only");
        }

        return ValueTask.FromResult(new RawNode(nodeName, file, readOnly));
    }

    /// <inheritdoc />
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, buffer.Length);
        return _file.ReadAsync(offset, buffer, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, data.Length);
        return WritesAsZeroes(data, out bool mayUnmap)
            ? WriteZeroesAsync(offset, data.Length, mayUnmap, cancellationToken)
            : _file.WriteAsync(offset, data, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, length);
        return _file.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, length);
        return _file.DiscardAsync(offset, length, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask FlushAsync(CancellationToken cancellationToken = default) => _file.FlushAsync(cancellationToken);

    /// <summary>Holes of the file are reported as zero, the rest as data; both are allocated in this layer.</summary>
    /// <inheritdoc />
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        BlockStatus s = await _file.GetBlockStatusAsync(offset, length, cancellationToken).ConfigureAwait(false);
        return s with { Allocated = true };
    }

    /// <summary>Does not dispose the file node (the graph owns it).</summary>
    /// <inheritdoc />
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset + length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Request {offset}+{length} lies beyond the end of raw node '{NodeName}' ({Size} bytes).");
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
}
