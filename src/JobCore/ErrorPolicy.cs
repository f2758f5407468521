namespace JobCore;

/// <summary>What a job does when one of its I/O requests fails (QEMU's <c>BlockdevOnError</c>).</summary>
public enum ErrorPolicy
{
    /// <summary>Fail the job.</summary>
    Report,
    /// <summary>Carry on; what that means is up to the job type.</summary>
    Ignore,
    /// <summary>Stop on "no space left", fail on anything else.</summary>
    Enospc,
    /// <summary>Pause the job until the user resumes it.</summary>
    Stop,
    /// <summary>Inherit; for jobs the same as <see cref="Enospc"/>.</summary>
    Auto,
}

/// <summary>The action taken for one I/O error (QEMU's <c>BlockErrorAction</c>).</summary>
public enum ErrorAction
{
    /// <summary>The error was ignored.</summary>
    Ignore,
    /// <summary>The error is reported: the job fails.</summary>
    Report,
    /// <summary>The job pauses; the user must resume it.</summary>
    Stop,
}

/// <summary>The I/O status of a job (QEMU's <c>BlockDeviceIoStatus</c>).</summary>
public enum IoStatus
{
    /// <summary>No error is pending.</summary>
    Ok,
    /// <summary>The job stopped after an I/O error.</summary>
    Failed,
    /// <summary>The job stopped because storage ran out of space.</summary>
    NoSpace,
}

/// <summary>The direction of a failed request (QEMU's <c>IoOperationType</c>).</summary>
public enum IoOperation
{
    /// <summary>A read failed.</summary>
    Read,
    /// <summary>A write (or flush) failed.</summary>
    Write,
}

/// <summary>The error-policy decision table and wire names of the error enums.</summary>
public static class ErrorPolicies
{
    /// <summary>Maps a policy and the kind of error to the action (spec §4.8).</summary>
    /// <param name="policy">The job's policy for this side.</param>
    /// <param name="noSpace">Whether the error is "no space left on device" (ENOSPC).</param>
    public static ErrorAction Decide(ErrorPolicy policy, bool noSpace) => policy switch
    {
        ErrorPolicy.Report => ErrorAction.Report,
        ErrorPolicy.Ignore => ErrorAction.Ignore,
        ErrorPolicy.Stop => ErrorAction.Stop,
        ErrorPolicy.Enospc or ErrorPolicy.Auto => noSpace ? ErrorAction.Stop : ErrorAction.Report,
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "unknown error policy"),
    };

    /// <summary>The wire name of a policy (<c>report</c>, <c>ignore</c>, <c>enospc</c>, <c>stop</c>, <c>auto</c>).</summary>
    public static string WireName(this ErrorPolicy policy) => policy switch
    {
        ErrorPolicy.Report => "report",
        ErrorPolicy.Ignore => "ignore",
        ErrorPolicy.Enospc => "enospc",
        ErrorPolicy.Stop => "stop",
        ErrorPolicy.Auto => "auto",
        _ => throw new ArgumentOutOfRangeException(nameof(policy)),
    };

    /// <summary>Parses a policy wire name; returns false for an unknown name.</summary>
    public static bool TryParse(string name, out ErrorPolicy policy)
    {
        foreach (var p in Enum.GetValues<ErrorPolicy>())
        {
            if (p.WireName() == name)
            {
                policy = p;
                return true;
            }
        }

        policy = default;
        return false;
    }

    /// <summary>The wire name of an action (<c>ignore</c>, <c>report</c>, <c>stop</c>).</summary>
    public static string WireName(this ErrorAction action) => action switch
    {
        ErrorAction.Ignore => "ignore",
        ErrorAction.Report => "report",
        ErrorAction.Stop => "stop",
        _ => throw new ArgumentOutOfRangeException(nameof(action)),
    };

    /// <summary>The wire name of an I/O status (<c>ok</c>, <c>failed</c>, <c>nospace</c>).</summary>
    public static string WireName(this IoStatus status) => status switch
    {
        IoStatus.Ok => "ok",
        IoStatus.Failed => "failed",
        IoStatus.NoSpace => "nospace",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    /// <summary>The wire name of an operation (<c>read</c>, <c>write</c>).</summary>
    public static string WireName(this IoOperation operation) =>
        operation == IoOperation.Read ? "read" : "write";
}
