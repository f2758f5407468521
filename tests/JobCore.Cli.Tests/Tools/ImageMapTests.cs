using JobCore.Block.Tools;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ImageMapTests
{
    private const int C = MemoryNode.ClusterSize;

    [TestMethod]
    public async Task Build_merges_extents_across_the_chain_like_qemu_img()
    {
        // Same layout as: base 64M with 1M of data at 0 and 1M of zeroes at 2M; top with 1M of data at 512K.
        var baseNode = new MemoryNode("base", 64 << 20);
        baseNode.Fill(0, 1 << 20, 0xab);
        baseNode.Mark(2 << 20, 1 << 20, MemoryNode.Kind.Zero);
        var top = new MemoryNode("top", 64 << 20, backing: baseNode);
        top.Fill(512 << 10, 1 << 20, 0xcd);

        var map = await ImageMap.BuildAsync(top, n => n.NodeName);

        CollectionAssert.AreEqual(
            new[]
            {
                new MapEntry(0, 524288, 1, true, false, true, null, null),
                new MapEntry(524288, 1048576, 0, true, false, true, null, null),
                new MapEntry(1572864, 524288, 1, false, true, false, null, null),
                new MapEntry(2097152, 1048576, 1, true, true, false, null, null),
                new MapEntry(3145728, 63963136, 1, false, true, false, null, null),
            },
            map.ToArray());
    }

    [TestMethod]
    public void ToJson_prints_qemu_img_format()
    {
        var json = ImageMap.ToJson(
        [
            new MapEntry(0, 4096, 0, true, false, true, 0, "r.img"),
            new MapEntry(4096, 1044480, 1, false, true, false, null, null),
        ]);

        Assert.AreEqual(
            "[{ \"start\": 0, \"length\": 4096, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true, \"offset\": 0},\n"
            + "{ \"start\": 4096, \"length\": 1044480, \"depth\": 1, \"present\": false, \"zero\": true, \"data\": false}]\n",
            json);
    }

    [TestMethod]
    public void ToJson_of_an_empty_image_is_an_empty_array() => Assert.AreEqual("[]\n", ImageMap.ToJson([]));

    [TestMethod]
    public void ToHuman_lists_data_extents_with_c_style_hex()
    {
        var text = ImageMap.ToHuman(
        [
            new MapEntry(0, 0x80000, 1, true, false, true, 0x50000, "base.qcow2"),
            new MapEntry(0x80000, 0x100000, 0, true, true, false, null, null),
            new MapEntry(0x180000, 0x10000, 0, true, false, true, 0, "top.raw"),
        ]);

        Assert.AreEqual(
            "Offset          Length          Mapped to       File\n"
            + "0               0x80000         0x50000         base.qcow2\n"
            + "0x180000        0x10000         0               top.raw\n",
            text);
    }

    [TestMethod]
    public void ToHuman_refuses_data_without_a_host_offset() =>
        StringAssert.Contains(
            Assert.ThrowsExactly<ImageToolException>(() => ImageMap.ToHuman([new MapEntry(0, 512, 0, true, false, true, null, null)])).Message,
            "File contains external, encrypted or compressed clusters.");
}
