using Microsoft.Win32.SafeHandles;

namespace JobCore.Block.Tools;

/// <summary>
/// A raw output of <see cref="ImageConvert"/>: the file is created (or truncated) and sized sparsely, so only
/// non-zero data is written. A device (e.g. <c>/dev/null</c>) is written in full, zeroes included.
/// </summary>
internal sealed class RawConvertTarget : ConvertTarget
{
    private readonly SafeFileHandle _handle;
    private readonly bool _regular;

    private RawConvertTarget(SafeFileHandle handle, bool regular)
    {
        _handle = handle;
        _regular = regular;
    }

    /// <summary>Creates <paramref name="path"/> as a raw image of <paramref name="size"/> bytes.</summary>
    public static RawConvertTarget Create(string path, long size)
    {
        ArgumentNullException.ThrowIfNull(path);
        var regular = !File.Exists(path) || HostFileStat.Of(path).IsRegularFile;
        var handle = regular
            ? OutputFile.CreateTruncated(path, FileAccess.Write)
            : File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.Read);
        try
        {
            if (regular)
            {
                RandomAccess.SetLength(handle, size);
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        return new RawConvertTarget(handle, regular);
    }

    /// <inheritdoc />
    public override int Granularity => 4096;

    /// <inheritdoc />
    public override bool ZeroInitialized => _regular;

    /// <inheritdoc />
    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        RandomAccess.WriteAsync(_handle, data, offset, cancellationToken);

    /// <inheritdoc />
    public override ValueTask CompleteAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public override ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
