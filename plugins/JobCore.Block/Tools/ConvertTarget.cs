namespace JobCore.Block.Tools;

/// <summary>
/// Where <see cref="ImageConvert"/> writes: a freshly created image that reads as zeroes until written. The
/// converter writes only non-zero runs, in increasing offset order, aligned to <see cref="Granularity"/>.
/// </summary>
internal abstract class ConvertTarget : IAsyncDisposable
{
    /// <summary>The unit of zero detection and write alignment (a power of two, at most 2 MiB).</summary>
    public abstract int Granularity { get; }

    /// <summary>Whether ranges not written read as zeroes (false for devices: zeroes must then be written too).</summary>
    public virtual bool ZeroInitialized => true;

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (aligned to <see cref="Granularity"/>; the length too, except at the image end).</summary>
    public abstract ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>Finishes the image (metadata, header) after the last write.</summary>
    public abstract ValueTask CompleteAsync(CancellationToken cancellationToken = default);

    /// <inheritdoc />
    public abstract ValueTask DisposeAsync();
}
