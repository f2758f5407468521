using JobCore.Block.Nodes;
using JobCore.Block.Tests.Qcow2;

namespace JobCore.Block.Tests.Nodes;

[TestClass]
public sealed class FileNodeTests
{
    [TestMethod]
    public async Task Missing_file_fails_with_enoent_and_qemus_message()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("missing.img");
        var e = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await FileNode.OpenAsync("f", path, readOnly: true));
        Assert.AreEqual(BlockIOException.ENOENT, e.Errno);
        Assert.AreEqual($"Could not open '{path}': No such file or directory", e.Message);
    }

    [TestMethod]
    public async Task Positional_writes_read_back_and_grow_the_file()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("a.img");
        await File.WriteAllBytesAsync(path, new byte[4096]);
        await using var node = await FileNode.OpenAsync("f", path, readOnly: false);
        Assert.AreEqual("file", node.DriverName);
        Assert.AreEqual(path, node.Filename);
        Assert.AreEqual(4096, node.Size);
        byte[] data = Enumerable.Range(0, 10000).Select(i => (byte)(i * 7)).ToArray();
        await node.WriteAsync(1000, data);
        Assert.AreEqual(11000, node.Size);
        byte[] back = new byte[10000];
        await node.ReadAsync(1000, back);
        CollectionAssert.AreEqual(data, back);
        await node.FlushAsync();
        Assert.AreEqual(11000, new FileInfo(path).Length);
        await Assert.ThrowsExactlyAsync<ArgumentOutOfRangeException>(async () => await node.ReadAsync(10999, new byte[2]));
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public async Task Write_zeroes_clears_the_range_and_grows_past_the_end(bool mayUnmap)
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("z.img");
        byte[] ones = new byte[1 << 20];
        ones.AsSpan().Fill(1);
        await File.WriteAllBytesAsync(path, ones);
        await using var node = await FileNode.OpenAsync("f", path, readOnly: false);
        await node.WriteZeroesAsync(65536, 131072, mayUnmap);
        await node.WriteZeroesAsync((1 << 20) - 100, 1000, mayUnmap);
        Assert.AreEqual((1 << 20) + 900, node.Size);
        byte[] all = new byte[node.Size];
        await node.ReadAsync(0, all);
        Assert.IsTrue(all.AsSpan(0, 65536).IndexOfAnyExcept((byte)1) < 0);
        Assert.IsTrue(all.AsSpan(65536, 131072).IndexOfAnyExcept((byte)0) < 0);
        Assert.IsTrue(all.AsSpan(196608, (1 << 20) - 100 - 196608).IndexOfAnyExcept((byte)1) < 0);
        Assert.IsTrue(all.AsSpan((1 << 20) - 100).IndexOfAnyExcept((byte)0) < 0);
    }

    [TestMethod]
    public async Task Block_status_reports_holes_as_zero_and_data_as_data()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("s.img");
        await using (var fs = File.Create(path))
        {
            fs.SetLength(4 << 20);
        }

        await using var node = await FileNode.OpenAsync("f", path, readOnly: false);
        byte[] data = new byte[1 << 20];
        data.AsSpan().Fill(3);
        await node.WriteAsync(1 << 20, data);
        BlockStatus hole = await node.GetBlockStatusAsync(0, 4 << 20);
        Assert.AreEqual(new BlockStatus(0, 1 << 20, true, true, false), hole);
        BlockStatus written = await node.GetBlockStatusAsync(1 << 20, 3 << 20);
        Assert.AreEqual(new BlockStatus(1 << 20, 1 << 20, true, false, true), written);

        await node.DiscardAsync(1 << 20, 1 << 20);
        byte[] back = new byte[1 << 20];
        await node.ReadAsync(1 << 20, back);
        Assert.IsTrue(back.All(b => b == 0), "a punched hole reads as zeroes");
        Assert.IsTrue((await node.GetBlockStatusAsync(1 << 20, 1 << 20)).Zero);
    }

    [TestMethod]
    public async Task Read_only_node_refuses_changes_with_eperm()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("ro.img");
        await File.WriteAllBytesAsync(path, new byte[4096]);
        await using var node = await FileNode.OpenAsync("f", path, readOnly: true);
        Assert.IsTrue(node.ReadOnly);
        var e = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.WriteAsync(0, new byte[1]));
        Assert.AreEqual(BlockIOException.EPERM, e.Errno);
        await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.WriteZeroesAsync(0, 1, true));
        await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.TruncateAsync(8192));
    }

    [TestMethod]
    public async Task Truncate_grows_with_a_hole_and_concurrent_requests_do_not_interfere()
    {
        using var scratch = new ScratchFolder();
        string path = scratch.File("t.img");
        await File.WriteAllBytesAsync(path, []);
        await using var node = await FileNode.OpenAsync("f", path, readOnly: false);
        await node.TruncateAsync(8 << 20);
        Assert.AreEqual(8 << 20, node.Size);
        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            byte[] chunk = new byte[512 * 1024];
            chunk.AsSpan().Fill((byte)(i + 1));
            await node.WriteAsync(i * (long)chunk.Length, chunk);
        })));
        byte[] all = new byte[8 << 20];
        await node.ReadAsync(0, all);
        for (int i = 0; i < 16; i++)
        {
            Assert.IsTrue(all.AsSpan(i * 512 * 1024, 512 * 1024).IndexOfAnyExcept((byte)(i + 1)) < 0, $"chunk {i}");
        }
    }
}
