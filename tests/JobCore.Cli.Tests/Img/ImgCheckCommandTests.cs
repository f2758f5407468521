using System.Buffers.Binary;
using System.Text.Json;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgCheckCommandTests
{
    private const int ClusterSize = 65536;

    /// <summary>Sets the 16-bit refcount of host cluster <paramref name="cluster"/> (refcount block 0, default layout).</summary>
    private static async Task SetRefcountAsync(string image, long cluster, ushort value)
    {
        await using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        var buffer = new byte[8];
        f.Position = 48;
        await f.ReadExactlyAsync(buffer);
        f.Position = BinaryPrimitives.ReadInt64BigEndian(buffer);
        await f.ReadExactlyAsync(buffer);
        var block = BinaryPrimitives.ReadInt64BigEndian(buffer);
        Assert.AreNotEqual(0L, block);
        f.Position = block + (2 * cluster);
        BinaryPrimitives.WriteUInt16BigEndian(buffer, value);
        await f.WriteAsync(buffer.AsMemory(0, 2));
    }

    private static async Task<long> FirstDataHostClusterAsync(TempDirectory dir, string image)
    {
        using var map = JsonDocument.Parse(await Tool.QemuImgOkAsync(dir.Path, "map", "--output", "json", image));
        var data = map.RootElement.EnumerateArray().First(e => e.GetProperty("data").GetBoolean());
        return data.GetProperty("offset").GetInt64() / ClusterSize;
    }

    /// <summary>Runs check with both tools; asserts the same exit code and stdout; returns jobctl's result.</summary>
    /// <param name="dir">The folder.</param>
    /// <param name="image">The image.</param>
    /// <param name="expectedExitCode">What qemu-img must exit with.</param>
    /// <param name="compareEndOffset">
    /// Whether the "Image end offset" line must match too. For leaks beyond the last referenced cluster, qemu-img
    /// counts the leaked (refcounted) cluster while Qcow2Check counts only referenced ones (reported to its owner).
    /// </param>
    private static async Task<ToolResult> SameAsQemuAsync(TempDirectory dir, string image, int expectedExitCode, bool compareEndOffset = true)
    {
        var expected = await Tool.QemuImgAsync(dir.Path, "check", image);
        var actual = await Tool.JobctlAsync(dir.Path, "img", "check", image);
        Assert.AreEqual(expectedExitCode, expected.ExitCode, expected.ToString());
        Assert.AreEqual(expected.ExitCode, actual.ExitCode, $"qemu-img: {expected}\njobctl: {actual}");
        Assert.AreEqual(Summary(expected.StdOut, compareEndOffset), Summary(actual.StdOut, compareEndOffset));
        return actual;
    }

    private static string Summary(string stdout, bool withEndOffset) =>
        withEndOffset ? stdout : string.Join('\n', stdout.Split('\n').Where(l => !l.StartsWith("Image end offset: ", StringComparison.Ordinal)));

    [TestMethod]
    [DataRow("base.qcow2")]
    [DataRow("top.qcow2")]
    public async Task Clean_qemu_images_exit_0_with_qemu_summary(string image)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);

        var r = await SameAsQemuAsync(dir, image, 0);

        StringAssert.StartsWith(r.StdOut, "No errors were found on the image.\n");
    }

    [TestMethod]
    public async Task A_bumped_refcount_of_an_unused_cluster_is_a_leak_exit_3()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        var image = dir.File("base.qcow2");
        var clusters = new FileInfo(image).Length / ClusterSize;
        await using (var f = new FileStream(image, FileMode.Open))
        {
            f.SetLength((clusters + 1) * ClusterSize);
        }

        await SetRefcountAsync(image, clusters, 1);

        var r = await SameAsQemuAsync(dir, "base.qcow2", 3, compareEndOffset: false);

        StringAssert.Contains(r.StdOut, "\n1 leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n");
        StringAssert.Contains(r.StdErr, $"Leaked cluster {clusters} refcount=1 reference=0");
    }

    [TestMethod]
    public async Task A_zeroed_refcount_of_a_used_cluster_is_corruption_exit_2()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        var cluster = await FirstDataHostClusterAsync(dir, "base.qcow2");
        await SetRefcountAsync(dir.File("base.qcow2"), cluster, 0);

        var r = await SameAsQemuAsync(dir, "base.qcow2", 2);

        StringAssert.Contains(r.StdOut, "errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n");
        StringAssert.Contains(r.StdErr, $"ERROR cluster {cluster} refcount=0 reference=1");
    }

    [TestMethod]
    public async Task Images_made_by_jobctl_check_clean_with_jobctl()
    {
        using var dir = new TempDirectory();
        Assert.AreEqual(0, (await Tool.JobctlAsync(dir.Path, "img", "create", "-q", "-f", "qcow2", "a.qcow2", "16M")).ExitCode);
        await Tool.QemuIoOkAsync(dir.Path, "a.qcow2", "qcow2", "write -P 7 1M 3M");
        Assert.AreEqual(0, (await Tool.JobctlAsync(dir.Path, "img", "convert", "-O", "qcow2", "a.qcow2", "b.qcow2")).ExitCode);

        await SameAsQemuAsync(dir, "a.qcow2", 0);
        await SameAsQemuAsync(dir, "b.qcow2", 0);
    }

    [TestMethod]
    public async Task Json_output_equals_qemu_img_for_clean_leaking_compressed_and_empty_images()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-c", "-O", "qcow2", "base.qcow2", "comp.qcow2");
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-O", "qcow2", "base.qcow2", "bad.qcow2");
        var cluster = await FirstDataHostClusterAsync(dir, "bad.qcow2");
        await SetRefcountAsync(dir.File("bad.qcow2"), cluster, 2);
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "empty.qcow2", "1M");

        foreach (var image in new[] { "top.qcow2", "comp.qcow2", "bad.qcow2", "empty.qcow2" })
        {
            var expected = await Tool.QemuImgAsync(dir.Path, "check", "--output", "json", image);
            var actual = await Tool.JobctlAsync(dir.Path, "img", "check", "--output", "json", image);
            Assert.AreEqual(expected.ExitCode, actual.ExitCode, $"{image}: qemu-img {expected}\njobctl {actual}");
            Assert.AreEqual(expected.StdOut, actual.StdOut, image);
        }
    }

    [TestMethod]
    public async Task Raw_images_have_no_checker_exit_63()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeRawAsync(dir);

        var expected = await Tool.QemuImgAsync(dir.Path, "check", "r.img");
        var actual = await Tool.JobctlAsync(dir.Path, "img", "check", "r.img");

        Assert.AreEqual(63, expected.ExitCode);
        Assert.AreEqual(63, actual.ExitCode, actual.ToString());
        Assert.AreEqual("jobctl: This image format does not support checks\n", actual.StdErr);
    }

    [TestMethod]
    public async Task Missing_file_exits_1()
    {
        using var dir = new TempDirectory();

        var r = await Tool.JobctlAsync(dir.Path, "img", "check", "nonexist.qcow2");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual("jobctl: Could not open 'nonexist.qcow2': No such file or directory\n", r.StdErr);
    }
}
