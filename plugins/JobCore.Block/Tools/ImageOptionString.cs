namespace JobCore.Block.Tools;

/// <summary>
/// qemu-img's <c>-o key=value[,key=value...]</c> format options. jobctl understands <c>cluster_size</c> (with size
/// suffixes), <c>backing_file</c> and <c>backing_fmt</c>; anything else is refused by name.
/// </summary>
internal sealed record ImageOptionString(int? ClusterSize, string? BackingFile, string? BackingFormat)
{
    /// <summary>Parses every <c>-o</c> argument given (later values win, as in qemu-img).</summary>
    /// <exception cref="ImageToolException">An unknown key, a missing value, or a bad size.</exception>
    public static ImageOptionString Parse(IEnumerable<string>? arguments)
    {
        var result = new ImageOptionString(null, null, null);
        foreach (var argument in arguments ?? [])
        {
            foreach (var pair in argument.Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new ImageToolException($"Invalid option '{pair}': expected key=value");
                }

                var key = pair[..eq];
                var value = pair[(eq + 1)..];
                result = key switch
                {
                    "cluster_size" => result with { ClusterSize = ParseClusterSize(value) },
                    "backing_file" => result with { BackingFile = value },
                    "backing_fmt" => result with { BackingFormat = value },
                    _ => throw new ImageToolException($"Invalid parameter '{key}' (jobctl accepts cluster_size, backing_file, backing_fmt)"),
                };
            }
        }

        return result;
    }

    private static int ParseClusterSize(string value)
    {
        var size = ImageSize.Parse(value);
        Qcow2CreateValidation.ValidateClusterSize(size);
        return (int)size;
    }
}
