namespace JobCore;

/// <summary>
/// What a job-type author writes. One instance runs one job. Only <see cref="RunAsync"/> is required; every other
/// hook has a no-op default. Hooks run in the order of spec §4.6: run; then, once the whole transaction finished,
/// prepare (may fail), then commit (success) or abort (failure or cancel), then clean.
/// </summary>
public abstract class JobDriver
{
    /// <summary>
    /// Does the work. Return normally for success; throw to fail the job (the message becomes its error). Call
    /// <see cref="JobContext.PausePointAsync"/> (or the sleep helpers) between units of work so pause and cancel
    /// take effect. <paramref name="cancellationToken"/> is cancelled on a force cancel.
    /// </summary>
    protected abstract Task RunAsync(JobContext context, CancellationToken cancellationToken);

    /// <summary>Runs after the whole transaction succeeded, before commit. Throw to fail (aborts the transaction).</summary>
    protected virtual ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Makes the result permanent. Runs only after every prepare succeeded; must not fail.</summary>
    protected virtual ValueTask CommitAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Undoes what can be undone after a failure or cancel; must not fail.</summary>
    protected virtual ValueTask AbortAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Releases resources; runs after commit or abort.</summary>
    protected virtual ValueTask CleanAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Whether this type accepts <c>complete</c> (jobs that reach <c>ready</c>).</summary>
    protected virtual bool SupportsComplete => false;

    /// <summary>
    /// Handles <c>complete</c> on a ready (or standby) job: ask the work loop to finish. Throw <see cref="JobException"/>
    /// to refuse. Called only when <see cref="SupportsComplete"/> is true.
    /// </summary>
    protected virtual void Complete(JobContext context)
    {
    }

    /// <summary>
    /// Called on every cancel request. Returns whether the cancel is a force cancel (must be true when
    /// <paramref name="force"/> is). The default treats every cancel as force; a job with a soft mode (mirror after
    /// ready: finish without pivot) returns <paramref name="force"/>.
    /// </summary>
    protected virtual bool Cancel(JobContext context, bool force) => true;

    /// <summary>Whether this type accepts <c>change</c>.</summary>
    protected virtual bool SupportsChange => false;

    /// <summary>Applies type-specific changes while the job runs; throw <see cref="JobException"/> to refuse.</summary>
    protected virtual void Change(JobContext context, object changeOptions)
    {
    }

    /// <summary>Called on a user resume (and on cancel of a user-paused job), before the job is woken.</summary>
    protected virtual void UserResume(JobContext context)
    {
    }

    /// <summary>Called when the job reaches a pause point with a pause requested: quiesce in-flight work.</summary>
    protected virtual ValueTask PauseAsync(JobContext context) => default;

    /// <summary>Called when the job leaves a pause point.</summary>
    protected virtual ValueTask ResumeAsync(JobContext context) => default;

    /// <summary>Called after the speed changed.</summary>
    protected virtual void SpeedChanged(JobContext context, long speed)
    {
    }

    /// <summary>Adds type-specific fields to query results (e.g. <c>actively-synced</c>); the default adds none.</summary>
    protected virtual void AddQueryFields(IDictionary<string, object?> fields)
    {
    }

    /// <summary>Whether <see cref="AddQueryFields"/> adds anything (avoids building a dictionary per query).</summary>
    protected virtual bool HasQueryFields => false;

    // The engine calls the hooks through these, so plugin authors override plain protected members.
    internal Task InvokeRunAsync(JobContext c, CancellationToken t) => RunAsync(c, t);

    internal ValueTask InvokePrepareAsync(JobContext c, CancellationToken t) => PrepareAsync(c, t);

    internal ValueTask InvokeCommitAsync(JobContext c, CancellationToken t) => CommitAsync(c, t);

    internal ValueTask InvokeAbortAsync(JobContext c, CancellationToken t) => AbortAsync(c, t);

    internal ValueTask InvokeCleanAsync(JobContext c, CancellationToken t) => CleanAsync(c, t);

    internal bool InvokeSupportsComplete => SupportsComplete;

    internal void InvokeComplete(JobContext c) => Complete(c);

    internal bool InvokeCancel(JobContext c, bool force) => Cancel(c, force);

    /// <summary>
    /// Whether a cancelled job of this type still does I/O on its way out (QEMU's mirror drains the source and waits
    /// for its requests), so that a QMP server replies to the cancel before the job completes; otherwise (stream,
    /// commit) the job leaves its loop at once and QEMU completes it before the reply. Default: true when the driver
    /// overrides <see cref="Cancel"/> (in QEMU only such drivers, like mirror, have a cancel hook).
    /// </summary>
    protected virtual bool CancelEndsWithIo =>
        GetType().GetMethod(nameof(Cancel), System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic,
            [typeof(JobContext), typeof(bool)])?.DeclaringType != typeof(JobDriver);

    internal bool InvokeCancelEndsWithIo => CancelEndsWithIo;

    internal bool InvokeSupportsChange => SupportsChange;

    internal void InvokeChange(JobContext c, object o) => Change(c, o);

    internal void InvokeUserResume(JobContext c) => UserResume(c);

    internal ValueTask InvokePauseAsync(JobContext c) => PauseAsync(c);

    internal ValueTask InvokeResumeAsync(JobContext c) => ResumeAsync(c);

    internal void InvokeSpeedChanged(JobContext c, long speed) => SpeedChanged(c, speed);

    internal void InvokeAddQueryFields(IDictionary<string, object?> f) => AddQueryFields(f);

    internal bool InvokeHasQueryFields => HasQueryFields;
}

/// <summary>A job driver with typed options, set by the engine before the job starts.</summary>
/// <typeparam name="TOptions">The job type's options record.</typeparam>
public abstract class JobDriver<TOptions> : JobDriver
    where TOptions : JobOptions
{
    private TOptions? _options;

    /// <summary>The validated options this job was created with.</summary>
    public TOptions Options
    {
        get => _options ?? throw new InvalidOperationException("Options are set by the engine when the job is created");
        internal set => _options = value;
    }
}
