using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Graph;

/// <summary>Backing chains made by qemu-img/qemu-io, opened and changed through the graph, checked by qemu-img.</summary>
[TestClass]
public sealed class BackingChainInteropTests
{
    private const int K = 1024;
    private const long Size = 1024 * K;

    /// <summary>
    /// base.qcow2 ← mid.qcow2 ← top.qcow2 (relative backing names, 4 KiB clusters):
    /// base has 0x11 in [0, 256K); mid has 0x22 in [0, 16K) and [64K, 128K); top has 0x33 in [128K, 192K) and a zero
    /// write at [512K, 516K).
    /// </summary>
    private static async Task<string> MakeChainAsync(GraphTestFolder dir)
    {
        string Opt(string name) => dir.File(name);
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", Opt("base.qcow2"), $"{Size}");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.qcow2", "-F", "qcow2", Opt("mid.qcow2"));
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "mid.qcow2", "-F", "qcow2", Opt("top.qcow2"));
        await QemuImg.IoCommandsAsync(Opt("base.qcow2"), "qcow2", "write -P 0x11 0 256k");
        await QemuImg.IoCommandsAsync(Opt("mid.qcow2"), "qcow2", "write -P 0x22 0 16k", "write -P 0x22 64k 64k");
        await QemuImg.IoCommandsAsync(Opt("top.qcow2"), "qcow2", "write -P 0x33 128k 64k", "write -z 512k 4k");
        return Opt("top.qcow2");
    }

    private static Task<BlockNode> OpenAsync(GraphTestFolder dir, string name, string path, string? extra = null) =>
        dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"qcow2","node-name":"{{{name}}}","file":{"driver":"file","filename":{{{GraphTestFolder.Json(path)}}}}{{{extra}}}}""")).AsTask();

    [TestMethod]
    public async Task Opens_the_chain_from_headers_with_relative_names_read_only()
    {
        await using var dir = new GraphTestFolder();
        string top = await MakeChainAsync(dir);
        BlockNode node = await OpenAsync(dir, "top", top);

        BlockNode[] layers = [.. BackingChain.Layers(node)];
        Assert.AreEqual(3, layers.Length);
        Assert.AreEqual(2, BackingChain.Depth(node));
        Assert.AreEqual(dir.File("mid.qcow2"), BackingChain.TryGetFilename(layers[1]));
        Assert.AreEqual(dir.File("base.qcow2"), BackingChain.TryGetFilename(layers[2]));
        Assert.IsFalse(layers[0].ReadOnly);
        Assert.IsTrue(layers[1].ReadOnly && layers[2].ReadOnly, "backing files open read-only");
        Assert.AreEqual(6, dir.Graph.Nodes.Count, "three formats over three files");
        Assert.IsFalse(dir.Graph.IsMonitorOwned(layers[1]));

        // The guest view reads through the chain.
        var buffer = new byte[4];
        await node.ReadAsync(0, buffer);
        Assert.AreEqual(0x22, buffer[0]);
        await node.ReadAsync(32 * K, buffer);
        Assert.AreEqual(0x11, buffer[0]);
        await node.ReadAsync(130 * K, buffer);
        Assert.AreEqual(0x33, buffer[0]);

        Assert.AreSame(layers[1], BackingChain.FindByFilename(node, "mid.qcow2"));
        Assert.AreSame(layers[2], BackingChain.FindByFilename(node, dir.File("base.qcow2")));
        Assert.IsNull(BackingChain.FindByFilename(node, "top.qcow2"), "the top itself is not below the top");
        Assert.AreSame(layers[2], BackingChain.FindByNodeName(node, layers[2].NodeName));
        Assert.IsTrue(BackingChain.IsBelow(node, layers[2]));

        BlockDeviceInfo info = dir.Graph.QueryNamedBlockNodes().Single(i => i.NodeName == "top");
        Assert.AreEqual(top, info.File);
        Assert.AreEqual("qcow2", info.Driver);
        Assert.AreEqual(2, info.BackingFileDepth);
        Assert.AreEqual(dir.File("mid.qcow2"), info.BackingFile);
        Assert.AreEqual("mid.qcow2", info.Image.BackingFilename);
        Assert.AreEqual(dir.File("base.qcow2"), info.Image.BackingImage!.FullBackingFilename);
        Assert.AreEqual(4096, info.Image.ClusterSize);
        string json = JsonSerializer.Serialize(info);
        StringAssert.Contains(json, "\"backing_file_depth\":2");
        StringAssert.Contains(json, "\"virtual-size\":1048576");

        await dir.Graph.RemoveAsync("top");
        Assert.AreEqual(0, dir.Graph.Nodes.Count, "the implicit chain closes with the top");
    }

    [TestMethod]
    public async Task A_relative_image_name_gives_relative_backing_names_like_qemu()
    {
        await using var dir = new GraphTestFolder();
        string top = await MakeChainAsync(dir);
        string relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), top);
        Assert.IsFalse(Path.IsPathRooted(relative));
        BlockNode node = await OpenAsync(dir, "top", relative);
        string relativeFolder = relative[..(relative.LastIndexOf('/') + 1)];
        Assert.AreEqual(relativeFolder + "mid.qcow2", BackingChain.TryGetFilename(node.Backing!));
        Assert.AreEqual(relativeFolder + "base.qcow2", BackingChain.TryGetFilename(node.Backing!.Backing!));
        Assert.AreEqual(relativeFolder + "mid.qcow2", BlockGraph.Describe(node).BackingFile);

        // A custom backing string and format go to the header as given.
        await dir.Graph.ChangeBackingAsync(node, node.Backing!, backingFile: "mid.qcow2", backingFormat: "qcow2");
        Assert.AreEqual("mid.qcow2", ((Qcow2Node)node).BackingFileName);
    }

    [TestMethod]
    public async Task Backing_null_and_backing_by_node_name()
    {
        await using var dir = new GraphTestFolder();
        string top = await MakeChainAsync(dir);
        BlockNode alone = await OpenAsync(dir, "alone", top, ""","backing":null""");
        Assert.IsNull(alone.Backing);
        var buffer = new byte[1];
        await alone.ReadAsync(0, buffer);
        Assert.AreEqual(0, buffer[0], "no backing: unallocated clusters read as zeroes");

        BlockNode @base = await OpenAsync(dir, "base", dir.File("base.qcow2"), ""","read-only":true""");
        BlockNode mid = await OpenAsync(dir, "mid", dir.File("mid.qcow2"), ""","read-only":true,"backing":"base" """);
        Assert.AreSame(@base, mid.Backing);
        await mid.ReadAsync(32 * K, buffer);
        Assert.AreEqual(0x11, buffer[0]);
        Assert.AreEqual("Node 'base' is busy: node is used as backing hd of 'mid'", (await Assert.ThrowsExactlyAsync<BlockGraphException>(
            async () => await dir.Graph.RemoveAsync("base"))).Message);

        var error = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => OpenAsync(dir, "x", top, ""","backing":"nonode" """));
        Assert.AreEqual("Could not open backing file: Cannot find device='nonode' nor node-name='nonode'", error.Message);
    }

    [TestMethod]
    public async Task Missing_backing_files_give_qemus_nested_texts_and_leave_nothing_open()
    {
        await using var dir = new GraphTestFolder();
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-u", "-b", "nope.qcow2", "-F", "qcow2", dir.File("dangling.qcow2"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-u", "-b", "dangling.qcow2", "-F", "qcow2", dir.File("d2.qcow2"), "1M");

        var one = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => OpenAsync(dir, "q", dir.File("dangling.qcow2")));
        Assert.AreEqual($"Could not open backing file: Could not open '{dir.File("nope.qcow2")}': No such file or directory", one.Message);
        var two = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => OpenAsync(dir, "q", dir.File("d2.qcow2")));
        Assert.AreEqual($"Could not open backing file: Could not open backing file: Could not open '{dir.File("nope.qcow2")}': No such file or directory", two.Message);
        Assert.AreEqual(0, dir.Graph.Nodes.Count);
    }

    [TestMethod]
    public async Task A_backing_file_without_format_is_probed()
    {
        await using var dir = new GraphTestFolder();
        string raw = dir.Raw("base.raw", 64 * K, 0x5A);
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", dir.File("top.qcow2"));
        await using (FileNode file = await FileNode.OpenAsync("f", dir.File("top.qcow2"), readOnly: false))
        await using (Qcow2Node image = await Qcow2Node.OpenAsync("q", file, readOnly: false))
        {
            await image.ChangeBackingFileAsync("base.raw", null); // no format: readers must probe
        }

        StringAssert.DoesNotMatch((await QemuImg.ImgOkAsync("info", dir.File("top.qcow2"))).Output, new System.Text.RegularExpressions.Regex("backing file format"));

        BlockNode top = await OpenAsync(dir, "top", dir.File("top.qcow2"));
        Assert.AreEqual("raw", top.Backing!.DriverName);
        var buffer = new byte[1];
        await top.ReadAsync(100, buffer);
        Assert.AreEqual(0x5A, buffer[0]);
        _ = raw;
    }

    [TestMethod]
    public async Task Allocation_above_base_on_a_three_layer_chain()
    {
        await using var dir = new GraphTestFolder();
        BlockNode top = await OpenAsync(dir, "top", await MakeChainAsync(dir));
        BlockNode mid = top.Backing!;
        BlockNode @base = mid.Backing!;

        (long Offset, long Length, bool Allocated)[] expected =
        [
            (0, 16 * K, true),            // mid
            (16 * K, 48 * K, false),      // only in base
            (64 * K, 64 * K, true),       // mid
            (128 * K, 64 * K, true),      // top
            (192 * K, 320 * K, false),    // base (up to 256K) and nothing
            (512 * K, 4 * K, true),       // top's zero write
            (516 * K, Size - (516 * K), false),
        ];
        long at = 0;
        foreach (var e in expected)
        {
            AllocationExtent extent = await BackingChain.IsAllocatedAboveAsync(top, @base, at, Size - at);
            Assert.AreEqual(new AllocationExtent(e.Offset, e.Length, e.Allocated), extent, $"at {at}");
            at = extent.Offset + extent.Length;
        }

        Assert.AreEqual(Size, at);
        Assert.AreEqual(new AllocationExtent(16 * K, 48 * K, true), await BackingChain.IsAllocatedAboveAsync(top, null, 16 * K, 240 * K), "mid shortened the extent before base answered");
        Assert.AreEqual(new AllocationExtent(Size, 0, false), await BackingChain.IsAllocatedAboveAsync(top, @base, Size, 4096));
        Assert.AreEqual(new AllocationExtent(0, 128 * K, false), await BackingChain.IsAllocatedAboveAsync(top, mid, 0, Size));
        Assert.AreEqual(new AllocationExtent(0, 8 * K, true), await BackingChain.IsAllocatedAboveAsync(top, @base, 0, 8 * K));
    }

    [TestMethod]
    public async Task Copy_on_read_then_change_backing_is_what_qemu_img_sees()
    {
        await using var dir = new GraphTestFolder();
        string topPath = await MakeChainAsync(dir);
        await QemuImg.ImgOkAsync("convert", "-f", "qcow2", "-O", "raw", topPath, dir.File("expected.raw"));
        BlockNode top = await OpenAsync(dir, "top", topPath);
        BlockNode mid = top.Backing!;
        BlockNode @base = mid.Backing!;

        // Stream mid into top, keeping base: copies only what mid has (16K + 64K).
        long copied = 0;
        for (long at = 0; at < Size; at += 512 * K)
        {
            copied += await BackingChain.CopyOnReadAsync(top, @base, at, 512 * K);
        }

        Assert.AreEqual(80L * K, copied);
        Assert.IsTrue(mid.ReadOnly);
        await dir.Graph.ChangeBackingAsync(top, @base);
        Assert.AreSame(@base, top.Backing);
        Assert.IsNull(dir.Graph.Find(mid.NodeName), "the implicit mid node dropped out of the chain is closed");
        await dir.Graph.RemoveAsync("top");

        string info = (await QemuImg.ImgOkAsync("info", "--output", "json", topPath)).Output;
        using (JsonDocument doc = JsonDocument.Parse(info))
        {
            Assert.AreEqual(dir.File("base.qcow2"), doc.RootElement.GetProperty("backing-filename").GetString());
            Assert.AreEqual("qcow2", doc.RootElement.GetProperty("backing-filename-format").GetString());
        }

        await QemuImg.ImgOkAsync("check", topPath);
        ToolResult compare = await QemuImg.ImgAsync("compare", "-f", "raw", "-F", "qcow2", dir.File("expected.raw"), topPath);
        Assert.AreEqual(0, compare.ExitCode, compare.All);

        // Then stream everything (no base) and make top standalone.
        top = await OpenAsync(dir, "top", topPath);
        for (long at = 0; at < Size; at += 512 * K)
        {
            await BackingChain.CopyOnReadAsync(top, null, at, 512 * K);
        }

        await dir.Graph.ChangeBackingAsync(top, null);
        await dir.Graph.RemoveAsync("top");
        info = (await QemuImg.ImgOkAsync("info", "--output", "json", topPath)).Output;
        using (JsonDocument doc = JsonDocument.Parse(info))
        {
            Assert.IsFalse(doc.RootElement.TryGetProperty("backing-filename", out _), info);
        }

        await QemuImg.ImgOkAsync("check", topPath);
        compare = await QemuImg.ImgAsync("compare", "-f", "raw", "-F", "qcow2", dir.File("expected.raw"), topPath);
        Assert.AreEqual(0, compare.ExitCode, compare.All);
    }

    [TestMethod]
    public async Task Blkdebug_under_qcow2_fails_the_guest_read_of_the_armed_sector_once()
    {
        await using var dir = new GraphTestFolder();
        string path = dir.File("img.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", path, "1M");
        await QemuImg.IoCommandsAsync(path, "qcow2", "write -P 0x44 64k 64k");
        string map = (await QemuImg.ImgOkAsync("map", "--output", "json", path)).Output;
        long hostOffset;
        using (JsonDocument doc = JsonDocument.Parse(map))
        {
            hostOffset = doc.RootElement.EnumerateArray().First(e => e.GetProperty("data").GetBoolean()).GetProperty("offset").GetInt64();
        }

        BlockNode node = await dir.Graph.AddAsync(BlockdevOptions.Parse($$$"""
            {"driver":"qcow2","node-name":"q","file":{"driver":"blkdebug","node-name":"dbg",
              "image":{"driver":"file","filename":{{{GraphTestFolder.Json(path)}}}},
              "inject-error":[{"event":"read_aio","sector":{{{hostOffset / 512 + 1}}},"once":true},
                              {"event":"flush_to_disk","errno":28,"once":true}]}}
            """));
        var buffer = new byte[4096];
        await node.ReadAsync(0, buffer); // unallocated: no data read from the file
        var error = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.ReadAsync(64 * K, buffer));
        Assert.AreEqual("Input/output error", error.Message);
        await node.ReadAsync(64 * K, buffer);
        Assert.AreEqual(0x44, buffer[0]);

        await node.WriteAsync(0, buffer);
        var flush = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.FlushAsync());
        Assert.IsTrue(flush.IsNoSpace);
        await node.FlushAsync();
        await dir.Graph.RemoveAsync("q");
        await QemuImg.ImgOkAsync("check", path);
    }
}
