using JobCore.Block.Tools;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ChainStatusTests
{
    private const int C = MemoryNode.ClusterSize;

    [TestMethod]
    public async Task Allocated_top_decides_at_depth_zero()
    {
        var baseNode = new MemoryNode("base", 8 * C);
        baseNode.Fill(0, 4 * C, 1);
        var top = new MemoryNode("top", 8 * C, backing: baseNode);
        top.Fill(C, C, 2);

        var e = await ChainStatus.GetAsync(top, C, 7 * C);

        Assert.AreEqual(new ChainExtent(C, C, 0, true, false, true, null, top), e);
    }

    [TestMethod]
    public async Task Unallocated_top_falls_through_to_backing_data()
    {
        var baseNode = new MemoryNode("base", 8 * C);
        baseNode.Fill(0, 4 * C, 1);
        var top = new MemoryNode("top", 8 * C, backing: baseNode);
        top.Fill(C, C, 2);

        var e = await ChainStatus.GetAsync(top, 2 * C, 6 * C);

        Assert.AreEqual(new ChainExtent(2 * C, 2 * C, 1, true, false, true, null, baseNode), e);
    }

    [TestMethod]
    public async Task Unallocated_everywhere_is_zero_and_not_present_at_the_bottom()
    {
        var baseNode = new MemoryNode("base", 8 * C);
        var top = new MemoryNode("top", 8 * C, backing: baseNode);

        var e = await ChainStatus.GetAsync(top, 0, 8 * C);

        Assert.AreEqual(new ChainExtent(0, 8 * C, 1, false, true, false, null, baseNode), e);
    }

    [TestMethod]
    public async Task Past_the_end_of_a_shorter_backing_reads_as_zero_at_the_top()
    {
        var baseNode = new MemoryNode("base", 2 * C);
        baseNode.Fill(0, 2 * C, 1);
        var top = new MemoryNode("top", 8 * C, backing: baseNode);

        var inside = await ChainStatus.GetAsync(top, 0, 8 * C);
        var beyond = await ChainStatus.GetAsync(top, 2 * C, 6 * C);

        Assert.AreEqual(new ChainExtent(0, 2 * C, 1, true, false, true, null, baseNode), inside);
        Assert.AreEqual(new ChainExtent(2 * C, 6 * C, 0, false, true, false, null, top), beyond);
    }

    [TestMethod]
    public async Task Raw_layers_are_always_present_and_report_their_offset()
    {
        var raw = new MemoryNode("raw", 4 * C, driver: "raw");

        var e = await ChainStatus.GetAsync(raw, C, 3 * C);

        Assert.AreEqual(new ChainExtent(C, 3 * C, 0, true, false, false, C, raw), e);
    }

    [TestMethod]
    public async Task Cursor_answers_chunk_by_chunk_like_fresh_queries_with_one_driver_query_per_extent()
    {
        var raw = new MemoryNode("raw", 12 * C, driver: "raw");
        raw.Fill(0, 5 * C, 1);
        raw.Mark(5 * C, 3 * C, MemoryNode.Kind.Zero);
        raw.Fill(8 * C, 4 * C, 2);
        var cursor = new ChainStatusCursor(raw);

        for (long offset = 0; offset < raw.Size; offset += C)
        {
            var expected = await ChainStatus.GetAsync(raw, offset, raw.Size - offset);
            var before = raw.StatusQueries;
            var got = await cursor.GetAsync(offset, raw.Size - offset);
            var queried = raw.StatusQueries - before;

            Assert.AreEqual(expected, got, $"at {offset}");
            Assert.AreEqual(offset is 0 or 5 * C or 8 * C ? 1 : 0, queried, $"driver queries at {offset}");
        }

        var shorter = await cursor.GetAsync(9 * C, C);
        Assert.AreEqual(new ChainExtent(9 * C, C, 0, true, false, true, 9 * C, raw), shorter);
    }
}
