using System.Numerics;

namespace JobCore.Block.Tools;

/// <summary>The qcow2 creation limits qemu-img enforces, with its messages.</summary>
internal static class Qcow2CreateValidation
{
    /// <summary>Checks that <paramref name="clusterSize"/> is a power of two between 512 and 2 MiB.</summary>
    /// <exception cref="ImageToolException">It is not.</exception>
    public static void ValidateClusterSize(long clusterSize)
    {
        if (clusterSize is < 512 or > 2 << 20 || !BitOperations.IsPow2(clusterSize))
        {
            throw new ImageToolException("Cluster size must be a power of two between 512 and 2048k");
        }
    }
}
