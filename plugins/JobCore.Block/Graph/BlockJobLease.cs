using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// The nodes one block job holds (QEMU's op blockers plus the job's own <c>BlockBackend</c>s), from
/// <see cref="BlockGraph.AcquireJobLease"/> until disposed when the job ends. While held, another job touching any
/// of the nodes, and <c>blockdev-del</c> of them, fail with
/// <c>Node 'x' is busy: block device is in use by block job: &lt;type&gt;</c>; deleting a node in
/// <see cref="Held"/> fails first with <c>Node x is in use</c>.
/// </summary>
public sealed class BlockJobLease : IAsyncDisposable
{
    private readonly BlockGraph _graph;
    private int _released;

    private readonly List<BlockNode> _blocked;
    private readonly List<BlockNode> _held;

    internal BlockJobLease(BlockGraph graph, string jobType, List<BlockNode> blocked, List<BlockNode> held)
    {
        _graph = graph;
        JobType = jobType;
        _blocked = blocked;
        _held = held;
    }

    /// <summary>The job type named in refusals (<c>stream</c>, <c>commit</c>, <c>mirror</c>).</summary>
    public string JobType { get; }

    /// <summary>Nodes the job works on (op-blocked): its main node and the chain between top and base.</summary>
    public IReadOnlyList<BlockNode> Blocked => _blocked;

    /// <summary>Nodes the job uses as children of its own (mirror target, commit base): op-blocked and "in use".</summary>
    public IReadOnlyList<BlockNode> Held => _held;

    /// <summary>Whether the lease was released.</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Whether the lease covers <paramref name="node"/>.</summary>
    /// <param name="node">A node.</param>
    public bool Covers(BlockNode node) =>
        Blocked.Contains(node, ReferenceEqualityComparer.Instance) || Held.Contains(node, ReferenceEqualityComparer.Instance);

    /// <summary>Adds a node the job made after taking the lease and uses as its own, e.g. its filter (graph lock held).</summary>
    internal void AddHeld(BlockNode node) => _held.Add(node);

    /// <summary>Follows a node the graph reopened as a new object (graph lock held).</summary>
    internal void Swap(BlockNode old, BlockNode replacement)
    {
        int i = _blocked.FindIndex(n => ReferenceEquals(n, old));
        if (i >= 0)
        {
            _blocked[i] = replacement;
        }

        i = _held.FindIndex(n => ReferenceEquals(n, old));
        if (i >= 0)
        {
            _held[i] = replacement;
        }
    }

    /// <summary>Releases the nodes; nodes nobody references any more (implicit nodes dropped from a chain) are closed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            await _graph.ReleaseLeaseAsync(this).ConfigureAwait(false);
        }
    }
}
