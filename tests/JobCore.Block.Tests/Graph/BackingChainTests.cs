using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed class BackingChainTests
{
    private const int K = 1024;

    [TestMethod]
    public async Task A_short_intermediate_layer_hides_the_layers_below_past_its_end()
    {
        var @base = new MemoryNode("base", 64 * K);
        @base.Fill(0, 64 * K, 0x11);
        var mid = new MemoryNode("mid", 16 * K, @base);
        var top = new MemoryNode("top", 64 * K, mid);

        Assert.AreEqual(new AllocationExtent(0, 16 * K, false), await BackingChain.IsAllocatedAboveAsync(top, @base, 0, 64 * K));
        Assert.AreEqual(new AllocationExtent(16 * K, 48 * K, true), await BackingChain.IsAllocatedAboveAsync(top, @base, 16 * K, 64 * K));
        Assert.AreEqual(new AllocationExtent(0, 16 * K, true), await BackingChain.IsAllocatedAboveAsync(top, null, 0, 64 * K));
        Assert.AreEqual(new AllocationExtent(32 * K, 0, false), await BackingChain.IsAllocatedAboveAsync(mid, @base, 32 * K, 4 * K));
    }

    [TestMethod]
    public async Task Copy_on_read_copies_only_what_lies_above_base_and_stops_where_the_chain_ends()
    {
        var @base = new MemoryNode("base", 64 * K);
        @base.Fill(0, 64 * K, 0x11);
        var mid = new MemoryNode("mid", 32 * K, @base);
        mid.Fill(4 * K, 4 * K, 0x22);
        mid.Fill(12 * K, 1 * K, 0x00); // allocated zero data: copied as write-zeroes
        var top = new MemoryNode("top", 64 * K, mid);
        top.Fill(5 * K, 1 * K, 0x33);

        long copied = await BackingChain.CopyOnReadAsync(top, @base, 0, 64 * K);
        Assert.AreEqual(4L * K, copied, "mid's 0x22 range minus what top already has, plus the zero range");
        Assert.IsTrue(top.IsAllocated(4 * K) && top.IsAllocated(6 * K) && top.IsAllocated(12 * K));
        Assert.IsFalse(top.IsAllocated(0), "base data is not copied when base stays");
        Assert.IsFalse(top.IsAllocated(40 * K), "past mid's end nothing is copied");

        var data = new byte[1];
        await top.ReadAsync(5 * K, data);
        Assert.AreEqual(0x33, data[0], "top's own data is never overwritten");
        top.SetBacking(@base);
        await top.ReadAsync(4 * K, data);
        Assert.AreEqual(0x22, data[0]);
        await top.ReadAsync(12 * K, data);
        Assert.AreEqual(0, data[0]);
    }

    [TestMethod]
    public async Task Filters_are_transparent_to_the_chain()
    {
        var @base = new MemoryNode("base", 8 * K);
        var top = new MemoryNode("top", 8 * K, @base);
        var filter = BlkdebugNode.Create("dbg", top, Array.Empty<BlkdebugInjectErrorOptions>(), readOnly: false);
        CollectionAssert.AreEqual(new BlockNode[] { top, @base }, BackingChain.Layers(filter).ToArray());
        Assert.AreSame(top, BackingChain.SkipFilters(filter));
        Assert.AreSame(top, BackingChain.Below(filter));
        Assert.AreSame(@base, BackingChain.Below(top));
        Assert.AreEqual(1, BackingChain.Depth(filter));
        Assert.AreEqual("memory", BackingChain.GetFormatName(filter));
        @base.Fill(0, 512, 1);
        Assert.IsTrue((await BackingChain.IsAllocatedAboveAsync(filter, null, 0, 512)).Allocated);
    }

    [TestMethod]
    public void A_looping_chain_is_reported_not_walked_forever()
    {
        var a = new MemoryNode("a", 4096);
        var b = new MemoryNode("b", 4096, a);
        a.SetBacking(b);
        Assert.ThrowsExactly<InvalidOperationException>(() => BackingChain.Layers(b).ToList());
    }

    [TestMethod]
    [DataRow("/img/top.qcow2", "base.qcow2", "/img/base.qcow2")]
    [DataRow("/img/top.qcow2", "../b/base.qcow2", "/img/../b/base.qcow2")]
    [DataRow("img/top.qcow2", "base.qcow2", "img/base.qcow2")]
    [DataRow("top.qcow2", "base.qcow2", "base.qcow2")]
    [DataRow("/img/top.qcow2", "/abs/base.qcow2", "/abs/base.qcow2")]
    public void Relative_backing_names_combine_with_the_images_folder_like_qemu(string image, string backing, string expected)
    {
        Assert.AreEqual(expected, BackingChain.ResolveRelativeTo(image, backing));
    }
}
