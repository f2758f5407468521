using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;
using JobCore.Block.Tests.Qcow2;

namespace JobCore.Block.Tests.Nodes;

[TestClass]
public sealed class RawNodeTests
{
    [TestMethod]
    public async Task Raw_node_passes_guest_io_to_its_file_and_qemu_reads_the_same()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("r.raw");
        await QemuImg.ImgOkAsync("create", "-f", "raw", path, "2M");
        await using var file = await FileNode.OpenAsync("file", path, readOnly: false);
        await using var raw = await RawNode.OpenAsync("raw", file, readOnly: false);
        Assert.AreEqual("raw", raw.DriverName);
        Assert.AreSame(file, raw.File);
        Assert.AreEqual(2L << 20, raw.Size);
        byte[] data = new byte[70000];
        data.AsSpan().Fill(0x5c);
        await raw.WriteAsync(123456, data);
        await raw.WriteZeroesAsync(130000, 1000, mayUnmap: true);
        await raw.FlushAsync();
        await QemuImg.IoCommandsAsync(path, "raw", "read -P 0x5c 123456 6544", "read -P 0 130000 1000", "read -P 0x5c 131000 62456", "read -P 0 0 123456");
        BlockStatus status = await raw.GetBlockStatusAsync(0, raw.Size);
        Assert.IsTrue(status.Allocated);
    }

    [TestMethod]
    public async Task Raw_node_refuses_requests_past_its_end_and_writes_when_read_only()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("r.raw");
        await File.WriteAllBytesAsync(path, new byte[4096]);
        await using var file = await FileNode.OpenAsync("file", path, readOnly: true);
        await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await RawNode.OpenAsync("raw", file, readOnly: false));
        await using var raw = await RawNode.OpenAsync("raw", file, readOnly: true);
        await Assert.ThrowsExactlyAsync<ArgumentOutOfRangeException>(async () => await raw.ReadAsync(4000, new byte[100]));
        var e = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await raw.WriteAsync(0, new byte[1]));
        Assert.AreEqual(BlockIOException.EPERM, e.Errno);
    }
}
