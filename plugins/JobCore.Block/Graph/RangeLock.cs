namespace JobCore.Block.Graph;

/// <summary>
/// Byte-range locking for requests on one node: shared holders (plain writes) may overlap each other; an exclusive
/// holder (a copy-on-read that must not overwrite a newer write) waits for every overlapping holder and blocks new
/// overlapping ones. Waiters are woken when a holder leaves and re-check; there is no fairness guarantee.
/// </summary>
internal sealed class RangeLock
{
    private readonly Lock _lock = new();
    private readonly List<Holder> _holders = [];
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>Takes [<paramref name="offset"/>, +<paramref name="length"/>); dispose the result to release it.</summary>
    public async ValueTask<IDisposable> AcquireAsync(long offset, long length, bool exclusive, CancellationToken cancellationToken)
    {
        var holder = new Holder(this, offset, Math.Max(length, 1), exclusive);
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (!_holders.Any(h => h.Conflicts(holder)))
                {
                    _holders.Add(holder);
                    return holder;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void Release(Holder holder)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (!_holders.Remove(holder))
            {
                return;
            }

            changed = _changed;
            _changed = NewSignal();
        }

        changed.SetResult();
    }

    private sealed class Holder(RangeLock owner, long offset, long length, bool exclusive) : IDisposable
    {
        private long End => offset + length;

        public bool Conflicts(Holder other) =>
            (exclusive || other.IsExclusive) && offset < other.End && other.Offset < End;

        public long Offset => offset;

        public bool IsExclusive => exclusive;

        public void Dispose() => owner.Release(this);
    }
}
