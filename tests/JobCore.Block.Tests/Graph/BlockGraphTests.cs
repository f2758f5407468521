using System.Text.RegularExpressions;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed partial class BlockGraphTests
{
    [GeneratedRegex(@"^#block\d+\d\d$")]
    private static partial Regex AutoName();

    private static async Task<BlockGraphException> RefusedAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (BlockGraphException e)
        {
            return e;
        }

        Assert.Fail("the request was not refused");
        return null!;
    }

    private static Task<BlockNode> AddAsync(BlockGraph graph, string json) => graph.AddAsync(BlockdevOptions.Parse(json)).AsTask();

    [TestMethod]
    public async Task Adds_a_raw_node_over_an_inline_file_with_an_implicit_name()
    {
        await using var dir = new GraphTestFolder();
        string path = dir.Raw("a.raw", 65536, 0x42);
        BlockNode raw = await AddAsync(dir.Graph, $$$"""{"driver":"raw","node-name":"r","file":{"driver":"file","filename":{{{GraphTestFolder.Json(path)}}}}}""");

        Assert.AreSame(raw, dir.Graph.Find("r"));
        Assert.AreEqual("raw", raw.DriverName);
        BlockNode file = raw.File!;
        Assert.IsInstanceOfType<FileNode>(file);
        Assert.IsTrue(AutoName().IsMatch(file.NodeName), file.NodeName);
        Assert.AreSame(file, dir.Graph.Find(file.NodeName));
        CollectionAssert.AreEqual(new[] { raw, file }, dir.Graph.Nodes.ToArray(), "newest first");
        Assert.IsTrue(dir.Graph.IsMonitorOwned(raw));
        Assert.IsFalse(dir.Graph.IsMonitorOwned(file));
        CollectionAssert.AreEqual(new[] { raw }, dir.Graph.GetParents(file).ToArray());

        var buffer = new byte[4];
        await raw.ReadAsync(100, buffer);
        CollectionAssert.AreEqual(new byte[] { 0x42, 0x42, 0x42, 0x42 }, buffer);
        await raw.WriteAsync(100, new byte[] { 1, 2, 3, 4 });
        await raw.FlushAsync();
        await dir.Graph.RemoveAsync("r");
        Assert.AreEqual(0, dir.Graph.Nodes.Count, "the implicit file node closes with its parent");
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3, 4 }, File.ReadAllBytes(path)[100..104]);
    }

    [TestMethod]
    public async Task Adds_by_reference_and_refuses_unknown_references()
    {
        await using var dir = new GraphTestFolder();
        string path = dir.Raw("a.raw", 4096);
        BlockNode file = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"f","filename":{{{GraphTestFolder.Json(path)}}}}""");
        BlockNode raw = await AddAsync(dir.Graph, """{"driver":"raw","node-name":"r","file":"f"}""");
        Assert.AreSame(file, raw.File);
        Assert.AreSame(file, dir.Graph.Lookup(null, "f"));

        var error = await RefusedAsync(() => AddAsync(dir.Graph, """{"driver":"raw","node-name":"r2","file":"nonode"}"""));
        Assert.AreEqual("Cannot find device='nonode' nor node-name='nonode'", error.Message);
        Assert.IsNull(dir.Graph.Find("r2"));
        Assert.AreEqual("Node 'zz' not found", Assert.ThrowsExactly<BlockGraphException>(() => dir.Graph.GetNode("zz")).Message);
        Assert.AreEqual("Cannot find device='' nor node-name='zz'", Assert.ThrowsExactly<BlockGraphException>(() => dir.Graph.Lookup(null, "zz")).Message);
    }

    [TestMethod]
    public async Task Refuses_bad_and_duplicate_node_names_with_qemu_texts()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 4096));
        await AddAsync(dir.Graph, $$$"""{"driver":"raw","node-name":"r1","file":{"driver":"file","filename":{{{path}}}}}""");
        int before = dir.Graph.Nodes.Count;

        (string Json, string Text)[] cases =
        [
            ($$$"""{"driver":"raw","file":{"driver":"file","filename":{{{path}}}}}""", "'node-name' must be specified for the root node"),
            ($$$"""{"driver":"raw","node-name":"r1","file":{"driver":"file","filename":{{{path}}}}}""", "Duplicate nodes with node-name='r1'"),
            ($$$"""{"driver":"raw","node-name":"r3","file":{"driver":"file","node-name":"r3","filename":{{{path}}}}}""", "Duplicate nodes with node-name='r3'"),
            ($$$"""{"driver":"raw","node-name":"1bad","file":{"driver":"file","filename":{{{path}}}}}""", "Invalid node-name: '1bad'"),
            ($$$"""{"driver":"raw","node-name":"a#b","file":{"driver":"file","filename":{{{path}}}}}""", "Invalid node-name: 'a#b'"),
            ($$$"""{"driver":"raw","node-name":"","file":{"driver":"file","filename":{{{path}}}}}""", "Invalid node-name: ''"),
            ($$$"""{"driver":"raw","node-name":"{{{new string('a', 40)}}}","file":{"driver":"file","filename":{{{path}}}}}""", "Node name too long"),
            ($$$"""{"driver":"file","node-name":"f","filename":{{{GraphTestFolder.Json(dir.File("nope"))}}}}""", $"Could not open '{dir.File("nope")}': No such file or directory"),
            ($$$"""{"driver":"raw","node-name":"r4","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.File("nope"))}}}}}""", $"Could not open '{dir.File("nope")}': No such file or directory"),
        ];
        foreach ((string json, string text) in cases)
        {
            var error = await RefusedAsync(() => AddAsync(dir.Graph, json));
            Assert.AreEqual(text, error.Message, json);
        }

        Assert.AreEqual(before, dir.Graph.Nodes.Count, "a refused add leaves nothing open");
        dir.Graph.AttachBackend("dev0", dir.Graph.GetNode("r1"));
        var conflict = await RefusedAsync(() => AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"dev0","filename":{{{path}}}}"""));
        Assert.AreEqual("node-name=dev0 is conflicting with a device id", conflict.Message);
    }

    [TestMethod]
    public async Task A_failed_format_open_closes_the_inline_children()
    {
        await using var dir = new GraphTestFolder();
        string path = dir.Raw("not-qcow2", 4096, 0x11);
        var error = await RefusedAsync(() => AddAsync(dir.Graph, $$$"""{"driver":"qcow2","node-name":"q","file":{"driver":"file","filename":{{{GraphTestFolder.Json(path)}}}}}"""));
        StringAssert.Contains(error.Message, "qcow2");
        Assert.AreEqual(0, dir.Graph.Nodes.Count);
        CollectionAssert.AreEqual(Enumerable.Repeat((byte)0x11, 4096).ToArray(), File.ReadAllBytes(path), "a refused image is never written");
    }

    [TestMethod]
    public async Task Blockdev_del_refusals_follow_qemus_order_and_texts()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 4096));
        BlockNode file = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"f","filename":{{{path}}}}""");
        BlockNode raw = await AddAsync(dir.Graph, """{"driver":"raw","node-name":"r","file":"f"}""");
        BlockNode other = await AddAsync(dir.Graph, $$$"""{"driver":"raw","node-name":"o","file":{"driver":"file","filename":{{{path}}}}}""");

        Assert.AreEqual("Failed to find node with node-name='zz'", (await RefusedAsync(() => dir.Graph.RemoveAsync("zz").AsTask())).Message);
        Assert.AreEqual("Block device f is in use", (await RefusedAsync(() => dir.Graph.RemoveAsync("f").AsTask())).Message);
        string implicitName = other.File!.NodeName;
        Assert.AreEqual($"Node {implicitName} is not owned by the monitor", (await RefusedAsync(() => dir.Graph.RemoveAsync(implicitName).AsTask())).Message);

        BlockBackend backend = dir.Graph.AttachBackend("dev", raw);
        Assert.AreEqual("Node r is in use", (await RefusedAsync(() => dir.Graph.RemoveAsync("r").AsTask())).Message);
        await dir.Graph.DetachBackendAsync(backend);

        await using (BlockJobLease lease = dir.Graph.AcquireJobLease("stream", [raw]))
        {
            Assert.AreEqual("Node 'r' is busy: block device is in use by block job: stream",
                (await RefusedAsync(() => dir.Graph.RemoveAsync("r").AsTask())).Message);
        }

        await using (BlockJobLease lease = dir.Graph.AcquireJobLease("mirror", [other], held: [raw]))
        {
            Assert.AreEqual("Node r is in use", (await RefusedAsync(() => dir.Graph.RemoveAsync("r").AsTask())).Message);
        }

        await dir.Graph.RemoveAsync("r");
        await dir.Graph.RemoveAsync("f");
        Assert.IsNull(dir.Graph.Find("r"));
        Assert.IsNull(dir.Graph.Find("f"));
        Assert.IsNotNull(dir.Graph.Find("o"));
        _ = file;
    }

    [TestMethod]
    public async Task Blockdev_del_of_a_backing_node_names_the_overlay_as_qemu_does()
    {
        await using var dir = new GraphTestFolder();
        foreach ((string name, string? backing) in new[] { ("base", (string?)null), ("mid", "base"), ("top", "mid") })
        {
            await Interop.QemuImg.ImgOkAsync(backing is null
                ? ["create", "-q", "-f", "qcow2", dir.File(name + ".qcow2"), "1M"]
                : ["create", "-q", "-f", "qcow2", "-b", backing + ".qcow2", "-F", "qcow2", dir.File(name + ".qcow2")]);
            string below = backing is null ? "null" : $"\"{backing}\"";
            await AddAsync(dir.Graph, $$$"""{"driver":"qcow2","node-name":"{{{name}}}","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.File(name + ".qcow2"))}}}},"backing":{{{below}}}}""");
        }

        // QEMU 7.2's backing op blocker: the overlay's node name when the edge was made without a backend on it ...
        Assert.AreEqual("Node 'base' is busy: node is used as backing hd of 'mid'", (await RefusedAsync(() => dir.Graph.RemoveAsync("base").AsTask())).Message);
        Assert.AreEqual("Node 'mid' is busy: node is used as backing hd of 'top'", (await RefusedAsync(() => dir.Graph.RemoveAsync("mid").AsTask())).Message);

        // ... and its device name when a backend was attached to it then (a stream or commit into a drive).
        dir.Graph.AttachBackend("drive0", dir.Graph.GetNode("top"));
        Assert.AreEqual("Node 'mid' is busy: node is used as backing hd of 'top'", (await RefusedAsync(() => dir.Graph.RemoveAsync("mid").AsTask())).Message);
        await dir.Graph.ChangeBackingAsync(dir.Graph.GetNode("top"), dir.Graph.GetNode("base"), writeHeader: false);
        Assert.AreEqual("Node 'base' is busy: node is used as backing hd of 'drive0'", (await RefusedAsync(() => dir.Graph.RemoveAsync("base").AsTask())).Message);
        await dir.Graph.RemoveAsync("mid");
        Assert.IsNull(dir.Graph.Find("mid"));
    }

    [TestMethod]
    public async Task Job_leases_conflict_on_shared_nodes_only()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 4096));
        BlockNode a = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"a","filename":{{{path}}}}""");
        BlockNode b = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"b","filename":{{{path}}}}""");
        BlockNode c = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"c","filename":{{{path}}}}""");

        BlockJobLease first = dir.Graph.AcquireJobLease("stream", [a, b]);
        await using BlockJobLease disjoint = dir.Graph.AcquireJobLease("stream", [c]);
        var error = Assert.ThrowsExactly<BlockGraphException>(() => dir.Graph.AcquireJobLease("commit", [c]));
        Assert.AreEqual("Node 'c' is busy: block device is in use by block job: stream", error.Message);
        error = Assert.ThrowsExactly<BlockGraphException>(() => dir.Graph.AcquireJobLease("mirror", [b]));
        Assert.AreEqual("Node 'b' is busy: block device is in use by block job: stream", error.Message);
        Assert.AreEqual("stream", dir.Graph.GetBlockingJobType(a));
        Assert.ThrowsExactly<BlockGraphException>(() => dir.Graph.ThrowIfBusy(a));

        await first.DisposeAsync();
        Assert.IsTrue(first.IsReleased);
        Assert.IsNull(dir.Graph.GetBlockingJobType(a));
        await using BlockJobLease again = dir.Graph.AcquireJobLease("mirror", [b], held: [a]);
        Assert.AreEqual("mirror", dir.Graph.GetBlockingJobType(a));
    }

    [TestMethod]
    public async Task Insert_and_remove_a_filter_and_replace_a_node_for_every_parent()
    {
        await using var dir = new GraphTestFolder();
        BlockNode src = await AddAsync(dir.Graph, $$$"""{"driver":"raw","node-name":"src","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("src.raw", 65536))}}}}}""");
        BlockNode dst = await AddAsync(dir.Graph, $$$"""{"driver":"raw","node-name":"dst","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("dst.raw", 65536))}}}}}""");
        BlockBackend guest = dir.Graph.AttachBackend("guest", src);

        var bitmap = new JobCore.Block.Bitmaps.DirtyBitmap(src.Size, 4096);
        var filter = await dir.Graph.InsertFilterAsync(src, (name, child) => new JobCore.Block.Bitmaps.DirtyTrackingNode(name, child));
        filter.AttachBitmap(bitmap);
        Assert.AreSame(filter, guest.Node);
        Assert.IsTrue(AutoName().IsMatch(filter.NodeName));
        Assert.IsFalse(dir.Graph.IsRoot(src), "a filtered node is no root");
        Assert.IsTrue(dir.Graph.IsRoot(filter));
        await guest.WriteAsync(8192, new byte[] { 9 });
        Assert.IsTrue(bitmap.IsDirty(8192));

        // Pivot: the source is replaced by the target for every parent, then the filter goes.
        await dir.Graph.ReplaceNodeAsync(src, dst);
        Assert.AreSame(dst, filter.Child);
        await dir.Graph.RemoveFilterAsync(filter);
        Assert.AreSame(dst, guest.Node);
        Assert.IsNull(dir.Graph.Find(filter.NodeName));
        await guest.WriteAsync(0, new byte[] { 7 });
        var one = new byte[1];
        await dst.ReadAsync(0, one);
        Assert.AreEqual(7, one[0]);
        await src.ReadAsync(0, one);
        Assert.AreEqual(0, one[0]);
        Assert.IsNotNull(dir.Graph.Find("src"), "the monitor still owns the old source");
    }

    [TestMethod]
    public async Task Replacing_a_file_child_is_refused_and_changes_nothing()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 4096));
        BlockNode f = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"f","filename":{{{path}}}}""");
        BlockNode g = await AddAsync(dir.Graph, $$$"""{"driver":"file","node-name":"g","filename":{{{path}}}}""");
        BlockNode raw = await AddAsync(dir.Graph, """{"driver":"raw","node-name":"r","file":"f"}""");
        BlockBackend guest = dir.Graph.AttachBackend("guest", f);
        var error = await RefusedAsync(() => dir.Graph.ReplaceNodeAsync(f, g).AsTask());
        Assert.AreEqual("Cannot replace node 'f': 'r' uses it as its file child", error.Message);
        Assert.AreSame(f, guest.Node);
        Assert.AreSame(f, raw.File);
    }

    [TestMethod]
    public async Task Blkdebug_over_a_file_injects_errors_through_the_graph()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 65536));
        BlockNode raw = await AddAsync(dir.Graph, $$$"""
            {"driver":"raw","node-name":"r","file":{"driver":"blkdebug","image":{"driver":"file","filename":{{{path}}}},
             "inject-error":[{"event":"write_aio","errno":28,"sector":16,"once":true}]}}
            """);
        Assert.IsInstanceOfType<BlkdebugNode>(raw.File);
        await raw.WriteAsync(0, new byte[4096]);
        var error = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await raw.WriteAsync(8192, new byte[512]));
        Assert.IsTrue(error.IsNoSpace);
        await raw.WriteAsync(8192, new byte[512]);
    }
}
