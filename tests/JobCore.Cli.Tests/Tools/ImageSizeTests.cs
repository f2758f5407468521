using JobCore.Block.Tools;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ImageSizeTests
{
    [TestMethod]
    [DataRow("0", 0L)]
    [DataRow("512", 512L)]
    [DataRow("1000b", 1000L)]
    [DataRow("512K", 524288L)]
    [DataRow("512k", 524288L)]
    [DataRow("64M", 67108864L)]
    [DataRow("1G", 1073741824L)]
    [DataRow("1.5k", 1536L)]
    [DataRow("2T", 2199023255552L)]
    public void Parse_accepts_qemu_sizes(string text, long expected) =>
        Assert.AreEqual(expected, ImageSize.Parse(text));

    [TestMethod]
    [DataRow("")]
    [DataRow("12Q")]
    [DataRow("-5")]
    [DataRow("M")]
    [DataRow("1.0001k")]
    [DataRow("abc")]
    public void Parse_refuses_garbage(string text)
    {
        var e = Assert.ThrowsExactly<ImageToolException>(() => ImageSize.Parse(text));
        StringAssert.StartsWith(e.Message, "Invalid image size specified.");
    }

    [TestMethod]
    public void Parse_refuses_sizes_beyond_int64() =>
        StringAssert.Contains(Assert.ThrowsExactly<ImageToolException>(() => ImageSize.Parse("100000000000000000000")).Message,
            "Must be between 0 and 9223372036854775807");

    [TestMethod]
    [DataRow(0L, "0 B")]
    [DataRow(4096L, "4 KiB")]
    [DataRow(1314816L, "1.25 MiB")]
    [DataRow(67108864L, "64 MiB")]
    [DataRow(1376256L, "1.31 MiB")]
    [DataRow(1073741824L, "1 GiB")]
    [DataRow(999L, "999 B")]
    [DataRow(1000L, "0.977 KiB")]
    [DataRow(1023L, "0.999 KiB")]
    public void ToHuman_matches_qemu_size_to_str(long bytes, string expected) =>
        Assert.AreEqual(expected, ImageSize.ToHuman(bytes));
}
