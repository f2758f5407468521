using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Graph;

/// <summary>
/// A copy-on-write test node in memory: 512-byte clusters, each unallocated (reads fall through to
/// <see cref="Backing"/>, or zeroes), allocated data, or allocated zero. Counts requests; an optional gate holds writes.
/// </summary>
internal sealed class MemoryNode : BlockNode
{
    public const int Cluster = 512;
    private readonly byte[] _data;
    private readonly byte[] _state; // 0 = unallocated, 1 = data, 2 = zero
    private BlockNode? _backing;

    public MemoryNode(string name, long size, BlockNode? backing = null, bool readOnly = false)
        : base(name, readOnly)
    {
        _data = new byte[size];
        _state = new byte[(size + Cluster - 1) / Cluster];
        _backing = backing;
    }

    public override string DriverName => "memory";

    public override long Size => _data.Length;

    public override BlockNode? Backing => _backing;

    public int Reads;
    public int Writes;
    public int Flushes;

    /// <summary>When set, writes wait for it before landing.</summary>
    public Task? WriteGate { get; set; }

    /// <summary>When set, writes throw it.</summary>
    public Exception? WriteError { get; set; }

    public void SetBacking(BlockNode? backing) => _backing = backing;

    /// <summary>Fills [offset, offset+length) with <paramref name="value"/> and allocates it.</summary>
    public void Fill(long offset, int length, byte value)
    {
        Array.Fill(_data, value, (int)offset, length);
        SetState(offset, length, 1);
    }

    public bool IsAllocated(long offset) => _state[offset / Cluster] != 0;

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref Reads);
        CheckRange(offset, buffer.Length);
        for (int done = 0; done < buffer.Length;)
        {
            long at = offset + done;
            int n = (int)Math.Min(buffer.Length - done, Cluster - (at % Cluster));
            Memory<byte> part = buffer.Slice(done, n);
            switch (_state[at / Cluster])
            {
                case 1:
                    _data.AsMemory((int)at, n).CopyTo(part);
                    break;
                case 2:
                    part.Span.Clear();
                    break;
                default:
                    if (_backing is { } backing && at < backing.Size)
                    {
                        int inBacking = (int)Math.Min(n, backing.Size - at);
                        await backing.ReadAsync(at, part[..inBacking], cancellationToken);
                        part[inBacking..].Span.Clear();
                    }
                    else
                    {
                        part.Span.Clear();
                    }

                    break;
            }

            done += n;
        }
    }

    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref Writes);
        CheckWritable(offset, data.Length);
        if (WriteGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken);
        }

        if (WriteError is { } error)
        {
            throw error;
        }

        if (offset % Cluster != 0 || data.Length % Cluster != 0)
        {
            // Copy-on-write of partial clusters: materialise what the guest saw first.
            long start = offset / Cluster * Cluster;
            long end = Math.Min(Size, (offset + data.Length + Cluster - 1) / Cluster * Cluster);
            var merged = new byte[end - start];
            await ReadAsync(start, merged, cancellationToken);
            data.CopyTo(merged.AsMemory((int)(offset - start)));
            merged.CopyTo(_data, start);
            SetState(start, merged.Length, 1);
            return;
        }

        data.CopyTo(_data.AsMemory((int)offset));
        SetState(offset, data.Length, 1);
    }

    public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        CheckWritable(offset, length);
        Array.Clear(_data, (int)offset, (int)length);
        SetState(offset, length, 2);
        return ValueTask.CompletedTask;
    }

    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable(offset, length);
        SetState(offset, length, 0);
        return ValueTask.CompletedTask;
    }

    public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref Flushes);
        return ValueTask.CompletedTask;
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        byte state = _state[offset / Cluster];
        long end = Math.Min(offset + length, Size);
        long at = (offset / Cluster + 1) * Cluster;
        while (at < end && _state[at / Cluster] == state)
        {
            at += Cluster;
        }

        long extent = Math.Min(at, end) - offset;
        return ValueTask.FromResult(new BlockStatus(offset, extent, state != 0, state == 2, state == 1));
    }

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void SetState(long offset, long length, byte value)
    {
        for (long c = offset / Cluster; c * Cluster < offset + length; c++)
        {
            _state[c] = value;
        }
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Size)
        {
            throw new BlockIOException(BlockIOException.EINVAL);
        }
    }

    private void CheckWritable(long offset, long length)
    {
        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EROFS);
        }

        CheckRange(offset, length);
    }
}
