using JobCore.Block.Nodes;
using JobCore.Block.Tools;

namespace JobCore.Block.Graph;

public sealed partial class BlockGraph
{
    /// <summary><c>query-named-block-nodes</c>: every node, newest first.</summary>
    public IReadOnlyList<BlockDeviceInfo> QueryNamedBlockNodes() => [.. Nodes.Select(Describe)];

    /// <summary>The <c>query-named-block-nodes</c> entry of one node.</summary>
    /// <param name="node">A node.</param>
    public static BlockDeviceInfo Describe(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        ImageInfo image = DescribeImage(node);
        return new BlockDeviceInfo
        {
            File = image.Filename,
            NodeName = node.NodeName,
            ReadOnly = node.ReadOnly,
            Driver = node.DriverName,
            DetectZeroes = node.DetectZeroes switch
            {
                DetectZeroes.On => "on",
                DetectZeroes.Unmap => "unmap",
                _ => "off",
            },
            // QEMU 7.2 counts blkdebug's image as a filtered child (depth, backing-image) but names no backing file.
            BackingFile = node is BlkdebugNode ? null : image.BackingImage?.Filename,
            BackingFileDepth = node is BlkdebugNode blkdebug ? 1 + BackingChain.Depth(blkdebug.Child) : BackingChain.Depth(node),
            Image = image,
        };
    }

    // QEMU's bdrv_get_allocated_file_size: a file's allocated bytes, a format's or filter's child's; blkdebug (a protocol
    // driver without the callback) has none, and neither has a format stored through it.
    private static long? ActualSizeOf(BlockNode node)
    {
        switch (node)
        {
            case FileNode file:
                try
                {
                    return HostFileStat.Of(file.Filename).AllocatedBytes;
                }
                catch (IOException)
                {
                    return null;
                }

            case BlkdebugNode:
                return null;
            default:
                return node.File is { } child ? ActualSizeOf(child) : null;
        }
    }

    // QEMU's qcow2_get_specific_info; the feature bits are read from the header on disk (they change only when the
    // image is opened, closed or marked corrupt).
    private static ImageInfoSpecific DescribeQcow2(Qcow2Node image, string? filename)
    {
        if (image.Version < 3)
        {
            return new ImageInfoSpecific { Type = "qcow2", Data = new ImageInfoSpecificQcow2 { Compat = "0.10", RefcountBits = image.RefcountBits } };
        }

        ulong incompatible = 0, compatible = 0;
        byte compression = 0;
        if (filename is not null)
        {
            try
            {
                using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(filename, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                Span<byte> header = stackalloc byte[105];
                if (RandomAccess.Read(handle, header, 0) == header.Length)
                {
                    incompatible = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header[72..]);
                    compatible = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header[80..]);
                    uint headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header[100..]);
                    compression = headerLength > 104 && (incompatible & (1UL << 3)) != 0 ? header[104] : (byte)0;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The header cannot be read again: report the defaults of an image JobCore can open.
            }
        }

        return new ImageInfoSpecific
        {
            Type = "qcow2",
            Data = new ImageInfoSpecificQcow2
            {
                Compat = "1.1",
                CompressionType = compression == 1 ? "zstd" : "zlib",
                LazyRefcounts = (compatible & 1) != 0,
                RefcountBits = image.RefcountBits,
                Corrupt = (incompatible & (1UL << 1)) != 0,
                ExtendedL2 = (incompatible & (1UL << 4)) != 0,
            },
        };
    }

    private static ImageInfo DescribeImage(BlockNode node)
    {
        BlockNode? backing = node is BlkdebugNode blkdebug ? blkdebug.Child : BackingChain.SkipFilters(node).Backing;
        var qcow2 = BackingChain.SkipFilters(node) as Qcow2Node;
        string? filename = BackingChain.TryGetFilename(node);
        return new ImageInfo
        {
            Filename = NodeFilenames.Of(node),
            ActualSize = ActualSizeOf(node),
            Format = node.DriverName,

            // QEMU counts a protocol node's length in whole sectors.
            VirtualSize = BackingChain.SkipFilters(node) is FileNode ? (node.Size + 511) / 512 * 512 : node.Size,
            ClusterSize = qcow2?.ClusterSize,
            FormatSpecific = qcow2 is null ? null : DescribeQcow2(qcow2, filename),
            BackingFilename = qcow2?.BackingFileName,
            // From the header, relative to the image's folder (QEMU's bdrv_get_full_backing_filename), attached or not.
            FullBackingFilename = qcow2?.BackingFileName is not { } header ? null
                : filename is null ? header : BackingChain.ResolveRelativeTo(filename, header),
            BackingFilenameFormat = qcow2?.BackingFormat,
            BackingImage = backing is null ? null : DescribeImage(backing),
        };
    }
}
