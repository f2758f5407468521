using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgCompareCommandTests
{
    /// <summary>Runs the same compare with qemu-img and jobctl and checks they agree on stdout and exit code.</summary>
    private static async Task<ToolResult> SameAsQemuAsync(TempDirectory dir, params string[] args)
    {
        var expected = await Tool.QemuImgAsync(dir.Path, ["compare", .. args]);
        var actual = await Tool.JobctlAsync(dir.Path, ["img", "compare", .. args]);
        Assert.AreEqual(expected.ExitCode, actual.ExitCode, $"qemu-img: {expected}\njobctl: {actual}");
        Assert.AreEqual(expected.StdOut, actual.StdOut);
        return actual;
    }

    [TestMethod]
    public async Task Identical_images_in_different_formats()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-O", "raw", "top.qcow2", "flat.raw");

        var r = await SameAsQemuAsync(dir, "top.qcow2", "flat.raw");

        Assert.AreEqual(0, r.ExitCode);
        Assert.AreEqual("Images are identical.\n", r.StdOut);
    }

    [TestMethod]
    public async Task Different_images_report_the_first_differing_sector()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-O", "qcow2", "top.qcow2", "copy.qcow2");
        await Tool.QemuIoOkAsync(dir.Path, "copy.qcow2", "qcow2", "write -P 0x42 3001000 1");

        var r = await SameAsQemuAsync(dir, "top.qcow2", "copy.qcow2");

        Assert.AreEqual(1, r.ExitCode);
        Assert.AreEqual("Content mismatch at offset 3000832!\n", r.StdOut);
    }

    [TestMethod]
    public async Task Base_and_top_differ_where_the_top_overrides()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);

        var r = await SameAsQemuAsync(dir, "base.qcow2", "top.qcow2");

        Assert.AreEqual("Content mismatch at offset 524288!\n", r.StdOut);
    }

    [TestMethod]
    public async Task Size_mismatch_compares_the_rest_against_zeroes()
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "small.qcow2", "1M");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "raw", "large.raw", "2M");

        var same = await SameAsQemuAsync(dir, "small.qcow2", "large.raw");
        await Tool.QemuIoOkAsync(dir.Path, "large.raw", "raw", "write -P 1 1536k 4k");
        var differ = await SameAsQemuAsync(dir, "large.raw", "small.qcow2");

        Assert.AreEqual("Warning: Image size mismatch!\nImages are identical.\n", same.StdOut);
        Assert.AreEqual("Warning: Image size mismatch!\nContent mismatch at offset 1572864!\n", differ.StdOut);
    }

    [TestMethod]
    public async Task Format_options_apply_to_each_image()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);

        // Read as raw, the qcow2 file's bytes differ from its guest contents at once.
        var r = await SameAsQemuAsync(dir, "-f", "raw", "base.qcow2", "base.qcow2");

        Assert.AreEqual(1, r.ExitCode);
    }

    [TestMethod]
    public async Task Errors_exit_2()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        var r = await Tool.JobctlAsync(dir.Path, "img", "compare", "r.img", "nonexist");

        Assert.AreEqual(2, r.ExitCode, r.ToString());
        Assert.AreEqual("jobctl: Could not open 'nonexist': No such file or directory\n", r.StdErr);
    }
}
