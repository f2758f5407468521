namespace JobCore;

/// <summary>A snapshot of one job, as <c>query-jobs</c> and <c>query-block-jobs</c> report it.</summary>
/// <param name="Id">The job id (empty for internal jobs, which queries never show).</param>
/// <param name="Type">The job type name (<c>stream</c>, <c>mirror</c>, ...).</param>
/// <param name="Status">The status at the time of the snapshot.</param>
/// <param name="CurrentProgress">Work done so far; never decreases.</param>
/// <param name="TotalProgress">Estimated work at the end; may move both ways.</param>
/// <param name="Error">The error message once the job failed or was cancelled; null on success or while running.</param>
/// <param name="Speed">The rate limit (0 = unlimited).</param>
/// <param name="Busy">False when the job is known to be quiescent (sleeping, paused or idle).</param>
/// <param name="Paused">Whether any pause (user, error-stop or internal) is outstanding.</param>
/// <param name="IoStatus">The I/O status (ok, failed, nospace).</param>
/// <param name="AutoFinalize">Whether the job finalizes on its own.</param>
/// <param name="AutoDismiss">Whether the job is dismissed on its own.</param>
/// <param name="Extra">Job-type specific fields (e.g. mirror's <c>actively-synced</c>), or null.</param>
public sealed record JobInfo(
    string Id,
    string Type,
    JobStatus Status,
    long CurrentProgress,
    long TotalProgress,
    string? Error,
    long Speed,
    bool Busy,
    bool Paused,
    IoStatus IoStatus,
    bool AutoFinalize,
    bool AutoDismiss,
    IReadOnlyDictionary<string, object?>? Extra)
{
    /// <summary>Whether the job is ready or on standby (waits for <c>complete</c>).</summary>
    public bool Ready => Lifecycle.IsReady(Status);
}
