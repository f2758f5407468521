using System.Globalization;

namespace JobCore.Block.Tools;

/// <summary>
/// Image sizes as qemu-img reads and prints them: <c>64M</c>, <c>1G</c>, <c>1.5k</c>, plain bytes on input;
/// <c>1.25 MiB</c> (three significant digits, binary units) on output.
/// </summary>
internal static class ImageSize
{
    private const string Suffixes = "BKMGTPE";
    private static readonly string[] HumanUnits = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

    /// <summary>The message qemu-img gives for an unparsable size.</summary>
    internal const string InvalidSizeMessage =
        "Invalid image size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, " +
        "gigabytes, terabytes, petabytes and exabytes.";

    /// <summary>Parses <paramref name="text"/>: a non-negative decimal number with an optional binary suffix.</summary>
    /// <exception cref="ImageToolException">The text is not a size or is out of range.</exception>
    public static long Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        long multiplier = 1;
        if (s.Length > 0)
        {
            var unit = Suffixes.IndexOf(char.ToUpperInvariant(s[^1]), StringComparison.Ordinal);
            if (unit >= 0)
            {
                multiplier = 1L << (10 * unit);
                s = s[..^1];
            }
            else if (!char.IsAsciiDigit(s[^1]))
            {
                throw new ImageToolException(InvalidSizeMessage);
            }
        }

        if (s.Length == 0 || s[0] == '-' || s[0] == '+'
            || !decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            throw new ImageToolException(InvalidSizeMessage);
        }

        decimal bytes;
        try
        {
            bytes = value * multiplier;
        }
        catch (OverflowException)
        {
            bytes = decimal.MaxValue;
        }

        if (bytes != decimal.Truncate(bytes))
        {
            // A fraction must come out as whole bytes (qemu: "1.5k" is fine, "1.0001k" is not).
            throw new ImageToolException(InvalidSizeMessage);
        }

        if (bytes > long.MaxValue)
        {
            throw new ImageToolException(
                "Invalid image size specified. Must be between 0 and " + long.MaxValue.ToString(CultureInfo.InvariantCulture) + ".");
        }

        return (long)bytes;
    }

    /// <summary>Formats <paramref name="bytes"/> like QEMU's <c>size_to_str</c>: <c>64 MiB</c>, <c>1.25 MiB</c>, <c>4 KiB</c>.</summary>
    public static string ToHuman(long bytes)
    {
        // The unit is the largest power of 1024 whose value stays below 1000 of that unit (QEMU scales by 1000/1024).
        var scaled = bytes * 1.024;
        var unit = 0;
        while (unit < HumanUnits.Length - 1 && scaled >= Math.Pow(1024, unit + 1))
        {
            unit++;
        }

        var value = bytes / Math.Pow(1024, unit);
        var number = value.ToString("G3", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
        return number + " " + HumanUnits[unit] + "B";
    }
}
