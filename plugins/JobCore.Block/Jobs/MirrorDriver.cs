using JobCore.Block.Bitmaps;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Jobs;

/// <summary>
/// QEMU's mirror engine (<c>block/mirror.c</c>), shared by <c>mirror</c> and active <c>commit</c>: a dirty-tracking
/// filter above the source marks every write in a bitmap; the loop copies dirty runs to the target with up to 16
/// requests in flight, reaches READY when nothing is dirty, nothing is in flight and the target is flushed, and keeps
/// copying new writes until <c>complete</c> (finish and pivot) or a soft cancel (finish without pivot).
/// </summary>
/// <typeparam name="TOptions">The job type's options.</typeparam>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable",
    Justification = "The SemaphoreSlim's wait handle is never created (WaitAsync/Release only), so it holds nothing to release.")]
internal abstract partial class MirrorDriver<TOptions> : JobDriver<TOptions>
    where TOptions : JobOptions
{
    private const int MaxInFlight = 16;
    private const long MaxIOBytes = 1 << 20;
    private static readonly TimeSpan SliceTime = TimeSpan.FromMilliseconds(100);

    private readonly BlockGraph _graph;
    private readonly MirrorPlan _plan;
    private readonly long _maxOpBytes;
    private readonly Lock _sync = new();
    private readonly RangeLock _ranges = new();

    // One copy writes into the target at a time: buffered writes into one host file serialize on its inode lock in
    // the kernel anyway, and writers waiting there spin on a CPU the reads of the other copies could use (measured on
    // 2 cores: 1 GiB mirror to READY 0.57-0.65 s with turns vs 0.80-0.89 s with 16 concurrent writers).
    private readonly SemaphoreSlim _targetTurn = new(1, 1);
    private BlockNode _target;
    private DirtyBitmap? _bitmap;
    private DirtyTrackingNode? _filter;
    private JobContext? _context;
    private CancellationToken _forceCancel;
    private int _opsInFlight;
    private long _bytesInFlight;
    private long _activeWriteBytes;
    private TaskCompletionSource _opFinished = NewSignal();
    private readonly TaskCompletionSource _setUpDone = NewSignal();
    private Exception? _error;
    private volatile bool _ready;
    private volatile bool _completeRequested;
    private volatile bool _activelySynced;
    private int _copyMode;
    private long _cursor;
    private IAsyncDisposable? _drain;
    private HostWriteback? _writeback;
    private bool _baseWasReadOnly;
    private bool _pivoted;
    private bool _cleaned;

    protected MirrorDriver(BlockGraph graph, MirrorPlan plan)
    {
        _graph = graph;
        _plan = plan;
        _target = plan.Target;
        _copyMode = (int)plan.CopyMode;
        _maxOpBytes = Math.Max(plan.BufferSize / MaxInFlight, MaxIOBytes);
    }

    /// <summary>The resolved plan (tests inspect it).</summary>
    internal MirrorPlan Plan => _plan;

    /// <summary>The current target node (an active commit's base is reopened read-write as a new object).</summary>
    internal BlockNode Target => _target;

    /// <summary>Completes once the filter is in place (or the job failed or ended before): QMP replies after it, as QEMU does.</summary>
    internal Task SetUpDone => _setUpDone.Task;

    /// <summary>The dirty-tracking filter while the job runs.</summary>
    internal DirtyTrackingNode? Filter => _filter;

    private MirrorCopyMode CopyMode => (MirrorCopyMode)Volatile.Read(ref _copyMode);

    /// <inheritdoc />
    protected override bool SupportsComplete => true;

    /// <inheritdoc />
    protected override bool SupportsChange => true;

    /// <inheritdoc />
    protected override bool HasQueryFields => !_plan.IsCommit;

    /// <inheritdoc />
    protected override void AddQueryFields(IDictionary<string, object?> fields) => fields["actively-synced"] = _activelySynced;

    /// <summary>QEMU's <c>mirror_complete</c>: only once READY; the loop then finishes and pivots.</summary>
    protected override void Complete(JobContext context)
    {
        if (!_ready)
        {
            throw new JobException($"The active block job '{context.JobId}' cannot be completed");
        }

        _completeRequested = true;
        WakeUnlessPaused(context);
    }

    /// <summary>QEMU's <c>mirror_cancel</c>: a cancel before READY, or a forced one, abandons the copy.</summary>
    protected override bool Cancel(JobContext context, bool force) => force || !context.Job.Info.Ready;

    /// <summary>
    /// <c>block-job-change</c>: the same mode is a no-op; background → write-blocking installs the write-through hook;
    /// anything else is <c>Change to copy mode '&lt;m&gt;' is not implemented</c>.
    /// </summary>
    protected override void Change(JobContext context, object changeOptions)
    {
        if (changeOptions is not MirrorChangeOptions change)
        {
            throw new JobException("Job type does not support change");
        }

        if (CopyMode == change.CopyMode)
        {
            return;
        }

        if (change.CopyMode != MirrorCopyMode.WriteBlocking)
        {
            throw new JobException($"Change to copy mode '{change.CopyMode.WireName()}' is not implemented");
        }

        int current = Interlocked.CompareExchange(ref _copyMode, (int)MirrorCopyMode.WriteBlocking, (int)MirrorCopyMode.Background);
        if (current != (int)MirrorCopyMode.Background)
        {
            throw new JobException(
                $"Expected current copy mode '{MirrorCopyMode.Background.WireName()}', got '{((MirrorCopyMode)current).WireName()}'");
        }

        lock (_sync)
        {
            if (_filter is { } filter)
            {
                filter.Interceptor = WriteThroughAsync;
            }
        }
    }

    /// <summary>Pausing waits for the copies in flight, so a paused job's progress stands still.</summary>
    protected override async ValueTask PauseAsync(JobContext context) => await WaitForAllOpsAsync().ConfigureAwait(false);

    /// <inheritdoc />
    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        _context = context;
        _forceCancel = cancellationToken;
        try
        {
            try
            {
                if (!_plan.IsCommit && _target.Size != _plan.Source.Size)
                {
                    throw new JobFailedException("Source and target image have different sizes");
                }

                if (_plan.ZeroTarget)
                {
                    // Known before any I/O (QEMU sets it before the creating command returns): the whole disk is to do.
                    context.ProgressSetRemaining(_plan.Source.Size);
                }

                await SetUpAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _setUpDone.TrySetResult();
            }

            // Start the host's write-back of copied data as the copy goes, so the flush before READY finds little left.
            _writeback = HostWriteback.For(_target);

            if (_plan.Sync != MirrorSyncMode.None)
            {
                await InitializeDirtyAsync(context, cancellationToken).ConfigureAwait(false);
            }

            await CopyLoopAsync(context, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await WaitForAllOpsAsync().ConfigureAwait(false);
            _writeback?.Dispose();
        }
    }

    /// <summary>
    /// On success: release the bitmap, set or open the target's backing per the plan, pivot when <c>complete</c> was used
    /// (the target replaces the source for every parent), remove the filter. A failure fails the job.
    /// </summary>
    protected override async ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken)
    {
        StopTracking();
        if (_plan.TargetBacking == MirrorTargetBacking.SourceChain)
        {
            BlockNode? backing = _plan.Sync switch
            {
                MirrorSyncMode.None => _plan.Source,
                MirrorSyncMode.Top => _plan.Base,
                _ => null,
            };
            if (!ReferenceEquals(BackingChain.SkipFilters(_target).Backing, backing))
            {
                await _graph.ChangeBackingAsync(_target, backing, writeHeader: false, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }

        else if (_plan.TargetBacking == MirrorTargetBacking.OpenChain && BackingChain.SkipFilters(_target) is Qcow2Node image)
        {
            await _graph.OpenBackingChainAsync(image, cancellationToken).ConfigureAwait(false);
        }

        if (_completeRequested)
        {
            BlockNode toReplace = _plan.ToReplace;
            if (_filter is { } filter && BackingChain.SkipFilters(_target) is { } image && ReferenceEquals(image.Backing, filter))
            {
                // A target backed by the source (sync=none) got the filter as backing when it was inserted; point it at
                // the source itself, or the replacement would see a loop and leave the guest on the source.
                await _graph.ChangeBackingAsync(_target, _plan.Source, writeHeader: false, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            if (toReplace.ReadOnly != _target.ReadOnly)
            {
                _target = await _graph.ReopenAsync(_target, toReplace.ReadOnly, cancellationToken).ConfigureAwait(false);
            }

            await _graph.ReplaceNodeAsync(toReplace, _target, cancellationToken).ConfigureAwait(false);
            _pivoted = true;
        }

        await TearDownAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// On failure or cancel: no backing change, no pivot; the filter goes, the source stays in place. Guest writes in
    /// flight finish first (as QEMU drains mirror_top on exit), so none writes through to the target after the job
    /// let go of it; writes arriving meanwhile wait and then go to the source alone.
    /// </summary>
    protected override async ValueTask AbortAsync(JobContext context, CancellationToken cancellationToken)
    {
        IAsyncDisposable? hold = _filter is { } filter ? await filter.DrainAsync(cancellationToken).ConfigureAwait(false) : null;
        try
        {
            StopTracking();
        }
        finally
        {
            if (hold is not null)
            {
                await hold.DisposeAsync().ConfigureAwait(false);
            }
        }

        await TearDownAsync().ConfigureAwait(false);
    }

    /// <summary>Releases the nodes; an active commit's base goes back to read-only unless it became the active layer.</summary>
    protected override async ValueTask CleanAsync(JobContext context, CancellationToken cancellationToken)
    {
        if (_cleaned)
        {
            return;
        }

        _cleaned = true;
        _setUpDone.TrySetResult();
        StopTracking();
        await TearDownAsync().ConfigureAwait(false);
        if (_baseWasReadOnly && !_pivoted)
        {
            try
            {
                _target = await _graph.ReopenAsync(_target, readOnly: true, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockGraphException)
            {
                // QEMU ignores a failed reopen here too: the base merely stays writable.
            }
        }

        await _plan.Lease.DisposeAsync().ConfigureAwait(false);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static void WakeUnlessPaused(JobContext context)
    {
        // Waking a job parked at a pause point would resume it; a paused job re-checks when it is resumed.
        if (!context.Job.Info.Paused)
        {
            context.Wake();
        }
    }

    private async ValueTask SetUpAsync(CancellationToken cancellationToken)
    {
        if (_plan.IsCommit && _target.ReadOnly)
        {
            _target = await _graph.ReopenAsync(_target, readOnly: false, cancellationToken).ConfigureAwait(false);
            _baseWasReadOnly = true;
        }

        long length = _plan.Source.Size;
        if (_plan.IsCommit)
        {
            if (_target.Size < length)
            {
                var baseImage = BackingChain.SkipFilters(_target) as Qcow2Node
                    ?? throw new JobFailedException($"Cannot grow the base '{_target.NodeName}' to the top's size");
                await baseImage.ResizeAsync(length, cancellationToken).ConfigureAwait(false);
            }
        }

        var bitmap = new DirtyBitmap(length, _plan.Granularity);
        // The bitmap is attached before the filter is wired in: the first guest write through it is already marked.
        DirtyTrackingNode filter = await _graph.InsertFilterAsync(
            _plan.Source,
            (name, child) =>
            {
                var created = new DirtyTrackingNode(name, child);
                created.AttachBitmap(bitmap);
                return created;
            },
            _plan.FilterNodeName,
            cancellationToken).ConfigureAwait(false);
        lock (_sync)
        {
            _bitmap = bitmap;
            _filter = filter;
            if (CopyMode == MirrorCopyMode.WriteBlocking)
            {
                filter.Interceptor = WriteThroughAsync;
            }
        }
    }

    // QEMU's mirror_dirty_init: a target that is not known to read zeroes (sync=full) gets every byte, zero or not
    // (QEMU 7.2 marks the whole disk when the target cannot unmap, which is the blockdev default); otherwise what the
    // source has allocated above the base is marked.
    private async ValueTask InitializeDirtyAsync(JobContext context, CancellationToken cancellationToken)
    {
        long length = _plan.Source.Size;
        if (_plan.ZeroTarget)
        {
            _bitmap!.SetAll();
            return;
        }

        for (long offset = 0; offset < length;)
        {
            await context.PausePointAsync().ConfigureAwait(false);
            if (context.IsCancelled)
            {
                return;
            }

            AllocationExtent extent = await BackingChain.IsAllocatedAboveAsync(
                _plan.Source, _plan.Base, offset, length - offset, cancellationToken).ConfigureAwait(false);
            if (extent.Length == 0)
            {
                break;
            }

            if (extent.Allocated)
            {
                _bitmap!.SetDirty(offset, extent.Length);
            }

            offset += extent.Length;
        }
    }

    // QEMU's mirror_run loop (spec §5.3 steps 1-6).
    private async ValueTask CopyLoopAsync(JobContext context, CancellationToken cancellationToken)
    {
        DirtyBitmap bitmap = _bitmap!;
        long lastYield = context.Time.GetTimestamp();
        while (true)
        {
            ThrowIfFailed();
            await context.PausePointAsync().ConfigureAwait(false);
            if (context.IsCancelled)
            {
                return;
            }

            long dirty = bitmap.Count;
            UpdateProgress(context);
            if (context.IoStatus == IoStatus.Ok && context.Time.GetElapsedTime(lastYield) < SliceTime)
            {
                (int ops, long bytes) = InFlight();
                if (ops >= MaxInFlight || bytes >= _plan.BufferSize || (dirty == 0 && ops > 0))
                {
                    await WaitForOpAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (dirty != 0)
                {
                    LaunchCopies(context, bitmap, cancellationToken);
                }
            }

            bool shouldComplete = false;
            if (dirty == 0 && InFlight().Ops == 0)
            {
                if (!_ready)
                {
                    if (!await FlushTargetAsync(cancellationToken).ConfigureAwait(false))
                    {
                        continue;
                    }

                    _ready = true;
                    await context.TransitionToReadyAsync(cancellationToken).ConfigureAwait(false);
                }

                if (CopyMode == MirrorCopyMode.WriteBlocking)
                {
                    _activelySynced = true;
                }

                shouldComplete = _completeRequested || context.IsCancelRequested;
            }

            if (shouldComplete)
            {
                // Hold the guests' new requests back (the graph's drain of every backend above the filter, which the
                // pivot's own drain nests in); only if nothing got dirty meanwhile and the flush works are the two in sync.
                IAsyncDisposable drain = await _graph.DrainAsync(_filter!, cancellationToken).ConfigureAwait(false);
                if (bitmap.Count == 0 && InFlight().Ops == 0 && await FlushTargetAsync(cancellationToken).ConfigureAwait(false))
                {
                    _drain = drain;
                    UpdateProgress(context);
                    return;
                }

                await drain.DisposeAsync().ConfigureAwait(false);
                continue;
            }

            if (InFlight().Ops == 0 && bitmap.Count == 0)
            {
                await context.SleepAsync(SliceTime).ConfigureAwait(false);
            }
            else
            {
                await context.RateLimitSleepAsync().ConfigureAwait(false);
            }

            lastYield = context.Time.GetTimestamp();
        }
    }

    // In flight and dirty are read together: a failed copy moves its bytes from one to the other under the same lock.
    private void UpdateProgress(JobContext context)
    {
        long remaining;
        lock (_sync)
        {
            remaining = _bytesInFlight + _bitmap!.Count + _activeWriteBytes;
        }

        context.ProgressSetRemaining(remaining);
    }

    private void ThrowIfFailed()
    {
        lock (_sync)
        {
            if (_error is { } error)
            {
                throw error;
            }
        }
    }

    private void StoreError(Exception error)
    {
        lock (_sync)
        {
            _error ??= error;
        }
    }

    private (int Ops, long Bytes) InFlight()
    {
        lock (_sync)
        {
            return (_opsInFlight, _bytesInFlight);
        }
    }

    private async ValueTask<bool> FlushTargetAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _target.FlushAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is { } errno && !cancellationToken.IsCancellationRequested)
        {
            await OnRequestFailedAsync(IoOperation.Write, errno, e, cancellationToken).ConfigureAwait(false);
            return false;
        }
    }

    // A failed request: what it covered is dirty again, the policy is consulted between monitor commands (event; stop
    // pauses the job), and report makes the loop fail at its next iteration.
    private async ValueTask OnRequestFailedAsync(IoOperation operation, int errno, Exception cause, CancellationToken cancellationToken)
    {
        _activelySynced = false;
        ErrorPolicy policy = operation == IoOperation.Read ? _plan.OnSourceError : _plan.OnTargetError;
        if (await BlockJobCommon.OnChunkErrorAsync(_context!, policy, operation, errno, ignoreSkips: false, cancellationToken).ConfigureAwait(false)
            == ChunkErrorOutcome.Fail)
        {
            StoreError(BlockJobCommon.Failure(errno, cause));
        }
    }

    // A guest's write-through to the target failed: handled at once (see BlockJobCommon.OnGuestRequestError).
    private void OnGuestWriteFailed(int errno, Exception cause)
    {
        _activelySynced = false;
        if (BlockJobCommon.OnGuestRequestError(_context!, _plan.OnTargetError, IoOperation.Write, errno) == ChunkErrorOutcome.Fail)
        {
            StoreError(BlockJobCommon.Failure(errno, cause));
        }
    }

    private void StopTracking()
    {
        lock (_sync)
        {
            if (_filter is { } filter)
            {
                filter.Interceptor = null;
                if (_bitmap is { } bitmap)
                {
                    filter.DetachBitmap(bitmap);
                }
            }
        }
    }

    private async ValueTask TearDownAsync()
    {
        DirtyTrackingNode? filter;
        IAsyncDisposable? drain;
        lock (_sync)
        {
            filter = _filter;
            _filter = null;
            drain = _drain;
            _drain = null;
        }

        try
        {
            if (filter is not null)
            {
                await _graph.RemoveFilterAsync(filter).ConfigureAwait(false);
            }
        }
        finally
        {
            if (drain is not null)
            {
                await drain.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
