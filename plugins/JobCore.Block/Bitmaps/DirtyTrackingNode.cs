using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Bitmaps;

/// <summary>The kind of a write that passed a <see cref="DirtyTrackingNode"/>.</summary>
public enum GuestWriteKind
{
    /// <summary>Data written.</summary>
    Write,

    /// <summary>A range made to read as zeroes.</summary>
    WriteZeroes,

    /// <summary>A range discarded.</summary>
    Discard,
}

/// <summary>A completed write through a <see cref="DirtyTrackingNode"/>, handed to its <see cref="DirtyTrackingNode.AfterWrite"/> hook.</summary>
/// <param name="Kind">What kind of write.</param>
/// <param name="Offset">Start in bytes.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="Data">For <see cref="GuestWriteKind.Write"/>: a private copy of the data written (the writer cannot change it); else empty.</param>
/// <param name="MayUnmap">For <see cref="GuestWriteKind.WriteZeroes"/>: whether the writer allowed deallocation.</param>
public readonly record struct GuestWrite(GuestWriteKind Kind, long Offset, long Length, ReadOnlyMemory<byte> Data, bool MayUnmap);

/// <summary>
/// A filter that notices writes (QEMU's <c>mirror_top</c> role): mirror inserts it above its source so every write
/// from the source's users passes through it. Each write, write-zeroes or discard marks every attached
/// <see cref="DirtyBitmap"/> (also when the write fails, since part of it may have landed), then — only on
/// success — awaits <see cref="AfterWrite"/>, which write-blocking mirror uses to copy the data to the target before
/// the writer's request completes. <see cref="DrainAsync"/> holds new writes back and waits for those in flight.
/// </summary>
public sealed class DirtyTrackingNode : FilterNode
{
    private readonly Lock _lock = new();
    private DirtyBitmap[] _bitmaps = [];
    private int _inFlight;
    private int _drainers;
    private TaskCompletionSource? _idle;
    private TaskCompletionSource _resume = NewSignal(completed: true);

    /// <summary>Creates the filter over <paramref name="child"/>.</summary>
    /// <param name="nodeName">The node name (QEMU names mirror's filter after the job, or <c>#blockNNN</c>).</param>
    /// <param name="child">The tracked node.</param>
    public DirtyTrackingNode(string nodeName, BlockNode child)
        : base(nodeName, child, readOnly: false)
    {
    }

    /// <summary>QEMU's driver name of mirror's filter.</summary>
    public override string DriverName => "mirror_top";

    /// <summary>
    /// Called after each successful write (and before the writer's request completes); an exception it throws fails
    /// the writer's request. <see langword="null"/> = no hook.
    /// </summary>
    public Func<GuestWrite, CancellationToken, ValueTask>? AfterWrite { get; set; }

    /// <summary>Writes that entered and have not completed yet.</summary>
    public int WritesInFlight
    {
        get { lock (_lock) { return _inFlight; } }
    }

    /// <summary>Starts marking <paramref name="bitmap"/> on every write.</summary>
    /// <param name="bitmap">The bitmap (its size should be the child's size).</param>
    public void AttachBitmap(DirtyBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        lock (_lock)
        {
            _bitmaps = [.. _bitmaps, bitmap];
        }
    }

    /// <summary>Stops marking <paramref name="bitmap"/>.</summary>
    /// <param name="bitmap">A bitmap attached before.</param>
    /// <returns>Whether it was attached.</returns>
    public bool DetachBitmap(DirtyBitmap bitmap)
    {
        lock (_lock)
        {
            int index = Array.IndexOf(_bitmaps, bitmap);
            if (index < 0)
            {
                return false;
            }

            _bitmaps = [.. _bitmaps.Where((_, i) => i != index)];
            return true;
        }
    }

    /// <summary>
    /// Holds new writes back and completes when none is in flight; the writes resume when the returned scope is
    /// disposed (every scope must be disposed; drains nest).
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait (the hold is then released).</param>
    public async ValueTask<IAsyncDisposable> DrainAsync(CancellationToken cancellationToken = default)
    {
        Task idle;
        lock (_lock)
        {
            if (_drainers++ == 0)
            {
                _resume = NewSignal(completed: false);
            }

            _idle ??= NewSignal(completed: false);
            if (_inFlight == 0)
            {
                _idle.TrySetResult();
            }

            idle = _idle.Task;
        }

        var scope = new DrainScope(this);
        try
        {
            await idle.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await scope.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return scope;
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Bounce the data when a hook sees it, so the writer cannot change it between the two writes.
            bool hooked = AfterWrite is not null;
            ReadOnlyMemory<byte> stable = hooked ? data.ToArray() : data;
            try
            {
                await Child.WriteAsync(offset, stable, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Mark(offset, data.Length);
            }

            await NotifyAsync(new GuestWrite(GuestWriteKind.Write, offset, data.Length, stable, false), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            try
            {
                await Child.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Mark(offset, length);
            }

            await NotifyAsync(new GuestWrite(GuestWriteKind.WriteZeroes, offset, length, default, mayUnmap), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc />
    public override async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            try
            {
                await Child.DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Mark(offset, length);
            }

            await NotifyAsync(new GuestWrite(GuestWriteKind.Discard, offset, length, default, false), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit();
        }
    }

    private static TaskCompletionSource NewSignal(bool completed)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            signal.SetResult();
        }

        return signal;
    }

    private ValueTask NotifyAsync(GuestWrite write, CancellationToken cancellationToken) =>
        AfterWrite is { } hook ? hook(write, cancellationToken) : ValueTask.CompletedTask;

    private void Mark(long offset, long length)
    {
        DirtyBitmap[] bitmaps;
        lock (_lock)
        {
            bitmaps = _bitmaps;
        }

        foreach (DirtyBitmap bitmap in bitmaps)
        {
            bitmap.SetDirty(offset, length);
        }
    }

    private async ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task resume;
            lock (_lock)
            {
                if (_drainers == 0)
                {
                    _inFlight++;
                    return;
                }

                resume = _resume.Task;
            }

            await resume.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Exit()
    {
        lock (_lock)
        {
            if (--_inFlight == 0 && _drainers > 0)
            {
                _idle?.TrySetResult();
            }
        }
    }

    private void EndDrain()
    {
        lock (_lock)
        {
            if (--_drainers == 0)
            {
                _idle = null;
                _resume.TrySetResult();
            }
        }
    }

    private sealed class DrainScope(DirtyTrackingNode node) : IAsyncDisposable
    {
        private int _disposed;

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                node.EndDrain();
            }

            return ValueTask.CompletedTask;
        }
    }
}
