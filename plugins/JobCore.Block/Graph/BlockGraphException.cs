namespace JobCore.Block.Graph;

/// <summary>
/// A block-graph or <c>blockdev-add</c> option request was refused. The message is QEMU's text where QEMU has one
/// (<c>Parameter 'driver' is missing</c>, <c>Duplicate nodes with node-name='x'</c>,
/// <c>Node 'x' is busy: block device is in use by block job: stream</c>, ...), so the QMP layer can pass it on
/// unchanged; <see cref="ErrorClass"/> is the QMP error class.
/// </summary>
public sealed class BlockGraphException : Exception
{
    /// <summary>QMP's generic error class.</summary>
    public const string GenericError = "GenericError";

    /// <summary>QMP's error class for an unknown device or node, where QEMU uses it.</summary>
    public const string DeviceNotFound = "DeviceNotFound";

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The QEMU-compatible message.</param>
    /// <param name="errorClass">The QMP error class; <see cref="GenericError"/> unless QEMU uses another.</param>
    public BlockGraphException(string message, string errorClass = GenericError)
        : base(message)
    {
        ErrorClass = errorClass;
    }

    /// <summary>Creates the exception with its cause.</summary>
    /// <param name="message">The QEMU-compatible message.</param>
    /// <param name="innerException">The underlying failure.</param>
    public BlockGraphException(string message, Exception? innerException)
        : base(message, innerException)
    {
        ErrorClass = GenericError;
    }

    /// <summary>The QMP error class (<see cref="GenericError"/> or <see cref="DeviceNotFound"/>).</summary>
    public string ErrorClass { get; }
}
