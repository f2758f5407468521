using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary><c>qemu-img check</c>: runs <see cref="Qcow2Check"/> on a qcow2 image and summarises it as qemu-img does.</summary>
internal static class ImageCheck
{
    /// <summary>qemu-img's exit code for a format without a checker.</summary>
    internal const int NotSupportedExitCode = 63;

    /// <summary>Checks <paramref name="filename"/> (only read, never repaired).</summary>
    /// <exception cref="ImageToolException">The image is not qcow2 (exit code 63, like qemu-img).</exception>
    public static async Task<CheckSummary> CheckFileAsync(string filename, string? format, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        await using var file = await FileNode.OpenAsync("image-file", filename, readOnly: true, cancellationToken).ConfigureAwait(false);
        format ??= await ImageChain.ProbeFormatAsync(file, cancellationToken).ConfigureAwait(false);
        if (format == "raw")
        {
            throw new ImageToolException("This image format does not support checks", NotSupportedExitCode);
        }

        if (format != "qcow2")
        {
            throw new ImageToolException($"Unknown file format '{format}' (jobctl opens raw and qcow2 images)");
        }

        var result = await Qcow2Check.CheckAsync(file, cancellationToken).ConfigureAwait(false);
        return new CheckSummary(result.Corruptions, result.Leaks, 0, result.TotalClusters, result.AllocatedClusters,
            result.FragmentedClusters, result.CompressedClusters, result.ImageEndOffset, result.Messages);
    }
}
