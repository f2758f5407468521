using JobCore.Block.Nodes;

namespace JobCore.Cli.Tests.Support;

/// <summary>
/// An in-memory node with per-cluster allocation (unallocated / zero / data) and an optional backing node, to drive
/// the image tools without files. <see cref="DriverName"/> decides whether it behaves like a format with backing
/// support (<c>qcow2</c>) or like raw.
/// </summary>
internal sealed class MemoryNode : BlockNode
{
    public const int ClusterSize = 65536;

    private readonly byte[] _data;
    private readonly Kind[] _kinds;
    private readonly string _driver;
    private BlockNode? _backing;

    public MemoryNode(string name, long size, string driver = "qcow2", BlockNode? backing = null)
        : base(name, readOnly: false)
    {
        _data = new byte[size];
        _kinds = new Kind[(size + ClusterSize - 1) / ClusterSize];
        _driver = driver;
        _backing = backing;
    }

    public enum Kind
    {
        Unallocated,
        Zero,
        Data,
    }

    public int StatusQueries { get; private set; }

    public int Reads { get; private set; }

    public override string DriverName => _driver;

    public override long Size => _data.Length;

    public override BlockNode? Backing => _backing;

    public void SetBacking(BlockNode? node) => _backing = node;

    /// <summary>Writes a pattern byte over whole clusters and marks them as data.</summary>
    public void Fill(long offset, long length, byte value)
    {
        _data.AsSpan((int)offset, (int)length).Fill(value);
        for (var c = offset / ClusterSize; c < (offset + length + ClusterSize - 1) / ClusterSize; c++)
        {
            _kinds[c] = Kind.Data;
        }
    }

    public void Mark(long offset, long length, Kind kind)
    {
        for (var c = offset / ClusterSize; c < (offset + length + ClusterSize - 1) / ClusterSize; c++)
        {
            _kinds[c] = kind;
            if (kind != Kind.Data)
            {
                _data.AsSpan((int)(c * ClusterSize), (int)Math.Min(ClusterSize, _data.Length - (c * ClusterSize))).Clear();
            }
        }
    }

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Reads++;
        var done = 0;
        while (done < buffer.Length)
        {
            var pos = offset + done;
            var c = pos / ClusterSize;
            var n = (int)Math.Min(buffer.Length - done, ((c + 1) * ClusterSize) - pos);
            var dest = buffer.Slice(done, n);
            if (_kinds[c] == Kind.Unallocated && _backing is not null)
            {
                var inBacking = (int)Math.Clamp(_backing.Size - pos, 0, n);
                if (inBacking > 0)
                {
                    await _backing.ReadAsync(pos, dest[..inBacking], cancellationToken);
                }

                dest.Span[inBacking..].Clear();
            }
            else
            {
                _data.AsSpan((int)pos, n).CopyTo(dest.Span);
            }

            done += n;
        }
    }

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException();

    public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException();

    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException();

    public override ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        StatusQueries++;
        var c = offset / ClusterSize;
        var kind = _kinds[c];
        var end = offset;
        while (end < offset + length && _kinds[end / ClusterSize] == kind)
        {
            end = Math.Min((end / ClusterSize * ClusterSize) + ClusterSize, offset + length);
        }

        return ValueTask.FromResult(new BlockStatus(offset, end - offset, kind != Kind.Unallocated, kind == Kind.Zero, kind == Kind.Data));
    }

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
