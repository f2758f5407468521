using JobCore.Block.Graph;
using JobCore.Block.Options;

namespace JobCore.Block.Nodes;

/// <summary>
/// QEMU's <c>blkdebug</c> filter: passes requests to <c>image</c> and fails them by <c>inject-error</c> rules.
/// <para>
/// QEMU arms rules through debug events that the format driver above raises before its data I/O. JobCore's qcow2
/// driver does so too (<see cref="EventsRaisedByParent"/>); under any other parent this node raises the event of each
/// request itself: a read raises <c>read_aio</c>, a write or write-zeroes <c>write_aio</c>, a flush
/// <c>flush_to_disk</c>. As in QEMU, an event
/// that has rules (in the current state) replaces the set of armed rules with its rules; an armed rule then fails
/// every request of its <c>iotype</c> set (default: read, write, write-zeroes, discard, flush) that covers its
/// <c>sector</c> (or any request, for -1) until another event re-arms, or until its first hit when <c>once</c> is set.
/// <c>immediately</c> fails the request synchronously; otherwise it fails after one asynchronous yield.
/// </para>
/// While a parent format opens or closes (header and metadata I/O), the graph suspends injection
/// (<see cref="SuspendInjection"/>), as QEMU raises no data events then.
/// </summary>
public sealed class BlkdebugNode : FilterNode
{
    private const long SectorSize = 512;

    // QEMU's blkdebug state: rules start in state 1 and JobCore has no set-state rules.
    private const int CurrentState = 1;

    private const uint DefaultIOTypeMask =
        (1u << (int)BlkdebugIOType.Read) | (1u << (int)BlkdebugIOType.Write) |
        (1u << (int)BlkdebugIOType.WriteZeroes) | (1u << (int)BlkdebugIOType.Discard) | (1u << (int)BlkdebugIOType.Flush);

    private readonly Lock _lock = new();
    private readonly List<BlkdebugInjectErrorOptions> _rules;
    private List<BlkdebugInjectErrorOptions> _armed = [];
    private int _suspended;

    private BlkdebugNode(string nodeName, BlockNode image, IEnumerable<BlkdebugInjectErrorOptions> rules, bool readOnly)
        : base(nodeName, image, readOnly)
    {
        _rules = [.. rules];
        OpenedWith = [.. _rules];
    }

    /// <summary>The rules as given at open (node queries describe the node by them, as QEMU does).</summary>
    internal IReadOnlyList<BlkdebugInjectErrorOptions> OpenedWith { get; }

    /// <inheritdoc />
    public override string DriverName => "blkdebug";

    /// <summary>The rules not yet removed (a <c>once</c> rule goes after its first hit), in the order given.</summary>
    public IReadOnlyList<BlkdebugInjectErrorOptions> Rules
    {
        get { lock (_lock) { return [.. _rules]; } }
    }

    /// <summary>Creates the filter over <paramref name="image"/>.</summary>
    /// <param name="nodeName">The node name.</param>
    /// <param name="image">The filtered node.</param>
    /// <param name="rules">The <c>inject-error</c> rules.</param>
    /// <param name="readOnly">Whether writes are refused.</param>
    public static BlkdebugNode Create(string nodeName, BlockNode image, IEnumerable<BlkdebugInjectErrorOptions> rules, bool readOnly)
    {
        ArgumentNullException.ThrowIfNull(rules);
        return new BlkdebugNode(nodeName, image, rules, readOnly);
    }

    /// <summary>
    /// Set by a format driver above that raises the events of its data I/O itself (qcow2, as in QEMU): requests then
    /// raise no events here, so the driver's metadata I/O arms nothing (armed rules still apply to it).
    /// </summary>
    internal bool EventsRaisedByParent { get; set; }

    /// <summary>Raises a debug event, as a format driver would before its data I/O (arms the event's rules).</summary>
    /// <param name="blkdebugEvent">The event.</param>
    public void RaiseEvent(BlkdebugEvent blkdebugEvent)
    {
        lock (_lock)
        {
            RaiseEventLocked(blkdebugEvent);
        }
    }

    /// <summary>Stops raising events and injecting errors until the returned scope is disposed (nestable).</summary>
    public IDisposable SuspendInjection()
    {
        Interlocked.Increment(ref _suspended);
        return new SuspendScope(this);
    }

    /// <inheritdoc />
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(BlkdebugEvent.ReadAio, BlkdebugIOType.Read, offset, buffer.Length, out bool immediately);
        return error is null
            ? base.ReadAsync(offset, buffer, cancellationToken)
            : Fail(error, immediately);
    }

    /// <inheritdoc />
    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(BlkdebugEvent.WriteAio, BlkdebugIOType.Write, offset, data.Length, out bool immediately);
        return error is null
            ? base.WriteAsync(offset, data, cancellationToken)
            : Fail(error, immediately);
    }

    /// <inheritdoc />
    public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(BlkdebugEvent.WriteAio, BlkdebugIOType.WriteZeroes, offset, length, out bool immediately);
        return error is null
            ? base.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken)
            : Fail(error, immediately);
    }

    /// <inheritdoc />
    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(null, BlkdebugIOType.Discard, offset, length, out bool immediately);
        return error is null
            ? base.DiscardAsync(offset, length, cancellationToken)
            : Fail(error, immediately);
    }

    /// <inheritdoc />
    public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(BlkdebugEvent.FlushToDisk, BlkdebugIOType.Flush, 0, 0, out bool immediately);
        return error is null
            ? base.FlushAsync(cancellationToken)
            : Fail(error, immediately);
    }

    /// <inheritdoc />
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        BlockIOException? error = Check(null, BlkdebugIOType.BlockStatus, offset, length, out bool immediately);
        if (error is null)
        {
            return base.GetBlockStatusAsync(offset, length, cancellationToken);
        }

        return immediately ? ValueTask.FromException<BlockStatus>(error) : FailLater<BlockStatus>(error);
    }

    private static ValueTask Fail(Exception error, bool immediately) =>
        immediately ? ValueTask.FromException(error) : FailLater(error);

    private static async ValueTask FailLater(Exception error)
    {
        await Task.Yield();
        throw error;
    }

    private static async ValueTask<T> FailLater<T>(Exception error)
    {
        await Task.Yield();
        throw error;
    }

    private BlockIOException? Check(BlkdebugEvent? raised, BlkdebugIOType ioType, long offset, long bytes, out bool immediately)
    {
        immediately = false;
        if (Volatile.Read(ref _suspended) > 0)
        {
            return null;
        }

        lock (_lock)
        {
            if (raised is { } e && !EventsRaisedByParent)
            {
                RaiseEventLocked(e);
            }

            foreach (BlkdebugInjectErrorOptions rule in _armed)
            {
                if (!Covers(rule, offset, bytes) || (MaskOf(rule) & (1u << (int)ioType)) == 0)
                {
                    continue;
                }

                if (rule.Errno == 0)
                {
                    return null;
                }

                if (rule.Once)
                {
                    _armed.Remove(rule);
                    _rules.Remove(rule);
                }

                immediately = rule.Immediately;
                return new BlockIOException(rule.Errno);
            }
        }

        return null;
    }

    private void RaiseEventLocked(BlkdebugEvent blkdebugEvent)
    {
        List<BlkdebugInjectErrorOptions>? armed = null;
        foreach (BlkdebugInjectErrorOptions rule in _rules)
        {
            if (rule.Event == blkdebugEvent && (rule.State == 0 || rule.State == CurrentState))
            {
                (armed ??= []).Add(rule);
            }
        }

        // An event without rules leaves the armed set as it was (QEMU resets it only when it arms something).
        if (armed is not null)
        {
            _armed = armed;
        }
    }

    private static bool Covers(BlkdebugInjectErrorOptions rule, long offset, long bytes)
    {
        if (rule.Sector == -1)
        {
            return true;
        }

        long target = rule.Sector * SectorSize;
        return bytes > 0 && target >= offset && target - offset < bytes;
    }

    private static uint MaskOf(BlkdebugInjectErrorOptions rule) =>
        rule.IOType is { } t ? 1u << (int)t : DefaultIOTypeMask;

    private sealed class SuspendScope(BlkdebugNode node) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref node._suspended);
            }
        }
    }
}
