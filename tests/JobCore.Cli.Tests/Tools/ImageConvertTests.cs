using System.Text.Json;
using JobCore.Block.Tools;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ImageConvertTests
{
    private const int C = MemoryNode.ClusterSize;

    /// <summary>A chain with random data, zero clusters, unallocated holes and data only in the backing node.</summary>
    private static MemoryNode SampleChain(long size)
    {
        var random = new Random(1234);
        var baseNode = new MemoryNode("base", size);
        var top = new MemoryNode("top", size, backing: baseNode);
        for (long c = 0; c < size / C; c++)
        {
            var roll = random.Next(6);
            var node = roll < 2 ? top : baseNode;
            var length = Math.Min(C, size - (c * C));
            if (roll is 0 or 2)
            {
                node.Fill(c * C, length, (byte)random.Next(1, 255));
            }
            else if (roll == 3)
            {
                top.Mark(c * C, length, MemoryNode.Kind.Zero);
            }
        }

        return top;
    }

    private static async Task WriteExpectedRawAsync(MemoryNode node, string path)
    {
        var data = new byte[node.Size];
        await node.ReadAsync(0, data);
        await File.WriteAllBytesAsync(path, data);
    }

    [TestMethod]
    [DataRow(65536, 24L << 20)]
    [DataRow(512, 3L << 20)]
    [DataRow(2 << 20, 24L << 20)]
    [DataRow(65536, (5L << 20) + 1000)]
    public async Task Qcow2_output_passes_qemu_check_and_compare(int clusterSize, long size)
    {
        using var dir = new TempDirectory();
        var source = SampleChain(size);
        await WriteExpectedRawAsync(source, dir.File("expected.raw"));

        await using (var target = Qcow2ConvertTarget.Create(dir.File("out.qcow2"), size, clusterSize))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        var check = await Tool.QemuImgAsync(dir.Path, "check", "out.qcow2");
        Assert.AreEqual(0, check.ExitCode, check.ToString());
        StringAssert.Contains(check.StdOut, "No errors were found on the image.");
        await Tool.QemuImgOkAsync(dir.Path, "compare", "-f", "qcow2", "-F", "raw", "out.qcow2", "expected.raw");
        using var info = JsonDocument.Parse(await Tool.QemuImgOkAsync(dir.Path, "info", "--output", "json", "out.qcow2"));
        Assert.AreEqual((size + 511) / 512 * 512, info.RootElement.GetProperty("virtual-size").GetInt64());
        Assert.AreEqual(clusterSize, info.RootElement.GetProperty("cluster-size").GetInt32());
    }

    [TestMethod]
    [DataRow(512)]
    [DataRow(65536)]
    public async Task Metadata_written_in_many_small_batches_is_still_consistent(int clusterSize)
    {
        using var dir = new TempDirectory();
        var source = SampleChain(12L << 20);
        await WriteExpectedRawAsync(source, dir.File("expected.raw"));

        await using (var target = Qcow2ConvertTarget.Create(dir.File("out.qcow2"), source.Size, clusterSize, metadataBatch: 2048))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        await Tool.AssertQemuCheckCleanAsync(dir.Path, "out.qcow2");
        await Tool.QemuImgOkAsync(dir.Path, "compare", "-f", "qcow2", "-F", "raw", "out.qcow2", "expected.raw");
    }

    [TestMethod]
    public async Task Zero_and_unallocated_ranges_are_not_written()
    {
        using var dir = new TempDirectory();
        var source = new MemoryNode("src", 256 * C);
        source.Fill(10 * C, 3 * C, 5);
        source.Mark(20 * C, 10 * C, MemoryNode.Kind.Zero);
        source.Fill(100 * C, C, 0); // allocated, but all zero bytes

        await using (var target = Qcow2ConvertTarget.Create(dir.File("out.qcow2"), source.Size, C))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        using var map = JsonDocument.Parse(await Tool.QemuImgOkAsync(dir.Path, "map", "--output", "json", "out.qcow2"));
        var data = map.RootElement.EnumerateArray().Where(e => e.GetProperty("data").GetBoolean()).ToArray();
        Assert.HasCount(1, data);
        Assert.AreEqual(10L * C, data[0].GetProperty("start").GetInt64());
        Assert.AreEqual(3L * C, data[0].GetProperty("length").GetInt64());
        Assert.AreEqual(0, (await Tool.QemuImgAsync(dir.Path, "check", "out.qcow2")).ExitCode);
    }

    [TestMethod]
    public async Task Raw_output_is_sparse_and_identical()
    {
        using var dir = new TempDirectory();
        var source = SampleChain(16L << 20);
        await WriteExpectedRawAsync(source, dir.File("expected.raw"));

        await using (var target = RawConvertTarget.Create(dir.File("out.raw"), source.Size))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        CollectionAssert.AreEqual(await File.ReadAllBytesAsync(dir.File("expected.raw")), await File.ReadAllBytesAsync(dir.File("out.raw")));
        Assert.IsLessThan(source.Size, HostFileStat.Of(dir.File("out.raw")).AllocatedBytes, "zero ranges must stay holes");
    }

    [TestMethod]
    [DataRow("raw")]
    [DataRow("qcow2")]
    public async Task An_existing_larger_output_file_is_replaced(string format)
    {
        using var dir = new TempDirectory();
        var source = SampleChain(4L << 20);
        await WriteExpectedRawAsync(source, dir.File("expected.raw"));
        var output = dir.File("out." + format);
        await File.WriteAllBytesAsync(output, Enumerable.Repeat((byte)0x5a, 9 << 20).ToArray());

        await using (ConvertTarget target = format == "raw"
            ? RawConvertTarget.Create(output, source.Size)
            : Qcow2ConvertTarget.Create(output, source.Size, C))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        var compare = await Tool.QemuImgAsync(dir.Path, "compare", "-f", format, "-F", "raw", "out." + format, "expected.raw");
        Assert.AreEqual(0, compare.ExitCode, compare.ToString());
        if (format == "raw")
        {
            Assert.AreEqual(source.Size, new FileInfo(output).Length);
        }
        else
        {
            var check = await Tool.QemuImgAsync(dir.Path, "check", "out.qcow2");
            Assert.AreEqual(0, check.ExitCode, check.ToString());
        }
    }

    [TestMethod]
    public async Task Empty_image_converts_to_a_valid_qcow2()
    {
        using var dir = new TempDirectory();
        var source = new MemoryNode("src", 0);

        await using (var target = Qcow2ConvertTarget.Create(dir.File("out.qcow2"), 0, C))
        {
            await ImageConvert.ConvertAsync(source, target);
        }

        Assert.AreEqual(0, (await Tool.QemuImgAsync(dir.Path, "check", "out.qcow2")).ExitCode);
    }

    [TestMethod]
    [DataRow(1000)]
    [DataRow(4 << 20)]
    public void Invalid_cluster_sizes_are_refused(int clusterSize)
    {
        using var dir = new TempDirectory();
        var e = Assert.ThrowsExactly<ImageToolException>(() => Qcow2ConvertTarget.Create(dir.File("x.qcow2"), 1 << 20, clusterSize));
        Assert.AreEqual("Cluster size must be a power of two between 512 and 2048k", e.Message);
        Assert.IsFalse(File.Exists(dir.File("x.qcow2")));
    }
}
