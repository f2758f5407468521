using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>Images made and written by QEMU's tools read back byte-identical through <see cref="Qcow2Node"/>.</summary>
[TestClass]
public sealed class Qcow2NodeReadInteropTests
{
    [TestMethod]
    [DataRow(512, 1048576L + 1536)]
    [DataRow(65536, (3L << 20) + 4608)]
    [DataRow(65536, 1000L)]
    [DataRow(2097152, (5L << 20) + 512)]
    [DataRow(4096, 777777L)]
    public async Task Image_written_by_qemu_io_reads_back_identically(int clusterSize, long size)
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("a.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", image, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        long s = (size + 511) & ~511L;
        await QemuImg.IoCommandsAsync(image, "qcow2", QemuWrites(s, clusterSize));

        await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: true);
        Assert.AreEqual(s, opened.Node.Size);
        Assert.AreEqual(clusterSize, opened.Node.ClusterSize);
        ImageData.AssertSame(await ImageData.QemuRawAsync(image, scratch), await ImageData.ReadAllAsync(opened.Node), "guest data");
    }

    [TestMethod]
    [DataRow(512)]
    [DataRow(65536)]
    public async Task Compressed_image_from_convert_c_reads_back_identically(int clusterSize)
    {
        using var scratch = new ScratchFolder();
        string raw = scratch.File("src.raw");
        string image = scratch.File("c.qcow2");
        byte[] data = CompressibleData(3 << 20, seed: clusterSize);
        await File.WriteAllBytesAsync(raw, data);
        await QemuImg.ImgOkAsync("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", raw, image);
        ToolResult check = await QemuImg.ImgOkAsync("check", image);
        Assert.IsFalse(check.Output.Contains(" 0.00% compressed", StringComparison.Ordinal), "the image should hold compressed clusters: " + check.Output);

        await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: true);
        ImageData.AssertSame(data, await ImageData.ReadAllAsync(opened.Node), "decompressed data");
        BlockStatus status = await opened.Node.GetBlockStatusAsync(0, clusterSize);
        Assert.IsTrue(status is { Allocated: true, Data: true }, status.ToString());
    }

    [TestMethod]
    [DataRow(512)]
    [DataRow(2097152)]
    public async Task Image_made_by_convert_reads_back_identically(int clusterSize)
    {
        using var scratch = new ScratchFolder();
        string raw = scratch.File("src.raw");
        string image = scratch.File("v.qcow2");
        byte[] data = CompressibleData((5 << 20) + 4608, seed: 17);
        await File.WriteAllBytesAsync(raw, data);
        await QemuImg.ImgOkAsync("convert", "-f", "raw", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", raw, image);

        await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: true);
        ImageData.AssertSame(data, await ImageData.ReadAllAsync(opened.Node), "converted data");
    }

    [TestMethod]
    public async Task Backing_chain_of_three_reads_like_qemu()
    {
        using var scratch = new ScratchFolder();
        string baseRaw = scratch.File("base.raw");
        string mid = scratch.File("mid.qcow2");
        string top = scratch.File("top.qcow2");
        await File.WriteAllBytesAsync(baseRaw, CompressibleData(1 << 20, seed: 7));
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "-o", "cluster_size=4096", mid, "2M");
        await QemuImg.IoCommandsAsync(mid, "qcow2", "write -P 0x5a 4096 8192", "write -z 65536 65536", "write -P 0x77 1500000 9000");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top, "3M");
        await QemuImg.IoCommandsAsync(top, "qcow2", "write -P 0x99 100 1000", "discard 0 65536", "write -P 0x42 2097152 70000");

        await using var opened = await OpenedQcow2.OpenAsync(top, readOnly: true);
        Assert.AreEqual("mid.qcow2", opened.Node.BackingFileName);
        Assert.AreEqual("qcow2", opened.Node.BackingFormat);
        Assert.IsNotNull(opened.Node.Backing);
        ImageData.AssertSame(await ImageData.QemuRawAsync(top, scratch), await ImageData.ReadAllAsync(opened.Node), "chain data");

        BlockStatus unallocated = await opened.Node.GetBlockStatusAsync(65536, 4096);
        Assert.IsFalse(unallocated.Allocated, unallocated.ToString());
        BlockStatus written = await opened.Node.GetBlockStatusAsync(2097152, 4096);
        Assert.IsTrue(written is { Allocated: true, Data: true }, written.ToString());
    }

    [TestMethod]
    public async Task Version_2_image_reads_back_and_refuses_read_write()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("v2.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", image, "1M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 0x31 0 10000", "write -P 0x32 500000 70000");

        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: true))
        {
            Assert.AreEqual(2, opened.Node.Version);
            ImageData.AssertSame(await ImageData.QemuRawAsync(image, scratch), await ImageData.ReadAllAsync(opened.Node), "v2 data");
        }

        var e = await Assert.ThrowsExactlyAsync<BlockFormatException>(async () => await OpenedQcow2.OpenAsync(image, readOnly: false));
        StringAssert.Contains(e.Message, "version 2");
    }

    [TestMethod]
    public async Task Qemu_block_status_matches_zero_data_and_unallocated_clusters()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("s.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=65536", image, "4M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 1 0 131072", "write -z 131072 65536", "write -P 2 1048576 65536", "write -z 1048576 65536");

        await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: true);
        Qcow2Node node = opened.Node;
        // Host offsets as qemu-img map reports them: data from 327680 (after header, refcount table and block, L1, L2).
        Assert.AreEqual(new BlockStatus(0, 131072, true, false, true) { HostOffset = 327680 }, await node.GetBlockStatusAsync(0, 4 << 20));
        Assert.AreEqual(new BlockStatus(131072, 65536, true, true, false), await node.GetBlockStatusAsync(131072, (4 << 20) - 131072));
        Assert.AreEqual(new BlockStatus(196608, 1048576 - 196608, false, true, false), await node.GetBlockStatusAsync(196608, (4 << 20) - 196608));
        BlockStatus prealloc = await node.GetBlockStatusAsync(1048576, 3 << 20);
        Assert.IsTrue(prealloc is { Allocated: true, Zero: true, Data: false, Length: 65536, HostOffset: 327680 + 131072 }, prealloc.ToString());
        StringAssert.Contains((await QemuImg.ImgOkAsync("map", "--output", "json", image)).Output, "\"start\": 1048576, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false, \"offset\": 458752}");
    }

    /// <summary>qemu-io commands exercising patterns, zero writes (with and without unmap) and discards on an image of <paramref name="s"/> bytes.</summary>
    internal static string[] QemuWrites(long s, int cs)
    {
        var ops = new List<string>();
        void Add(string verb, long off, long len)
        {
            len = Math.Min(len, s - off);
            if (off >= 0 && len > 0)
            {
                ops.Add($"{verb} {off} {len}");
            }
        }

        Add("write -P 0x11", 0, (2L * cs) + 700);
        Add("write -P 0x22", (s / 3) + 123, cs + 5000);
        Add("write -P 0x33", s - Math.Min(s, 3000), 3000);
        Add("write -P 0x44", s / 2, 4 * cs);
        Add("write -z", 100, 200);
        if (2L * cs <= s)
        {
            Add("write -z", cs, cs);
            Add("discard", 0, cs);
        }

        if (s / 2 + (2L * cs) <= s)
        {
            Add("write -z -u", (s / 2) + cs - ((s / 2) % cs), cs);
        }

        return [.. ops];
    }

    /// <summary>Half-compressible data: runs of repeated bytes mixed with random blocks.</summary>
    internal static byte[] CompressibleData(int length, int seed)
    {
        var rng = new Random(seed);
        byte[] data = new byte[length];
        for (int off = 0; off < length; off += 4096)
        {
            int n = Math.Min(4096, length - off);
            if (rng.Next(3) == 0)
            {
                rng.NextBytes(data.AsSpan(off, n));
            }
            else
            {
                data.AsSpan(off, n).Fill((byte)rng.Next(256));
            }
        }

        return data;
    }
}
