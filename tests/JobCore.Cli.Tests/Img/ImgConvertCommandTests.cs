using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgConvertCommandTests
{
    [TestMethod]
    [DataRow("qcow2", 65536)]
    [DataRow("qcow2", 512)]
    [DataRow("qcow2", 2 << 20)]
    [DataRow("raw", 65536)]
    public async Task A_qemu_made_chain_converts_to_an_identical_image(string outputFormat, int sourceClusterSize)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir, sourceClusterSize);

        var r = await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", outputFormat, "top.qcow2", "out.img");

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        Assert.AreEqual("", r.StdOut + r.StdErr);
        if (outputFormat == "qcow2")
        {
            await Tool.AssertQemuCheckCleanAsync(dir.Path, "out.img");
        }

        await Tool.QemuImgOkAsync(dir.Path, "compare", "-F", outputFormat, "top.qcow2", "out.img");
    }

    [TestMethod]
    public async Task Compressed_sources_and_unaligned_sizes_convert()
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "raw", "src.raw", "3000000");
        await Tool.QemuIoOkAsync(dir.Path, "src.raw", "raw", "write -P 0x61 0 1M", "write -P 0x62 2M 900000");
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-c", "-O", "qcow2", "src.raw", "c.qcow2");

        var r = await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", "qcow2", "-o", "cluster_size=4k", "c.qcow2", "out.qcow2");

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        await Tool.AssertQemuCheckCleanAsync(dir.Path, "out.qcow2");
        await Tool.QemuImgOkAsync(dir.Path, "compare", "src.raw", "out.qcow2");
    }

    [TestMethod]
    public async Task A_sparse_1_TiB_image_converts_and_compares_by_skipping_its_holes()
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "big.qcow2", "1T");
        await Tool.QemuIoOkAsync(dir.Path, "big.qcow2", "qcow2", "write -P 1 0 1M", "write -P 2 500G 1M", "write -P 3 1023G 64k");

        var convert = await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", "qcow2", "big.qcow2", "out.qcow2");
        var compare = await Tool.JobctlAsync(dir.Path, "img", "compare", "big.qcow2", "out.qcow2");

        Assert.AreEqual(0, convert.ExitCode, convert.ToString());
        Assert.AreEqual("Images are identical.\n", compare.StdOut, compare.ToString());
        await Tool.AssertQemuCheckCleanAsync(dir.Path, "out.qcow2");
        await Tool.QemuImgOkAsync(dir.Path, "compare", "big.qcow2", "out.qcow2");
        Assert.IsLessThan(8L << 20, new FileInfo(dir.File("out.qcow2")).Length, "holes must not be written");
    }

    [TestMethod]
    public async Task Output_of_create_and_convert_round_trips_through_qemu_img()
    {
        using var dir = new TempDirectory();
        var create = await Tool.JobctlAsync(dir.Path, "img", "create", "-f", "qcow2", "a.qcow2", "8M");
        Assert.AreEqual(0, create.ExitCode, create.ToString());
        await Tool.QemuIoOkAsync(dir.Path, "a.qcow2", "qcow2", "write -P 0x33 100k 300k", "write -z 4M 1M");

        var r = await Tool.JobctlAsync(dir.Path, "img", "convert", "-f", "qcow2", "-O", "raw", "a.qcow2", "a.raw");

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        await Tool.QemuImgOkAsync(dir.Path, "compare", "a.qcow2", "a.raw");
    }

    [TestMethod]
    [DataRow(new[] { "-c", "-O", "qcow2", "r.img", "o.qcow2" }, "jobctl: Compressed output (-c) is not supported by jobctl img convert")]
    [DataRow(new[] { "-O", "vdi", "r.img", "o.qcow2" }, "jobctl: Unknown file format 'vdi' (jobctl writes raw and qcow2 images)")]
    [DataRow(new[] { "-O", "qcow2", "nonexist", "o.qcow2" }, "jobctl: Could not open 'nonexist': No such file or directory")]
    [DataRow(new[] { "-O", "qcow2", "-o", "cluster_size=3k", "r.img", "o.qcow2" }, "jobctl: Cluster size must be a power of two between 512 and 2048k")]
    public async Task Refused_conversions_fail_with_one_line_and_write_nothing(string[] args, string message)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        var r = await Tool.JobctlAsync(dir.Path, ["img", "convert", .. args]);

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual(message + "\n", r.StdErr);
        Assert.IsFalse(File.Exists(dir.File("o.qcow2")));
    }

    [TestMethod]
    public async Task Converting_an_image_onto_itself_is_refused_and_leaves_it_intact()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        var before = await File.ReadAllBytesAsync(dir.File("base.qcow2"));

        var r = await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", "qcow2", "top.qcow2", "base.qcow2");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual("jobctl: Output file 'base.qcow2' is one of the input images\n", r.StdErr);
        CollectionAssert.AreEqual(before, await File.ReadAllBytesAsync(dir.File("base.qcow2")));
    }
}
