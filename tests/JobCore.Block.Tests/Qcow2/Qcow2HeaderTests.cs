using System.Buffers.Binary;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Qcow2;

[TestClass]
public sealed class Qcow2HeaderTests
{
    [TestMethod]
    public void Serialized_header_parses_back_with_extensions_and_backing_name()
    {
        var header = Qcow2Header.CreateV3(16);
        header.Size = 1L << 30;
        header.L1Size = 2;
        header.L1TableOffset = 3 * 65536;
        header.RefcountTableOffset = 65536;
        header.RefcountTableClusters = 1;
        header.BackingFile = "base.qcow2";
        header.BackingFormat = "qcow2";
        header.OtherExtensions.Add((0x12345678, [1, 2, 3]));
        byte[] cluster = header.Serialize();
        byte[] file = new byte[4 * 65536];
        cluster.CopyTo(file, 0);

        Qcow2Header parsed = Qcow2Header.Parse(file, file.Length, "x.qcow2");
        Assert.AreEqual(3, parsed.Version);
        Assert.AreEqual(1L << 30, parsed.Size);
        Assert.AreEqual("base.qcow2", parsed.BackingFile);
        Assert.AreEqual("qcow2", parsed.BackingFormat);
        Assert.AreEqual(16, parsed.RefcountBits);
        Assert.AreEqual(8, parsed.FeatureNames.Count);
        Assert.AreEqual("corrupt bit", parsed.FeatureNames[(0, 1)]);
        Assert.AreEqual(1, parsed.OtherExtensions.Count);
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, parsed.OtherExtensions[0].Data);
        // QEMU's order: backing format first, right after the 112-byte header.
        Assert.AreEqual(Qcow2Header.ExtBackingFormat, BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan(112)));
    }

    [TestMethod]
    public void Extension_running_past_cluster_zero_is_refused()
    {
        var header = Qcow2Header.CreateV3(9);
        header.RefcountTableOffset = 512;
        header.RefcountTableClusters = 1;
        byte[] file = new byte[4 * 512];
        header.Serialize().CopyTo(file, 0);
        // A feature table extension (QEMU writes none with 512-byte clusters) whose length runs past cluster 0.
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(112), 0x6803f857);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(112 + 4), 5000);
        var e = Assert.ThrowsExactly<BlockFormatException>(() => Qcow2Header.Parse(file.AsSpan(0, 512), file.Length, "y.qcow2"));
        StringAssert.Contains(e.Message, "runs past the extension area");
        StringAssert.Contains(e.Message, "y.qcow2");
    }

    [TestMethod]
    public void Backing_name_that_does_not_fit_in_cluster_zero_is_an_einval_error()
    {
        var header = Qcow2Header.CreateV3(9);
        header.BackingFile = new string('b', 600);
        var e = Assert.ThrowsExactly<BlockIOException>(() => header.Serialize());
        Assert.AreEqual(BlockIOException.EINVAL, e.Errno);
    }
}
