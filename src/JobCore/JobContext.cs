namespace JobCore;

/// <summary>
/// What a running driver may ask of the engine: pause points, rate-limited sleeps, progress, the transition to
/// ready, and the error-policy decision. One context per job; all members are thread-safe.
/// </summary>
public sealed class JobContext
{
    private readonly Job _job;
    private TimeSpan _pendingDelay;

    internal JobContext(Job job) => _job = job;

    /// <summary>The job id (empty for internal jobs).</summary>
    public string JobId => _job.Id;

    /// <summary>The job this context belongs to.</summary>
    public Job Job => _job;

    /// <summary>The engine's clock.</summary>
    public TimeProvider Time => _job.Engine().Time;

    /// <summary>Whether the job is force-cancelled: the work loop must stop (QEMU's <c>job_is_cancelled</c>).</summary>
    public bool IsCancelled
    {
        get
        {
            lock (_job.Engine().Sync)
            {
                return _job.ForceCancelled;
            }
        }
    }

    /// <summary>Whether any cancel (soft or force) was requested (QEMU's <c>job_cancel_requested</c>).</summary>
    public bool IsCancelRequested
    {
        get
        {
            lock (_job.Engine().Sync)
            {
                return _job.CancelRequested;
            }
        }
    }

    /// <summary>The job's current I/O status.</summary>
    public IoStatus IoStatus
    {
        get
        {
            lock (_job.Engine().Sync)
            {
                return _job.IoStatus;
            }
        }
    }

    /// <summary>The current rate limit (0 = unlimited).</summary>
    public long Speed
    {
        get
        {
            lock (_job.Engine().Sync)
            {
                return _job.Speed;
            }
        }
    }

    /// <summary>
    /// Stops here if a pause is requested (and the job is not force-cancelled): the status becomes paused (or standby
    /// when ready) until the pause is undone. Cheap when no pause is requested.
    /// </summary>
    public ValueTask PausePointAsync() => _job.Engine().PausePointAsync(_job);

    /// <summary>
    /// Sleeps for <paramref name="delay"/> (woken early by cancel, pause or a speed rise), then passes a pause point.
    /// Returns at once when force-cancelled. A zero delay is just a pause point.
    /// </summary>
    public ValueTask SleepAsync(TimeSpan delay) => _job.Engine().SleepAsync(_job, delay);

    /// <summary>Waits until something enters the job again (a cancel, a resume, <see cref="Wake"/>), then passes a pause point.</summary>
    public ValueTask YieldAsync() => _job.Engine().YieldAsync(_job);

    /// <summary>Wakes the job if it is yielded or sleeping (for drivers whose own I/O completions should re-enter the loop).</summary>
    public void Wake()
    {
        lock (_job.Engine().Sync)
        {
            _job.EnterLocked();
        }
    }

    /// <summary>Accounts units of work just done against the rate limit (QEMU's <c>block_job_ratelimit_processed_bytes</c>).</summary>
    public void RateLimitProcessed(long units)
    {
        TimeSpan delay = _job.Limiter.CalculateDelay(units);
        lock (_job.Engine().Sync)
        {
            _pendingDelay = delay;
        }
    }

    /// <summary>
    /// Sleeps as long as the rate limit requires, recomputing after every wake-up so early wake-ups never bypass the
    /// limit and a speed change takes effect at once; always passes at least one pause point. With
    /// <see cref="JobEngineOptions.ServeWholeRateLimitDelay"/> off it sleeps once for the delay the last
    /// <see cref="RateLimitProcessed"/> call incurred (none when nothing was accounted since), and an early wake-up ends it.
    /// </summary>
    public async ValueTask RateLimitSleepAsync()
    {
        if (!_job.Engine().Options.ServeWholeRateLimitDelay)
        {
            // QEMU 7.2: the delay owed for the last accounted work, slept once; nothing owed after skipped work.
            TimeSpan owed;
            lock (_job.Engine().Sync)
            {
                owed = _pendingDelay;
                _pendingDelay = TimeSpan.Zero;
            }

            await SleepAsync(owed).ConfigureAwait(false);
            return;
        }

        TimeSpan delay;
        do
        {
            delay = _job.Limiter.CalculateDelay(0);
            await SleepAsync(delay).ConfigureAwait(false);
        }
        while (delay > TimeSpan.Zero && !IsCancelled);
    }

    /// <summary>Adds to the progress done (never decreases).</summary>
    public void ProgressWorkDone(long units)
    {
        _job.AddProgress(units);
        JobCoreTelemetry.RecordProgress(_job, units);
    }

    /// <summary>Sets the estimated total to work done + <paramref name="remaining"/>.</summary>
    public void ProgressSetRemaining(long remaining) => _job.SetProgressRemaining(remaining);

    /// <summary>Adds <paramref name="delta"/> to the estimated total.</summary>
    public void ProgressIncreaseRemaining(long delta) => _job.IncreaseProgressRemaining(delta);

    /// <summary>Declares convergence: running → ready, followed by the ready event. Once per job.</summary>
    public void TransitionToReady() => _job.Engine().TransitionToReady(_job);

    /// <summary>
    /// <see cref="TransitionToReady"/> between monitor commands: while a QMP session runs a command the transition
    /// waits for its reply, as QEMU's job declares READY after an I/O completion, from its main loop (so a
    /// <c>job-resume</c> that lets a mirror converge at once still replies before <c>ready</c>).
    /// </summary>
    /// <param name="cancellationToken">The job's token (a force cancel ends the wait).</param>
    public async ValueTask TransitionToReadyAsync(CancellationToken cancellationToken = default) =>
        await _job.Engine().BetweenCommandsAsync(
            () =>
            {
                _job.Engine().TransitionToReady(_job);
                return true;
            },
            cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Consults <paramref name="policy"/> for a failed request: emits the error event, and for <c>stop</c> pauses the
    /// job as a user pause and records the I/O status (<c>nospace</c> or <c>failed</c>; the first error wins). The
    /// job stops at its next pause point. Returns the action so the driver can report, retry or carry on.
    /// </summary>
    /// <param name="policy">The policy for this side of the job.</param>
    /// <param name="operation">Whether a read or a write failed.</param>
    /// <param name="noSpace">Whether the error is "no space left on device" (ENOSPC).</param>
    public ErrorAction HandleError(ErrorPolicy policy, IoOperation operation, bool noSpace) =>
        _job.Engine().HandleError(_job, policy, operation, noSpace);

    /// <summary>
    /// <see cref="HandleError"/> for async code, done between monitor commands: while a QMP session runs a command
    /// (it holds <see cref="JobEngine.HoldCompletionsAsync"/>) the error waits for the reply, as QEMU reports I/O
    /// errors from its main loop. So <c>BLOCK_JOB_ERROR</c> never precedes the reply of the command that created or
    /// resumed the job, even when the job's first request fails at once.
    /// </summary>
    /// <param name="policy">The policy for this side of the job.</param>
    /// <param name="operation">Whether a read or a write failed.</param>
    /// <param name="noSpace">Whether the error is "no space left on device" (ENOSPC).</param>
    /// <param name="cancellationToken">The job's token (a force cancel ends the wait).</param>
    /// <returns>The action, as <see cref="HandleError"/>.</returns>
    public ValueTask<ErrorAction> HandleErrorAsync(ErrorPolicy policy, IoOperation operation, bool noSpace, CancellationToken cancellationToken = default) =>
        _job.Engine().BetweenCommandsAsync(() => HandleError(policy, operation, noSpace), cancellationToken);
}
