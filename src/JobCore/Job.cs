using System.Diagnostics;

namespace JobCore;

/// <summary>
/// One job of a <see cref="JobEngine"/>: its status, progress and the verbs a user may apply. Every verb checks the
/// lifecycle's verb table first (refusals are <see cref="JobException"/>s with QEMU's text) and then the extra checks
/// spec §2 lists, in QEMU's order. All members are thread-safe.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The token source has no timer or links; it needs no disposal and may be cancelled at any time in the job's life.")]
public sealed class Job
{
    private readonly JobEngine _engine;
    private readonly TaskCompletionSource _concluded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _forceCancel = new();
    private TaskCompletionSource? _wakeup;
    private ITimer? _sleepTimer;
    private SleepToken? _sleepToken;
    private long _progressCurrent;
    private long _enterCount;
    private bool _reactedSinceEnter = true;
    private TaskCompletionSource? _reaction;
    private TaskCompletionSource? _firstIdle;
    private long _progressTotal;

    internal Job(JobEngine engine, JobDriver driver, JobOptions options, string type, JobTransaction transaction)
    {
        _engine = engine;
        Driver = driver;
        Options = options;
        Type = type;
        Transaction = transaction;
        Id = options.Id ?? string.Empty;
        IsInternal = options.Internal;
        AutoFinalize = options.AutoFinalize;
        AutoDismiss = options.AutoDismiss;
        Speed = options.Speed;
        Limiter = new RateLimiter(engine.Time);
        Limiter.SetSpeed(options.Speed);
        Context = new JobContext(this);

        // A fresh job is "paused" until started: starting drops the count and passes a pause point.
        PauseCount = 1;
        IsPausedAtPoint = true;
    }

    /// <summary>The job id (empty for internal jobs).</summary>
    public string Id { get; }

    /// <summary>The job type name.</summary>
    public string Type { get; }

    /// <summary>The current status.</summary>
    public JobStatus Status { get; private set; }

    /// <summary>Whether a user pause (or an error stop) is outstanding; only such a pause can be resumed.</summary>
    public bool IsUserPaused
    {
        get
        {
            lock (_engine.Sync)
            {
                return UserPaused;
            }
        }
    }

    /// <summary>A snapshot of the job for queries.</summary>
    public JobInfo Info
    {
        get
        {
            lock (_engine.Sync)
            {
                return SnapshotLocked();
            }
        }
    }

    /// <summary>Completes when the job reaches <c>concluded</c> (its result is then readable from <see cref="Info"/>).</summary>
    public Task Concluded => _concluded.Task;

    /// <summary>The options the job was created with.</summary>
    public JobOptions Options { get; }

    internal JobDriver Driver { get; }

    internal JobEngine Engine() => _engine;

    internal LinkedListNode<Job>? ListNode { get; set; }

    internal JobContext Context { get; }

    internal JobTransaction Transaction { get; set; }

    internal bool IsInternal { get; }

    internal bool AutoFinalize { get; }

    internal bool AutoDismiss { get; }

    internal RateLimiter Limiter { get; }

    internal long Speed { get; private set; }

    // ---- state guarded by the engine lock (QEMU's job mutex) ----
    internal int PauseCount { get; set; }

    internal bool IsPausedAtPoint { get; set; }

    internal bool UserPaused { get; set; }

    internal bool Busy { get; set; }

    internal bool Started { get; set; }

    internal bool CancelRequested { get; set; }

    internal bool ForceCancelled { get; set; }

    internal bool Deferred { get; set; }

    internal bool ExitHandled { get; set; }

    internal bool Ready { get; set; }

    internal IoStatus IoStatus { get; set; }

    internal bool HasError { get; set; }

    internal string? ErrorMessage { get; set; }

    internal string? ErrorType { get; set; }

    internal bool TimerPending => _sleepTimer is not null;

    internal TaskCompletionSource RunFinished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal long StartTimestamp { get; set; }

    internal Activity? Activity { get; set; }

    internal Activity? PhaseActivity { get; set; }

    internal CancellationToken ForceCancelToken => _forceCancel.Token;

    internal long ProgressCurrent => Volatile.Read(ref _progressCurrent);

    // ---- verbs ----

    /// <summary>
    /// Pauses the job at its next pause point (<c>job-pause</c>). Accepted in created, running, paused, ready, standby;
    /// a second user pause fails with <c>Job is already paused</c>. The status change (running→paused or ready→standby)
    /// follows asynchronously.
    /// </summary>
    public void Pause()
    {
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.Pause);
            if (UserPaused)
            {
                throw new JobException("Job is already paused");
            }

            UserPaused = true;
            PauseLocked();
        }
    }

    /// <summary>
    /// Undoes a user pause (<c>job-resume</c>): resets the I/O status to ok and wakes the job when no other pause is
    /// outstanding. Fails with <c>Can't resume a job that was not paused</c> unless user-paused (checked before the verb).
    /// </summary>
    public void Resume()
    {
        lock (_engine.Sync)
        {
            if (!UserPaused || PauseCount <= 0)
            {
                throw new JobException("Can't resume a job that was not paused");
            }

            CheckVerbLocked(JobVerb.Resume);
            UserResumeLocked();
            ResumeLocked();
        }
    }

    /// <summary>
    /// Cancels the job (<c>job-cancel</c> is <paramref name="force"/> = true; <c>block-job-cancel</c> defaults to soft).
    /// Refused in aborting and concluded. A user-paused job is un-paused first. Returns once the request is applied;
    /// the job winds down asynchronously unless it had not started or had already finished its work.
    /// </summary>
    public async Task CancelAsync(bool force, CancellationToken cancellationToken = default)
    {
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.Cancel);
        }

        await _engine.CancelAsync(this, force, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks a ready (or standby) job to finish (<c>job-complete</c>). Fails with
    /// <c>The active block job '&lt;id&gt;' cannot be completed</c> when a cancel was requested or the type has no
    /// complete; the driver may refuse with its own text.
    /// </summary>
    public void Complete()
    {
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.Complete);
            if (CancelRequested || !Driver.InvokeSupportsComplete)
            {
                throw new JobException($"The active block job '{Id}' cannot be completed");
            }
        }

        Driver.InvokeComplete(Context);
    }

    /// <summary>
    /// Finalizes the job's transaction (<c>job-finalize</c>; only in pending): prepare every member, then commit or
    /// abort and clean each. The completed/cancelled and concluded events are emitted before the task completes.
    /// </summary>
    public Task FinalizeAsync(CancellationToken cancellationToken = default) =>
        _engine.FinalizeAsync(this, cancellationToken);

    /// <summary>Removes a concluded job (<c>job-dismiss</c>); its status becomes null and it disappears from queries.</summary>
    public void Dismiss()
    {
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.Dismiss);
            _engine.DismissLocked(this);
        }
    }

    /// <summary>
    /// Changes the rate limit (<c>block-job-set-speed</c>); 0 = unlimited. Accepted in created, running, paused,
    /// ready, standby; a negative value fails with <c>Parameter 'speed' expects a non-negative value</c>. A job
    /// sleeping on its rate-limit timer is woken when the limit rose or was removed.
    /// </summary>
    public void SetSpeed(long speed)
    {
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.SetSpeed);
            if (speed < 0)
            {
                throw new JobException("Parameter 'speed' expects a non-negative value");
            }

            var old = Speed;
            Limiter.SetSpeed(speed);
            Speed = speed;
            Driver.InvokeSpeedChanged(Context, speed);
            if (speed != 0 && speed <= old)
            {
                return;
            }

            EnterLocked(onlyIfTimerPending: true);
        }
    }

    /// <summary>
    /// Applies type-specific changes (<c>block-job-change</c>). Accepted in created, running, paused, ready, standby;
    /// types without change support fail with <c>Job type does not support change</c>.
    /// </summary>
    public void Change(object changeOptions)
    {
        ArgumentNullException.ThrowIfNull(changeOptions);
        lock (_engine.Sync)
        {
            CheckVerbLocked(JobVerb.Change);
            if (!Driver.InvokeSupportsChange)
            {
                throw new JobException("Job type does not support change");
            }
        }

        Driver.InvokeChange(Context, changeOptions);
    }

    /// <summary>
    /// Applies <paramref name="verb"/> to this job and, when that woke the job from a sleep, a yield or a pause point,
    /// waits until the job has reacted (yielded again, changed status, or ended its work) or <paramref name="timeout"/>
    /// has passed. QEMU's monitor runs a woken job up to its next yield before it replies, so the events of that
    /// reaction (e.g. <c>paused</c> after <c>job-pause</c> of a job asleep on its rate limit, <c>running</c> after
    /// <c>job-resume</c>) precede the reply; a QMP server uses this to keep that order. Exceptions of
    /// <paramref name="verb"/> propagate unchanged.
    /// </summary>
    public async Task ApplyAndSettleAsync(Func<Job, Task> verb, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(verb);
        await _engine.SettleStartingJobsAsync([this], JobEngine.StartSettleTimeout, cancellationToken).ConfigureAwait(false);
        long before = EnterCount();
        await verb(this).ConfigureAwait(false);
        await WaitForReactionAsync(before, untilWorkEnds: false, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels the job like <see cref="CancelAsync"/> and, if it was running and its type ends a cancel without further
    /// I/O (<see cref="JobDriver"/>'s <c>CancelEndsWithIo</c>), waits (up to <paramref name="timeout"/>)
    /// until its work has ended and then completes it before returning: QEMU's cancelled job leaves its loop without
    /// further I/O and its completion runs before the monitor replies, so <c>aborting</c> ... <c>null</c> (or
    /// <c>waiting</c> ... <c>null</c> for a soft cancel of a ready mirror) precede the reply.
    /// </summary>
    public async Task CancelAndSettleAsync(bool force, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        await _engine.SettleStartingJobsAsync([this], JobEngine.StartSettleTimeout, cancellationToken).ConfigureAwait(false);
        if (Driver.InvokeCancelEndsWithIo)
        {
            await CancelAsync(force, cancellationToken).ConfigureAwait(false);
            return;
        }

        long before;
        lock (_engine.Sync)
        {
            // A job busy in its own waits (not a sleep of the engine's) is not entered by the cancel but still ends.
            before = Started && !Deferred ? _enterCount - 1 : _enterCount;
        }

        await CancelAsync(force, cancellationToken).ConfigureAwait(false);
        if (await WaitForReactionAsync(before, untilWorkEnds: true, timeout, cancellationToken).ConfigureAwait(false))
        {
            await _engine.CompleteDeferredAsync(this).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) until the job's work has ended and then completes it before returning,
    /// also while a QMP session holds completions back. For a job that its creator knows has nothing to do: QEMU runs
    /// such a job's coroutine to its end inside the creating command, so <c>created</c> ... <c>null</c> precede the
    /// reply. Otherwise the completion runs later, as usual.
    /// </summary>
    /// <param name="timeout">How long to wait for the work to end.</param>
    /// <param name="cancellationToken">Cancels the wait (the job is not affected).</param>
    /// <returns>Whether the work ended in time and the completion ran (or had run).</returns>
    public async Task<bool> CompleteWhenWorkEndsAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (!await WaitUntilAsync(static j => j.Deferred, timeout, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await _engine.CompleteDeferredAsync(this).ConfigureAwait(false);
        return true;
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) until <paramref name="condition"/> holds under the engine lock; re-checked at every reaction.</summary>
    internal async Task<bool> WaitUntilAsync(Func<Job, bool> condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DeadlineAfter(timeout);
        while (true)
        {
            Task reaction;
            lock (_engine.Sync)
            {
                if (condition(this))
                {
                    return true;
                }

                _reaction ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                reaction = _reaction.Task;
            }

            if (!await WaitUntilAsync(reaction, deadline, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }
    }

    private static readonly TimeSpan StatusGrace = TimeSpan.FromMilliseconds(20);

    private long DeadlineAfter(TimeSpan timeout) =>
        _engine.Time.GetTimestamp() + (long)(timeout.TotalSeconds * _engine.Time.TimestampFrequency);

    // Waits for the reaction until the deadline (a timestamp of the engine's clock); false when the deadline passed.
    private async Task<bool> WaitUntilAsync(Task reaction, long deadline, CancellationToken cancellationToken)
    {
        var left = TimeSpan.FromSeconds((double)(deadline - _engine.Time.GetTimestamp()) / _engine.Time.TimestampFrequency);
        try
        {
            await reaction.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _engine.Time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private long EnterCount()
    {
        lock (_engine.Sync)
        {
            return _enterCount;
        }
    }

    // Returns whether the work ended (the job is deferred) after it was entered since 'before'.
    private async Task<bool> WaitForReactionAsync(long before, bool untilWorkEnds, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DeadlineAfter(timeout);
        bool graced = false;
        while (true)
        {
            Task reaction;
            lock (_engine.Sync)
            {
                if (_enterCount == before)
                {
                    return false;
                }

                if (Deferred)
                {
                    return true;
                }

                if (_reactedSinceEnter && !untilWorkEnds)
                {
                    // Changed status but still running: QEMU's job would go on to its next yield (a sleep, or
                    // I/O) before the reply; give ours a moment to reach a sleep too, so the next command finds
                    // it idle as QEMU's would be.
                    if (!Busy || graced)
                    {
                        return false;
                    }

                    graced = true;
                    deadline = Math.Min(deadline, DeadlineAfter(StatusGrace));
                }

                _reactedSinceEnter = false;
                _reaction ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                reaction = _reaction.Task;
            }

            if (!await WaitUntilAsync(reaction, deadline, cancellationToken).ConfigureAwait(false))
            {
                // Still busy (e.g. copying without a rate limit): QEMU would have replied at its first I/O wait anyway.
                return false;
            }

            // The reaction was signalled under the engine lock; once the lock is free, all it emitted is out.
            lock (_engine.Sync)
            {
            }
        }
    }

    /// <summary>
    /// Requests an internal pause (QEMU's drain: e.g. the block layer quiescing a node the job uses). The job stops at
    /// its next pause point with the usual status change, but it is not user-paused: <c>job-resume</c> refuses it, and a
    /// user resume does not wake it while this pause is held. Disposing the returned token undoes the pause (once).
    /// </summary>
    public IDisposable InternalPause()
    {
        lock (_engine.Sync)
        {
            PauseLocked();
        }

        return new InternalPauseToken(this);
    }

    private sealed class InternalPauseToken(Job job) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                lock (job._engine.Sync)
                {
                    job.ResumeLocked();
                }
            }
        }
    }

    /// <summary>
    /// Starts a created job: its status becomes running (event before this method returns) and its work begins on
    /// the thread pool. A job paused while created passes straight to paused.
    /// </summary>
    public void Start() => _engine.Start(this);

    /// <inheritdoc />
    public override string ToString() => $"{Type} job '{Id}' ({Status.WireName()})";

    // ---- internals used by the engine and the context ----

    internal void CheckVerbLocked(JobVerb verb)
    {
        if (!Lifecycle.Accepts(Status, verb))
        {
            throw JobException.VerbRefused(Id, Status, verb);
        }
    }

    internal void SetStatusLocked(JobStatus status) => Status = status;

    internal JobInfo SnapshotLocked()
    {
        Dictionary<string, object?>? extra = null;
        if (Driver.InvokeHasQueryFields)
        {
            extra = new Dictionary<string, object?>(StringComparer.Ordinal);
            Driver.InvokeAddQueryFields(extra);
        }

        return new JobInfo(
            Id,
            Type,
            Status,
            Volatile.Read(ref _progressCurrent),
            Volatile.Read(ref _progressTotal),
            HasError ? ErrorMessage : null,
            Speed,
            Busy,
            PauseCount > 0,
            IoStatus,
            AutoFinalize,
            AutoDismiss,
            extra);
    }

    internal void PauseLocked()
    {
        PauseCount++;
        if (!IsPausedAtPoint)
        {
            EnterLocked();
        }
    }

    internal void ResumeLocked()
    {
        Debug.Assert(PauseCount > 0, "resume without pause");
        PauseCount--;
        if (PauseCount != 0)
        {
            return;
        }

        // Resuming never shortens a rate-limit sleep.
        EnterLocked(onlyIfTimerNotPending: true);
    }

    internal void UserResumeLocked()
    {
        Driver.InvokeUserResume(Context);
        IoStatus = IoStatus.Ok;
        UserPaused = false;
    }

    /// <summary>Re-enters a yielded job (QEMU's <c>job_enter_cond</c>).</summary>
    internal void EnterLocked(bool onlyIfTimerPending = false, bool onlyIfTimerNotPending = false)
    {
        if (!Started || Deferred || Busy)
        {
            return;
        }

        if ((onlyIfTimerPending && !TimerPending) || (onlyIfTimerNotPending && TimerPending))
        {
            return;
        }

        _sleepTimer?.Dispose();
        _sleepTimer = null;
        _sleepToken = null;
        Busy = true;
        _enterCount++;
        _reactedSinceEnter = false;
        var wakeup = _wakeup;
        _wakeup = null;
        wakeup?.TrySetResult();
    }

    /// <summary>Marks the job idle and returns what to await until it is entered again (QEMU's <c>job_do_yield</c>).</summary>
    internal Task YieldLocked(TimeSpan? timeout)
    {
        var wakeup = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _wakeup = wakeup;
        Busy = false;
        ReactedLocked();
        IdleOnceLocked();
        if (timeout is { } delay)
        {
            var sleep = new SleepToken(this);
            _sleepToken = sleep;
            _sleepTimer = _engine.Time.CreateTimer(static s => ((SleepToken)s!).Fire(), sleep, delay, Timeout.InfiniteTimeSpan);
        }

        return wakeup.Task;
    }

    /// <summary>Arms the "first idle" signal of a job being started (completed at its first yield or when its work ends).</summary>
    internal void StartingLocked() => _firstIdle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The job yielded or ended its work: a job just started has reached its first idle point.</summary>
    internal void IdleOnceLocked()
    {
        _firstIdle?.TrySetResult();
        _firstIdle = null;
    }

    /// <summary>What to await until a job just started first yields or ends its work; null when it already did.</summary>
    internal Task? FirstIdleLocked() => _firstIdle?.Task;

    /// <summary>The job yielded, changed status or ended its work since it was last entered.</summary>
    internal void ReactedLocked()
    {
        _reactedSinceEnter = true;
        _reaction?.TrySetResult();
        _reaction = null;
    }

    // A timer callback can already be running when its sleep is ended another way (a pause enters the job and it parks
    // at its pause point): only the timer of the current sleep may enter the job.
    private sealed class SleepToken(Job job)
    {
        public void Fire()
        {
            lock (job._engine.Sync)
            {
                if (ReferenceEquals(job._sleepToken, this))
                {
                    job.EnterLocked();
                }
            }
        }
    }

    internal void TriggerForceCancelToken()
    {
        try
        {
            _forceCancel.Cancel();
        }
        catch (AggregateException ex)
        {
            // A driver's cancellation callback threw; the cancel itself stands.
            _engine.LogCallbackFailure(this, ex);
        }
    }

    internal void AddProgress(long units)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        Interlocked.Add(ref _progressCurrent, units);
    }

    internal void SetProgressRemaining(long remaining)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(remaining);
        Volatile.Write(ref _progressTotal, Volatile.Read(ref _progressCurrent) + remaining);
    }

    internal void IncreaseProgressRemaining(long delta) => Interlocked.Add(ref _progressTotal, delta);

    internal void SetConcluded() => _concluded.TrySetResult();
}
