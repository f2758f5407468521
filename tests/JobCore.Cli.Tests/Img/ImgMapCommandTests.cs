using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgMapCommandTests
{
    /// <summary>
    /// The chain of <see cref="QemuImages.MakeChainAsync"/> plus, in the top, clusters allocated out of guest order
    /// (host offsets jump, so extents split) and a preallocated zero cluster (zero, but with a host offset).
    /// </summary>
    private static async Task MakeMappedChainAsync(TempDirectory dir, int clusterSize)
    {
        await QemuImages.MakeChainAsync(dir, clusterSize);
        await Tool.QemuIoOkAsync(dir.Path, "top.qcow2", "qcow2", "write -P 1 20M 128k", "write -P 2 18M 64k", "write -P 3 20M 64k",
            "write -P 4 24M 128k", "write -z 24M 64k");
    }

    [TestMethod]
    [DataRow(65536)]
    [DataRow(512)]
    [DataRow(2 << 20)]
    public async Task Json_map_of_a_chain_equals_qemu_img_with_host_offsets(int clusterSize)
    {
        using var dir = new TempDirectory();
        await MakeMappedChainAsync(dir, clusterSize);

        var json = await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "--output", "json", "top.qcow2");
        StringAssert.Contains(json, "\"offset\": ", "qcow2 data extents carry their host offset");
    }

    [TestMethod]
    public async Task Human_map_of_a_chain_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        await MakeMappedChainAsync(dir, 65536);

        var table = await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "top.qcow2");
        StringAssert.Contains(table, "base.qcow2");
        StringAssert.Contains(table, "top.qcow2");
    }

    [TestMethod]
    public async Task Json_map_of_compressed_and_raw_backed_images_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-c", "-O", "qcow2", "top.qcow2", "comp.qcow2");
        await QemuImages.MakeRawAsync(dir, "rb.raw", "4M");
        // The overlay is larger than its raw backing file: past 4M nothing lies below.
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-b", "rb.raw", "-F", "raw", "ovr.qcow2", "6M");
        await Tool.QemuIoOkAsync(dir.Path, "ovr.qcow2", "qcow2", "write -P 8 3M 64k", "write -z 5M 64k");

        // Compressed clusters have no host offset (qemu-img prints none for them).
        var compressed = await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "--output", "json", "comp.qcow2");
        Assert.IsFalse(compressed.Contains("offset", StringComparison.Ordinal), compressed);
        await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "--output", "json", "ovr.qcow2");
    }

    [TestMethod]
    public async Task Human_map_of_compressed_clusters_fails_like_qemu_img()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-c", "-O", "qcow2", "top.qcow2", "comp.qcow2");

        var qemu = await Tool.QemuImgAsync(dir.Path, "map", "comp.qcow2");
        var ours = await Tool.JobctlAsync(dir.Path, "img", "map", "comp.qcow2");

        Assert.AreEqual(1, qemu.ExitCode, qemu.ToString());
        Assert.AreEqual(qemu.ExitCode, ours.ExitCode, ours.ToString());
        Assert.AreEqual(qemu.StdErr.Replace("qemu-img:", "jobctl:", StringComparison.Ordinal), ours.StdErr);
    }

    [TestMethod]
    public async Task Json_map_of_an_image_written_by_jobctl_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        await MakeMappedChainAsync(dir, 65536);
        var convert = await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", "qcow2", "top.qcow2", "ours.qcow2");
        Assert.AreEqual(0, convert.ExitCode, convert.ToString());

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "--output", "json", "ours.qcow2");
    }

    [TestMethod]
    public async Task Json_map_of_a_raw_file_equals_qemu_img_byte_for_byte()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "--output", "json", "r.img");
    }

    [TestMethod]
    public async Task Human_map_of_a_raw_file_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "map", "r.img");
    }

    [TestMethod]
    public async Task Missing_backing_file_fails_with_one_line()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        File.Delete(dir.File("base.qcow2"));

        var r = await Tool.JobctlAsync(dir.Path, "img", "map", "--output", "json", "top.qcow2");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual("jobctl: Could not open backing file: Could not open 'base.qcow2': No such file or directory\n", r.StdErr);
    }
}
