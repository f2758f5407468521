using System.Text.Json;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgMapCommandTests
{
    private sealed record Extent(long Start, long Length, int Depth, bool Present, bool Zero, bool Data);

    /// <summary>
    /// The map without host offsets, re-merged: what two correct mappers agree on even when their host layouts
    /// differ (qemu splits extents where host offsets jump).
    /// </summary>
    private static List<Extent> Logical(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var merged = new List<Extent>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var x = new Extent(e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("depth").GetInt32(),
                e.GetProperty("present").GetBoolean(), e.GetProperty("zero").GetBoolean(), e.GetProperty("data").GetBoolean());
            if (merged.Count > 0 && merged[^1] with { Start = x.Start, Length = x.Length } == x && merged[^1].Start + merged[^1].Length == x.Start)
            {
                merged[^1] = merged[^1] with { Length = merged[^1].Length + x.Length };
            }
            else
            {
                merged.Add(x);
            }
        }

        return merged;
    }

    [TestMethod]
    [DataRow(65536)]
    [DataRow(512)]
    [DataRow(2 << 20)]
    public async Task Json_map_of_a_chain_matches_qemu_img(int clusterSize)
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir, clusterSize);

        var expected = await Tool.QemuImgOkAsync(dir.Path, "map", "--output", "json", "top.qcow2");
        var actual = await Tool.JobctlAsync(dir.Path, "img", "map", "--output", "json", "top.qcow2");

        Assert.AreEqual(0, actual.ExitCode, actual.ToString());
        CollectionAssert.AreEqual(Logical(expected), Logical(actual.StdOut), $"qemu-img:\n{expected}\njobctl:\n{actual.StdOut}");
    }

    [TestMethod]
    public async Task Json_map_of_compressed_and_raw_backed_images_matches_qemu_img()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        await Tool.QemuImgOkAsync(dir.Path, "convert", "-c", "-O", "qcow2", "top.qcow2", "comp.qcow2");
        await QemuImages.MakeRawAsync(dir, "rb.raw", "4M");
        // The overlay is larger than its raw backing file: past 4M nothing lies below.
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-b", "rb.raw", "-F", "raw", "ovr.qcow2", "6M");
        await Tool.QemuIoOkAsync(dir.Path, "ovr.qcow2", "qcow2", "write -P 8 3M 64k", "write -z 5M 64k");

        foreach (var image in new[] { "comp.qcow2", "ovr.qcow2" })
        {
            var expected = await Tool.QemuImgOkAsync(dir.Path, "map", "--output", "json", image);
            var actual = await Tool.JobctlAsync(dir.Path, "img", "map", "--output", "json", image);
            Assert.AreEqual(0, actual.ExitCode, actual.ToString());
            CollectionAssert.AreEqual(Logical(expected), Logical(actual.StdOut), $"{image}\nqemu-img:\n{expected}\njobctl:\n{actual.StdOut}");
        }
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
