namespace JobCore;

/// <summary>
/// The status of a job, in QEMU's wire order (<c>qapi/job.json</c>, enum <c>JobStatus</c>).
/// The lifecycle table (<see cref="Lifecycle"/>) says which transitions and verbs each status allows.
/// </summary>
public enum JobStatus
{
    /// <summary>Zero value of a fresh record; never reported.</summary>
    Undefined,
    /// <summary>The record exists and its id is registered; the job has not started.</summary>
    Created,
    /// <summary>The work function is executing (possibly sleeping for rate limiting or waiting on I/O).</summary>
    Running,
    /// <summary>Was running and stopped at a pause point because a pause was requested.</summary>
    Paused,
    /// <summary>Has converged and waits for <c>complete</c> (or cancel) while it keeps working in the background.</summary>
    Ready,
    /// <summary>Was ready and is now paused.</summary>
    Standby,
    /// <summary>The work succeeded; waits for the other members of its transaction.</summary>
    Waiting,
    /// <summary>The whole transaction succeeded; waits for finalization (automatic or <c>job-finalize</c>).</summary>
    Pending,
    /// <summary>Failing or cancelled; abort callbacks are about to run.</summary>
    Aborting,
    /// <summary>All work and cleanup done; the result is readable until the job is dismissed.</summary>
    Concluded,
    /// <summary>Being destroyed; reported only as the last status change.</summary>
    Null,
}
