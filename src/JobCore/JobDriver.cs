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
    protected internal abstract Task RunAsync(JobContext context, CancellationToken cancellationToken);

    /// <summary>Runs after the whole transaction succeeded, before commit. Throw to fail (aborts the transaction).</summary>
    protected internal virtual ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Makes the result permanent. Runs only after every prepare succeeded; must not fail.</summary>
    protected internal virtual ValueTask CommitAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Undoes what can be undone after a failure or cancel; must not fail.</summary>
    protected internal virtual ValueTask AbortAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Releases resources; runs after commit or abort.</summary>
    protected internal virtual ValueTask CleanAsync(JobContext context, CancellationToken cancellationToken) => default;

    /// <summary>Whether this type accepts <c>complete</c> (jobs that reach <c>ready</c>).</summary>
    protected internal virtual bool SupportsComplete => false;

    /// <summary>
    /// Handles <c>complete</c> on a ready (or standby) job: ask the work loop to finish. Throw <see cref="JobException"/>
    /// to refuse. Called only when <see cref="SupportsComplete"/> is true.
    /// </summary>
    protected internal virtual void Complete(JobContext context)
    {
    }

    /// <summary>
    /// Called on every cancel request. Returns whether the cancel is a force cancel (must be true when
    /// <paramref name="force"/> is). The default treats every cancel as force; a job with a soft mode (mirror after
    /// ready: finish without pivot) returns <paramref name="force"/>.
    /// </summary>
    protected internal virtual bool Cancel(JobContext context, bool force) => true;

    /// <summary>Whether this type accepts <c>change</c>.</summary>
    protected internal virtual bool SupportsChange => false;

    /// <summary>Applies type-specific changes while the job runs; throw <see cref="JobException"/> to refuse.</summary>
    protected internal virtual void Change(JobContext context, object changeOptions)
    {
    }

    /// <summary>Called on a user resume (and on cancel of a user-paused job), before the job is woken.</summary>
    protected internal virtual void UserResume(JobContext context)
    {
    }

    /// <summary>Called when the job reaches a pause point with a pause requested: quiesce in-flight work.</summary>
    protected internal virtual ValueTask PauseAsync(JobContext context) => default;

    /// <summary>Called when the job leaves a pause point.</summary>
    protected internal virtual ValueTask ResumeAsync(JobContext context) => default;

    /// <summary>Called after the speed changed.</summary>
    protected internal virtual void SpeedChanged(JobContext context, long speed)
    {
    }

    /// <summary>Adds type-specific fields to query results (e.g. <c>actively-synced</c>); the default adds none.</summary>
    protected internal virtual void AddQueryFields(IDictionary<string, object?> fields)
    {
    }

    /// <summary>Whether <see cref="AddQueryFields"/> adds anything (avoids building a dictionary per query).</summary>
    protected internal virtual bool HasQueryFields => false;
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
