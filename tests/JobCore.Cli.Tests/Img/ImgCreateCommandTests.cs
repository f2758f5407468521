using System.Text.Json;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed class ImgCreateCommandTests
{
    private static async Task<JsonElement> QemuInfoAsync(TempDirectory dir, string image)
    {
        using var doc = JsonDocument.Parse(await Tool.QemuImgOkAsync(dir.Path, "info", "--output", "json", image));
        return doc.RootElement.Clone();
    }

    [TestMethod]
    [DataRow("64M", null, 67108864L, 65536)]
    [DataRow("64M", "cluster_size=512", 67108864L, 512)]
    [DataRow("512K", "cluster_size=2M", 524288L, 2097152)]
    [DataRow("1000000", "cluster_size=4096", 1000448L, 4096)]
    public async Task Qcow2_images_pass_qemu_img_check_and_info(string size, string? options, long virtualSize, int clusterSize)
    {
        using var dir = new TempDirectory();
        string[] args = options is null ? ["img", "create", "-f", "qcow2", "x.qcow2", size] : ["img", "create", "-f", "qcow2", "-o", options, "x.qcow2", size];

        var r = await Tool.JobctlAsync(dir.Path, args);

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        StringAssert.StartsWith(r.StdOut, $"Formatting 'x.qcow2', fmt=qcow2 cluster_size={clusterSize} ");
        await Tool.AssertQemuCheckCleanAsync(dir.Path, "x.qcow2");
        var info = await QemuInfoAsync(dir, "x.qcow2");
        Assert.AreEqual(virtualSize, info.GetProperty("virtual-size").GetInt64());
        Assert.AreEqual(clusterSize, info.GetProperty("cluster-size").GetInt32());
        Assert.AreEqual("1.1", info.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString());
    }

    [TestMethod]
    public async Task Qcow2_with_backing_takes_its_size_and_reads_through()
    {
        using var dir = new TempDirectory();
        await QemuImages.MakeChainAsync(dir);
        Directory.CreateDirectory(dir.File("sub"));

        var r = await Tool.JobctlAsync(dir.Path, "img", "create", "-f", "qcow2", "-b", "../top.qcow2", "-F", "qcow2", "sub/over.qcow2");

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        Assert.AreEqual(
            "Formatting 'sub/over.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=67108864 "
            + "backing_file=../top.qcow2 backing_fmt=qcow2 lazy_refcounts=off refcount_bits=16\n", r.StdOut);
        await Tool.AssertQemuCheckCleanAsync(dir.Path, "sub/over.qcow2");
        var info = await QemuInfoAsync(dir, "sub/over.qcow2");
        Assert.AreEqual("../top.qcow2", info.GetProperty("backing-filename").GetString());
        Assert.AreEqual("qcow2", info.GetProperty("backing-filename-format").GetString());
        await Tool.QemuImgOkAsync(dir.Path, "compare", "sub/over.qcow2", "top.qcow2");
    }

    [TestMethod]
    public async Task Raw_images_have_the_size_and_qemu_format_line()
    {
        using var dir = new TempDirectory();

        var r = await Tool.JobctlAsync(dir.Path, "img", "create", "-f", "raw", "r.img", "1.5k");

        Assert.AreEqual(0, r.ExitCode, r.ToString());
        Assert.AreEqual("Formatting 'r.img', fmt=raw size=1536\n", r.StdOut);
        Assert.AreEqual(1536, new FileInfo(dir.File("r.img")).Length);
        Assert.AreEqual("raw", (await QemuInfoAsync(dir, "r.img")).GetProperty("format").GetString());
    }

    [TestMethod]
    [DataRow(new[] { "-f", "qcow2", "x.qcow2", "12Q" }, "jobctl: Invalid image size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.")]
    [DataRow(new[] { "-f", "qcow2", "x.qcow2" }, "jobctl: x.qcow2: Image creation needs a size parameter")]
    [DataRow(new[] { "-f", "qcow2", "-o", "cluster_size=1000", "x.qcow2", "1M" }, "jobctl: Cluster size must be a power of two between 512 and 2048k")]
    [DataRow(new[] { "-f", "qcow2", "-b", "base.qcow2", "x.qcow2" }, "jobctl: x.qcow2: Backing file specified without backing format")]
    [DataRow(new[] { "-f", "qcow2", "-b", "nobase.qcow2", "-F", "qcow2", "x.qcow2" }, "jobctl: x.qcow2: Could not open 'nobase.qcow2': No such file or directory. Could not open backing image.")]
    [DataRow(new[] { "-f", "raw", "-b", "base.qcow2", "-F", "qcow2", "x.qcow2" }, "jobctl: x.qcow2: Backing file not supported for file format 'raw'")]
    [DataRow(new[] { "-f", "vmdk", "x.qcow2", "1M" }, "jobctl: Unknown file format 'vmdk' (jobctl creates raw and qcow2 images)")]
    public async Task Bad_requests_fail_with_one_line_and_create_nothing(string[] args, string message)
    {
        using var dir = new TempDirectory();

        var r = await Tool.JobctlAsync(dir.Path, ["img", "create", .. args]);

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual(message + "\n", r.StdErr);
        Assert.IsFalse(File.Exists(dir.File("x.qcow2")));
    }
}
