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

/// <summary>A write passing a <see cref="DirtyTrackingNode"/>, as its <see cref="DirtyTrackingNode.Interceptor"/> sees it.</summary>
/// <param name="Kind">What kind of write.</param>
/// <param name="Offset">Start in bytes.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="Data">For <see cref="GuestWriteKind.Write"/>: a private copy of the data written (the writer cannot change it); else empty.</param>
/// <param name="MayUnmap">For <see cref="GuestWriteKind.WriteZeroes"/>: whether the writer allowed deallocation.</param>
/// <param name="Ordered">
/// Whether every write in flight beside this one passed the interceptor too, so the interceptor could order them.
/// False for a write that started while writes from before the interceptor was installed were still running: one of
/// those may land after this one, so an interceptor must not treat the range as clean afterwards.
/// </param>
public readonly record struct GuestWrite(GuestWriteKind Kind, long Offset, long Length, ReadOnlyMemory<byte> Data, bool MayUnmap, bool Ordered = true);

/// <summary>
/// Takes a write that entered a <see cref="DirtyTrackingNode"/> and must call <paramref name="writeToChild"/> exactly
/// once (it writes the child and marks the bitmaps, also when it throws); the writer's request completes when the
/// returned task does. Write-blocking mirror serializes overlapping writes around the child write and copies the data
/// to its target before returning.
/// </summary>
/// <param name="write">The write (for <see cref="GuestWriteKind.Write"/> with a private copy of the data).</param>
/// <param name="writeToChild">Performs the write on the child; its exception is the write's failure.</param>
/// <param name="cancellationToken">The writer's token.</param>
public delegate ValueTask GuestWriteInterceptor(GuestWrite write, Func<ValueTask> writeToChild, CancellationToken cancellationToken);

/// <summary>
/// A filter that notices writes (QEMU's <c>mirror_top</c> role): mirror inserts it above its source so every write
/// from the source's users passes through it. Each write, write-zeroes or discard marks every attached
/// <see cref="DirtyBitmap"/> (also when the write fails, since part of it may have landed). An
/// <see cref="Interceptor"/> wraps the child write: write-blocking mirror orders overlapping writes with it and copies
/// each one to the target before the writer's request completes. <see cref="DrainAsync"/> holds new writes back and
/// waits for those in flight.
/// </summary>
public sealed class DirtyTrackingNode : FilterNode
{
    private readonly Lock _lock = new();
    private readonly RequestGate _gate = new();
    private DirtyBitmap[] _bitmaps = [];
    private int _unorderedInFlight;
    private GuestWriteInterceptor? _interceptor;

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
    /// Wraps each write, write-zeroes and discard that enters from now on (see <see cref="GuestWriteInterceptor"/>);
    /// <see langword="null"/> = none (the write goes straight to the child). Writes already in flight keep the choice
    /// they entered with.
    /// </summary>
    public GuestWriteInterceptor? Interceptor
    {
        get { lock (_lock) { return _interceptor; } }
        set { lock (_lock) { _interceptor = value; } }
    }

    /// <summary>Writes that entered and have not completed yet.</summary>
    public int WritesInFlight => _gate.InFlight;

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
    public ValueTask<IAsyncDisposable> DrainAsync(CancellationToken cancellationToken = default) => _gate.DrainAsync(cancellationToken);

    /// <inheritdoc />
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        (GuestWriteInterceptor? interceptor, bool ordered) = await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (interceptor is null)
            {
                await WriteChildAsync(offset, data, cancellationToken).ConfigureAwait(false);
                return;
            }

            // Bounce the data, so the writer cannot change it between the source write and the interceptor's use.
            ReadOnlyMemory<byte> stable = data.ToArray();
            await interceptor(
                new GuestWrite(GuestWriteKind.Write, offset, data.Length, stable, false, ordered),
                () => WriteChildAsync(offset, stable, cancellationToken),
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit(interceptor is null);
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        (GuestWriteInterceptor? interceptor, bool ordered) = await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (interceptor is null)
            {
                await WriteZeroesChildAsync(offset, length, mayUnmap, cancellationToken).ConfigureAwait(false);
                return;
            }

            await interceptor(
                new GuestWrite(GuestWriteKind.WriteZeroes, offset, length, default, mayUnmap, ordered),
                () => WriteZeroesChildAsync(offset, length, mayUnmap, cancellationToken),
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit(interceptor is null);
        }
    }

    /// <inheritdoc />
    public override async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ThrowIfReadOnly();
        (GuestWriteInterceptor? interceptor, bool ordered) = await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (interceptor is null)
            {
                await DiscardChildAsync(offset, length, cancellationToken).ConfigureAwait(false);
                return;
            }

            await interceptor(
                new GuestWrite(GuestWriteKind.Discard, offset, length, default, false, ordered),
                () => DiscardChildAsync(offset, length, cancellationToken),
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit(interceptor is null);
        }
    }

    // The child write plus the marking; the mark also follows a failed write, since part of it may have landed.
    private async ValueTask WriteChildAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            await Child.WriteAsync(offset, data, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Mark(offset, data.Length);
        }
    }

    private async ValueTask WriteZeroesChildAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken)
    {
        try
        {
            await Child.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Mark(offset, length);
        }
    }

    private async ValueTask DiscardChildAsync(long offset, long length, CancellationToken cancellationToken)
    {
        try
        {
            await Child.DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Mark(offset, length);
        }
    }

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

    // Admits a write unless drained, and fixes its interceptor for the whole write. A write without one counts as
    // unordered until it exits; writes with one entering meanwhile are not Ordered. (A drain begun between the two
    // steps waits for this write, so whoever changes the interceptor under a drain sees it gone.)
    private async ValueTask<(GuestWriteInterceptor? Interceptor, bool Ordered)> EnterAsync(CancellationToken cancellationToken)
    {
        await _gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            GuestWriteInterceptor? interceptor = _interceptor;
            if (interceptor is null)
            {
                _unorderedInFlight++;
            }

            return (interceptor, _unorderedInFlight == 0);
        }
    }

    private void Exit(bool unordered)
    {
        if (unordered)
        {
            lock (_lock)
            {
                _unorderedInFlight--;
            }
        }

        _gate.Exit();
    }
}
