namespace JobCore.Block.Nodes;

/// <summary>QEMU's <c>detect-zeroes</c> option of a node: what a write of all-zero data becomes.</summary>
public enum DetectZeroes
{
    /// <summary>A plain write (the default).</summary>
    Off,

    /// <summary>A write-zeroes request that keeps the range allocated.</summary>
    On,

    /// <summary>A write-zeroes request that may deallocate the range (needs <c>discard: unmap</c>).</summary>
    Unmap,
}
