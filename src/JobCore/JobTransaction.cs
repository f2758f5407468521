namespace JobCore;

/// <summary>
/// A group of jobs that finalize together: once every member's work succeeded, all are prepared, then each is
/// committed; if any member fails or is cancelled, every other member is force-cancelled and all are aborted.
/// A job created without a transaction gets its own one-member transaction.
/// </summary>
public sealed class JobTransaction
{
    // QEMU inserts at the head: list order is newest member first.
    internal List<Job> Members { get; } = [];

    internal bool Aborting { get; set; }

    /// <summary>The ids of the current members, in finalization order (newest first).</summary>
    public IReadOnlyList<string> MemberIds
    {
        get
        {
            lock (Members)
            {
                return Members.Select(j => j.Id).ToArray();
            }
        }
    }

    internal void Add(Job job)
    {
        lock (Members)
        {
            Members.Insert(0, job);
        }
    }

    internal void Remove(Job job)
    {
        lock (Members)
        {
            Members.Remove(job);
        }
    }

    internal Job[] Snapshot()
    {
        lock (Members)
        {
            return [.. Members];
        }
    }
}
