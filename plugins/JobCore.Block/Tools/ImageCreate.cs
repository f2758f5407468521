using System.Globalization;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>What <c>qemu-img create</c> is asked to make.</summary>
/// <param name="Filename">The new image.</param>
/// <param name="Format"><c>qcow2</c> or <c>raw</c>.</param>
/// <param name="Size">The virtual size; null takes the backing image's size.</param>
/// <param name="BackingFile">The backing file name to record (relative to the new image's folder).</param>
/// <param name="BackingFormat">The backing file's format (required with a backing file, as in qemu-img 7.2).</param>
/// <param name="ClusterSize">The qcow2 cluster size; null for 64 KiB.</param>
internal sealed record ImageCreateRequest(
    string Filename, string Format, long? Size, string? BackingFile, string? BackingFormat, int? ClusterSize);

/// <summary><c>qemu-img create</c> for raw and qcow2, with qemu-img's checks and its "Formatting ..." line.</summary>
internal static class ImageCreate
{
    private const int DefaultClusterSize = 65536;

    /// <summary>Validates <paramref name="request"/>, creates the image and returns qemu-img's "Formatting" line.</summary>
    /// <exception cref="ImageToolException">An option is invalid or the backing image cannot be used.</exception>
    public static async Task<string> CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var file = request.Filename;
        if (request.Format is not ("qcow2" or "raw"))
        {
            throw new ImageToolException($"Unknown file format '{request.Format}' (jobctl creates raw and qcow2 images)");
        }

        if (request.Format == "raw" && request.BackingFile is not null)
        {
            throw new ImageToolException($"{file}: Backing file not supported for file format 'raw'");
        }

        if (request.Format == "raw" && request.ClusterSize is not null)
        {
            throw new ImageToolException($"{file}: Invalid parameter 'cluster_size' for file format 'raw'");
        }

        if (request.BackingFormat is not null && request.BackingFile is null)
        {
            throw new ImageToolException($"{file}: Backing format given without a backing file");
        }

        var clusterSize = request.ClusterSize ?? DefaultClusterSize;
        Qcow2CreateValidation.ValidateClusterSize(clusterSize);
        var size = request.Size;
        if (request.BackingFile is { } backing)
        {
            if (request.BackingFormat is null)
            {
                throw new ImageToolException($"{file}: Backing file specified without backing format");
            }

            // Like qemu-img: the backing image must open (relative to the new image's folder), and it gives the default size.
            try
            {
                await using var chain = await ImageChain.OpenAsync(BackingChain.ResolveRelativeTo(file, backing), request.BackingFormat,
                    readOnly: true, withBacking: false, cancellationToken).ConfigureAwait(false);
                size ??= chain.Top.Size;
            }
            catch (Exception e) when (e is BlockIOException or BlockFormatException or BlockGraphException or ImageToolException)
            {
                throw new ImageToolException($"{file}: {e.Message}. Could not open backing image.", e);
            }
        }

        if (size is not { } bytes)
        {
            throw new ImageToolException($"{file}: Image creation needs a size parameter");
        }

        if (request.Format == "raw")
        {
            using var handle = File.OpenHandle(file, FileMode.Create, FileAccess.Write, FileShare.Read);
            RandomAccess.SetLength(handle, bytes);
            return string.Create(CultureInfo.InvariantCulture, $"Formatting '{file}', fmt=raw size={bytes}");
        }

        var existed = File.Exists(file);
        try
        {
            await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions
            {
                Size = bytes,
                ClusterSize = clusterSize,
                BackingFile = request.BackingFile,
                BackingFormat = request.BackingFormat,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch when (!existed)
        {
            // Do not leave a half-made image behind under a name the user will take for the result.
            File.Delete(file);
            throw;
        }
        var backingPart = request.BackingFile is null ? "" : $" backing_file={request.BackingFile} backing_fmt={request.BackingFormat}";
        return string.Create(CultureInfo.InvariantCulture,
            $"Formatting '{file}', fmt=qcow2 cluster_size={clusterSize} extended_l2=off compression_type=zlib size={bytes}{backingPart} lazy_refcounts=off refcount_bits=16");
    }
}
