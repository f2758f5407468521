using System.Threading.Channels;

namespace JobCore;

/// <summary>
/// Something that happened to a visible job. The engine emits every event in one total order (the order of
/// spec §3.1), each with the job's snapshot and a timestamp taken from the engine's <see cref="TimeProvider"/>.
/// </summary>
/// <param name="Job">The job's snapshot at the moment of the event.</param>
/// <param name="Timestamp">When the event happened.</param>
public abstract record JobEvent(JobInfo Job, DateTimeOffset Timestamp);

/// <summary>The job changed status (QMP <c>JOB_STATUS_CHANGE</c>); sent for every visible transition.</summary>
public sealed record JobStatusChangedEvent(JobInfo Job, DateTimeOffset Timestamp, JobStatus Status) : JobEvent(Job, Timestamp);

/// <summary>The job became ready, right after its status changed to <c>ready</c> (QMP <c>BLOCK_JOB_READY</c>).</summary>
public sealed record JobReadyEvent(JobInfo Job, DateTimeOffset Timestamp) : JobEvent(Job, Timestamp);

/// <summary>The job entered <c>pending</c> and waits for <c>job-finalize</c> (only when auto-finalize is off).</summary>
public sealed record JobPendingEvent(JobInfo Job, DateTimeOffset Timestamp) : JobEvent(Job, Timestamp);

/// <summary>The job finished without being force-cancelled: success when <paramref name="Error"/> is null.</summary>
public sealed record JobCompletedEvent(JobInfo Job, DateTimeOffset Timestamp, string? Error) : JobEvent(Job, Timestamp);

/// <summary>The job was force-cancelled and has been cleaned up.</summary>
public sealed record JobCancelledEvent(JobInfo Job, DateTimeOffset Timestamp) : JobEvent(Job, Timestamp);

/// <summary>The job's error policy was consulted for a failed request, before the action is applied.</summary>
public sealed record JobErrorEvent(JobInfo Job, DateTimeOffset Timestamp, IoOperation Operation, ErrorAction Action) : JobEvent(Job, Timestamp);

/// <summary>
/// One subscriber's view of the event stream: a bounded buffer the engine writes without ever waiting.
/// If the subscriber falls <see cref="Capacity"/> events behind, the subscription is cut: <see cref="Reader"/>
/// completes with <see cref="JobEventOverflowException"/> after the buffered events, and no later events are
/// delivered to it. Jobs and other subscribers are unaffected.
/// </summary>
public sealed class JobEventSubscription : IDisposable
{
    private readonly Channel<JobEvent> _channel;
    private readonly JobEngine _engine;

    internal JobEventSubscription(JobEngine engine, int capacity)
    {
        _engine = engine;
        Capacity = capacity;
        _channel = Channel.CreateBounded<JobEvent>(new BoundedChannelOptions(capacity)
        {
            SingleWriter = true,
            SingleReader = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>The events, in emission order.</summary>
    public ChannelReader<JobEvent> Reader => _channel.Reader;

    /// <summary>The buffer size: how many undelivered events the subscriber may fall behind.</summary>
    public int Capacity { get; }

    /// <summary>Whether the subscription was cut because the subscriber fell behind.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>Stops delivery and completes <see cref="Reader"/>.</summary>
    public void Dispose()
    {
        _engine.Unsubscribe(this);
        _channel.Writer.TryComplete();
    }

    // Called under the engine lock; returns false when the subscription must be dropped.
    internal bool TryDeliver(JobEvent e)
    {
        if (_channel.Writer.TryWrite(e))
        {
            return true;
        }

        Overflowed = true;
        _channel.Writer.TryComplete(new JobEventOverflowException(Capacity));
        return false;
    }

    internal void Complete() => _channel.Writer.TryComplete();
}

/// <summary>A subscriber fell more than its buffer behind and its subscription was cut.</summary>
public sealed class JobEventOverflowException : Exception
{
    /// <summary>Creates the exception for a buffer of <paramref name="capacity"/> events.</summary>
    public JobEventOverflowException(int capacity)
        : base($"Event subscriber fell more than {capacity} events behind; its subscription was closed")
    {
    }

    /// <summary>Creates the exception with a generic message.</summary>
    public JobEventOverflowException()
        : base("Event subscriber fell behind; its subscription was closed")
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public JobEventOverflowException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
