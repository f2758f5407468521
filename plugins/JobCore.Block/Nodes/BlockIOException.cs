namespace JobCore.Block.Nodes;

/// <summary>
/// An I/O request on a block node failed with a POSIX error number, as QEMU reports it: the message is the
/// C library's <c>strerror</c> text (<c>Input/output error</c>, <c>No space left on device</c>, ...) unless a
/// more specific message is given. Job error policies decide on <see cref="Errno"/> (ENOSPC versus the rest).
/// </summary>
public sealed class BlockIOException : IOException
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such file or directory.</summary>
    public const int ENOENT = 2;
    /// <summary>Input/output error (the default injected error of blkdebug).</summary>
    public const int EIO = 5;
    /// <summary>Bad file descriptor.</summary>
    public const int EBADF = 9;
    /// <summary>Cannot allocate memory.</summary>
    public const int ENOMEM = 12;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>File too large.</summary>
    public const int EFBIG = 27;
    /// <summary>No space left on device.</summary>
    public const int ENOSPC = 28;
    /// <summary>Read-only file system.</summary>
    public const int EROFS = 30;
    /// <summary>Operation not supported.</summary>
    public const int ENOTSUP = 95;
    /// <summary>Disk quota exceeded.</summary>
    public const int EDQUOT = 122;
    /// <summary>No medium found.</summary>
    public const int ENOMEDIUM = 123;
    /// <summary>Operation canceled.</summary>
    public const int ECANCELED = 125;

    /// <summary>Creates the exception for <paramref name="errno"/>.</summary>
    /// <param name="errno">The positive POSIX error number (Linux numbering).</param>
    /// <param name="message">The message; defaults to <see cref="StrError"/> of <paramref name="errno"/>.</param>
    public BlockIOException(int errno, string? message = null)
        : base(message ?? StrError(errno))
    {
        Errno = errno;
    }

    /// <summary>Creates the exception for <paramref name="errno"/> caused by <paramref name="innerException"/>.</summary>
    /// <param name="errno">The positive POSIX error number (Linux numbering).</param>
    /// <param name="message">The message; defaults to <see cref="StrError"/> of <paramref name="errno"/>.</param>
    /// <param name="innerException">The underlying failure.</param>
    public BlockIOException(int errno, string? message, Exception? innerException)
        : base(message ?? StrError(errno), innerException)
    {
        Errno = errno;
    }

    /// <summary>The positive POSIX error number (Linux numbering): 5 = EIO, 28 = ENOSPC, ...</summary>
    public int Errno { get; }

    /// <summary>Whether the error is "no space left" (ENOSPC), which the <c>enospc</c> error policy treats as a pause.</summary>
    public bool IsNoSpace => Errno == ENOSPC;

    /// <summary>Whether <paramref name="exception"/> is a <see cref="BlockIOException"/> with ENOSPC.</summary>
    /// <param name="exception">Any exception, or <see langword="null"/>.</param>
    public static bool IsNoSpaceError(Exception? exception) => exception is BlockIOException { IsNoSpace: true };

    /// <summary>The glibc <c>strerror</c> text of <paramref name="errno"/>, e.g. <c>Input/output error</c>.</summary>
    /// <param name="errno">A POSIX error number (Linux numbering).</param>
    public static string StrError(int errno) => errno switch
    {
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        EIO => "Input/output error",
        6 => "No such device or address",
        7 => "Argument list too long",
        EBADF => "Bad file descriptor",
        11 => "Resource temporarily unavailable",
        ENOMEM => "Cannot allocate memory",
        EACCES => "Permission denied",
        14 => "Bad address",
        EBUSY => "Device or resource busy",
        17 => "File exists",
        19 => "No such device",
        EINVAL => "Invalid argument",
        EFBIG => "File too large",
        ENOSPC => "No space left on device",
        29 => "Illegal seek",
        EROFS => "Read-only file system",
        34 => "Numerical result out of range",
        ENOTSUP => "Operation not supported",
        107 => "Transport endpoint is not connected",
        110 => "Connection timed out",
        EDQUOT => "Disk quota exceeded",
        ENOMEDIUM => "No medium found",
        ECANCELED => "Operation canceled",
        _ => $"Unknown error {errno}",
    };
}
