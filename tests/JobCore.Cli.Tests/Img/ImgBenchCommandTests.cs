using System.Security.Cryptography;
using System.Text.RegularExpressions;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

[TestClass]
public sealed partial class ImgBenchCommandTests
{
    [GeneratedRegex(@"^Run completed in \d+\.\d{3} seconds\.$")]
    private static partial Regex Footer();

    /// <summary>qemu-img's error lines without the program prefix, a wrapped message joined into one line as jobctl prints it.</summary>
    private static string ErrorText(string stderr, string program) =>
        stderr.TrimEnd('\n').Replace("\n" + program + ": ", " ", StringComparison.Ordinal).Replace(program + ": ", "", StringComparison.Ordinal);

    /// <summary>Runs <c>bench ARGS f.qcow2</c> with qemu-img and jobctl on a fresh empty 4M qcow2; both must exit 1.</summary>
    private static async Task<(ToolResult Expected, ToolResult Actual)> BothFailAsync(TempDirectory dir, string[] args)
    {
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "f.qcow2", "4M");
        var expected = await Tool.QemuImgAsync(dir.Path, ["bench", .. args, "f.qcow2"]);
        var actual = await Tool.JobctlAsync(dir.Path, ["img", "bench", .. args, "f.qcow2"]);
        Assert.AreEqual(1, expected.ExitCode, expected.ToString());
        Assert.AreEqual(1, actual.ExitCode, actual.ToString());
        return (expected, actual);
    }

    [TestMethod]
    [DataRow("-c", "x")]
    [DataRow("-c", "-1")]
    [DataRow("-d", "-1")]
    [DataRow("-s", "x")]
    [DataRow("-s", "2G")]
    [DataRow("-S", "x")]
    [DataRow("-o", "-1")]
    [DataRow("--pattern", "300")]
    [DataRow("-t", "bogus")]
    [DataRow("-n")]
    public async Task Bad_arguments_fail_with_qemu_imgs_message(params string[] args)
    {
        using var dir = new TempDirectory();

        var (expected, actual) = await BothFailAsync(dir, args);

        Assert.AreEqual("", actual.StdOut);
        Assert.AreEqual(ErrorText(expected.StdErr, "qemu-img"), ErrorText(actual.StdErr, "jobctl"));
    }

    [TestMethod]
    [DataRow("-c", "10", "-s", "1M", "-o", "4M")]
    [DataRow("-c", "3000", "-s", "1.5k")]
    public async Task A_request_past_the_end_fails_after_the_header_like_qemu_img(params string[] args)
    {
        using var dir = new TempDirectory();

        var (expected, actual) = await BothFailAsync(dir, args);

        Assert.AreEqual(expected.StdOut, actual.StdOut);
        Assert.AreEqual("Failed request: Input/output error", ErrorText(actual.StdErr, "jobctl"));
    }

    [TestMethod]
    [DataRow("-c", "48", "-s", "64k", "-S", "192k", "-o", "64k", "-d", "4", "--pattern", "0x41")]
    [DataRow("-c", "10", "-s", "1M", "-o", "3M", "-d", "16", "--pattern", "0x61")]
    [DataRow("-c", "300", "-s", "4k", "-S", "12k", "--pattern", "7")]
    public async Task A_write_run_writes_what_qemu_img_writes_and_the_image_checks_clean(params string[] args)
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "q.qcow2", "4M");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "j.qcow2", "4M");

        var expected = await Tool.QemuImgAsync(dir.Path, ["bench", "-w", .. args, "q.qcow2"]);
        var actual = await Tool.JobctlAsync(dir.Path, ["img", "bench", "-w", "-f", "qcow2", "-t", "writeback", .. args, "j.qcow2"]);

        Assert.AreEqual(0, expected.ExitCode, expected.ToString());
        Assert.AreEqual(0, actual.ExitCode, actual.ToString());
        var lines = actual.StdOut.Split('\n');
        Assert.AreEqual(expected.StdOut.Split('\n')[0], lines[0]);
        Assert.MatchesRegex(Footer(), lines[1]);
        Assert.AreEqual("", actual.StdErr);
        await Tool.AssertQemuCheckCleanAsync(dir.Path, "j.qcow2");
        await Tool.QemuImgOkAsync(dir.Path, "compare", "q.qcow2", "j.qcow2");
        // Not vacuous: the pattern is in the image at the first request's offset.
        var pattern = args[Array.IndexOf(args, "--pattern") + 1];
        var offset = Array.IndexOf(args, "-o") is var o and >= 0 ? args[o + 1] : "0";
        await Tool.QemuIoOkAsync(dir.Path, "j.qcow2", "qcow2", $"read -P {pattern} {offset} 4k");
    }

    [TestMethod]
    [DataRow("qcow2")]
    [DataRow("raw")]
    public async Task A_read_run_prints_qemu_imgs_header_and_leaves_the_image_unchanged(string format)
    {
        using var dir = new TempDirectory();
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", format, "f.img", "8M");
        await Tool.QemuIoOkAsync(dir.Path, "f.img", format, "write -P 0x33 0 5M");
        var before = SHA256.HashData(await File.ReadAllBytesAsync(dir.File("f.img")));
        string[] args = ["-f", format, "-c", "500", "-s", "64k", "-d", "8"];

        var expected = await Tool.QemuImgAsync(dir.Path, ["bench", .. args, "f.img"]);
        var actual = await Tool.JobctlAsync(dir.Path, ["img", "bench", .. args, "f.img"]);

        Assert.AreEqual(0, actual.ExitCode, actual.ToString());
        var lines = actual.StdOut.Split('\n');
        Assert.AreEqual("Sending 500 read requests, 65536 bytes each, 8 in parallel (starting at offset 0, step size 65536)", lines[0]);
        Assert.AreEqual(expected.StdOut.Split('\n')[0], lines[0]);
        Assert.MatchesRegex(Footer(), lines[1]);
        CollectionAssert.AreEqual(before, SHA256.HashData(await File.ReadAllBytesAsync(dir.File("f.img"))));
    }

    [TestMethod]
    public async Task A_missing_file_is_an_error()
    {
        using var dir = new TempDirectory();

        var r = await Tool.JobctlAsync(dir.Path, "img", "bench", "-c", "1", "nofile");

        Assert.AreEqual(1, r.ExitCode, r.ToString());
        Assert.AreEqual("", r.StdOut);
        StringAssert.Contains(r.StdErr, "Could not open 'nofile': No such file or directory");
    }
}
