using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

public sealed partial class BlockGraph
{
    /// <summary>
    /// Reopens <paramref name="node"/> and its file children read-only or read-write (QEMU's <c>bdrv_reopen</c>),
    /// e.g. a commit base or a stream top before a job writes to it, and back afterwards. Format and file nodes are
    /// reopened as new objects with the same node names; every parent, backend and job lease is moved to them, so
    /// callers must continue with the returned node. Filters are switched in place. The backing chain is untouched.
    /// </summary>
    /// <param name="node">A node of this graph.</param>
    /// <param name="readOnly">The wanted mode.</param>
    /// <param name="cancellationToken">Cancels before anything is swapped.</param>
    /// <returns>The node to use from now on (<paramref name="node"/> itself if nothing changed or it is a filter).</returns>
    /// <exception cref="BlockGraphException">The node cannot be reopened (the graph is then unchanged), e.g.
    /// <c>Could not open '/p': Permission denied</c>.</exception>
    public async ValueTask<BlockNode> ReopenAsync(BlockNode node, bool readOnly, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            lock (_lock)
            {
                RequireRegisteredLocked(node);
            }

            if (!NeedsReopen(node, readOnly))
            {
                return node;
            }

            // No backend request may run on the old objects while they are swapped and closed.
            await using IAsyncDisposable drained = await DrainAsync(node, cancellationToken).ConfigureAwait(false);

            var swaps = new List<(BlockNode Old, BlockNode New)>();
            var filters = new List<(FilterNode Filter, BlockNode OldChild, bool OldReadOnly)>();
            BlockNode fresh;
            try
            {
                fresh = await ReopenTreeAsync(node, readOnly, swaps, filters, cancellationToken).ConfigureAwait(false);
                lock (_lock)
                {
                    ThrowIfFileChildSharedLocked(swaps);
                }
            }
            catch
            {
                foreach ((FilterNode filter, BlockNode oldChild, bool oldReadOnly) in filters)
                {
                    filter.SetChild(oldChild);
                    filter.SetReadOnly(oldReadOnly);
                }

                for (int i = swaps.Count - 1; i >= 0; i--)
                {
                    await CloseAsync(swaps[i].New).ConfigureAwait(false);
                }

                throw;
            }

            lock (_lock)
            {
                foreach ((BlockNode old, BlockNode replacement) in swaps)
                {
                    SwapLocked(old, replacement);
                }

                // The new formats copied their backing pointers before the swaps; follow them too.
                foreach ((_, BlockNode replacement) in swaps)
                {
                    if (replacement is Qcow2Node image && swaps.FirstOrDefault(s => ReferenceEquals(s.Old, image.Backing)).New is { } moved)
                    {
                        image.SetBackingNode(moved);
                    }
                }
            }

            // Parents first: a format writes nothing back when read-only, and the old file handles go last.
            for (int i = swaps.Count - 1; i >= 0; i--)
            {
                await CloseAsync(swaps[i].Old).ConfigureAwait(false);
            }

            return fresh;
        }
        finally
        {
            _mutation.Release();
        }
    }

    private static bool NeedsReopen(BlockNode node, bool readOnly)
    {
        for (BlockNode? n = node; n is not null; n = n.File)
        {
            if (n.ReadOnly != readOnly)
            {
                return true;
            }
        }

        return false;
    }

    // Opens the replacement of `node` (children first); records swaps in child-to-parent order.
    private static async ValueTask<BlockNode> ReopenTreeAsync(
        BlockNode node, bool readOnly, List<(BlockNode Old, BlockNode New)> swaps,
        List<(FilterNode Filter, BlockNode OldChild, bool OldReadOnly)> filters, CancellationToken cancellationToken)
    {
        switch (node)
        {
            case FileNode file:
            {
                FileNode fresh = await OpenFileAsync(file.NodeName, file.Filename, readOnly, cancellationToken).ConfigureAwait(false);
                swaps.Add((file, fresh));
                return fresh;
            }

            case FilterNode filter:
            {
                BlockNode oldChild = filter.Child;
                BlockNode child = await ReopenTreeAsync(oldChild, readOnly, swaps, filters, cancellationToken).ConfigureAwait(false);
                filters.Add((filter, oldChild, filter.ReadOnly));
                filter.SetChild(child);
                filter.SetReadOnly(readOnly);
                return filter;
            }

            case RawNode raw:
            {
                BlockNode child = await ReopenTreeAsync(raw.File!, readOnly, swaps, filters, cancellationToken).ConfigureAwait(false);
                RawNode fresh = await RawNode.OpenAsync(raw.NodeName, child, readOnly, cancellationToken).ConfigureAwait(false);
                swaps.Add((raw, fresh));
                return fresh;
            }

            case Qcow2Node image:
            {
                if (!image.ReadOnly)
                {
                    // Everything cached must be in the file before another instance reads the metadata.
                    await image.FlushAsync(cancellationToken).ConfigureAwait(false);
                }

                BlockNode child = await ReopenTreeAsync(image.File!, readOnly, swaps, filters, cancellationToken).ConfigureAwait(false);
                Qcow2Node fresh = await OpenQcow2OverAsync(image.NodeName, child, readOnly, cancellationToken).ConfigureAwait(false);
                fresh.SetBackingNode(image.Backing);
                fresh.AutoBackingFile = image.AutoBackingFile;
                swaps.Add((image, fresh));
                return fresh;
            }

            default:
                throw new BlockGraphException($"Node '{node.NodeName}' ({node.DriverName}) cannot be reopened");
        }
    }

    // A file node reopened as a new object must not stay the file child of a node outside the reopened subtree.
    private void ThrowIfFileChildSharedLocked(List<(BlockNode Old, BlockNode New)> swaps)
    {
        var reopened = new HashSet<BlockNode>(swaps.Select(s => s.Old), ReferenceEqualityComparer.Instance);
        foreach ((BlockNode old, _) in swaps)
        {
            foreach (BlockNode parent in ParentsLocked(old))
            {
                if (ReferenceEquals(parent.File, old) && parent is not FilterNode && !reopened.Contains(parent))
                {
                    throw new BlockGraphException(
                        $"Node '{old.NodeName}' cannot be reopened: '{parent.NodeName}' also uses it as its file child");
                }
            }
        }
    }

    private void SwapLocked(BlockNode old, BlockNode replacement)
    {
        NodeEntry entry = _nodes[old.NodeName];
        replacement.DetectZeroes = old.DetectZeroes;
        _nodes[old.NodeName] = new NodeEntry(replacement, entry.Order) { MonitorOwned = entry.MonitorOwned, Pinned = entry.Pinned };
        foreach (BlockNode parent in _nodes.Values.Select(e => e.Node).ToList())
        {
            if (parent is FilterNode filter && ReferenceEquals(filter.Child, old))
            {
                filter.SetChild(replacement);
            }
            else if (parent is Qcow2Node image && ReferenceEquals(image.Backing, old))
            {
                image.SetBackingNode(replacement);
            }
        }

        foreach (BlockBackend backend in _backends.Values.Where(b => ReferenceEquals(b.Node, old)))
        {
            backend.Retarget(replacement);
        }

        foreach (BlockJobLease lease in _leases)
        {
            lease.Swap(old, replacement);
        }
    }
}
