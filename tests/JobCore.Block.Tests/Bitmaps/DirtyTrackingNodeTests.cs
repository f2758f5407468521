using JobCore.Block.Bitmaps;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Graph;

namespace JobCore.Block.Tests.Bitmaps;

[TestClass]
public sealed class DirtyTrackingNodeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestMethod]
    public async Task Writes_mark_attached_bitmaps_and_reads_pass_through()
    {
        var child = new MemoryNode("src", 1 << 20);
        var filter = new DirtyTrackingNode("top", child);
        var bitmap = new DirtyBitmap(child.Size, 4096);
        filter.AttachBitmap(bitmap);

        await filter.WriteAsync(5000, new byte[] { 1, 2, 3 });
        await filter.WriteZeroesAsync(65536, 8192, mayUnmap: true);
        await filter.DiscardAsync(200_000, 512);
        CollectionAssert.AreEqual(
            new[] { new DirtyRun(4096, 4096), new DirtyRun(65536, 8192), new DirtyRun(196_608, 4096) },
            bitmap.GetDirtyRuns().ToArray());

        var read = new byte[3];
        await filter.ReadAsync(5000, read);
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, read);
        Assert.AreEqual(child.Size, filter.Size);

        Assert.IsTrue(filter.DetachBitmap(bitmap));
        bitmap.Clear();
        await filter.WriteAsync(0, new byte[512]);
        Assert.IsTrue(bitmap.IsEmpty);
        Assert.IsFalse(filter.DetachBitmap(bitmap));
    }

    [TestMethod]
    public async Task A_failed_write_still_marks_and_its_error_reaches_the_interceptor()
    {
        var child = new MemoryNode("src", 65536) { WriteError = new BlockIOException(BlockIOException.EIO) };
        var filter = new DirtyTrackingNode("top", child);
        var bitmap = new DirtyBitmap(child.Size, 512);
        filter.AttachBitmap(bitmap);
        Exception? seen = null;
        filter.Interceptor = async (_, writeToChild, _) =>
        {
            try
            {
                await writeToChild();
            }
            catch (BlockIOException e)
            {
                seen = e;
                throw;
            }
        };
        await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await filter.WriteAsync(1024, new byte[512]));
        Assert.IsTrue(bitmap.IsDirty(1024));
        Assert.IsInstanceOfType<BlockIOException>(seen);
        Assert.AreEqual(0, filter.WritesInFlight);
    }

    [TestMethod]
    public async Task The_interceptor_sees_a_private_copy_and_decides_when_the_child_is_written()
    {
        var child = new MemoryNode("src", 65536);
        var filter = new DirtyTrackingNode("top", child);
        var bitmap = new DirtyBitmap(child.Size, 512);
        filter.AttachBitmap(bitmap);
        var seen = new List<GuestWrite>();
        var data = new byte[] { 7, 7, 7, 7 };
        filter.Interceptor = async (write, writeToChild, _) =>
        {
            Assert.IsFalse(child.IsAllocated(write.Offset), "nothing reached the child before the interceptor let it");
            Assert.IsFalse(bitmap.IsDirty(write.Offset), "nor is it marked yet");
            data[0] = 99; // the writer's buffer changes; the copy must not
            await writeToChild();
            Assert.IsTrue(bitmap.IsDirty(write.Offset), "marked once written");
            seen.Add(write);
        };
        await filter.WriteAsync(512, data);
        await filter.WriteZeroesAsync(4096, 512, mayUnmap: true);
        await filter.DiscardAsync(8192, 512);
        Assert.AreEqual(3, seen.Count);
        Assert.AreEqual(GuestWriteKind.Write, seen[0].Kind);
        Assert.AreEqual(7, seen[0].Data.Span[0]);
        Assert.AreEqual(512L, seen[0].Offset);
        Assert.AreEqual(4L, seen[0].Length);
        Assert.IsTrue(seen[0].Ordered);
        Assert.AreEqual(new GuestWrite(GuestWriteKind.WriteZeroes, 4096, 512, default, true), seen[1]);
        Assert.AreEqual(new GuestWrite(GuestWriteKind.Discard, 8192, 512, default, false), seen[2]);
        Assert.AreEqual((byte)7, await ReadByteAsync(child, 512), "the child got the data as written, not the changed buffer");
    }

    [TestMethod]
    public async Task A_failing_interceptor_fails_the_writers_request()
    {
        var child = new MemoryNode("src", 65536);
        var filter = new DirtyTrackingNode("top", child)
        {
            Interceptor = async (_, writeToChild, _) =>
            {
                await writeToChild();
                throw new BlockIOException(BlockIOException.ENOSPC);
            },
        };
        var error = await Assert.ThrowsExactlyAsync<BlockIOException>(async () => await filter.WriteAsync(0, new byte[512]));
        Assert.IsTrue(error.IsNoSpace);
        Assert.IsTrue(child.IsAllocated(0), "the source write itself landed");
        Assert.AreEqual(0, filter.WritesInFlight);
    }

    [TestMethod]
    public async Task Writes_beside_one_that_entered_without_the_interceptor_are_not_ordered()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var child = new MemoryNode("src", 65536) { WriteGate = gate.Task };
        var filter = new DirtyTrackingNode("top", child);
        Task early = filter.WriteAsync(0, new byte[512]).AsTask();
        var seen = new List<bool>();
        filter.Interceptor = (write, writeToChild, _) =>
        {
            lock (seen)
            {
                seen.Add(write.Ordered);
            }

            return writeToChild();
        };

        Task beside = filter.WriteAsync(1024, new byte[512]).AsTask();
        gate.SetResult();
        await Task.WhenAll(early, beside).WaitAsync(Timeout);
        await filter.WriteAsync(2048, new byte[512]).AsTask().WaitAsync(Timeout);
        CollectionAssert.AreEqual(new[] { false, true }, seen, "the early write passed unseen; only the one beside it is unordered");
    }

    private static async Task<byte> ReadByteAsync(BlockNode node, long offset)
    {
        var buffer = new byte[1];
        await node.ReadAsync(offset, buffer);
        return buffer[0];
    }

    [TestMethod]
    public async Task Drain_waits_for_writes_in_flight_and_holds_new_ones()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var child = new MemoryNode("src", 65536) { WriteGate = gate.Task };
        var filter = new DirtyTrackingNode("top", child);

        Task first = filter.WriteAsync(0, new byte[512]).AsTask();
        Assert.AreEqual(1, filter.WritesInFlight);
        Task<IAsyncDisposable> drain = filter.DrainAsync().AsTask();
        Assert.IsFalse(drain.IsCompleted, "a write is still in flight");

        gate.SetResult();
        await first.WaitAsync(Timeout);
        IAsyncDisposable drained = await drain.WaitAsync(Timeout);

        Task second = filter.WriteAsync(512, new byte[512]).AsTask();
        Assert.IsFalse(second.IsCompleted, "new writes wait while drained");
        Assert.IsFalse(child.IsAllocated(512));
        await drained.DisposeAsync();
        await second.WaitAsync(Timeout);
        Assert.IsTrue(child.IsAllocated(512));
    }

    [TestMethod]
    public async Task A_cancelled_drain_releases_its_hold()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var child = new MemoryNode("src", 65536) { WriteGate = gate.Task };
        var filter = new DirtyTrackingNode("top", child);
        Task first = filter.WriteAsync(0, new byte[512]).AsTask();
        using var cts = new CancellationTokenSource();
        Task<IAsyncDisposable> drain = filter.DrainAsync(cts.Token).AsTask();
        cts.Cancel();
        await Assert.ThrowsAsync<OperationCanceledException>(() => drain);
        gate.SetResult();
        await first.WaitAsync(Timeout);
        await filter.WriteAsync(512, new byte[512]).AsTask().WaitAsync(Timeout);
    }

    [TestMethod]
    public async Task Drains_hold_off_many_concurrent_writers()
    {
        var child = new MemoryNode("src", 1 << 20);
        var filter = new DirtyTrackingNode("top", child);
        var bitmap = new DirtyBitmap(child.Size, 4096);
        filter.AttachBitmap(bitmap);
        using var stop = new CancellationTokenSource();
        using var progress = new SemaphoreSlim(0);
        Task[] writers = [.. Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            var data = new byte[512];
            while (!stop.IsCancellationRequested)
            {
                await filter.WriteAsync(random.Next(2048) * 512L, data);
                progress.Release();
                await Task.Yield(); // the in-memory child completes synchronously; do not hog a pool thread
            }
        }))];

        for (int round = 0; round < 20; round++)
        {
            // Let the writers make progress between drains.
            Assert.IsTrue(await progress.WaitAsync(Timeout), "the writers run");
            await using (await filter.DrainAsync().AsTask().WaitAsync(Timeout))
            {
                Assert.AreEqual(0, filter.WritesInFlight);
                int before = Volatile.Read(ref child.Writes);
                bitmap.Clear();
                await Task.Yield();
                Assert.AreEqual(before, Volatile.Read(ref child.Writes), "no write reaches the child while drained");
                Assert.IsTrue(bitmap.IsEmpty, "nothing is marked while drained");
            }
        }

        stop.Cancel();
        await Task.WhenAll(writers).WaitAsync(Timeout);
        Assert.IsTrue(child.Writes >= 20, $"{child.Writes} writes");
    }
}
