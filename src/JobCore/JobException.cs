namespace JobCore;

/// <summary>
/// A request the job engine refused: an illegal verb, an unknown job, a bad option. The message is stable and
/// follows QEMU's text where QEMU has one; <see cref="ErrorClass"/> is the QMP error class.
/// </summary>
public sealed class JobException : Exception
{
    /// <summary>QMP's catch-all error class.</summary>
    public const string GenericError = "GenericError";

    /// <summary>QMP's class for a block job that cannot be found.</summary>
    public const string DeviceNotActive = "DeviceNotActive";

    /// <summary>QMP's class for a device or node that cannot be found.</summary>
    public const string DeviceNotFound = "DeviceNotFound";

    /// <summary>Creates a refusal with the given message and QMP error class.</summary>
    public JobException(string message, string errorClass = GenericError)
        : base(message)
    {
        ErrorClass = errorClass;
    }

    /// <summary>Creates a refusal of class <see cref="GenericError"/>.</summary>
    public JobException()
        : this("Job request refused")
    {
    }

    /// <summary>Creates a refusal wrapping the exception that caused it.</summary>
    public JobException(string message, Exception innerException)
        : base(message, innerException)
    {
        ErrorClass = GenericError;
    }

    /// <summary>The QMP error class (<c>GenericError</c>, <c>DeviceNotActive</c>, ...).</summary>
    public string ErrorClass { get; } = GenericError;

    internal static JobException VerbRefused(string id, JobStatus status, JobVerb verb) =>
        new($"Job '{id}' in state '{status.WireName()}' cannot accept command verb '{verb.WireName()}'");
}

/// <summary>
/// Thrown by a job driver to fail its job with a message that becomes the job's <c>error</c>. Any other exception
/// also fails the job (its message is used); this type lets a driver choose the text and the telemetry error type.
/// </summary>
public class JobFailedException : Exception
{
    /// <summary>Creates a failure with the given message.</summary>
    public JobFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates a failure with the given message and cause.</summary>
    public JobFailedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates a failure with a generic message.</summary>
    public JobFailedException()
        : base("Job failed")
    {
    }
}
