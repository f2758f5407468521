using JobCore.Block.Tools;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ImageCompareTests
{
    private const int C = MemoryNode.ClusterSize;

    [TestMethod]
    public async Task Identical_contents_with_different_allocation_are_identical()
    {
        var a = new MemoryNode("a", 16 * C);
        a.Fill(0, 2 * C, 7);
        a.Mark(4 * C, 2 * C, MemoryNode.Kind.Zero);
        var baseNode = new MemoryNode("base", 16 * C);
        baseNode.Fill(C, C, 7);
        var b = new MemoryNode("b", 16 * C, backing: baseNode);
        b.Fill(0, C, 7);

        var result = await ImageCompare.CompareAsync(a, b);

        Assert.AreEqual(new CompareResult(false, null), result);
        Assert.AreEqual("Images are identical.\n", result.Report);
        Assert.AreEqual(0, result.ExitCode);
    }

    [TestMethod]
    public async Task A_difference_is_reported_at_its_512_byte_sector()
    {
        // One byte differs at 3*C + 1000: qemu-img reports the sector start, 3*C + 512.
        var c = new MemoryNode("c", 16 * C);
        c.Fill(0, 4 * C, 1);
        c.Fill(3 * C, C, 1);
        c.Mark(5 * C, C, MemoryNode.Kind.Zero);
        var d = new MemoryNode("d", 16 * C);
        d.Fill(0, 4 * C, 1);
        d.Fill(3 * C + 1000 - (1000 % 512), 512, 1);
        d.Fill(3 * C + 1000, 1, 9);

        var result = await ImageCompare.CompareAsync(c, d);

        Assert.AreEqual(new CompareResult(false, (3 * C) + 512), result);
        Assert.AreEqual($"Content mismatch at offset {(3 * C) + 512}!\n", result.Report);
        Assert.AreEqual(1, result.ExitCode);
    }

    [TestMethod]
    public async Task The_larger_image_must_be_zero_beyond_the_smaller_one()
    {
        var small = new MemoryNode("small", 16 * C);
        var large = new MemoryNode("large", 32 * C);
        large.Mark(16 * C, 4 * C, MemoryNode.Kind.Zero);

        var same = await ImageCompare.CompareAsync(small, large);
        large.Fill(24 * C, C, 1);
        var differ = await ImageCompare.CompareAsync(large, small);

        Assert.AreEqual("Warning: Image size mismatch!\nImages are identical.\n", same.Report);
        Assert.AreEqual(0, same.ExitCode);
        Assert.AreEqual($"Warning: Image size mismatch!\nContent mismatch at offset {24 * C}!\n", differ.Report);
        Assert.AreEqual(1, differ.ExitCode);
    }

    [TestMethod]
    public async Task A_difference_in_the_common_part_wins_over_the_size_warning()
    {
        var small = new MemoryNode("small", 16 * C);
        small.Fill(0, C, 3);
        var large = new MemoryNode("large", 32 * C);

        var result = await ImageCompare.CompareAsync(small, large);

        Assert.AreEqual("Content mismatch at offset 0!\n", result.Report);
    }

    [TestMethod]
    public async Task Extents_zero_in_both_chains_are_not_read()
    {
        var a = new MemoryNode("a", 1024 * C);
        var b = new MemoryNode("b", 1024 * C);
        b.Mark(0, 1024 * C, MemoryNode.Kind.Zero);

        var result = await ImageCompare.CompareAsync(a, b);

        Assert.AreEqual(0, result.ExitCode);
        Assert.AreEqual(0, a.Reads + b.Reads);
    }
}
