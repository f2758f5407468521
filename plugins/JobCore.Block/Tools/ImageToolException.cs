namespace JobCore.Block.Tools;

/// <summary>
/// A user-facing failure of an image tool (bad size, unknown format, missing file, refused option): the message is
/// one line meant to be printed as is, like qemu-img's error reports.
/// </summary>
internal sealed class ImageToolException : Exception
{
    /// <summary>Creates the exception with its one-line message.</summary>
    public ImageToolException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its one-line message and cause.</summary>
    public ImageToolException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with its one-line message and the exit code qemu-img gives for it.</summary>
    public ImageToolException(string message, int exitCode)
        : base(message)
    {
        ExitCode = exitCode;
    }

    /// <summary>The exit code qemu-img uses for this failure, when it is not the command's usual error code.</summary>
    public int? ExitCode { get; }

    /// <summary>Creates the exception with a generic message.</summary>
    public ImageToolException()
        : base("image tool failure")
    {
    }
}
