using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Graph;

namespace JobCore.Block.Tests.Nodes;

[TestClass]
public sealed class BlkdebugNodeTests
{
    private static BlkdebugNode Over(MemoryNode image, params BlkdebugInjectErrorOptions[] rules) =>
        BlkdebugNode.Create("dbg", image, rules, readOnly: false);

    private static async Task<BlockIOException> FailsAsync(Func<ValueTask> request)
    {
        try
        {
            await request();
        }
        catch (BlockIOException e)
        {
            return e;
        }

        Assert.Fail("the request did not fail");
        return null!;
    }

    [TestMethod]
    public async Task Read_aio_injects_EIO_by_default_and_keeps_failing()
    {
        var image = new MemoryNode("img", 8192);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio));
        var buffer = new byte[512];
        var error = await FailsAsync(() => node.ReadAsync(0, buffer));
        Assert.AreEqual(5, error.Errno);
        Assert.AreEqual("Input/output error", error.Message);
        await FailsAsync(() => node.ReadAsync(4096, buffer));
        Assert.AreEqual(0, image.Reads, "a failed request never reaches the image");
        Assert.AreEqual("blkdebug", node.DriverName);
        Assert.AreSame(image, node.File);
        Assert.AreEqual(8192L, node.Size);
    }

    [TestMethod]
    public async Task Once_fails_one_request_then_the_rule_is_gone()
    {
        var image = new MemoryNode("img", 8192);
        image.Fill(0, 512, 0x5A);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio) { Once = true });
        var buffer = new byte[512];
        await FailsAsync(() => node.ReadAsync(0, buffer));
        Assert.AreEqual(0, node.Rules.Count);
        await node.ReadAsync(0, buffer);
        Assert.AreEqual(0x5A, buffer[0]);
    }

    [TestMethod]
    public async Task Sector_matches_only_requests_covering_it()
    {
        var image = new MemoryNode("img", 64 * 1024);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.WriteAio) { Sector = 10, Errno = 28 });
        await node.WriteAsync(0, new byte[10 * 512]);           // sectors 0..9
        await node.WriteAsync(11 * 512, new byte[4096]);        // sectors 11..18
        var error = await FailsAsync(() => node.WriteAsync(9 * 512 + 100, new byte[600])); // covers byte 5120
        Assert.IsTrue(error.IsNoSpace);
        Assert.AreEqual("No space left on device", error.Message);
        await FailsAsync(() => node.WriteZeroesAsync(4096, 8192, mayUnmap: false));
        await node.FlushAsync(); // a flush covers no sector, so a sector rule never matches it
        Assert.AreEqual(1, image.Flushes);
        Assert.AreEqual(2, image.Writes);
    }

    [TestMethod]
    public async Task Flush_to_disk_fails_flushes()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.FlushToDisk) { Errno = 28, Once = true });
        var error = await FailsAsync(() => node.FlushAsync());
        Assert.AreEqual(BlockIOException.ENOSPC, error.Errno);
        await node.FlushAsync();
        Assert.AreEqual(1, image.Flushes);
    }

    [TestMethod]
    public async Task Iotype_restricts_the_armed_rule_to_one_kind_of_request()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio) { IOType = BlkdebugIOType.Write });
        await node.WriteAsync(0, new byte[512]);   // not armed yet: no read happened
        await node.ReadAsync(0, new byte[512]);    // arms the rule; reads are not its iotype
        await FailsAsync(() => node.WriteAsync(0, new byte[512]));
        await node.WriteZeroesAsync(0, 512, mayUnmap: false); // write-zeroes is another iotype
    }

    [TestMethod]
    public async Task An_armed_rule_without_iotype_fails_every_kind_until_rearmed()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio));
        await node.WriteAsync(0, new byte[512]);
        await FailsAsync(() => node.ReadAsync(0, new byte[512]));
        // write_aio has no rules, so it leaves the read rule armed, as QEMU does.
        await FailsAsync(() => node.WriteAsync(0, new byte[512]));
        await FailsAsync(() => node.FlushAsync());
        await FailsAsync(() => node.DiscardAsync(0, 512));
    }

    [TestMethod]
    public async Task Immediately_fails_synchronously_otherwise_after_a_yield()
    {
        var image = new MemoryNode("img", 4096);
        var now = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio) { Immediately = true });
        ValueTask immediate = now.ReadAsync(0, new byte[512]);
        Assert.IsTrue(immediate.IsFaulted);
        await FailsAsync(() => immediate);

        var later = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio));
        ValueTask deferred = later.ReadAsync(0, new byte[512]);
        Assert.IsFalse(deferred.IsCompleted);
        await FailsAsync(() => deferred);
    }

    [TestMethod]
    public async Task Errno_zero_and_foreign_states_inject_nothing()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image,
            new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio) { Errno = 0 },
            new BlkdebugInjectErrorOptions(BlkdebugEvent.WriteAio) { State = 2 });
        await node.ReadAsync(0, new byte[512]);
        await node.WriteAsync(0, new byte[512]);
        Assert.AreEqual(1, image.Writes);
    }

    [TestMethod]
    public async Task Suspended_injection_lets_requests_through_and_does_not_arm()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image, new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio) { Once = true });
        using (node.SuspendInjection())
        {
            await node.ReadAsync(0, new byte[512]);
        }

        Assert.AreEqual(1, node.Rules.Count);
        await FailsAsync(() => node.ReadAsync(0, new byte[512]));
    }

    [TestMethod]
    public async Task Explicit_event_arms_rules_and_a_new_event_with_rules_replaces_them()
    {
        var image = new MemoryNode("img", 4096);
        var node = Over(image,
            new BlkdebugInjectErrorOptions(BlkdebugEvent.FlushToDisk) { IOType = BlkdebugIOType.Discard },
            new BlkdebugInjectErrorOptions(BlkdebugEvent.WriteAio) { IOType = BlkdebugIOType.Flush, Errno = 28 });
        await node.DiscardAsync(0, 512);
        node.RaiseEvent(BlkdebugEvent.FlushToDisk);
        await FailsAsync(() => node.DiscardAsync(0, 512));
        await node.WriteAsync(0, new byte[512]); // arms the write rule, disarms the flush rule
        await node.DiscardAsync(0, 512);
        await node.FlushAsync(); // flush_to_disk re-arms its own rule, which only fails discards
        var error = await FailsAsync(() => node.DiscardAsync(0, 512));
        Assert.AreEqual(5, error.Errno);
    }
}
