using JobCore.Block.Bitmaps;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Graph;

/// <summary>The graph steps of mirror (sync=none) and active commit completion on qcow2 images made by qemu-img.</summary>
[TestClass]
public sealed class GraphPivotInteropTests
{
    private static Task<BlockNode> OpenAsync(GraphTestFolder dir, string name, string file, string backing) =>
        dir.Graph.AddAsync(BlockdevOptions.Parse(
            """{"driver":"qcow2","node-name":""" + $"\"{name}\"" + ""","file":{"driver":"file","filename":""" +
            GraphTestFolder.Json(dir.File(file)) + "}" + backing + "}")).AsTask();

    [TestMethod]
    public async Task Mirror_sync_none_pivot_leaves_the_guest_on_the_target_backed_by_the_source()
    {
        await using var dir = new GraphTestFolder();
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", dir.File("src.qcow2"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", dir.File("dst.qcow2"), "1M");
        await QemuImg.IoCommandsAsync(dir.File("src.qcow2"), "qcow2", "write -P 0x61 0 128k");
        BlockNode src = await OpenAsync(dir, "src", "src.qcow2", "");
        BlockNode dst = await OpenAsync(dir, "dst", "dst.qcow2", ""","backing":null""");
        BlockBackend guest = dir.Graph.AttachBackend("guest", src);

        DirtyTrackingNode filter = await dir.Graph.InsertFilterAsync(src, (n, c) => new DirtyTrackingNode(n, c), "mirror-top");
        var bitmap = new DirtyBitmap(src.Size, 65536);
        filter.AttachBitmap(bitmap);
        await guest.WriteAsync(65536, new byte[] { 0x62 });
        Assert.AreEqual(65536L, bitmap.Count);
        var copy = new byte[65536];
        await src.ReadAsync(65536, copy);
        await dst.WriteAsync(65536, copy); // the one dirty cluster, copied

        await dir.Graph.ChangeBackingAsync(dst, src, writeHeader: false);
        await dir.Graph.ReplaceNodeAsync(src, dst);
        Assert.AreSame(dst, filter.Child, "the filter now sits on the target");
        Assert.AreSame(src, dst.Backing, "the target's backing edge is kept (it would loop otherwise)");
        await dir.Graph.RemoveFilterAsync(filter);
        Assert.AreSame(dst, guest.Node);
        Assert.IsNull(dir.Graph.Find("mirror-top"));

        var one = new byte[2];
        await guest.ReadAsync(65535, one);
        CollectionAssert.AreEqual(new byte[] { 0x61, 0x62 }, one, "unallocated target clusters read the source");
        Assert.IsFalse(dir.Graph.IsRoot(src));
        Assert.IsTrue(dir.Graph.IsRoot(dst));
    }

    [TestMethod]
    public async Task Active_commit_completion_replaces_the_top_by_the_base()
    {
        await using var dir = new GraphTestFolder();
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", dir.File("base.qcow2"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.File("top.qcow2"));
        BlockNode top = await OpenAsync(dir, "top", "top.qcow2", "");
        BlockNode @base = top.Backing!;
        BlockBackend guest = dir.Graph.AttachBackend("guest", top);
        await using (BlockJobLease lease = dir.Graph.AcquireJobLease("commit", [top], held: [@base]))
        {
            @base = await dir.Graph.ReopenAsync(@base, readOnly: false);
            await dir.Graph.ReplaceNodeAsync(top, @base);
        }

        Assert.AreSame(@base, guest.Node);
        Assert.IsFalse(@base.ReadOnly);
        Assert.IsNotNull(dir.Graph.Find("top"), "the monitor still owns the old top");
        await dir.Graph.RemoveAsync("top");
        Assert.AreSame(@base, dir.Graph.Find(@base.NodeName), "the base stays: the guest uses it");
        await guest.WriteAsync(0, new byte[] { 0x7F });
        await dir.Graph.DetachBackendAsync(guest);
        Assert.AreEqual(0, dir.Graph.Nodes.Count, "the implicit base closes with its last user");
        await QemuImg.ImgOkAsync("check", dir.File("base.qcow2"));
        await QemuImg.IoOkAsync("-f", "qcow2", "-r", "-c", "read -P 0x7f 0 1", dir.File("base.qcow2"));
    }
}
