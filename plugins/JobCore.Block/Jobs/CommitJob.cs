using System.Buffers;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Jobs;

/// <summary>The options of an intermediate <c>commit</c> job (QMP <c>block-commit</c> with a top below the active layer).</summary>
public sealed record CommitJobOptions : BlockJobOptions
{
    /// <summary>The base as a node name (QMP <c>base-node</c>); default: the bottom of the chain.</summary>
    public string? BaseNode { get; init; }

    /// <summary>The base as a file name (QMP <c>base</c>, deprecated in QEMU).</summary>
    public string? Base { get; init; }

    /// <summary>The top as a node name (QMP <c>top-node</c>); default: the active layer (which makes it an active commit).</summary>
    public string? TopNode { get; init; }

    /// <summary>The top as a file name (QMP <c>top</c>, deprecated in QEMU).</summary>
    public string? Top { get; init; }

    /// <summary>The backing file name recorded in the header of the image above the top (QMP <c>backing-file</c>); default: the base's file name.</summary>
    public string? BackingFile { get; init; }

    /// <summary>Record <c>raw</c> instead of a protocol driver as backing format (QMP <c>backing-mask-protocol</c>).</summary>
    public bool BackingMaskProtocol { get; init; }

    /// <summary>The graph state prepared by <see cref="CommitJob.StartAsync"/>.</summary>
    internal CommitPlan? Plan { get; init; }
}

/// <summary>
/// QEMU's intermediate <c>block-commit</c> (<c>block/commit.c</c>): copies everything allocated in the top and the
/// layers down to (excluding) the base into the base in 512 KiB steps (ranges the layers report as zero as
/// write-zeroes, without reading them), growing the base
/// first if it is smaller. On success the image above the top gets the base as its backing (graph and header) and the
/// top and the layers between drop out of the chain; on failure or cancel the chain is unchanged (the base may
/// already hold some of the data, which the layers above still shadow).
/// </summary>
internal sealed class CommitJob : PlannedBlockJob<CommitJobOptions, CommitPlan>
{
    private readonly BlockGraph _graph;

    /// <summary>Creates the driver (the engine does, per job).</summary>
    /// <param name="graph">The host's block graph.</param>
    public CommitJob(BlockGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        _graph = graph;
    }

    /// <summary>
    /// <c>block-commit</c>: resolves the nodes with <see cref="CommitPlan.Resolve"/> (QEMU's checks and texts). When
    /// the top is the active layer the mirror engine runs it (an <see cref="ActiveCommitOptions"/> job of type
    /// <c>commit</c> that reaches ready); otherwise this prepares an intermediate commit (base reopened read-write,
    /// <c>commit_top</c> filter above the top, nodes held). Either way the job is created and started here (its
    /// <c>created</c> and <c>running</c> events precede the return); the graph is left as it was when it cannot be.
    /// </summary>
    /// <param name="engine">The job engine.</param>
    /// <param name="graph">The block graph.</param>
    /// <param name="options">The commit's options; a null id defaults to the device (backend) name of the root node
    /// (<c>Invalid job ID ''</c> for a node without one, as in QEMU).</param>
    /// <param name="cancellationToken">Cancels the graph changes before the job exists.</param>
    /// <returns>The running job.</returns>
    /// <exception cref="BlockGraphException">A refusal with QEMU's text (see <see cref="CommitPlan.Resolve"/>).</exception>
    /// <exception cref="JobException">The job could not be created.</exception>
    public static async Task<Job> StartAsync(JobEngine engine, BlockGraph graph, CommitJobOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        CommitTarget target = CommitPlan.Resolve(graph, options);
        if (target.IsActive)
        {
            var active = new ActiveCommitOptions
            {
                Id = options.Id ?? graph.DeviceNameOf(target.Device),
                Device = target.Top.NodeName,
                BaseNode = target.Base.NodeName,
                OnError = options.OnError,
                Speed = options.Speed,
                FilterNodeName = options.FilterNodeName,
                AutoFinalize = options.AutoFinalize,
                AutoDismiss = options.AutoDismiss,
            };
            Job job = await engine.CreateAsync(active, cancellationToken: cancellationToken).ConfigureAwait(false);
            job.Start();

            // As for blockdev-mirror: the reply waits until the dirty-tracking filter sits above the top.
            await MirrorSetUp.WhenSetUpAsync(active).WaitAsync(cancellationToken).ConfigureAwait(false);
            return job;
        }

        CommitPlan plan = await CommitPlan.PrepareAsync(graph, target, options, cancellationToken).ConfigureAwait(false);

        // As QEMU: the job belongs to the root node, so an omitted id is its device (backend) name.
        return await plan.StartJobAsync(engine, options with { Id = options.Id ?? graph.DeviceNameOf(target.Device), Plan = plan }).ConfigureAwait(false);
    }

    /// <inheritdoc />
    protected override CommitPlan? PlanFromOptions => Options.Plan;

    /// <inheritdoc />
    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        CommitPlan plan;
        if (Options.Plan is { } given)
        {
            plan = given;
        }
        else
        {
            CommitTarget target = CommitPlan.Resolve(_graph, Options);
            if (target.IsActive)
            {
                throw new JobFailedException("Active commit is run by the mirror engine, not by the intermediate commit job");
            }

            plan = await CommitPlan.PrepareAsync(_graph, target, Options, cancellationToken).ConfigureAwait(false);
        }

        Plan = plan;
        BlockNode top = plan.Top;
        long length = top.Size;
        context.ProgressSetRemaining(length);
        try
        {
            BlockNode @base = plan.Base;
            if (@base.Size < length)
            {
                await GrowAsync(@base, length, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is int errno)
        {
            throw BlockJobCommon.Failure(errno, e);
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(BlockJobCommon.ChunkSize);
        using HostWriteback? writeback = HostWriteback.For(plan.Base);
        try
        {
            long n;
            for (long offset = 0; offset < length; offset += n)
            {
                await context.RateLimitSleepAsync().ConfigureAwait(false);
                if (context.IsCancelled)
                {
                    break;
                }

                n = 0;
                bool copy = false;
                IoOperation side = IoOperation.Read;
                try
                {
                    top = plan.Top;
                    BlockNode @base = plan.Base;
                    AllocationExtent extent = await BackingChain.StatusAboveAsync(top, @base, offset, BlockJobCommon.ChunkSize, cancellationToken)
                        .ConfigureAwait(false);
                    n = extent.Length;
                    copy = extent.Allocated;
                    if (copy && extent.Zero)
                    {
                        // As QEMU 10's commit_iteration: a range the layers above say is zero is written as zeroes
                        // (unmapping allowed) without reading it, so the base stays sparse; stored data, even all-zero
                        // data, is copied as data.
                        side = IoOperation.Write;
                        await @base.WriteZeroesAsync(offset, n, mayUnmap: true, cancellationToken).ConfigureAwait(false);
                    }
                    else if (copy)
                    {
                        Memory<byte> data = buffer.AsMemory(0, (int)n);
                        await top.ReadAsync(offset, data, cancellationToken).ConfigureAwait(false);
                        side = IoOperation.Write;
                        await @base.WriteAsync(offset, data, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is int errno)
                {
                    // Commit's 'ignore' retries the chunk at once; 'stop' retries it after the resume.
                    if (await BlockJobCommon.OnChunkErrorAsync(context, Options.OnError, side, errno, ignoreSkips: false, cancellationToken).ConfigureAwait(false)
                        == ChunkErrorOutcome.Fail)
                    {
                        throw BlockJobCommon.Failure(errno, e);
                    }

                    n = 0;
                    continue;
                }

                context.ProgressWorkDone(n);
                if (copy)
                {
                    context.RateLimitProcessed(n);
                    writeback?.Written(n);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc />
    protected override async ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken)
    {
        CommitPlan plan = Plan ?? throw new InvalidOperationException("The commit job has not run");
        await plan.DropIntermediateAsync(Options.BackingFile ?? Options.Base, Options.BackingMaskProtocol, cancellationToken).ConfigureAwait(false);
    }

    // QEMU grows the base to the top's length before copying (never shrinks it).
    private static async ValueTask GrowAsync(BlockNode @base, long length, CancellationToken cancellationToken)
    {
        switch (BackingChain.SkipFilters(@base))
        {
            case Qcow2Node image:
                await image.ResizeAsync(length, cancellationToken).ConfigureAwait(false);
                break;
            case RawNode { File: FileNode file }:
                await file.TruncateAsync(length, cancellationToken).ConfigureAwait(false);
                break;
            case FileNode file:
                await file.TruncateAsync(length, cancellationToken).ConfigureAwait(false);
                break;
            default:
                throw new BlockIOException(BlockIOException.ENOTSUP, $"Cannot grow {@base} to {length} bytes");
        }
    }
}

/// <summary>QEMU's <c>commit_top</c> filter: sits above the commit's top while the job runs and passes everything through.</summary>
internal sealed class CommitTopNode(string nodeName, BlockNode child) : FilterNode(nodeName, child, readOnly: false)
{
    /// <inheritdoc />
    public override string DriverName => "commit_top";
}

/// <summary>Which nodes a <c>block-commit</c> names, resolved in QEMU's order.</summary>
/// <param name="Device">The root node (the active layer).</param>
/// <param name="Top">The top of the committed range.</param>
/// <param name="Base">The node receiving the data.</param>
/// <param name="IsActive">Top is the active layer: the mirror engine runs the commit.</param>
internal sealed record CommitTarget(BlockNode Device, BlockNode Top, BlockNode Base, bool IsActive);

/// <summary>
/// An intermediate commit prepared in the graph (QEMU's <c>commit_start</c>): the base reopened read-write if it was
/// read-only, the <c>commit_top</c> filter above the top, and the lease holding the active layer, the top, the base
/// (<c>Node x is in use</c>) and the layers between top and base (op-blocked). Undone by <see cref="BlockJobPlan.RollBackAsync"/>.
/// </summary>
internal sealed class CommitPlan : BlockJobPlan
{
    private readonly string _topName;
    private readonly string _baseName;

    private CommitPlan(BlockGraph graph, BlockJobLease lease, CommitTopNode filter, string topName, string baseName, bool baseWasReadOnly)
        : base(graph, lease, filter)
    {
        Filter = filter;
        _topName = topName;
        _baseName = baseName;
        BaseWasReadOnly = baseWasReadOnly;
    }

    /// <summary>The <c>commit_top</c> filter above the top.</summary>
    public CommitTopNode Filter { get; }

    /// <summary>Whether the base is reopened read-only at the end.</summary>
    public bool BaseWasReadOnly { get; }

    /// <summary>The top as it is now (looked up by name: reopening replaces node objects).</summary>
    public BlockNode Top => Graph.GetNode(_topName);

    /// <summary>The base as it is now.</summary>
    public BlockNode Base => Graph.GetNode(_baseName);

    /// <summary>
    /// <c>qmp_block_commit</c>'s checks in QEMU's order: the device must exist (class <c>DeviceNotFound</c>) and be a
    /// root (<c>Need a root block node</c>) that no job blocks; <c>top</c>/<c>top-node</c>, <c>base</c>/<c>base-node</c>
    /// must be in the chain; nothing between top and base may be busy; top and base must differ; an active commit
    /// refuses <c>backing-file</c>; an intermediate one also checks the image above the top.
    /// </summary>
    public static CommitTarget Resolve(BlockGraph graph, CommitJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(options);
        string device = options.Device;
        BlockNode bs = graph.FindBackend(device)?.Node ?? graph.Find(device) ?? throw new BlockGraphException($"Device '{device}' not found", BlockGraphException.DeviceNotFound);
        if (!graph.IsRoot(bs))
        {
            throw new BlockGraphException("Need a root block node");
        }

        graph.ThrowIfBusy(bs);
        BlockNode? top = bs;
        if (options.TopNode is not null && options.Top is not null)
        {
            throw new BlockGraphException("'top-node' and 'top' are mutually exclusive");
        }
        else if (options.TopNode is not null)
        {
            top = graph.Lookup(null, options.TopNode);
            if (!BlockJobCommon.ChainContains(bs, top))
            {
                throw new BlockGraphException($"'{options.TopNode}' is not in this backing file chain");
            }
        }
        else if (options.Top is not null && BackingChain.TryGetFilename(bs) != options.Top)
        {
            top = BackingChain.FindByFilename(bs, options.Top);
        }

        if (top is null)
        {
            throw new BlockGraphException($"Top image file {options.Top ?? "NULL"} not found");
        }

        BlockNode? @base;
        if (options.BaseNode is not null && options.Base is not null)
        {
            throw new BlockGraphException("'base-node' and 'base' are mutually exclusive");
        }
        else if (options.BaseNode is not null)
        {
            @base = graph.Lookup(null, options.BaseNode);
            if (!BlockJobCommon.ChainContains(top, @base))
            {
                throw new BlockGraphException($"'{options.BaseNode}' is not in this backing file chain");
            }
        }
        else if (options.Base is not null)
        {
            @base = BackingChain.FindByFilename(top, options.Base)
                ?? throw new BlockGraphException($"Can't find '{options.Base}' in the backing chain");
        }
        else
        {
            @base = BackingChain.Layers(top).Last();
        }

        BlockNode? stop = BackingChain.Below(@base);
        for (BlockNode? node = top; node is not null && !ReferenceEquals(node, stop); node = BackingChain.Below(node))
        {
            graph.ThrowIfBusy(node);
        }

        if (ReferenceEquals(top, @base))
        {
            throw new BlockGraphException("cannot commit an image into itself");
        }

        bool active = ReferenceEquals(BackingChain.SkipFilters(top), BackingChain.SkipFilters(bs));
        if (active)
        {
            if (options.BackingFile is not null)
            {
                throw new BlockGraphException("'backing-file' specified, but 'top' is the active layer");
            }

            return new CommitTarget(bs, top, @base, IsActive: true);
        }

        graph.ThrowIfBusy(FindOverlay(bs, top));
        return new CommitTarget(bs, top, @base, IsActive: false);
    }

    /// <summary>QEMU's <c>commit_start</c>: hold the nodes, reopen the base read-write, insert <c>commit_top</c> above the top.</summary>
    public static async Task<CommitPlan> PrepareAsync(BlockGraph graph, CommitTarget target, CommitJobOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(target);
        if (ReferenceEquals(BackingChain.SkipFilters(target.Top), BackingChain.SkipFilters(target.Base)))
        {
            throw new BlockGraphException("Invalid files for merge: top and base are the same");
        }

        // The layers strictly between top and base are op-blocked; the active layer, top and base are the job's own.
        List<BlockNode> between = [];
        for (BlockNode? node = BackingChain.Below(target.Top); node is not null && !ReferenceEquals(node, target.Base); node = BackingChain.Below(node))
        {
            between.Add(node);
        }

        BlockJobLease lease = graph.AcquireJobLease("commit", between, [target.Device, target.Top, target.Base]);
        CommitTopNode? filter = null;
        bool reopened = false;
        try
        {
            if (target.Base.ReadOnly)
            {
                await graph.ReopenAsync(target.Base, readOnly: false, cancellationToken).ConfigureAwait(false);
                reopened = true;
            }

            filter = await graph.InsertFilterAsync(target.Top, (name, child) => new CommitTopNode(name, child), options.FilterNodeName, cancellationToken)
                .ConfigureAwait(false);
            return new CommitPlan(graph, lease, filter, target.Top.NodeName, target.Base.NodeName, reopened);
        }
        catch
        {
            if (filter is not null)
            {
                await graph.RemoveFilterAsync(filter, CancellationToken.None).ConfigureAwait(false);
            }

            if (reopened)
            {
                await BlockJobCommon.ReopenQuietlyAsync(graph, graph.GetNode(target.Base.NodeName), readOnly: true).ConfigureAwait(false);
            }

            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// QEMU's <c>bdrv_drop_intermediate</c>: the image above the top (now above the filter) gets the base as its backing,
    /// header first (<paramref name="backingFile"/> or the base's file name). The overlay is reopened read-write for
    /// the header write if it is read-only, and back afterwards.
    /// </summary>
    public async ValueTask DropIntermediateAsync(string? backingFile, bool maskProtocol, CancellationToken cancellationToken)
    {
        BlockNode overlay = Graph.GetParents(Filter).FirstOrDefault(p => ReferenceEquals(p.Backing, Filter))
            ?? throw new BlockGraphException($"Could not find overlay image for {_topName}");
        BlockNode @base = Base;
        string? format = maskProtocol && BackingChain.SkipFilters(@base) is FileNode ? "raw" : null;
        bool reopen = overlay.ReadOnly;
        if (reopen)
        {
            overlay = await Graph.ReopenAsync(overlay, readOnly: false, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await Graph.ChangeBackingAsync(overlay, @base, backingFile, writeHeader: true, format, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (reopen)
            {
                await BlockJobCommon.ReopenQuietlyAsync(Graph, Graph.GetNode(overlay.NodeName), readOnly: true).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    protected override async ValueTask RestoreAsync()
    {
        if (BaseWasReadOnly && Graph.Find(_baseName) is { } @base)
        {
            await BlockJobCommon.ReopenQuietlyAsync(Graph, @base, readOnly: true).ConfigureAwait(false);
        }
    }

    // QEMU's bdrv_find_overlay: the node directly above 'node' in the chain of 'active'.
    private static BlockNode FindOverlay(BlockNode active, BlockNode node)
    {
        BlockNode overlay = active;
        for (BlockNode? n = active; n is not null && !ReferenceEquals(n, node); n = BackingChain.Below(n))
        {
            overlay = n;
        }

        return overlay;
    }
}
