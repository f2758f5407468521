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
            BackingFile = image.FullBackingFilename ?? image.BackingFilename,
            BackingFileDepth = BackingChain.Depth(node),
            Image = image,
        };
    }

    private static long? ActualSizeOf(string filename)
    {
        try
        {
            return HostFileStat.Of(filename).AllocatedBytes;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static ImageInfo DescribeImage(BlockNode node)
    {
        BlockNode? backing = BackingChain.SkipFilters(node).Backing;
        var qcow2 = BackingChain.SkipFilters(node) as Qcow2Node;
        string? filename = BackingChain.TryGetFilename(node);
        return new ImageInfo
        {
            Filename = filename ?? node.NodeName,
            ActualSize = filename is null ? null : ActualSizeOf(filename),
            Format = node.DriverName,
            VirtualSize = node.Size,
            ClusterSize = qcow2?.ClusterSize,
            BackingFilename = qcow2?.BackingFileName,
            FullBackingFilename = backing is null ? null : BackingChain.TryGetFilename(backing),
            BackingFilenameFormat = qcow2?.BackingFormat,
            BackingImage = backing is null ? null : DescribeImage(backing),
        };
    }
}
