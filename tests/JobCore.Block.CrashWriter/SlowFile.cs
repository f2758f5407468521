using JobCore.Block.Nodes;

/// <summary>
/// A file node that pauses before each small (metadata-sized) write, like a slow disk: the gaps between the metadata
/// writes of one flush become wide enough that random kills land inside them, so a wrong write order shows up as
/// corruption (checked: swapping the L2 and refcount write-back makes the crash test fail).
/// </summary>
internal sealed class SlowFile(BlockNode inner) : BlockNode(inner.NodeName, inner.ReadOnly)
{
    private int _writes;

    public override string DriverName => inner.DriverName;

    public override long Size => inner.Size;

    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.ReadAsync(offset, buffer, cancellationToken);

    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        if (data.Length <= 4096 && Interlocked.Increment(ref _writes) % 2 == 0)
        {
            await Task.Delay(1, cancellationToken);
        }

        await inner.WriteAsync(offset, data, cancellationToken);
    }

    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        await inner.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken);
    }

    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        inner.DiscardAsync(offset, length, cancellationToken);

    public override ValueTask FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        inner.GetBlockStatusAsync(offset, length, cancellationToken);

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
