using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Jobs;

/// <summary>
/// A mirror or active commit resolved against the graph when the job is created (QEMU's
/// <c>blockdev_mirror_common</c> + <c>mirror_start_job</c> checks): the nodes, the sizes, the policies and the lease
/// that op-blocks the nodes. Everything that can be refused is refused here, before the job exists.
/// </summary>
internal sealed class MirrorPlan
{
    private const long MinDefaultGranularity = 4096;
    private const long MaxDefaultGranularity = 65536;

    private MirrorPlan(string jobType, BlockNode source, BlockNode target)
    {
        JobType = jobType;
        Source = source;
        Target = target;
        ToReplace = source;
    }

    /// <summary><c>mirror</c> or <c>commit</c>.</summary>
    public string JobType { get; }

    /// <summary>The node copied from (the dirty-tracking filter goes above it).</summary>
    public BlockNode Source { get; }

    /// <summary>The node copied to (for active commit: the base).</summary>
    public BlockNode Target { get; }

    /// <summary>The node the target replaces on completion.</summary>
    public BlockNode ToReplace { get; private init; }

    /// <summary>The effective sync mode (drive-mirror's top on an image without backing is full).</summary>
    public MirrorSyncMode Sync { get; private init; }

    /// <summary>The first layer whose data is not copied initially (top: the source's backing; commit: the base); null = all.</summary>
    public BlockNode? Base { get; private init; }

    /// <summary>The dirty-bitmap granularity.</summary>
    public long Granularity { get; private init; }

    /// <summary>The copy buffer (a multiple of the granularity).</summary>
    public long BufferSize { get; private init; }

    /// <summary>Policy for source read errors.</summary>
    public ErrorPolicy OnSourceError { get; private init; }

    /// <summary>Policy for target write/flush errors.</summary>
    public ErrorPolicy OnTargetError { get; private init; }

    /// <summary>The initial copy mode.</summary>
    public MirrorCopyMode CopyMode { get; private init; }

    /// <summary>The filter's node name, or null for an implicit one.</summary>
    public string? FilterNodeName { get; private init; }

    /// <summary>What happens to the target's backing on success.</summary>
    public MirrorTargetBacking TargetBacking { get; private init; }

    /// <summary>Whether zero ranges may be deallocated on the target.</summary>
    public bool Unmap { get; private init; } = true;

    /// <summary>Whether the target is zeroed first (sync=full onto a target not known to read zeroes).</summary>
    public bool ZeroTarget { get; private init; }

    /// <summary>Active commit: the target is the base, grown when smaller than the top.</summary>
    public bool IsCommit => JobType == "commit";

    /// <summary>The nodes this job holds (released when the job ends).</summary>
    public required BlockJobLease Lease { get; init; }

    /// <summary>Resolves a <c>blockdev-mirror</c>/<c>drive-mirror</c>; throws QEMU's refusals.</summary>
    public static MirrorPlan ForMirror(BlockGraph graph, MirrorJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(options);
        BlockNode source = graph.Lookup(options.Device, options.Device);
        if (!graph.IsRoot(source))
        {
            throw new BlockGraphException("Need a root block node");
        }

        BlockNode target = graph.Lookup(options.Target, options.Target);
        graph.ThrowIfBusy(source);
        graph.ThrowIfBusy(target);

        // QEMU's backing op blocker: an image's backing node cannot be a mirror target (it would overwrite data the
        // image, possibly the source itself, reads through it).
        if (graph.Nodes.FirstOrDefault(n => ReferenceEquals(n.Backing, target)) is { } overlay)
        {
            throw new BlockGraphException($"Node '{target.NodeName}' is busy: node is used as backing hd of '{overlay.NodeName}'");
        }
        MirrorSyncMode sync = options.Sync == MirrorSyncMode.Top && BackingChain.Below(BackingChain.SkipFilters(source)) is null
            ? MirrorSyncMode.Full
            : options.Sync;
        BlockNode toReplace = options.Replaces is null ? source : ResolveReplaces(graph, source, target, options.Replaces);
        if (ReferenceEquals(BackingChain.SkipFilters(source), BackingChain.SkipFilters(target)))
        {
            throw new BlockGraphException("Can't mirror node into itself");
        }

        if (target.ReadOnly)
        {
            throw new BlockGraphException("Block node is read-only");
        }

        long granularity = options.Granularity != 0 ? options.Granularity : DefaultGranularity(target);
        if (HasUnopenedBacking(target, out int clusterSize) && clusterSize > granularity)
        {
            // Copies must cover whole target clusters, or a partial write would fill the rest from a backing that is
            // not open yet (QEMU widens each copy with its COW bitmap; whole-cluster granularity has the same effect).
            granularity = clusterSize;
        }

        CheckFilterName(graph, options.FilterNodeName);
        return new MirrorPlan("mirror", source, target)
        {
            ToReplace = toReplace,
            Sync = sync,
            Base = sync == MirrorSyncMode.Top ? BackingChain.Below(BackingChain.SkipFilters(source)) : null,
            Granularity = granularity,
            BufferSize = RoundUp(options.BufferSize == 0 ? MirrorJobOptions.DefaultBufferSize : options.BufferSize, granularity),
            OnSourceError = options.OnSourceError,
            OnTargetError = options.OnTargetError,
            CopyMode = options.CopyMode,
            FilterNodeName = options.FilterNodeName,
            TargetBacking = options.TargetBacking,
            Unmap = options.Unmap,
            ZeroTarget = sync == MirrorSyncMode.Full && !options.TargetIsZero,
            Lease = graph.AcquireJobLease("mirror", [source], held: [target]),
        };
    }

    /// <summary>Resolves an active commit (the caller already chose active over intermediate commit).</summary>
    public static MirrorPlan ForActiveCommit(BlockGraph graph, ActiveCommitOptions options)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(options);
        BlockNode top = graph.Lookup(options.Device, options.Device);
        BlockNode @base = graph.GetNode(options.BaseNode);
        if (ReferenceEquals(BackingChain.SkipFilters(top), BackingChain.SkipFilters(@base)))
        {
            throw new BlockGraphException("cannot commit an image into itself");
        }

        if (!BackingChain.IsBelow(top, @base))
        {
            throw new BlockGraphException($"'{@base.NodeName}' is not in this backing file chain");
        }

        // The layers between top and base are blocked too (QEMU adds them to the job).
        List<BlockNode> blocked = [top];
        foreach (BlockNode layer in BackingChain.Layers(top).Skip(1))
        {
            if (ReferenceEquals(layer, BackingChain.SkipFilters(@base)))
            {
                break;
            }

            blocked.Add(layer);
        }

        CheckFilterName(graph, options.FilterNodeName);
        long granularity = DefaultGranularity(@base);
        return new MirrorPlan("commit", top, @base)
        {
            Sync = MirrorSyncMode.Top,
            Base = @base,
            Granularity = granularity,
            BufferSize = RoundUp(MirrorJobOptions.DefaultBufferSize, granularity),
            OnSourceError = options.OnError,
            OnTargetError = options.OnError,
            CopyMode = MirrorCopyMode.Background,
            FilterNodeName = options.FilterNodeName,
            TargetBacking = MirrorTargetBacking.Leave,
            Lease = graph.AcquireJobLease("commit", blocked, held: [@base]),
        };
    }

    /// <summary>QEMU's <c>bdrv_get_default_bitmap_granularity</c>: the cluster size clamped to [4 KiB, 64 KiB], else 64 KiB.</summary>
    public static long DefaultGranularity(BlockNode target) =>
        BackingChain.SkipFilters(target) is Qcow2Node q
            ? Math.Clamp(q.ClusterSize, MinDefaultGranularity, MaxDefaultGranularity)
            : MaxDefaultGranularity;

    private static long RoundUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private static bool HasUnopenedBacking(BlockNode target, out int clusterSize)
    {
        clusterSize = 0;
        if (BackingChain.SkipFilters(target) is Qcow2Node q && q.BackingFileName is not null && q.Backing is null)
        {
            clusterSize = q.ClusterSize;
            return true;
        }

        return false;
    }

    private static void CheckFilterName(BlockGraph graph, string? name)
    {
        if (name is not null && graph.Find(name) is not null)
        {
            throw new BlockGraphException($"Duplicate nodes with node-name='{name}'");
        }
    }

    // QEMU's check_to_replace_node: the node must exist, not be busy, be reachable from the source through filters
    // (so replacing it cannot change what the guest sees), and have the target's size.
    private static BlockNode ResolveReplaces(BlockGraph graph, BlockNode source, BlockNode target, string name)
    {
        BlockNode toReplace = graph.Find(name) ?? throw new BlockGraphException($"Failed to find node with node-name='{name}'");
        graph.ThrowIfBusy(toReplace);
        bool reachable = false;
        for (BlockNode? node = source; node is not null; node = (node as FilterNode)?.Child)
        {
            if (ReferenceEquals(node, toReplace))
            {
                reachable = true;
                break;
            }
        }

        if (!reachable)
        {
            throw new BlockGraphException(
                $"Cannot replace '{name}' by a node mirrored from '{source.NodeName}', because it cannot be guaranteed " +
                "that doing so would not lead to an abrupt change of visible data");
        }

        if (toReplace.Size != target.Size)
        {
            throw new BlockGraphException("cannot replace image with a mirror image of different size");
        }

        return toReplace;
    }
}
