using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed class HostWritebackTests
{
    [TestMethod]
    public async Task A_hint_starts_after_each_interval_of_written_bytes_on_the_host_file_under_the_format()
    {
        await using var folder = new GraphTestFolder();
        string path = folder.Raw("disk.raw", 1 << 20);
        BlockNode node = await folder.Graph.AddAsync(System.Text.Json.JsonDocument.Parse(
            $$$"""{"driver": "raw", "node-name": "disk", "file": {"driver": "file", "filename": {{{GraphTestFolder.Json(path)}}}}}""").RootElement);

        using HostWriteback writeback = HostWriteback.For(node) ?? throw new AssertFailedException("no host file found under the raw node");
        await node.WriteAsync(0, new byte[1 << 20]);
        writeback.Written(HostWriteback.Interval - 1);
        await writeback.LastHint.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.AreEqual(0, writeback.HintsDone, "no hint before a whole interval was written");

        writeback.Written(1);
        await writeback.LastHint.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.AreEqual(1, writeback.HintsDone);

        writeback.Written(HostWriteback.Interval);
        await writeback.LastHint.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.AreEqual(2, writeback.HintsDone);
    }

    [TestMethod]
    public async Task No_host_file_means_no_starter_and_a_disposed_one_ignores_writes()
    {
        Assert.IsNull(HostWriteback.For(new MemoryNode("mem", 4096)));

        await using var folder = new GraphTestFolder();
        BlockNode node = await folder.Graph.AddAsync(System.Text.Json.JsonDocument.Parse(
            $$$"""{"driver": "file", "node-name": "f", "filename": {{{GraphTestFolder.Json(folder.Raw("f.raw", 4096))}}}}""").RootElement);
        HostWriteback writeback = HostWriteback.For(node)!;
        writeback.Dispose();
        writeback.Dispose();
        writeback.Written(4 * HostWriteback.Interval);
        await writeback.LastHint.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.AreEqual(0, writeback.HintsDone);
    }
}
