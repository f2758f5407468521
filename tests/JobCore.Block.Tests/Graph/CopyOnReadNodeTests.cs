using JobCore.Block.Graph;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed class CopyOnReadNodeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestMethod]
    public async Task Reads_copy_from_above_base_into_the_child()
    {
        var @base = new MemoryNode("base", 16384);
        @base.Fill(0, 16384, 0x11);
        var mid = new MemoryNode("mid", 16384, @base);
        mid.Fill(4096, 4096, 0x22);
        var top = new MemoryNode("top", 16384, mid);
        var filter = new CopyOnReadNode("cor", top, @base);
        Assert.AreEqual("copy-on-read", filter.DriverName);
        Assert.AreSame(@base, filter.Base);

        var buffer = new byte[8192];
        await filter.ReadAsync(0, buffer);
        Assert.AreEqual(0x11, buffer[0]);
        Assert.AreEqual(0x22, buffer[4096]);
        Assert.IsFalse(top.IsAllocated(0), "base data stays in base");
        Assert.IsTrue(top.IsAllocated(4096), "mid data was copied up");

        Assert.AreEqual(0L, await filter.PrefetchAsync(0, 16384), "nothing left to copy");
    }

    [TestMethod]
    public async Task A_write_overlapping_a_copy_waits_for_it_and_wins()
    {
        var @base = new MemoryNode("base", 8192);
        @base.Fill(0, 8192, 0x11);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var top = new MemoryNode("top", 8192, @base) { WriteGate = gate.Task };
        var filter = new CopyOnReadNode("cor", top, null);

        Task<long> copy = filter.PrefetchAsync(0, 8192).AsTask();
        Assert.AreEqual(1, top.Writes, "the copy is writing (held at the gate)");
        Task guest = filter.WriteAsync(0, new byte[] { 0x77 }).AsTask();
        Task other = filter.WriteAsync(0, new byte[] { 0x66 }).AsTask(); // writes do not exclude each other...
        Assert.AreEqual(1, top.Writes, "...but both wait for the overlapping copy");
        Assert.IsFalse(guest.IsCompleted);

        gate.SetResult();
        Assert.AreEqual(8192L, await copy.WaitAsync(Timeout));
        await Task.WhenAll(guest, other).WaitAsync(Timeout);
        var one = new byte[1];
        await top.ReadAsync(0, one);
        Assert.IsTrue(one[0] is 0x77 or 0x66, "a guest write is never overwritten by the older copy");
        await top.ReadAsync(100, one);
        Assert.AreEqual(0x11, one[0]);
    }

    [TestMethod]
    public async Task A_write_elsewhere_does_not_wait_for_a_copy()
    {
        var @base = new MemoryNode("base", 8192);
        @base.Fill(0, 8192, 0x11);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var top = new MemoryNode("top", 8192, @base) { WriteGate = gate.Task };
        var filter = new CopyOnReadNode("cor", top, null);
        Task<long> copy = filter.PrefetchAsync(0, 4096).AsTask();
        Task guest = filter.WriteAsync(4096, new byte[512]).AsTask();
        Assert.AreEqual(2, top.Writes, "the disjoint write reached the child while the copy is held");
        gate.SetResult();
        await Task.WhenAll(copy, guest).WaitAsync(Timeout);
    }
}
