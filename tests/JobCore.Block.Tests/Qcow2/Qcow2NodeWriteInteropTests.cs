using System.Buffers.Binary;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>Images created and written through <see cref="Qcow2Node"/> satisfy <c>qemu-img check</c> and <c>qemu-img compare</c>.</summary>
[TestClass]
public sealed class Qcow2NodeWriteInteropTests
{
    [TestMethod]
    [DataRow(null)]
    [DataRow("base.qcow2")]
    public async Task Create_writes_the_same_bytes_as_qemu_img_create(string? backing)
    {
        using var scratch = new ScratchFolder();
        string ours = scratch.File("ours.qcow2");
        string theirs = scratch.File("theirs.qcow2");
        if (backing is not null)
        {
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", scratch.File(backing), "1G");
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", backing, "-F", "qcow2", theirs);
        }
        else
        {
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", theirs, "1G");
        }

        await Qcow2Node.CreateAsync(ours, new Qcow2CreateOptions { Size = backing is null ? 1L << 30 : 0, BackingFile = backing, BackingFormat = backing is null ? null : "qcow2" });
        ImageData.AssertSame(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours), "image file bytes");
        await ImageData.AssertQemuCheckCleanAsync(ours);
    }

    [TestMethod]
    [DataRow(512, 1L << 30, false)]
    [DataRow(512, 8L << 30, false)]
    [DataRow(512, 100L << 20, true)]
    [DataRow(1024, 1L << 30, false)]
    [DataRow(4096, 1L << 30, true)]
    [DataRow(8192, 1L << 30, false)]
    [DataRow(2097152, 1L << 40, false)]
    public async Task Create_with_any_cluster_size_writes_the_same_bytes_as_qemu_img(int clusterSize, long size, bool backing)
    {
        // Small clusters need an L1 table longer than one refcount block's range: QEMU puts the missing refcount
        // blocks behind it (not self-describing), and it writes no feature table with clusters of 4 KiB or less.
        using var scratch = new ScratchFolder();
        string ours = scratch.File("ours.qcow2");
        string theirs = scratch.File("theirs.qcow2");
        string? backingFile = backing ? "b.raw" : null;
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}" };
        if (backingFile is not null)
        {
            await QemuImg.ImgOkAsync("create", "-f", "raw", scratch.File(backingFile), "1M");
            args.AddRange(["-b", backingFile, "-F", "raw"]);
        }

        await QemuImg.ImgOkAsync([.. args, theirs, size.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await Qcow2Node.CreateAsync(ours, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize, BackingFile = backingFile, BackingFormat = backingFile is null ? null : "raw" });
        ImageData.AssertSame(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours), "image file bytes");
        await ImageData.AssertQemuCheckCleanAsync(ours);
    }

    [TestMethod]
    [DataRow(512, 1, 6L << 20)]
    [DataRow(512, 2, 6L << 20)]
    [DataRow(4096, 3, 24L << 20)]
    [DataRow(65536, 4, 24L << 20)]
    [DataRow(65536, 5, 5000704L)]
    [DataRow(2097152, 6, 24L << 20)]
    public async Task Random_writes_with_growth_pass_qemu_check_and_compare(int clusterSize, int seed, long size)
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("w.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize });
        byte[] expected = new byte[4 * size];
        var rng = new Random(seed);
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            Qcow2Node node = opened.Node;
            await RandomOpsAsync(node, expected, size, rng, 300);
            // Growing the virtual size needs a larger L1 table; then fill past the old end so that the refcount
            // table (one cluster) must grow too for 512-byte clusters.
            await node.ResizeAsync(4 * size);
            Assert.AreEqual(4 * size, node.Size);
            for (long off = size; off < 3 * size; off += 1 << 20)
            {
                rng.NextBytes(expected.AsSpan((int)off, 1 << 20));
                await node.WriteAsync(off, expected.AsMemory((int)off, 1 << 20));
            }

            await RandomOpsAsync(node, expected, 4 * size, rng, 300);
            await node.FlushAsync();
            ImageData.AssertSame(expected, await ImageData.ReadAllAsync(node), "data read back before close");
        }

        await ImageData.AssertCleanAndEqualAsync(image, expected, scratch);
        if (clusterSize == 512)
        {
            byte[] header = new byte[64];
            await using var fs = File.OpenRead(image);
            await fs.ReadExactlyAsync(header);
            Assert.IsTrue(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(56)) > 1, "the refcount table should have grown");
            Assert.AreNotEqual(3L * 512, (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(40)), "the L1 table should have moved");
        }
    }

    [TestMethod]
    public async Task Overwriting_compressed_clusters_copies_them_and_frees_the_compressed_data()
    {
        using var scratch = new ScratchFolder();
        string raw = scratch.File("src.raw");
        string image = scratch.File("c.qcow2");
        byte[] expected = Qcow2NodeReadInteropTests.CompressibleData(2 << 20, seed: 3);
        await File.WriteAllBytesAsync(raw, expected);
        await QemuImg.ImgOkAsync("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, image);
        var rng = new Random(5);
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            for (int i = 0; i < 200; i++)
            {
                int off = rng.Next(expected.Length - 10000);
                int len = rng.Next(1, 10000);
                rng.NextBytes(expected.AsSpan(off, len));
                await opened.Node.WriteAsync(off, expected.AsMemory(off, len));
            }

            await opened.Node.WriteZeroesAsync(40960, 40960, mayUnmap: true);
            expected.AsSpan(40960, 40960).Clear();
            await opened.Node.DiscardAsync(1 << 20, 65536);
            expected.AsSpan(1 << 20, 65536).Clear();
        }

        await ImageData.AssertCleanAndEqualAsync(image, expected, scratch);
    }

    [TestMethod]
    public async Task Overlay_created_by_us_copies_partial_clusters_from_the_backing_file()
    {
        using var scratch = new ScratchFolder();
        string baseImage = scratch.File("base.qcow2");
        string overlay = scratch.File("overlay.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", baseImage, "3M");
        await QemuImg.IoCommandsAsync(baseImage, "qcow2", "write -P 0x61 0 3M");
        await Qcow2Node.CreateAsync(overlay, new Qcow2CreateOptions { BackingFile = "base.qcow2", ClusterSize = 65536 });
        byte[] expected = await ImageData.QemuRawAsync(baseImage, scratch);
        await using (var opened = await OpenedQcow2.OpenAsync(overlay, readOnly: false))
        {
            Assert.AreEqual(3L << 20, opened.Node.Size);
            var rng = new Random(9);
            for (int i = 0; i < 50; i++)
            {
                int off = rng.Next(expected.Length - 5000);
                int len = rng.Next(1, 5000);
                rng.NextBytes(expected.AsSpan(off, len));
                await opened.Node.WriteAsync(off, expected.AsMemory(off, len));
            }

            // Discard with a backing file leaves zero clusters (QEMU's guest discard), not the backing data.
            await opened.Node.DiscardAsync(2 << 20, 131072);
            expected.AsSpan(2 << 20, 131072).Clear();
            ImageData.AssertSame(expected, await ImageData.ReadAllAsync(opened.Node), "overlay data");
        }

        ToolResult info = await QemuImg.ImgOkAsync("info", overlay);
        StringAssert.Contains(info.Output, "backing file: base.qcow2");
        StringAssert.Contains(info.Output, "backing file format: qcow2");
        await ImageData.AssertCleanAndEqualAsync(overlay, expected, scratch);
    }

    [TestMethod]
    public async Task Change_backing_file_rewrites_the_header_and_keeps_unknown_extensions()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("top.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", scratch.File("a.raw"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "raw", scratch.File("b.raw"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "a.raw", "-F", "qcow2", image);
        await InsertUnknownExtensionAsync(image);

        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false, withBacking: false))
        {
            await opened.Node.ChangeBackingFileAsync("b.raw", "raw");
            Assert.AreEqual("b.raw", opened.Node.BackingFileName);
            Assert.AreEqual("raw", opened.Node.BackingFormat);
        }

        ToolResult info = await QemuImg.ImgOkAsync("info", image);
        StringAssert.Contains(info.Output, "backing file: b.raw");
        StringAssert.Contains(info.Output, "backing file format: raw");
        byte[] cluster0 = (await File.ReadAllBytesAsync(image))[..65536];
        Assert.IsTrue(cluster0.AsSpan().IndexOf("unknown-extension-data"u8) > 0, "the unknown extension must survive the rewrite");
        await ImageData.AssertQemuCheckCleanAsync(image);

        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false, withBacking: false))
        {
            await opened.Node.ChangeBackingFileAsync(null, null);
        }

        info = await QemuImg.ImgOkAsync("info", image);
        Assert.IsFalse(info.Output.Contains("backing file", StringComparison.Ordinal), info.Output);
    }

    [TestMethod]
    public async Task A_backing_name_that_does_not_fit_is_refused_and_leaves_the_header_alone()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("n.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 512 });
        byte[] before = await File.ReadAllBytesAsync(image);
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            var e = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await opened.Node.ChangeBackingFileAsync(new string('x', 1000), "raw"));
            Assert.AreEqual(BlockIOException.EINVAL, e.Errno);
            Assert.IsNull(opened.Node.BackingFileName);
            Assert.IsNull(opened.Node.BackingFormat);
        }

        CollectionAssert.AreEqual(before, await File.ReadAllBytesAsync(image));
    }

    [TestMethod]
    public async Task Concurrent_writers_and_readers_keep_the_image_consistent()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("p.qcow2");
        const int Size = 16 << 20;
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = Size, ClusterSize = 4096 });
        byte[] expected = new byte[Size];
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            Qcow2Node node = opened.Node;
            const int Workers = 8;
            const int Slice = Size / Workers;
            var tasks = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var rng = new Random(w);
                byte[] check = new byte[70000];
                for (int i = 0; i < 120; i++)
                {
                    int len = rng.Next(1, 70000);
                    int off = (w * Slice) + rng.Next(Slice - len);
                    switch (rng.Next(6))
                    {
                        case 0:
                            await node.WriteZeroesAsync(off, len, mayUnmap: rng.Next(2) == 0);
                            expected.AsSpan(off, len).Clear();
                            break;
                        case 1:
                            await node.ReadAsync(off, check.AsMemory(0, len));
                            Assert.IsTrue(check.AsSpan(0, len).SequenceEqual(expected.AsSpan(off, len)), $"worker {w} read {off}+{len}");
                            break;
                        case 2:
                            await node.FlushAsync();
                            break;
                        default:
                            rng.NextBytes(expected.AsSpan(off, len));
                            await node.WriteAsync(off, expected.AsMemory(off, len));
                            break;
                    }
                }
            })).ToArray();
            await Task.WhenAll(tasks);
        }

        await ImageData.AssertCleanAndEqualAsync(image, expected, scratch);
    }

    [TestMethod]
    public async Task Zero_writes_and_discards_match_qemu_map()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("z.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 65536 });
        byte[] ones = new byte[1 << 20];
        ones.AsSpan().Fill(1);
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            await opened.Node.WriteAsync(0, ones);
            await opened.Node.WriteZeroesAsync(65536, 65536, mayUnmap: false);
            await opened.Node.WriteZeroesAsync(131072, 65536, mayUnmap: true);
            await opened.Node.DiscardAsync(262144, 65536 + 100);
            await opened.Node.WriteZeroesAsync(327680 + 100, 200, mayUnmap: true);
            // The preallocated zero cluster keeps its host cluster (after the header, refcount table and block, L1
            // and L2: the data starts at 327680), so it does not merge with the plain zero cluster behind it.
            Assert.AreEqual(new BlockStatus(65536, 65536, true, true, false) { HostOffset = 393216 }, await opened.Node.GetBlockStatusAsync(65536, 1 << 19));
            Assert.AreEqual(new BlockStatus(131072, 65536, true, true, false), await opened.Node.GetBlockStatusAsync(131072, 1 << 19));
        }

        await ImageData.AssertQemuCheckCleanAsync(image);
        await QemuImg.IoCommandsAsync(image, "qcow2", "read -P 1 0 65536", "read -P 0 65536 131072", "read -P 1 196608 65536",
            "read -P 0 262144 65536", "read -P 1 327680 100", "read -P 0 327780 200", "read -P 1 327980 100");
        ToolResult map = await QemuImg.ImgOkAsync("map", "--output", "json", image);
        StringAssert.Contains(map.Output, "{ \"start\": 65536, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false, \"offset\": 393216}");
        StringAssert.Contains(map.Output, "{ \"start\": 131072, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false}");
    }

    private static async Task RandomOpsAsync(Qcow2Node node, byte[] expected, long size, Random rng, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int len = rng.Next(1, 100_000);
            long off = rng.NextInt64(size - len);
            int op = rng.Next(10);
            if (op == 0)
            {
                bool unmap = rng.Next(2) == 0;
                await node.WriteZeroesAsync(off, len, unmap);
                expected.AsSpan((int)off, len).Clear();
            }
            else if (op == 1)
            {
                // A discard only drops whole clusters; the model clears exactly those.
                await node.DiscardAsync(off, len);
                long first = (off + node.ClusterSize - 1) / node.ClusterSize * node.ClusterSize;
                long last = (off + len) / node.ClusterSize * node.ClusterSize;
                if (last > first)
                {
                    expected.AsSpan((int)first, (int)(last - first)).Clear();
                }
            }
            else if (op == 2)
            {
                await node.FlushAsync();
            }
            else
            {
                rng.NextBytes(expected.AsSpan((int)off, len));
                await node.WriteAsync(off, expected.AsMemory((int)off, len));
            }
        }
    }

    /// <summary>Adds an extension of an unknown type (with recognisable data) in front of QEMU's extensions.</summary>
    private static async Task InsertUnknownExtensionAsync(string image)
    {
        byte[] file = await File.ReadAllBytesAsync(image);
        int headerLength = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(100));
        long backingOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan(8));
        uint backingLength = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(16));
        byte[] data = "unknown-extension-data"u8.ToArray();
        int extLength = 8 + ((data.Length + 7) & ~7);
        byte[] moved = file[headerLength..(int)(backingOffset + backingLength)];
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(headerLength), 0x12345678);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(headerLength + 4), (uint)data.Length);
        data.CopyTo(file, headerLength + 8);
        file.AsSpan(headerLength + 8 + data.Length, extLength - 8 - data.Length).Clear();
        moved.CopyTo(file, headerLength + extLength);
        BinaryPrimitives.WriteUInt64BigEndian(file.AsSpan(8), (ulong)(backingOffset + extLength));
        await File.WriteAllBytesAsync(image, file);
    }
}
