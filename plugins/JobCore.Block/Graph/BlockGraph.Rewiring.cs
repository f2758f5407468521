using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

public sealed partial class BlockGraph
{
    /// <summary>
    /// Holds nodes for a block job until the returned lease is disposed. Fails when any of the nodes is already held
    /// by another job: <c>Node 'x' is busy: block device is in use by block job: &lt;type&gt;</c>.
    /// </summary>
    /// <param name="jobType">The job type named in refusals (<c>stream</c>, <c>commit</c>, <c>mirror</c>).</param>
    /// <param name="blocked">Nodes the job works on (main node, chain between top and base).</param>
    /// <param name="held">Nodes the job uses as its own children (mirror target, commit base); <c>blockdev-del</c> of
    /// them says <c>Node x is in use</c>.</param>
    /// <exception cref="BlockGraphException">A node is busy or not in this graph.</exception>
    public BlockJobLease AcquireJobLease(string jobType, IEnumerable<BlockNode> blocked, IEnumerable<BlockNode>? held = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobType);
        ArgumentNullException.ThrowIfNull(blocked);
        List<BlockNode> blockedList = [.. blocked.Distinct(ReferenceEqualityComparer.Instance).Cast<BlockNode>()];
        List<BlockNode> heldList = [.. (held ?? []).Distinct(ReferenceEqualityComparer.Instance).Cast<BlockNode>()
            .Where(n => !blockedList.Contains(n, ReferenceEqualityComparer.Instance))];
        lock (_lock)
        {
            ThrowIfDisposed();
            foreach (BlockNode node in blockedList.Concat(heldList))
            {
                RequireRegisteredLocked(node);
                ThrowIfBusyLocked(node);
            }

            var lease = new BlockJobLease(this, jobType, blockedList, heldList);
            _leases.Add(lease);
            return lease;
        }
    }

    /// <summary>
    /// Makes <paramref name="lease"/> also hold <paramref name="node"/> as one of the job's own nodes (one it created
    /// after taking the lease, such as stream's copy-on-read filter, on which QEMU's job has its BlockBackend): another
    /// job that meets it is told it is busy, and <c>blockdev-del</c> of it says <c>Node x is in use</c>.
    /// </summary>
    /// <param name="lease">A lease of this graph, not released.</param>
    /// <param name="node">A node of this graph that no other job holds.</param>
    /// <exception cref="BlockGraphException">The node is busy or not in this graph.</exception>
    public void ExtendJobLease(BlockJobLease lease, BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_leases.Contains(lease))
            {
                throw new InvalidOperationException("The lease is not held in this graph (released?)");
            }

            RequireRegisteredLocked(node);
            ThrowIfBusyLocked(node);
            lease.AddHeld(node);
        }
    }

    /// <summary>The type of the job holding <paramref name="node"/>, or <see langword="null"/>.</summary>
    /// <param name="node">A node.</param>
    public string? GetBlockingJobType(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            return _leases.FirstOrDefault(l => l.Covers(node))?.JobType;
        }
    }

    /// <summary>Throws QEMU's op-blocker error when a job holds <paramref name="node"/>.</summary>
    /// <param name="node">A node.</param>
    /// <exception cref="BlockGraphException"><c>Node 'x' is busy: block device is in use by block job: &lt;type&gt;</c>.</exception>
    public void ThrowIfBusy(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            ThrowIfBusyLocked(node);
        }
    }

    /// <summary>
    /// Makes every parent of <paramref name="old"/> (nodes having it as backing or filtered child, and backends) use
    /// <paramref name="replacement"/> instead — QEMU's <c>bdrv_replace_node</c>, used for mirror pivot and active
    /// commit completion. Parents reachable from <paramref name="replacement"/> keep <paramref name="old"/> (no loop:
    /// a mirror target whose backing is the source stays so). Nodes nobody uses any more afterwards, and that the
    /// monitor does not own, are closed.
    /// </summary>
    /// <param name="old">The node being replaced.</param>
    /// <param name="replacement">The node taking its place.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    /// <exception cref="BlockGraphException">A parent uses <paramref name="old"/> as its file child (not replaceable), or a node is not in this graph.</exception>
    public async ValueTask ReplaceNodeAsync(BlockNode old, BlockNode replacement, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(old);
        ArgumentNullException.ThrowIfNull(replacement);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            await using IAsyncDisposable drained = await DrainAsync(old, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                ReplaceLocked(old, replacement, except: null);
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// Inserts a filter above <paramref name="below"/>: creates it with <paramref name="create"/> (name, child), then
    /// points every parent and backend of <paramref name="below"/> at it. The filter stays until
    /// <see cref="RemoveFilterAsync"/>. Used by mirror (dirty tracking) and stream (copy-on-read).
    /// </summary>
    /// <typeparam name="TFilter">The filter type.</typeparam>
    /// <param name="below">The node to filter.</param>
    /// <param name="create">Creates the filter from its node name and child.</param>
    /// <param name="nodeName">The filter's node name (QEMU's <c>filter-node-name</c>), or <see langword="null"/> for <c>#blockNNN</c>.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    public async ValueTask<TFilter> InsertFilterAsync<TFilter>(
        BlockNode below, Func<string, BlockNode, TFilter> create, string? nodeName = null, CancellationToken cancellationToken = default)
        where TFilter : FilterNode
    {
        ArgumentNullException.ThrowIfNull(below);
        ArgumentNullException.ThrowIfNull(create);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            lock (_lock)
            {
                RequireRegisteredLocked(below);
            }

            await using IAsyncDisposable drained = await DrainAsync(below, cancellationToken).ConfigureAwait(false);
            var context = new OpenContext();
            string name = ReserveName(nodeName, context);
            TFilter filter = create(name, below);
            if (filter.NodeName != name || !ReferenceEquals(filter.Child, below))
            {
                throw new ArgumentException("The filter must use the given name and child.", nameof(create));
            }

            lock (_lock)
            {
                Register(filter, null);
                _nodes[name].Pinned = true;
                try
                {
                    ReplaceLocked(below, filter, except: filter);
                }
                catch
                {
                    // Nothing was rewired (edges are checked before any changes): forget the filter again.
                    _nodes.Remove(name);
                    throw;
                }
            }

            return filter;
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// Removes a filter inserted by <see cref="InsertFilterAsync"/>: its parents and backends get the filter's
    /// current child back, and the filter is closed.
    /// </summary>
    /// <param name="filter">The filter.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    public async ValueTask RemoveFilterAsync(FilterNode filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            await using IAsyncDisposable drained = await DrainAsync(filter, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                NodeEntry entry = EntryOf(filter) ?? throw new BlockGraphException($"Node '{filter.NodeName}' is not part of this block graph");
                ReplaceLocked(filter, filter.Child, except: null);
                entry.Pinned = false;
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// Gives <paramref name="overlay"/> a new backing node: the image header first (backing file name
    /// <paramref name="backingFile"/>, default the new backing node's file name, and its format), then the graph.
    /// <see langword="null"/> makes the image standalone. Used at stream and commit completion; nodes dropped from the
    /// chain that the monitor does not own are closed.
    /// </summary>
    /// <param name="overlay">A qcow2 node (filters above it are skipped).</param>
    /// <param name="backing">The new backing node, or <see langword="null"/>.</param>
    /// <param name="backingFile">The string to record in the header, or <see langword="null"/> for the backing node's file name.</param>
    /// <param name="writeHeader">Whether to rewrite the header (false: graph only, e.g. a target created with the right header).</param>
    /// <param name="backingFormat">The format to record, or <see langword="null"/> for the backing node's driver
    /// (pass <c>raw</c> for stream's <c>backing-mask-protocol</c> when the backing node is a protocol node).</param>
    /// <param name="cancellationToken">Cancels before the header is written.</param>
    /// <exception cref="BlockGraphException">The overlay has no backing support, or the change would make a loop
    /// (<c>Making 'x' a backing child of 'y' would create a cycle</c>).</exception>
    /// <exception cref="BlockIOException">The header could not be written (the graph is then unchanged).</exception>
    public async ValueTask ChangeBackingAsync(
        BlockNode overlay, BlockNode? backing, string? backingFile = null, bool writeHeader = true, string? backingFormat = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(overlay);
        var image = BackingChain.SkipFilters(overlay) as Qcow2Node
            ?? throw new BlockGraphException($"Node '{overlay.NodeName}' does not support backing files");
        if (backing is not null)
        {
            ThrowIfCycle(image, backing);
        }

        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            await using IAsyncDisposable drained = await DrainAsync(image, cancellationToken).ConfigureAwait(false);
            if (writeHeader)
            {
                string? file = backing is null ? null
                    : backingFile ?? BackingChain.TryGetFilename(backing)
                      ?? throw new BlockGraphException($"Node '{backing.NodeName}' has no file name to record as backing file");
                string? format = backing is null ? null : backingFormat ?? BackingChain.GetFormatName(backing);
                await image.ChangeBackingFileAsync(file, format, cancellationToken).ConfigureAwait(false);
            }

            image.SetBackingNode(backing);
            lock (_lock)
            {
                RecordBackingEdgeLocked(image);
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// QEMU's drained section around <paramref name="node"/>: every backend whose requests can reach the node (attached
    /// to it or to a node above it) holds new requests back, and the scope is returned once the requests in flight have
    /// finished; disposing it lets the held ones go on (to whatever node the backend is attached to by then). The
    /// rewiring methods drain on their own; a job drains to keep the guest out across several steps (mirror from its
    /// last convergence check through the pivot). Drains nest. Requests that reach the node other than through a
    /// backend (a job's own I/O) are not held.
    /// </summary>
    /// <param name="node">A node.</param>
    /// <param name="cancellationToken">Cancels the wait for requests in flight (the hold is then released).</param>
    internal async ValueTask<IAsyncDisposable> DrainAsync(BlockNode node, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        RequestGate[] gates;
        lock (_lock)
        {
            gates = [.. _backends.Values.Where(b => Reachable(b.Node).Contains(node)).Select(b => b.Gate)];
        }

        var scope = new RequestGate.DrainScope(gates);
        await scope.WaitIdleAsync(cancellationToken).ConfigureAwait(false);
        return scope;
    }

    internal async ValueTask ReleaseLeaseAsync(BlockJobLease lease)
    {
        lock (_lock)
        {
            if (!_leases.Remove(lease))
            {
                return;
            }
        }

        await _mutation.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_disposed)
            {
                await CollectAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _mutation.Release();
        }
    }

    private void ThrowIfBusyLocked(BlockNode node)
    {
        if (_leases.FirstOrDefault(l => l.Covers(node)) is { } lease)
        {
            throw new BlockGraphException($"Node '{node.NodeName}' is busy: block device is in use by block job: {lease.JobType}");
        }
    }

    private void ReplaceLocked(BlockNode old, BlockNode replacement, BlockNode? except)
    {
        RequireRegisteredLocked(old);
        RequireRegisteredLocked(replacement);
        if (ReferenceEquals(old, replacement))
        {
            return;
        }

        // Parents below the replacement keep the old node, or the graph would loop (QEMU's should_update_child).
        HashSet<BlockNode> belowReplacement = Reachable(replacement);
        var edges = new List<Action>();
        foreach (BlockNode parent in ParentsLocked(old).ToList())
        {
            if (ReferenceEquals(parent, except) || belowReplacement.Contains(parent))
            {
                continue;
            }

            if (parent is FilterNode filter && ReferenceEquals(filter.Child, old))
            {
                edges.Add(() => filter.SetChild(replacement));
            }
            else if (parent is Qcow2Node image && ReferenceEquals(image.Backing, old))
            {
                edges.Add(() =>
                {
                    image.SetBackingNode(replacement);
                    RecordBackingEdgeLocked(image);
                });
            }
            else
            {
                throw new BlockGraphException(
                    $"Cannot replace node '{old.NodeName}': '{parent.NodeName}' uses it as its file child");
            }
        }

        foreach (Action edge in edges)
        {
            edge();
        }

        foreach (BlockBackend backend in _backends.Values.Where(b => ReferenceEquals(b.Node, old)))
        {
            backend.Retarget(replacement);
        }
    }

    // A backing edge of 'image' was just made: QEMU's new backing op blocker names the image's device if a backend
    // is attached to it right now, else its node name, and is the newest one on the backing node.
    private void RecordBackingEdgeLocked(Qcow2Node image)
    {
        BlockBackend? device = _backends.Values.FirstOrDefault(b => ReferenceEquals(b.Node, image));
        _backingParentLabels[image.NodeName] = (device?.Name ?? image.NodeName, _nextOrder++);
    }

    private static HashSet<BlockNode> Reachable(BlockNode root)
    {
        var seen = new HashSet<BlockNode>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<BlockNode>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            BlockNode node = pending.Pop();
            if (!seen.Add(node))
            {
                continue;
            }

            if (node.File is { } file)
            {
                pending.Push(file);
            }

            if (node.Backing is { } backing)
            {
                pending.Push(backing);
            }
        }

        return seen;
    }
}
