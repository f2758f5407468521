using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgInfoCommandTests
{
    [TestMethod]
    [DataRow("top.qcow2")]
    [DataRow("base.qcow2")]
    public async Task Json_output_equals_qemu_img(string image)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--output", "json", image);
    }

    [TestMethod]
    public async Task Json_output_with_an_absolute_path_has_the_full_backing_filename()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        var path = dir.File("top.qcow2");

        var output = await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--output=json", path);

        StringAssert.Contains(output, $"\"full-backing-filename\": \"{dir.File("base.qcow2")}\"");
    }

    [TestMethod]
    [DataRow("top.qcow2")]
    [DataRow("r.img")]
    public async Task Human_output_equals_qemu_img(string image)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await QemuImages.MakeRawAsync(dir);

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", image);
    }

    [TestMethod]
    [DataRow("json")]
    [DataRow("human")]
    public async Task Backing_chain_output_equals_qemu_img(string output)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        Directory.CreateDirectory(dir.File("sub"));
        await QemuImages.MakeRawAsync(dir, "sub/bottom.raw", "64M");
        await Tool.QemuImgOkAsync(dir.Path, "rebase", "-u", "-b", "sub/bottom.raw", "-F", "raw", "base.qcow2");

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--backing-chain", "--output", output, "top.qcow2");
        await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--backing-chain", "--output", output, dir.File("top.qcow2"));
    }

    [TestMethod]
    public async Task Raw_json_output_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--output", "json", "r.img");
    }

    [TestMethod]
    [DataRow("json")]
    [DataRow("human")]
    public async Task Version_2_dirty_corrupt_and_small_cluster_images_match_qemu_img(string output)
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "1M");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "c512.qcow2", "3000000");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", "dirty.qcow2", "1G");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "corrupt.qcow2", "1G");
        await SetIncompatibleBitAsync(dir.File("dirty.qcow2"), 0x01);
        await SetIncompatibleBitAsync(dir.File("corrupt.qcow2"), 0x02);

        foreach (var image in new[] { "v2.qcow2", "c512.qcow2", "dirty.qcow2", "corrupt.qcow2" })
        {
            await Tool.AssertSameAsQemuImgAsync(dir.Path, "info", "--output", output, image);
        }
    }

    /// <summary>Sets a bit in the low byte of the incompatible-features field (header offset 72, big-endian).</summary>
    private static async Task SetIncompatibleBitAsync(string image, byte bit)
    {
        await using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        f.Position = 79;
        var current = f.ReadByte();
        f.Position = 79;
        f.WriteByte((byte)(current | bit));
    }

    [TestMethod]
    public async Task Missing_file_is_one_line_on_stderr_and_exit_1()
    {
        using var dir = new TempDirectory();

        var r = await Tool.JobctlAsync(dir.Path, "img", "info", "nonexist.qcow2");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual("jobctl: Could not open 'nonexist.qcow2': No such file or directory\n", r.StdErr);
        Assert.AreEqual("", r.StdOut);
    }

    [TestMethod]
    public async Task A_broken_header_is_reported_without_a_stack_trace()
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "bad.qcow2", "1M");
        await using (var f = new FileStream(dir.File("bad.qcow2"), FileMode.Open))
        {
            f.Position = 20; // cluster_bits = 40
            f.Write([0, 0, 0, 40]);
        }

        var r = await Tool.JobctlAsync(dir.Path, "img", "info", "bad.qcow2");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        StringAssert.StartsWith(r.StdErr, "jobctl: ");
        Assert.AreEqual(1, r.StdErr.TrimEnd('\n').Split('\n').Length, r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }
}
