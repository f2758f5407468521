namespace JobCore.Block.Nodes;

/// <summary>
/// An image cannot be opened (or a request refused) because its format metadata is invalid or uses a feature this
/// driver does not support: bad magic, unknown incompatible feature bits, encryption, a corrupt image opened for
/// writing, tables outside the file, ... The message names the file and the offending field.
/// </summary>
public sealed class BlockFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, naming the file and the field.</param>
    public BlockFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the failure that revealed the problem.</summary>
    /// <param name="message">What is wrong, naming the file and the field.</param>
    /// <param name="innerException">The underlying failure.</param>
    public BlockFormatException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a generic message.</summary>
    public BlockFormatException()
        : base("Invalid image format")
    {
    }
}
