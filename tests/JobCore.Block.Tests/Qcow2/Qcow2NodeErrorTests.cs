using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>I/O errors of the file below (injected with blkdebug) reach the caller with their errno and leave the image consistent.</summary>
[TestClass]
public sealed class Qcow2NodeErrorTests
{
    [TestMethod]
    [DataRow(BlockIOException.ENOSPC)]
    [DataRow(BlockIOException.EIO)]
    public async Task A_failed_allocating_write_reports_the_errno_and_leaks_nothing(int errno)
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("e.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 4 << 20, ClusterSize = 4096 });
        byte[] expected = new byte[4 << 20];
        await using (var file = await FileNode.OpenAsync("file", image, readOnly: false))
        {
            var rule = new BlkdebugInjectErrorOptions(BlkdebugEvent.WriteAio) { Errno = errno, Once = true };
            var debug = BlkdebugNode.Create("dbg", file, [rule], readOnly: false);
            await using var node = await Qcow2Node.OpenAsync("qcow2", debug, readOnly: false);
            byte[] data = new byte[100_000];
            new Random(errno).NextBytes(data);
            var e = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await node.WriteAsync(5000, data));
            Assert.AreEqual(errno, e.Errno);
            Assert.AreEqual(errno == BlockIOException.ENOSPC, BlockIOException.IsNoSpaceError(e));

            // The rule fired once; the retry (what the enospc/stop policies do on resume) succeeds.
            await node.WriteAsync(5000, data);
            data.CopyTo(expected, 5000);
            byte[] back = new byte[data.Length];
            await node.ReadAsync(5000, back);
            CollectionAssert.AreEqual(data, back);
        }

        await ImageData.AssertCleanAndEqualAsync(image, expected, scratch);
    }
}
