using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Jobs;

/// <summary>The options of a <c>stream</c> job (QMP <c>block-stream</c>).</summary>
public sealed record StreamJobOptions : BlockJobOptions
{
    /// <summary>The base as a file name (QMP <c>base</c>): data of the base and below is not copied.</summary>
    public string? Base { get; init; }

    /// <summary>The base as a node name (QMP <c>base-node</c>).</summary>
    public string? BaseNode { get; init; }

    /// <summary>The last node whose data is copied (QMP <c>bottom</c>; not a filter).</summary>
    public string? Bottom { get; init; }

    /// <summary>The backing file name to record in the top's header (QMP <c>backing-file</c>); default: the base's file name.</summary>
    public string? BackingFile { get; init; }

    /// <summary>Record <c>raw</c> instead of a protocol driver as backing format (QMP <c>backing-mask-protocol</c>).</summary>
    public bool BackingMaskProtocol { get; init; }

    /// <summary>The graph state prepared when the job was started through <see cref="StreamJob.StartAsync"/>.</summary>
    internal StreamPlan? Plan { get; init; }
}

/// <summary>
/// QEMU's <c>block-stream</c> (<c>block/stream.c</c>): copies what the top node reads through its backing chain down
/// to (excluding) the base into the top, through a copy-on-read filter, in 512 KiB chunks, copying only ranges that
/// are allocated above the base. On success the top's backing becomes the base (graph and image header) or none;
/// on failure or cancel the chain is unchanged (data already copied stays, which is harmless).
/// </summary>
internal sealed class StreamJob : PlannedBlockJob<StreamJobOptions, StreamPlan>
{
    private readonly BlockGraph _graph;

    /// <summary>Creates the driver (the engine does, per job).</summary>
    /// <param name="graph">The host's block graph.</param>
    public StreamJob(BlockGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        _graph = graph;
    }

    /// <summary>
    /// <c>block-stream</c>: checks the arguments against the graph in QEMU's order, op-blocks the top and the nodes
    /// down to the base, reopens the top read-write if needed, inserts the copy-on-read filter, then creates and
    /// starts the job (its <c>created</c> and <c>running</c> events are emitted before this returns; when there is
    /// nothing to stream, because base is the top's backing, the job has also completed). When the job cannot be
    /// created the graph is left as it was.
    /// </summary>
    /// <param name="engine">The job engine.</param>
    /// <param name="graph">The block graph holding the nodes.</param>
    /// <param name="options">The stream's options; a null <see cref="JobOptions.Id"/> defaults to the device (backend)
    /// name of the top, which a node added with <c>blockdev-add</c> does not have (<c>Invalid job ID ''</c>, as in QEMU).</param>
    /// <param name="cancellationToken">Cancels the graph changes before the job exists.</param>
    /// <returns>The running job.</returns>
    /// <exception cref="BlockGraphException">A refusal with QEMU's text (unknown node, base not in the chain, busy node, ...).</exception>
    /// <exception cref="JobException">The job could not be created (bad or duplicate id, negative speed).</exception>
    public static async Task<Job> StartAsync(JobEngine engine, BlockGraph graph, StreamJobOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        StreamPlan plan = await StreamPlan.CreateAsync(graph, options, cancellationToken).ConfigureAwait(false);

        // As QEMU: the job runs on the copy-on-read filter, which took over the top's backend (device) if it had one.
        Job job = await plan.StartJobAsync(engine, options with { Id = options.Id ?? graph.DeviceNameOf(plan.Filter), Plan = plan }).ConfigureAwait(false);
        if (plan.NothingToDo)
        {
            // QEMU's stream coroutine returns before its first yield when base is the top's backing: the job completes
            // (waiting ... null) inside the command, before its reply.
            await job.CompleteWhenWorkEndsAsync(NothingToDoTimeout, cancellationToken).ConfigureAwait(false);
        }

        return job;
    }

    private static readonly TimeSpan NothingToDoTimeout = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    protected override StreamPlan? PlanFromOptions => Options.Plan;

    /// <inheritdoc />
    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        StreamPlan plan = Plan = Options.Plan ?? await StreamPlan.CreateAsync(_graph, Options, cancellationToken).ConfigureAwait(false);
        CopyOnReadNode filter = plan.Filter;
        BlockNode top = BackingChain.SkipFilters(filter.Child);
        if (plan.NothingToDo)
        {
            return;
        }

        long length = top.Size;
        context.ProgressSetRemaining(length);
        using HostWriteback? writeback = HostWriteback.For(top);
        int firstErrno = 0;
        Exception? firstError = null;
        long n;
        for (long offset = 0; offset < length; offset += n)
        {
            await context.RateLimitSleepAsync().ConfigureAwait(false);
            if (context.IsCancelled)
            {
                break;
            }

            n = Math.Min(BlockJobCommon.ChunkSize, length - offset);
            bool copy = false;
            try
            {
                top = BackingChain.SkipFilters(filter.Child);
                (n, copy) = await NextExtentAsync(top, plan.CopyBase, offset, length, cancellationToken).ConfigureAwait(false);
                if (copy)
                {
                    await filter.PrefetchAsync(offset, n, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is int errno)
            {
                // Stream reports every failure as a read: the copy-on-read prefetch is one read request in QEMU.
                ChunkErrorOutcome outcome = await BlockJobCommon.OnChunkErrorAsync(
                    context, Options.OnError, IoOperation.Read, errno, ignoreSkips: true, cancellationToken).ConfigureAwait(false);
                if (outcome == ChunkErrorOutcome.Retry)
                {
                    n = 0;
                    continue;
                }

                if (firstError is null)
                {
                    firstError = e;
                    firstErrno = errno;
                }

                if (outcome == ChunkErrorOutcome.Fail)
                {
                    break;
                }
            }

            context.ProgressWorkDone(n);
            if (copy)
            {
                context.RateLimitProcessed(n);
                writeback?.Written(n);
            }
        }

        // An ignored error still fails the job at the end, so the backing file is not dropped.
        if (firstError is not null)
        {
            throw BlockJobCommon.Failure(firstErrno, firstError);
        }
    }

    /// <inheritdoc />
    protected override async ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken)
    {
        StreamPlan plan = Plan ?? throw new InvalidOperationException("The stream job has not run");
        await plan.DropFilterAsync().ConfigureAwait(false);
        BlockNode top = plan.CurrentTop;
        if (BackingChain.SkipFilters(top).Backing is null)
        {
            return;
        }

        BlockNode? newBacking = plan.CopyBase;
        string? backingFile = newBacking is null ? null : Options.BackingFile ?? Options.Base;
        string? backingFormat = newBacking is not null && Options.BackingMaskProtocol && BackingChain.SkipFilters(newBacking) is FileNode
            ? "raw"
            : null;
        await _graph.ChangeBackingAsync(top, newBacking, backingFile, writeHeader: true, backingFormat, cancellationToken).ConfigureAwait(false);
    }

    // QEMU's stream_run step: a range allocated in the top needs nothing; otherwise copy it if some layer between the
    // top's backing and the base has it. When the backing chain ends early, the rest of the image is done. Unlike
    // QEMU, which asks about one 512 KiB chunk at a time, a range that needs nothing is skipped whole, however long:
    // a sparse image then costs time for its allocated data only, not for its virtual size. The first questions cover
    // one chunk (a status query costs time in proportion to the range it walks, so asking about the rest of the image
    // for every chunk of a dense one would make the walk quadratic); only a whole chunk with nothing to copy is
    // followed by the questions about the long run behind it. Copies stay one chunk.
    internal static async ValueTask<(long Length, bool Copy)> NextExtentAsync(
        BlockNode top, BlockNode? copyBase, long offset, long length, CancellationToken cancellationToken)
    {
        long chunk = Math.Min(BlockJobCommon.ChunkSize, length - offset);
        (long n, bool copy, bool done) = await StepAsync(chunk).ConfigureAwait(false);
        if (!copy && !done && n == chunk && length - offset > chunk)
        {
            (n, _, _) = await StepAsync(length - offset).ConfigureAwait(false);
        }

        return (n, copy);

        // The extent at offset, at most 'limit' long: its length, whether to copy it, whether the chain below ended.
        async ValueTask<(long Length, bool Copy, bool ChainEnded)> StepAsync(long limit)
        {
            BlockStatus own = await top.GetBlockStatusAsync(offset, limit, cancellationToken).ConfigureAwait(false);
            if (own.Allocated || top.Backing is not { } below)
            {
                return (own.Length, false, false);
            }

            AllocationExtent extent = await BackingChain.IsAllocatedAboveAsync(below, copyBase, offset, own.Length, cancellationToken).ConfigureAwait(false);
            if (!extent.Allocated)
            {
                return extent.Length == 0 ? (length - offset, false, true) : (extent.Length, false, false);
            }

            return (Math.Min(extent.Length, BlockJobCommon.ChunkSize), true, false);
        }
    }
}

/// <summary>
/// A stream resolved against the graph (QEMU's <c>qmp_block_stream</c> checks and <c>stream_start</c> setup): the
/// lease on the top and the nodes it pulls data from, the copy-on-read filter above the top, and whether the top
/// was reopened read-write. Undone by <see cref="BlockJobPlan.RollBackAsync"/>.
/// </summary>
internal sealed class StreamPlan : BlockJobPlan
{
    private readonly string? _copyBaseName;

    private StreamPlan(BlockGraph graph, BlockJobLease lease, CopyOnReadNode filter, string? copyBaseName, bool topWasReadOnly, bool nothingToDo)
        : base(graph, lease, filter)
    {
        Filter = filter;
        _copyBaseName = copyBaseName;
        TopWasReadOnly = topWasReadOnly;
        NothingToDo = nothingToDo;
    }

    /// <summary>The copy-on-read filter above the top.</summary>
    public CopyOnReadNode Filter { get; }

    /// <summary>Whether the top was read-only before the job (it is reopened read-only at the end).</summary>
    public bool TopWasReadOnly { get; }

    /// <summary>The top sits directly on the base: the job succeeds at once.</summary>
    public bool NothingToDo { get; }

    /// <summary>The top as it is now (reopening replaces node objects; the lease follows them).</summary>
    public BlockNode CurrentTop => Lease.Blocked[0];

    /// <summary>The first layer whose data is not copied, looked up by name (it may have been reopened); null = the whole chain.</summary>
    public BlockNode? CopyBase => _copyBaseName is null ? null : Graph.Find(_copyBaseName);

    /// <summary>Resolves <paramref name="options"/> in QEMU's order and prepares the graph.</summary>
    public static async Task<StreamPlan> CreateAsync(BlockGraph graph, StreamJobOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (options.Base is not null && options.BaseNode is not null)
        {
            throw new BlockGraphException("'base' and 'base-node' cannot be specified at the same time");
        }

        if (options.Base is not null && options.Bottom is not null)
        {
            throw new BlockGraphException("'base' and 'bottom' cannot be specified at the same time");
        }

        if (options.Bottom is not null && options.BaseNode is not null)
        {
            throw new BlockGraphException("'bottom' and 'base-node' cannot be specified at the same time");
        }

        string device = options.Device;
        BlockNode top = graph.Lookup(device, device);
        BlockNode? @base = null;
        if (options.Base is not null)
        {
            @base = BackingChain.FindByFilename(top, options.Base)
                ?? throw new BlockGraphException($"Can't find '{options.Base}' in the backing chain");
        }

        if (options.BaseNode is not null)
        {
            @base = graph.Lookup(null, options.BaseNode);
            if (ReferenceEquals(@base, top) || !BlockJobCommon.ChainContains(top, @base))
            {
                throw new BlockGraphException($"Node '{options.BaseNode}' is not a backing image of '{device}'");
            }
        }

        BlockNode? bottom = null;
        if (options.Bottom is not null)
        {
            bottom = graph.Lookup(null, options.Bottom);
            if (bottom is FilterNode)
            {
                throw new BlockGraphException($"Node '{options.Bottom}' is a filter, use a non-filter node as 'bottom'");
            }

            if (!BlockJobCommon.ChainContains(top, bottom))
            {
                throw new BlockGraphException($"Node '{options.Bottom}' is not in a chain starting from '{device}'");
            }
        }

        // The first node whose data stays where it is: below 'bottom', or the base.
        BlockNode? copyBase = bottom is not null ? BackingChain.Below(bottom) : @base;
        List<BlockNode> blocked = [];
        for (BlockNode? node = top; node is not null && !ReferenceEquals(node, copyBase); node = BackingChain.Below(node))
        {
            blocked.Add(node);
        }

        // Checks every node top-down and reports the first busy one, then holds them all.
        BlockJobLease lease = graph.AcquireJobLease("stream", blocked);
        CopyOnReadNode? filter = null;
        bool reopened = false;
        try
        {
            if (@base is null && options.BackingFile is not null)
            {
                throw new BlockGraphException("backing file specified, but streaming the entire chain");
            }

            BlockNode unfilteredTop = BackingChain.SkipFilters(top);
            BlockNode? topBacking = unfilteredTop.Backing is { } b ? BackingChain.SkipFilters(b) : null;
            bool nothingToDo = ReferenceEquals(unfilteredTop, bottom)
                || ReferenceEquals(topBacking, copyBase is null ? null : BackingChain.SkipFilters(copyBase));
            if (top.ReadOnly)
            {
                top = await graph.ReopenAsync(top, readOnly: false, cancellationToken).ConfigureAwait(false);
                reopened = true;
            }

            try
            {
                filter = await graph.InsertFilterAsync(top, (name, child) => new CopyOnReadNode(name, child, copyBase), options.FilterNodeName, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (BlockGraphException e) when (options.FilterNodeName is not null)
            {
                // QEMU's bdrv_insert_node prefixes what opening the copy-on-read node said (bad or duplicate name).
                throw new BlockGraphException("Could not create node: " + e.Message, e);
            }

            // The job runs on the filter in QEMU: a job meeting it below its top is told the filter is busy.
            graph.ExtendJobLease(lease, filter);

            return new StreamPlan(graph, lease, filter, copyBase?.NodeName, reopened, nothingToDo);
        }
        catch
        {
            if (filter is not null)
            {
                await graph.RemoveFilterAsync(filter, CancellationToken.None).ConfigureAwait(false);
            }

            if (reopened)
            {
                await BlockJobCommon.ReopenQuietlyAsync(graph, lease.Blocked[0], readOnly: true).ConfigureAwait(false);
            }

            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    protected override async ValueTask RestoreAsync()
    {
        if (TopWasReadOnly)
        {
            await BlockJobCommon.ReopenQuietlyAsync(Graph, CurrentTop, readOnly: true).ConfigureAwait(false);
        }
    }
}
