namespace JobCore.Qmp;

/// <summary>
/// A QMP error: thrown by command handlers to produce <c>{"error": {"class": ..., "desc": ...}}</c>, and by
/// <c>QmpClient</c> when the peer answers with an error.
/// </summary>
public sealed class QmpException : Exception
{
    /// <summary>Creates an error of class <paramref name="errorClass"/> (see <see cref="QmpErrorClass"/>).</summary>
    public QmpException(string errorClass, string description)
        : base(description)
    {
        ArgumentException.ThrowIfNullOrEmpty(errorClass);
        ErrorClass = errorClass;
    }

    /// <summary>Creates a <see cref="QmpErrorClass.GenericError"/>.</summary>
    public QmpException(string description)
        : this(QmpErrorClass.GenericError, description)
    {
    }

    /// <summary>Creates a <see cref="QmpErrorClass.GenericError"/> wrapping <paramref name="innerException"/>.</summary>
    public QmpException(string description, Exception innerException)
        : base(description, innerException)
    {
        ErrorClass = QmpErrorClass.GenericError;
    }

    /// <summary>Creates an empty <see cref="QmpErrorClass.GenericError"/>.</summary>
    public QmpException()
        : this(QmpErrorClass.GenericError, "Unknown error")
    {
    }

    /// <summary>The QMP error class, e.g. <c>GenericError</c>.</summary>
    public string ErrorClass { get; }
}

/// <summary>QMP error classes (QEMU's <c>QapiErrorClass</c>).</summary>
public static class QmpErrorClass
{
    /// <summary>Almost every error.</summary>
    public const string GenericError = "GenericError";

    /// <summary>Unknown command, or any command before <c>qmp_capabilities</c>.</summary>
    public const string CommandNotFound = "CommandNotFound";

    /// <summary>A <c>block-job-*</c> command named no existing block job.</summary>
    public const string DeviceNotActive = "DeviceNotActive";

    /// <summary>A device or node named in a command does not exist.</summary>
    public const string DeviceNotFound = "DeviceNotFound";
}
