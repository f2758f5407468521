using System.Text.Json;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Graph;

/// <summary>
/// The node registry of one host (QEMU's block graph): opens nodes from <c>blockdev-add</c> options with their
/// inline children and backing chains, finds them by name, deletes them when nothing uses them, rewires parents
/// (filter insertion, mirror pivot, backing changes at stream/commit completion) and holds the nodes of running
/// jobs. Thread-safe: structural changes run one at a time; look-ups never wait for them.
/// Errors are <see cref="BlockGraphException"/>s with QEMU's texts.
/// </summary>
public sealed partial class BlockGraph : IAsyncDisposable
{
    private const int NodeNameLimit = 32; // QEMU's node_name buffer, NUL included
    private const int MaxChainLength = 1024;

    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _mutation = new(1, 1);
    private readonly Dictionary<string, NodeEntry> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BlockBackend> _backends = new(StringComparer.Ordinal);
    private readonly List<BlockJobLease> _leases = [];

    // QEMU names a backing node's parent in its op blocker when the backing edge is made: the parent's device name if
    // a backend is attached to it then, else its node name; the newest blocker is the one reported. Edges made by
    // ChangeBackingAsync are kept here (by the parent's node name) with that name and when they were made (on the
    // node-order clock); an edge made when its parent was opened uses the node name and the parent's order.
    private readonly Dictionary<string, (string Label, long Order)> _backingParentLabels = new(StringComparer.Ordinal);
    private long _nextAutoName;
    private long _nextOrder;
    private bool _disposed;

    /// <summary>Every node, newest first (the order of <c>query-named-block-nodes</c>).</summary>
    public IReadOnlyList<BlockNode> Nodes
    {
        get
        {
            lock (_lock)
            {
                return [.. _nodes.Values.OrderByDescending(e => e.Order).Select(e => e.Node)];
            }
        }
    }

    /// <summary>Every backend (guest device), in name order (the order of <c>query-block</c>).</summary>
    public IReadOnlyList<BlockBackend> Backends
    {
        get
        {
            lock (_lock)
            {
                return [.. _backends.Values.OrderBy(b => b.Name, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>
    /// <c>blockdev-add</c>: parses <paramref name="arguments"/> (see <see cref="BlockdevOptions.Parse(JsonElement)"/>)
    /// and opens the node (see <see cref="AddAsync(BlockdevOptions, CancellationToken)"/>).
    /// </summary>
    /// <param name="arguments">The command's argument object.</param>
    /// <param name="cancellationToken">Cancels the open (nothing stays open).</param>
    public ValueTask<BlockNode> AddAsync(JsonElement arguments, CancellationToken cancellationToken = default) =>
        AddAsync(BlockdevOptions.Parse(arguments), cancellationToken);

    /// <summary>
    /// <c>blockdev-add</c>: opens the node with its inline children (implicit ones get <c>#blockNNN</c> names) and,
    /// for qcow2 without a <c>backing</c> option, the backing chain named in the image headers (relative names
    /// resolved against the image's folder, format from the header or probed; opened read-only). The root needs a
    /// node name and is owned by the monitor (removable with <see cref="RemoveAsync"/>). On failure nothing stays open.
    /// </summary>
    /// <param name="options">The node's options.</param>
    /// <param name="cancellationToken">Cancels the open (nothing stays open).</param>
    /// <returns>The opened root node.</returns>
    /// <exception cref="BlockGraphException">QEMU's error, e.g. <c>Duplicate nodes with node-name='x'</c> or
    /// <c>Could not open backing file: Could not open '/p': No such file or directory</c>.</exception>
    public async ValueTask<BlockNode> AddAsync(BlockdevOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.NodeName is null)
        {
            throw new BlockGraphException("'node-name' must be specified for the root node");
        }

        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            var context = new OpenContext();
            try
            {
                BlockNode node = await OpenAsync(options, context, cancellationToken).ConfigureAwait(false);
                lock (_lock)
                {
                    _nodes[node.NodeName].MonitorOwned = true;
                }

                return node;
            }
            catch
            {
                await RollBackAsync(context).ConfigureAwait(false);
                throw;
            }
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>The node named <paramref name="nodeName"/>, or <see langword="null"/>.</summary>
    /// <param name="nodeName">A node name (auto-generated names such as <c>#block123</c> included).</param>
    public BlockNode? Find(string nodeName)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        lock (_lock)
        {
            return _nodes.TryGetValue(nodeName, out NodeEntry? entry) ? entry.Node : null;
        }
    }

    /// <summary>
    /// QEMU's <c>bdrv_lookup_bs</c>: the root node of the backend named <paramref name="device"/>, else the node
    /// named <paramref name="nodeName"/>; otherwise <c>Cannot find device='d' nor node-name='n'</c>.
    /// </summary>
    /// <param name="device">A backend (device) name, or <see langword="null"/>.</param>
    /// <param name="nodeName">A node name, or <see langword="null"/>.</param>
    /// <exception cref="BlockGraphException">Neither exists.</exception>
    public BlockNode Lookup(string? device, string? nodeName)
    {
        lock (_lock)
        {
            if (device is not null && _backends.TryGetValue(device, out BlockBackend? backend))
            {
                return backend.Node;
            }

            if (nodeName is not null && _nodes.TryGetValue(nodeName, out NodeEntry? entry))
            {
                return entry.Node;
            }
        }

        throw new BlockGraphException($"Cannot find device='{device}' nor node-name='{nodeName}'");
    }

    /// <summary>
    /// The node named <paramref name="nodeName"/>; otherwise QEMU's <c>Node 'x' not found</c> (the text of commands
    /// that take only node names).
    /// </summary>
    /// <param name="nodeName">A node name.</param>
    /// <exception cref="BlockGraphException">No such node.</exception>
    public BlockNode GetNode(string nodeName) =>
        Find(nodeName) ?? throw new BlockGraphException($"Node '{nodeName}' not found");

    /// <summary>
    /// Drops the monitor's reference to <paramref name="node"/>, a root the daemon opened for a command (drive-mirror's
    /// target, which QEMU does not hand to the monitor): it stays open while a parent, backend or job uses it and is
    /// closed once nothing does.
    /// </summary>
    /// <param name="node">A node of this graph.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    public async ValueTask DisownAsync(BlockNode node, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            lock (_lock)
            {
                RequireRegisteredLocked(node);
                EntryOf(node)!.MonitorOwned = false;
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>Whether <paramref name="node"/> was added by <c>blockdev-add</c> as a root (and not deleted since).</summary>
    /// <param name="node">A node.</param>
    public bool IsMonitorOwned(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            return EntryOf(node)?.MonitorOwned ?? false;
        }
    }

    /// <summary>The nodes that have <paramref name="node"/> as their file, backing or filtered child.</summary>
    /// <param name="node">A node.</param>
    public IReadOnlyList<BlockNode> GetParents(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            return [.. ParentsLocked(node)];
        }
    }

    /// <summary>
    /// Whether no other node uses <paramref name="node"/> as a child (QEMU's root nodes; backends do not count).
    /// A node with a filter inserted above it (stream's copy-on-read, mirror's tracking filter) is not a root:
    /// block-commit refuses it with <c>Need a root block node</c>.
    /// </summary>
    /// <param name="node">A node.</param>
    public bool IsRoot(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            return !ParentsLocked(node).Any();
        }
    }

    /// <summary>
    /// <c>blockdev-del</c>: releases a node added with <see cref="AddAsync(BlockdevOptions, CancellationToken)"/>
    /// and closes it with every implicit child nothing else uses. Refusals, in QEMU's order:
    /// <c>Failed to find node with node-name='x'</c>; <c>Node x is in use</c> (a backend or a job uses it as its
    /// own child); <c>Node 'x' is busy: block device is in use by block job: stream</c>; <c>Node 'x' is busy: node
    /// is used as backing hd of 'y'</c> (QEMU's backing op blocker; y is the overlay's node name, or its device name
    /// when the backing was set while a backend was attached to it);
    /// <c>Node x is not owned by the monitor</c>; <c>Block device x is in use</c> (another node's child).
    /// </summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    public async ValueTask RemoveAsync(string nodeName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            lock (_lock)
            {
                if (!_nodes.TryGetValue(nodeName, out NodeEntry? entry))
                {
                    throw new BlockGraphException($"Failed to find node with node-name='{nodeName}'");
                }

                BlockNode node = entry.Node;
                if (_backends.Values.Any(b => ReferenceEquals(b.Node, node)) ||
                    _leases.Any(l => l.Held.Contains(node, ReferenceEqualityComparer.Instance)))
                {
                    throw new BlockGraphException($"Node {nodeName} is in use");
                }

                ThrowIfBusyLocked(node);
                if (_nodes.Values.Where(e => ReferenceEquals(e.Node.Backing, node))
                    .Select(e => _backingParentLabels.GetValueOrDefault(e.Node.NodeName, (Label: e.Node.NodeName, e.Order)))
                    .OrderByDescending(edge => edge.Order).FirstOrDefault() is { Label: not null } newest)
                {
                    throw new BlockGraphException($"Node '{nodeName}' is busy: node is used as backing hd of '{newest.Label}'");
                }

                if (!entry.MonitorOwned)
                {
                    throw new BlockGraphException($"Node {nodeName} is not owned by the monitor");
                }

                if (ParentsLocked(node).Any())
                {
                    throw new BlockGraphException($"Block device {nodeName} is in use");
                }

                entry.MonitorOwned = false;
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// Attaches a backend (QEMU's <c>BlockBackend</c>: a guest device or another user outside the graph) to
    /// <paramref name="node"/>; it follows the node through filter insertion and replacement.
    /// </summary>
    /// <param name="name">The backend's (device) name; unique among backends and node names.</param>
    /// <param name="node">A node of this graph.</param>
    /// <exception cref="BlockGraphException">The name is taken or the node is not in this graph.</exception>
    public BlockBackend AttachBackend(string name, BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            ThrowIfDisposed();
            RequireRegisteredLocked(node);
            if (_backends.ContainsKey(name) || _nodes.ContainsKey(name))
            {
                throw new BlockGraphException($"Duplicate device name '{name}'");
            }

            var backend = new BlockBackend(name, node);
            _backends.Add(name, backend);
            return backend;
        }
    }

    /// <summary>Detaches a backend; nodes only it kept open (none that the monitor owns) are closed.</summary>
    /// <param name="backend">A backend of this graph.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes.</param>
    public async ValueTask DetachBackendAsync(BlockBackend backend, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(backend);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_lock)
            {
                if (!_backends.Remove(backend.Name))
                {
                    return;
                }
            }

            await CollectAsync().ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    /// <summary>
    /// QEMU's <c>bdrv_get_device_name</c>: the name of the backend attached to <paramref name="node"/> itself (not to a
    /// node above it), or the empty string. Block jobs take it as their id when <c>job-id</c> is omitted.
    /// </summary>
    /// <param name="node">A node.</param>
    public string DeviceNameOf(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (_lock)
        {
            return _backends.Values.FirstOrDefault(b => ReferenceEquals(b.Node, node))?.Name ?? string.Empty;
        }
    }

    /// <summary>The backend named <paramref name="name"/>, or <see langword="null"/>.</summary>
    /// <param name="name">A backend (device) name.</param>
    public BlockBackend? FindBackend(string name)
    {
        lock (_lock)
        {
            return _backends.GetValueOrDefault(name);
        }
    }

    /// <summary>Closes every node, parents before children (errors while closing are ignored).</summary>
    public async ValueTask DisposeAsync()
    {
        await _mutation.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            List<NodeEntry> all;
            lock (_lock)
            {
                all = [.. _nodes.Values];
                _nodes.Clear();
                _backends.Clear();
                _leases.Clear();
            }

            await CloseInOrderAsync(all).ConfigureAwait(false);
        }
        finally
        {
            _mutation.Release();
        }
    }

    private NodeEntry? EntryOf(BlockNode node) =>
        _nodes.TryGetValue(node.NodeName, out NodeEntry? entry) && ReferenceEquals(entry.Node, node) ? entry : null;

    private void RequireRegisteredLocked(BlockNode node)
    {
        if (EntryOf(node) is null)
        {
            throw new BlockGraphException($"Node '{node.NodeName}' is not part of this block graph");
        }
    }

    private IEnumerable<BlockNode> ParentsLocked(BlockNode node) =>
        _nodes.Values.Select(e => e.Node).Where(p => !ReferenceEquals(p, node) && IsParentOf(p, node));

    private static bool IsParentOf(BlockNode parent, BlockNode child) =>
        ReferenceEquals(parent.File, child) || ReferenceEquals(parent.Backing, child);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    // Closes nodes that nothing keeps open: not owned by the monitor, not pinned (filters a job inserted),
    // no parent, no backend, no lease. Parents go first, so their children are closed in a later round.
    private async ValueTask CollectAsync()
    {
        while (true)
        {
            List<NodeEntry> garbage;
            lock (_lock)
            {
                garbage = [.. _nodes.Values.Where(e => !e.MonitorOwned && !e.Pinned && !IsReferencedLocked(e.Node))];
                foreach (NodeEntry entry in garbage)
                {
                    _nodes.Remove(entry.Node.NodeName);
                    _backingParentLabels.Remove(entry.Node.NodeName);
                }
            }

            if (garbage.Count == 0)
            {
                return;
            }

            foreach (NodeEntry entry in garbage)
            {
                await CloseAsync(entry.Node).ConfigureAwait(false);
            }
        }
    }

    private bool IsReferencedLocked(BlockNode node) =>
        ParentsLocked(node).Any() ||
        _backends.Values.Any(b => ReferenceEquals(b.Node, node)) ||
        _leases.Any(l => l.Covers(node));

    private static async ValueTask CloseInOrderAsync(List<NodeEntry> entries)
    {
        var remaining = entries.Select(e => e.Node).ToList();
        while (remaining.Count > 0)
        {
            // Close the nodes no remaining node depends on; a loop (never built by the graph) is broken arbitrarily.
            var roots = remaining.Where(n => !remaining.Any(p => !ReferenceEquals(p, n) && IsParentOf(p, n))).ToList();
            if (roots.Count == 0)
            {
                roots.Add(remaining[0]);
            }

            foreach (BlockNode node in roots)
            {
                remaining.Remove(node);
                await CloseAsync(node).ConfigureAwait(false);
            }
        }
    }

    private static async ValueTask CloseAsync(BlockNode node)
    {
        // A closing format writes its metadata back; blkdebug below must not fail that (QEMU raises no data events).
        using IDisposable suspended = SuspendInjectionBelow(node);
        try
        {
            await node.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or BlockFormatException or ObjectDisposedException)
        {
            // The node is gone either way; a failed write-back leaves at most leaked clusters, as in QEMU.
        }
    }

    private static CompositeScope SuspendInjectionBelow(BlockNode? node)
    {
        var scopes = new List<IDisposable>();
        var seen = new HashSet<BlockNode>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<BlockNode>();
        if (node is not null)
        {
            pending.Push(node);
        }

        while (pending.Count > 0)
        {
            BlockNode n = pending.Pop();
            if (!seen.Add(n))
            {
                continue;
            }

            if (n is BlkdebugNode blkdebug)
            {
                scopes.Add(blkdebug.SuspendInjection());
            }

            if (n.File is { } file)
            {
                pending.Push(file);
            }
        }

        return new CompositeScope(scopes);
    }

    private sealed class CompositeScope(List<IDisposable> scopes) : IDisposable
    {
        public void Dispose()
        {
            foreach (IDisposable scope in scopes)
            {
                scope.Dispose();
            }
        }
    }

    private sealed class NodeEntry(BlockNode node, long order)
    {
        public BlockNode Node { get; } = node;

        public long Order { get; } = order;

        public bool MonitorOwned { get; set; }

        public bool Pinned { get; set; }
    }
}
