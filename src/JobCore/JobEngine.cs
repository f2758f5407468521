using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace JobCore;

/// <summary>
/// The job engine: creates jobs, drives every status transition through the lifecycle table, emits events in
/// QEMU's order and runs transaction completion (spec §4.6). One engine per host; all members are thread-safe.
/// </summary>
/// <remarks>
/// State changes happen under one lock (QEMU's job mutex); events are delivered to subscribers inside it, so every
/// subscriber sees one total order. Completion and finalization of transactions are serialized by an async gate
/// (QEMU's main loop). Driver hooks <see cref="JobDriver.Cancel"/>, <see cref="JobDriver.UserResume"/>,
/// <see cref="JobDriver.SpeedChanged"/> and <see cref="JobDriver.AddQueryFields"/> run under the lock and must be quick.
/// </remarks>
public sealed class JobEngine : IAsyncDisposable
{
    private static readonly Action<ILogger, string, string, string, string, Exception?> LogTransition =
        LoggerMessage.Define<string, string, string, string>(LogLevel.Debug, new EventId(1, "JobTransition"),
            "Job '{JobId}' ({JobType}): {From} -> {To}");

    private static readonly Action<ILogger, string, Exception?> LogHookFailure =
        LoggerMessage.Define<string>(LogLevel.Error, new EventId(2, "JobHookFailed"),
            "Job '{JobId}': a driver hook that must not fail threw; the job carries on");

    private readonly JobTypeRegistry _types;
    private readonly IServiceProvider? _services;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _completionHold = new(1, 1);
    private int _waitingBetweenCommands;
    private readonly Dictionary<string, Job> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<Job> _jobs = new(); // creation order; O(1) removal through Job.ListNode
    private JobEventSubscription[] _subscribers = [];
    private bool _disposed;

    /// <summary>Creates an engine.</summary>
    /// <param name="types">The job types it can create.</param>
    /// <param name="options">Engine settings (validated here).</param>
    /// <param name="timeProvider">The clock for timestamps, sleeps and rate limits (default: system clock).</param>
    /// <param name="loggerFactory">Logging (default: none).</param>
    /// <param name="services">Passed to driver factories (may be null).</param>
    public JobEngine(
        JobTypeRegistry types,
        JobEngineOptions? options = null,
        TimeProvider? timeProvider = null,
        ILoggerFactory? loggerFactory = null,
        IServiceProvider? services = null)
    {
        ArgumentNullException.ThrowIfNull(types);
        Options = options ?? new JobEngineOptions();
        Options.Validate();
        _types = types;
        _services = services;
        Time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)loggerFactory?.CreateLogger("JobCore.JobEngine") ?? NullLogger.Instance;
    }

    /// <summary>The engine's settings.</summary>
    public JobEngineOptions Options { get; }

    /// <summary>The clock used for timestamps, sleeps and rate limits.</summary>
    public TimeProvider Time { get; }

    /// <summary>The job types this engine can create.</summary>
    public JobTypeRegistry Types => _types;

    internal Lock Sync { get; } = new();

    /// <summary>Creates a transaction to group jobs that must finalize together (pass it to <see cref="Create"/>).</summary>
    public static JobTransaction CreateTransaction() => new();

    /// <summary>
    /// Creates a job in status <c>created</c> (event emitted before this returns). The job type is chosen by the
    /// runtime type of <paramref name="options"/>. Errors (QEMU's texts): <c>Invalid job ID '&lt;id&gt;'</c>,
    /// <c>Job ID '&lt;id&gt;' already in use</c>, <c>An explicit job ID is required</c>,
    /// <c>Cannot specify job ID for internal job</c>, and whatever the options' <see cref="JobOptions.Validate"/> throws.
    /// </summary>
    public Job Create(JobOptions options, JobTransaction? transaction = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_types.TryGet(options.GetType(), out var registration))
        {
            throw new JobException($"No job type is registered for options '{options.GetType().Name}'");
        }

        var id = options.Id;
        if (id is not null)
        {
            if (options.Internal)
            {
                throw new JobException("Cannot specify job ID for internal job");
            }

            if (!IsWellFormedId(id))
            {
                throw new JobException($"Invalid job ID '{id}'");
            }

            ThrowIfIdInUse(id);
        }
        else if (!options.Internal)
        {
            throw new JobException("An explicit job ID is required");
        }

        options.Validate();
        var driver = registration.Factory(_services, options);
        transaction ??= new JobTransaction();
        lock (Sync)
        {
            if (id is not null)
            {
                ThrowIfIdInUse(id);
            }

            var job = new Job(this, driver, options, registration.TypeName, transaction);
            transaction.Add(job);
            if (id is not null)
            {
                _byId.Add(id, job);
            }

            job.ListNode = _jobs.AddLast(job);
            JobCoreTelemetry.JobCreated(job);
            TransitionLocked(job, JobStatus.Created);
            return job;
        }
    }

    /// <summary>
    /// <see cref="Create"/> with QEMU's order for a negative speed (its <c>block_job_create</c> sets the speed after
    /// registering the job): the job is created (<c>created</c>), fails at once (<c>null</c>) and the error is thrown
    /// then, after the driver's <c>CleanAsync</c> released what its constructor took. QMP commands that create jobs use
    /// this; every other refusal happens before the job exists, as with <see cref="Create"/>.
    /// </summary>
    /// <param name="options">The job's options.</param>
    /// <param name="transaction">The transaction, or <see langword="null"/> for one of its own.</param>
    /// <param name="cancellationToken">Cancels the driver's clean-up after an early failure.</param>
    /// <returns>The job, in status <c>created</c>.</returns>
    /// <exception cref="JobException">As <see cref="Create"/>; a negative speed after <c>created</c> and <c>null</c>.</exception>
    public async Task<Job> CreateAsync(JobOptions options, JobTransaction? transaction = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Speed >= 0)
        {
            return Create(options, transaction);
        }

        var job = Create(options with { Speed = 0 }, transaction);
        var error = new JobException("Parameter 'speed' expects a non-negative value");
        lock (Sync)
        {
            // QEMU's job_early_fail: the job goes straight to null (no concluded, no completion event).
            job.HasError = true;
            job.ErrorMessage = error.Message;
            job.ErrorType = typeof(JobException).FullName;
            JobCoreTelemetry.JobConcluded(job, TimeSpan.Zero);
            DismissLocked(job);
        }

        await job.Driver.InvokeCleanAsync(job.Context, cancellationToken).ConfigureAwait(false);
        throw error;
    }

    /// <summary>Finds a visible job by id.</summary>
    public bool TryGetJob(string id, [NotNullWhen(true)] out Job? job)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (Sync)
        {
            return _byId.TryGetValue(id, out job);
        }
    }

    /// <summary>Snapshots of every visible job, newest first (the order of QEMU's <c>query-jobs</c>).</summary>
    public IReadOnlyList<JobInfo> QueryJobs()
    {
        lock (Sync)
        {
            var result = new List<JobInfo>(_byId.Count);
            for (var node = _jobs.Last; node is not null; node = node.Previous)
            {
                var job = node.Value;
                if (!job.IsInternal)
                {
                    result.Add(job.SnapshotLocked());
                }
            }

            return result;
        }
    }

    /// <summary>
    /// Subscribes to all events. The engine never waits for a subscriber: one that falls more than
    /// <paramref name="capacity"/> events behind is cut off (see <see cref="JobEventSubscription"/>).
    /// </summary>
    public JobEventSubscription Subscribe(int capacity = 0)
    {
        if (capacity == 0)
        {
            capacity = Options.EventBufferCapacity;
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        var subscription = new JobEventSubscription(this, capacity);
        lock (Sync)
        {
            _subscribers = [.. _subscribers, subscription];
        }

        return subscription;
    }

    /// <summary>
    /// Force-cancels every job (QEMU's order: aborting, cancelled, concluded, null), dismisses concluded ones, and
    /// waits until every job has concluded.
    /// </summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken = default)
    {
        Job[] all;
        lock (Sync)
        {
            all = [.. _jobs];
        }

        Array.Reverse(all);
        foreach (var job in all)
        {
            await CancelAsync(job, force: true, cancellationToken).ConfigureAwait(false);
        }

        await Task.WhenAll(all.Select(j => j.Concluded)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Ends every job the way QEMU 7.2 does when it quits: first every working job is paused as by a drain (running jobs
    /// show <c>paused</c>, ready ones <c>standby</c>), then the jobs are force-cancelled newest first, each completed
    /// (aborting, cancelled, concluded, null) before the next. Completions run inline, so this also works while
    /// completions are held (inside a QMP command). Waits at most <paramref name="timeout"/> per step of each job.
    /// </summary>
    public async Task DrainAndCancelAllAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Job[] all;
        lock (Sync)
        {
            all = [.. _jobs];
        }

        foreach (var job in all)
        {
            lock (Sync)
            {
                if (!job.Started || job.Deferred || job.Status is not (JobStatus.Running or JobStatus.Ready or JobStatus.Paused or JobStatus.Standby))
                {
                    continue;
                }
            }

            // Never released: the jobs are cancelled right after, and a cancel beats a pause. One at a time, oldest
            // first, so the paused/standby events come in QEMU's order.
            _ = job.InternalPause();
            await job.WaitUntilAsync(static j => j.IsPausedAtPoint || j.Deferred, timeout, cancellationToken).ConfigureAwait(false);
        }

        Array.Reverse(all);
        foreach (var job in all)
        {
            lock (Sync)
            {
                if (job.Status is JobStatus.Null)
                {
                    continue;
                }
            }

            await CancelAsync(job, force: true, cancellationToken).ConfigureAwait(false);
            if (await job.WaitUntilAsync(static j => j.Deferred || !j.Started, timeout, cancellationToken).ConfigureAwait(false))
            {
                await CompleteDeferredAsync(job).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Shuts down (see <see cref="ShutdownAsync"/>) and completes every subscription.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await ShutdownAsync().ConfigureAwait(false);
        JobEventSubscription[] subscribers;
        lock (Sync)
        {
            _disposed = true;
            subscribers = _subscribers;
            _subscribers = [];
        }

        foreach (var s in subscribers)
        {
            s.Complete();
        }
    }

    /// <summary>QEMU's <c>id_wellformed</c>: an ASCII letter, then letters, digits, '-', '.', '_'.</summary>
    public static bool IsWellFormedId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (id.Length == 0 || !char.IsAsciiLetter(id[0]))
        {
            return false;
        }

        foreach (var c in id.AsSpan(1))
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '.' && c != '_')
            {
                return false;
            }
        }

        return true;
    }

    private void ThrowIfIdInUse(string id)
    {
        lock (Sync)
        {
            if (_byId.ContainsKey(id))
            {
                throw new JobException($"Job ID '{id}' already in use");
            }
        }
    }

    internal void Unsubscribe(JobEventSubscription subscription)
    {
        lock (Sync)
        {
            _subscribers = [.. _subscribers.Where(s => s != subscription)];
        }
    }

    // ---------------------------------------------------------------- transitions and events

    /// <summary>Performs and announces one transition (QEMU's <c>job_state_transition</c>).</summary>
    internal void TransitionLocked(Job job, JobStatus to)
    {
        var from = job.Status;
        if (!Lifecycle.CanTransition(from, to))
        {
            // A programming error in the engine or a driver, never a user error.
            throw new InvalidOperationException(
                $"Illegal job transition {from.WireName()} -> {to.WireName()} for job '{job.Id}'");
        }

        job.SetStatusLocked(to);
        JobCoreTelemetry.StatusChanged(job, from, to);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            // Logged inside the job's span so log records correlate with its trace.
            var current = System.Diagnostics.Activity.Current;
            System.Diagnostics.Activity.Current = job.Activity ?? current;
            LogTransition(_logger, job.Id, job.Type, from.WireName(), to.WireName(), null);
            System.Diagnostics.Activity.Current = current;
        }

        if (!job.IsInternal && from != to && _subscribers.Length > 0)
        {
            EmitLocked(new JobStatusChangedEvent(job.SnapshotLocked(), Time.GetUtcNow(), to));
        }

        // After the event is out, so whoever waits for the reaction finds it already emitted.
        job.ReactedLocked();
    }

    private void EmitLocked(JobEvent e)
    {
        var subscribers = _subscribers;
        var dropped = false;
        foreach (var s in subscribers)
        {
            dropped |= !s.TryDeliver(e);
        }

        if (dropped)
        {
            _subscribers = [.. subscribers.Where(s => !s.Overflowed)];
        }
    }

    private bool HasSubscribers(Job job) => !job.IsInternal && _subscribers.Length > 0;

    internal void TransitionToReady(Job job)
    {
        lock (Sync)
        {
            TransitionLocked(job, JobStatus.Ready);
            job.Ready = true;
            if (HasSubscribers(job))
            {
                EmitLocked(new JobReadyEvent(job.SnapshotLocked(), Time.GetUtcNow()));
            }
        }
    }

    // What QEMU's job does after an I/O completion (report an error, declare READY) runs in its main loop, never inside
    // a monitor command: take the hold that QMP sessions keep around each command (see HoldCompletionsAsync) meanwhile.
    internal async ValueTask<T> BetweenCommandsAsync<T>(Func<T> action, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waitingBetweenCommands);
        try
        {
            await _completionHold.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _waitingBetweenCommands);
        }

        try
        {
            return action();
        }
        finally
        {
            _completionHold.Release();
        }
    }

    /// <summary>Jobs inside <see cref="BetweenCommandsAsync{T}"/>, waiting for or running their action (for tests).</summary>
    internal int WaitingBetweenCommands => Volatile.Read(ref _waitingBetweenCommands);

    internal ErrorAction HandleError(Job job, ErrorPolicy policy, IoOperation operation, bool noSpace)
    {
        var action = ErrorPolicies.Decide(policy, noSpace);
        lock (Sync)
        {
            if (HasSubscribers(job))
            {
                EmitLocked(new JobErrorEvent(job.SnapshotLocked(), Time.GetUtcNow(), operation, action));
            }

            if (action == ErrorAction.Stop)
            {
                if (!job.UserPaused)
                {
                    // An error stop is a user-visible pause: only job-resume undoes it.
                    job.PauseLocked();
                    job.UserPaused = true;
                }

                if (job.IoStatus == IoStatus.Ok)
                {
                    job.IoStatus = noSpace ? IoStatus.NoSpace : IoStatus.Failed;
                }
            }
        }

        JobCoreTelemetry.RecordError(job, operation, action);
        return action;
    }

    // ---------------------------------------------------------------- running

    internal void Start(Job job)
    {
        lock (Sync)
        {
            if (job.Started || job.Status != JobStatus.Created)
            {
                throw new InvalidOperationException($"Job '{job.Id}' cannot be started in state '{job.Status.WireName()}'");
            }

            job.PauseCount--;
            job.Busy = true;
            job.IsPausedAtPoint = false;
            job.Started = true;
            job.StartTimestamp = Time.GetTimestamp();
            job.StartingLocked();
            TransitionLocked(job, JobStatus.Running);
        }

        ThreadPool.UnsafeQueueUserWorkItem(static j => _ = j.Engine().RunJobAsync(j), job, preferLocal: false);
    }

    private async Task RunJobAsync(Job job)
    {
        Exception? failure = null;
        var span = JobCoreTelemetry.StartPhase(job, "run");
        try
        {
            await PausePointAsync(job).ConfigureAwait(false);
            await job.Driver.InvokeRunAsync(job.Context, job.ForceCancelToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Any exception from a driver fails its job; it must never escape the engine.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = ex;
        }

        lock (Sync)
        {
            job.Deferred = true;
            job.Busy = true;
            job.ReactedLocked();
            job.IdleOnceLocked();
            if (failure is not null && !(failure is OperationCanceledException && job.ForceCancelled))
            {
                job.HasError = true;
                job.ErrorMessage = failure.Message;
                job.ErrorType = failure.GetType().FullName;
            }
        }

        JobCoreTelemetry.EndPhase(span, failure is OperationCanceledException ? null : failure);
        job.RunFinished.TrySetResult();

        // QEMU runs this part as a main-loop bottom half: never in the middle of a monitor command.
        await _completionHold.WaitAsync().ConfigureAwait(false);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            bool handle;
            lock (Sync)
            {
                handle = !job.ExitHandled;
                if (handle)
                {
                    HandleExitLocked(job);
                }
            }

            if (handle)
            {
                await CompletedAsync(job).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
            _completionHold.Release();
        }
    }

    /// <summary>
    /// The usual bound for <see cref="SettleStartingJobsAsync"/>: a job normally reaches its first sleep within
    /// milliseconds; the bound only matters on a loaded machine, where a short one would let a query see the job
    /// before its first chunk (QEMU's has always done it by then).
    /// </summary>
    public static TimeSpan StartSettleTimeout { get; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>, once per job) until each of <paramref name="jobs"/> (all jobs when null) that was
    /// started but has not yet yielded reaches its first sleep, pause or yield, or ends its work. QEMU runs a new job
    /// inside the creating command up to its first I/O, which completes almost at once, so by the next command a
    /// rate-limited job has done its first chunk and sleeps; a QMP server calls this before answering queries and
    /// job verbs so that they see the same.
    /// </summary>
    public async Task SettleStartingJobsAsync(IEnumerable<Job>? jobs, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        List<Task>? waits = null;
        List<Job>? waiting = null;
        lock (Sync)
        {
            foreach (var job in jobs ?? _jobs)
            {
                if (job.FirstIdleLocked() is { } idle)
                {
                    (waits ??= []).Add(idle);
                    (waiting ??= []).Add(job);
                }
            }
        }

        if (waits is null)
        {
            return;
        }

        try
        {
            await Task.WhenAll(waits).WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Still busy (copying without a limit): answer with what is there, and wait for these jobs only once.
        }

        // Signalled under the lock: once it is free, whatever the jobs emitted is out.
        lock (Sync)
        {
            foreach (var job in waiting!)
            {
                job.IdleOnceLocked();
            }
        }
    }

    /// <summary>Runs the completion of a job whose work has ended, unless it already ran (see <see cref="Job.ApplyAndSettleAsync"/>).</summary>
    internal async Task CompleteDeferredAsync(Job job)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            bool handle;
            lock (Sync)
            {
                handle = job.Deferred && !job.ExitHandled;
                if (handle)
                {
                    HandleExitLocked(job);
                }
            }

            if (handle)
            {
                await CompletedAsync(job).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Holds back the completion of jobs whose work ends from now on (the status changes and events after the work
    /// function returns) until the returned scope is disposed. QEMU completes a job in a main-loop bottom half, so a
    /// monitor command and its reply are never interleaved with a completion; a QMP server holds this around each
    /// command and its reply to keep that order. Completions run in order once released.
    /// </summary>
    public async Task<IDisposable> HoldCompletionsAsync(CancellationToken cancellationToken = default)
    {
        await _completionHold.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new CompletionHold(_completionHold);
    }

    private sealed class CompletionHold(SemaphoreSlim hold) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                hold.Release();
            }
        }
    }

    /// <summary>QEMU's <c>job_exit</c> up to the return-code update.</summary>
    private void HandleExitLocked(Job job)
    {
        job.ExitHandled = true;
        job.Busy = false;
        UpdateResultLocked(job);
    }

    /// <summary>QEMU's <c>job_update_rc</c>: a force cancel without an error becomes "Operation canceled".</summary>
    private void UpdateResultLocked(Job job)
    {
        if (!job.HasError && job.ForceCancelled)
        {
            job.HasError = true;
            job.ErrorMessage = "Operation canceled";
            job.ErrorType = typeof(OperationCanceledException).FullName;
        }

        if (job.HasError)
        {
            TransitionLocked(job, JobStatus.Aborting);
        }
    }

    /// <summary>QEMU's <c>job_completed</c> after the return code was updated. Runs under the gate.</summary>
    private Task CompletedAsync(Job job)
    {
        bool failed;
        lock (Sync)
        {
            failed = job.HasError;
        }

        return failed ? TransactionAbortAsync(job) : TransactionSuccessAsync(job);
    }

    private Task TransactionSuccessAsync(Job job)
    {
        lock (Sync)
        {
            TransitionLocked(job, JobStatus.Waiting);
            var members = job.Transaction.Snapshot();
            foreach (var m in members)
            {
                if (!Lifecycle.IsCompleted(m.Status))
                {
                    return Task.CompletedTask;
                }
            }

            var manual = false;
            foreach (var m in members)
            {
                TransitionLocked(m, JobStatus.Pending);
                if (!m.AutoFinalize)
                {
                    manual = true;
                    if (HasSubscribers(m))
                    {
                        EmitLocked(new JobPendingEvent(m.SnapshotLocked(), Time.GetUtcNow()));
                    }
                }
            }

            if (manual)
            {
                return Task.CompletedTask;
            }
        }

        return DoFinalizeAsync(job);
    }

    /// <summary>Prepare every member, then commit each, or abort the transaction if a prepare failed.</summary>
    private async Task DoFinalizeAsync(Job job)
    {
        Job? failed = null;
        foreach (var m in job.Transaction.Snapshot())
        {
            bool ok;
            lock (Sync)
            {
                ok = !m.HasError;
            }

            if (!ok)
            {
                failed = m;
                break;
            }

            var span = JobCoreTelemetry.StartPhase(m, "prepare");
            try
            {
                await m.Driver.InvokePrepareAsync(m.Context, CancellationToken.None).ConfigureAwait(false);
                JobCoreTelemetry.EndPhase(span, null);
            }
#pragma warning disable CA1031 // A failing prepare fails its job and aborts the transaction.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                JobCoreTelemetry.EndPhase(span, ex);
                lock (Sync)
                {
                    m.HasError = true;
                    m.ErrorMessage = ex.Message;
                    m.ErrorType = ex.GetType().FullName;
                    UpdateResultLocked(m);
                }

                failed = m;
                break;
            }
        }

        if (failed is not null)
        {
            // Deliberate difference from QEMU, which aborts "from" the job that asked for finalization and so may still
            // commit that job: we abort from the failed member, so every other member is cancelled (all or nothing).
            await TransactionAbortAsync(failed).ConfigureAwait(false);
            return;
        }

        foreach (var m in job.Transaction.Snapshot())
        {
            await FinalizeSingleAsync(m).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// QEMU's <c>job_completed_txn_abort</c>: force-cancel every other member, wait until all have finished their work,
    /// then finalize each with abort, first member first. Runs under the gate.
    /// </summary>
    private async Task TransactionAbortAsync(Job job)
    {
        var txn = job.Transaction;
        if (txn.Aborting)
        {
            return;
        }

        txn.Aborting = true;
        var cancelTokens = new List<Job>();
        lock (Sync)
        {
            foreach (var other in txn.Snapshot())
            {
                if (other != job)
                {
                    CancelRequestLocked(other, force: true, cancelTokens);
                    other.EnterLocked();
                }
            }
        }

        foreach (var j in cancelTokens)
        {
            j.TriggerForceCancelToken();
        }

        foreach (var other in txn.Snapshot())
        {
            await WaitUntilCompletedAsync(other).ConfigureAwait(false);
        }

        while (true)
        {
            var members = txn.Snapshot();
            if (members.Length == 0)
            {
                break;
            }

            await WaitUntilCompletedAsync(members[0]).ConfigureAwait(false);
            await FinalizeSingleAsync(members[0]).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for a member's work to end and processes its exit here (QEMU's nested <c>job_finish_sync</c>).</summary>
    private async Task WaitUntilCompletedAsync(Job job)
    {
        bool started;
        lock (Sync)
        {
            if (Lifecycle.IsCompleted(job.Status))
            {
                return;
            }

            started = job.Started;
            if (!started)
            {
                job.ExitHandled = true;
                UpdateResultLocked(job);
                return;
            }

            job.EnterLocked();
        }

        await job.RunFinished.Task.ConfigureAwait(false);
        lock (Sync)
        {
            if (!job.ExitHandled)
            {
                HandleExitLocked(job);
            }
        }
    }

    /// <summary>QEMU's <c>job_finalize_single</c>: commit or abort, clean, event, conclude (and dismiss).</summary>
    private async Task FinalizeSingleAsync(Job job)
    {
        bool failed;
        lock (Sync)
        {
            UpdateResultLocked(job);
            failed = job.HasError;
        }

        var span = JobCoreTelemetry.StartPhase(job, failed ? "abort" : "commit");
        try
        {
            if (failed)
            {
                await job.Driver.InvokeAbortAsync(job.Context, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                await job.Driver.InvokeCommitAsync(job.Context, CancellationToken.None).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // commit/abort must not fail; a driver bug is logged, the lifecycle carries on.
        catch (Exception ex)
        {
            LogHookFailure(_logger, job.Id, ex);
        }

        try
        {
            await job.Driver.InvokeCleanAsync(job.Context, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogHookFailure(_logger, job.Id, ex);
        }
#pragma warning restore CA1031

        JobCoreTelemetry.EndPhase(span, null);
        lock (Sync)
        {
            if (job.Started && HasSubscribers(job))
            {
                var now = Time.GetUtcNow();
                EmitLocked(job.ForceCancelled
                    ? new JobCancelledEvent(job.SnapshotLocked(), now)
                    : new JobCompletedEvent(job.SnapshotLocked(), now, job.HasError ? job.ErrorMessage : null));
            }

            job.Transaction.Remove(job);
            TransitionLocked(job, JobStatus.Concluded);
            JobCoreTelemetry.JobConcluded(job, Time.GetElapsedTime(job.StartTimestamp));
            if (job.AutoDismiss || !job.Started)
            {
                DismissLocked(job);
            }
        }

        job.SetConcluded();
    }

    internal void DismissLocked(Job job)
    {
        TransitionLocked(job, JobStatus.Null);
        if (!job.IsInternal)
        {
            _byId.Remove(job.Id);
        }

        if (job.ListNode is { List: not null } node)
        {
            _jobs.Remove(node);
        }
    }

    internal async Task FinalizeAsync(Job job, CancellationToken cancellationToken)
    {
        lock (Sync)
        {
            job.CheckVerbLocked(JobVerb.Finalize);
        }

        // Checked again under the gate: another finalization may have run meanwhile.
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (Sync)
            {
                job.CheckVerbLocked(JobVerb.Finalize);
            }

            await DoFinalizeAsync(job).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>QEMU's <c>job_cancel_async</c>: record the request, undo a user pause. Tokens are cancelled by the caller.</summary>
    private static void CancelRequestLocked(Job job, bool force, List<Job> tokensToCancel)
    {
        force = job.Driver.InvokeCancel(job.Context, force) || force;
        if (job.UserPaused)
        {
            job.UserResumeLocked();
            job.PauseCount--;
        }

        // A soft cancel after the work already ended is ignored.
        if (force || !job.Deferred)
        {
            job.CancelRequested = true;
            if (force && !job.ForceCancelled)
            {
                job.ForceCancelled = true;
                tokensToCancel.Add(job);
            }
        }
    }

    /// <summary>QEMU's <c>job_cancel</c> (after the verb check).</summary>
    internal async Task CancelAsync(Job job, bool force, CancellationToken cancellationToken)
    {
        var tokens = new List<Job>(1);
        bool notStarted, abortFinished = false;
        lock (Sync)
        {
            if (job.Status == JobStatus.Concluded)
            {
                DismissLocked(job);
                return;
            }

            if (job.Status == JobStatus.Null)
            {
                return;
            }

            CancelRequestLocked(job, force, tokens);
            notStarted = !job.Started;
            if (!notStarted)
            {
                if (job.Deferred)
                {
                    abortFinished = job.ForceCancelled;
                }
                else
                {
                    job.EnterLocked();
                }
            }
        }

        foreach (var j in tokens)
        {
            j.TriggerForceCancelToken();
        }

        if (!notStarted && !abortFinished)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (Sync)
            {
                if (job.Status is JobStatus.Null or JobStatus.Concluded)
                {
                    return;
                }

                if (notStarted && !job.ExitHandled)
                {
                    job.ExitHandled = true;
                    UpdateResultLocked(job);
                }
            }

            await TransactionAbortAsync(job).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---------------------------------------------------------------- pause points and sleeping

    internal ValueTask PausePointAsync(Job job)
    {
        lock (Sync)
        {
            if (job.PauseCount == 0 || job.ForceCancelled)
            {
                return ValueTask.CompletedTask;
            }
        }

        return PausePointSlowAsync(job);
    }

    private async ValueTask PausePointSlowAsync(Job job)
    {
        await job.Driver.InvokePauseAsync(job.Context).ConfigureAwait(false);
        Task? wakeup = null;
        var saved = JobStatus.Running;
        lock (Sync)
        {
            if (job.PauseCount > 0 && !job.ForceCancelled)
            {
                saved = job.Status;
                TransitionLocked(job, saved == JobStatus.Ready ? JobStatus.Standby : JobStatus.Paused);
                job.IsPausedAtPoint = true;
                wakeup = job.YieldLocked(null);
            }
        }

        if (wakeup is not null)
        {
            var span = JobCoreTelemetry.StartPhase(job, "paused");
            await wakeup.ConfigureAwait(false);
            lock (Sync)
            {
                job.IsPausedAtPoint = false;
                TransitionLocked(job, saved);
            }

            JobCoreTelemetry.EndPhase(span, null);
        }

        await job.Driver.InvokeResumeAsync(job.Context).ConfigureAwait(false);
    }

    internal ValueTask SleepAsync(Job job, TimeSpan delay)
    {
        Task? wakeup = null;
        lock (Sync)
        {
            if (job.ForceCancelled)
            {
                return ValueTask.CompletedTask;
            }

            if (job.PauseCount == 0 && delay > TimeSpan.Zero)
            {
                wakeup = job.YieldLocked(delay);
            }
        }

        return wakeup is null ? PausePointAsync(job) : SleepSlowAsync(job, wakeup);
    }

    private async ValueTask SleepSlowAsync(Job job, Task wakeup)
    {
        await wakeup.ConfigureAwait(false);
        await PausePointAsync(job).ConfigureAwait(false);
    }

    internal ValueTask YieldAsync(Job job)
    {
        Task wakeup;
        lock (Sync)
        {
            if (job.ForceCancelled)
            {
                return ValueTask.CompletedTask;
            }

            if (job.PauseCount > 0)
            {
                return PausePointAsync(job);
            }

            wakeup = job.YieldLocked(null);
        }

        return SleepSlowAsync(job, wakeup);
    }

    internal void LogCallbackFailure(Job job, Exception ex) => LogHookFailure(_logger, job.Id, ex);
}

/// <summary>Engine settings.</summary>
public sealed class JobEngineOptions
{
    /// <summary>Default buffer per event subscriber (events a subscriber may fall behind before it is cut off).</summary>
    public int EventBufferCapacity { get; set; } = 65536;

    /// <summary>
    /// Whether <see cref="JobContext.RateLimitSleepAsync"/> serves the whole delay even when the job is woken early (by
    /// a pause and resume, a cancel, a speed change): true (the default) is QEMU 10's behaviour. False is QEMU 7.2's,
    /// where a rate-limit sleep is taken once and a job woken early carries on with its next chunk; jobcored uses it so
    /// its jobs move like the QEMU release it is compared with.
    /// </summary>
    public bool ServeWholeRateLimitDelay { get; set; } = true;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a setting out of range.</summary>
    public void Validate()
    {
        if (EventBufferCapacity <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(EventBufferCapacity), EventBufferCapacity, "must be positive");
        }
    }
}
