using JobCore.Block.Bitmaps;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed class BlockGraphConcurrencyTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [TestMethod]
    public async Task Parallel_adds_register_each_name_once()
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 4096));
        Task<BlockNode>[] adds = [.. Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
            await dir.Graph.AddAsync(BlockdevOptions.Parse(
                $$$"""{"driver":"raw","node-name":"n{{{i % 10}}}","read-only":true,"file":{"driver":"file","filename":{{{path}}}}}"""))))];
        int refused = 0;
        foreach (Task<BlockNode> add in adds)
        {
            try
            {
                await add.WaitAsync(Timeout);
            }
            catch (BlockGraphException e) when (e.Message.StartsWith("Duplicate nodes with node-name='n", StringComparison.Ordinal))
            {
                refused++;
            }
        }

        Assert.AreEqual(30, refused);
        Assert.AreEqual(20, dir.Graph.Nodes.Count, "10 raw nodes and their 10 file nodes; refused adds left nothing");
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => dir.Graph.RemoveAsync($"n{i}").AsTask())).WaitAsync(Timeout);
        Assert.AreEqual(0, dir.Graph.Nodes.Count);
    }

    [TestMethod]
    public async Task Racing_jobs_get_one_lease_per_node()
    {
        await using var dir = new GraphTestFolder();
        BlockNode node = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"file","node-name":"f","filename":{{{GraphTestFolder.Json(dir.Raw("a.raw", 4096))}}}}"""));
        using var start = new Barrier(8);
        BlockJobLease?[] leases = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait(Timeout);
            try
            {
                return dir.Graph.AcquireJobLease("stream", [node]);
            }
            catch (BlockGraphException)
            {
                return null;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))).WaitAsync(Timeout);
        Assert.AreEqual(1, leases.Count(l => l is not null));
    }

    [TestMethod]
    public async Task A_mirror_style_copy_under_a_concurrent_writer_converges_to_the_source()
    {
        await using var dir = new GraphTestFolder();
        const int size = 4 << 20;
        BlockNode src = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"raw","node-name":"src","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("src.raw", size, 0x5A))}}}}}"""));
        BlockNode dst = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"raw","node-name":"dst","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("dst.raw", size))}}}}}"""));
        BlockBackend guest = dir.Graph.AttachBackend("guest", src);
        await using BlockJobLease lease = dir.Graph.AcquireJobLease("mirror", [src], held: [dst]);

        var bitmap = new DirtyBitmap(src.Size, 64 * 1024);
        DirtyTrackingNode filter = await dir.Graph.InsertFilterAsync(src, (name, child) => new DirtyTrackingNode(name, child));
        filter.AttachBitmap(bitmap);
        bitmap.SetAll();

        using var stop = new CancellationTokenSource();
        var busy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int writes = 0;
        Task writer = Task.Run(async () =>
        {
            var random = new Random(7);
            var data = new byte[8192];
            while (!stop.IsCancellationRequested)
            {
                random.NextBytes(data);
                int length = random.Next(1, data.Length);
                await guest.WriteAsync(random.NextInt64(size - length), data.AsMemory(0, length));
                if (++writes == 300)
                {
                    busy.SetResult();
                }
            }
        });

        var buffer = new byte[1 << 20];
        async Task CopyDirtyAsync()
        {
            for (long from = 0; bitmap.TakeNextDirty(from, buffer.Length) is { } run; from = run.End % size)
            {
                await src.ReadAsync(run.Offset, buffer.AsMemory(0, (int)run.Length));
                await dst.WriteAsync(run.Offset, buffer.AsMemory(0, (int)run.Length));
            }
        }

        for (int pass = 0; pass < 3 || !busy.Task.IsCompleted; pass++)
        {
            await CopyDirtyAsync().WaitAsync(Timeout);
            if (pass >= 3)
            {
                await busy.Task.WaitAsync(Timeout);
            }
        }

        stop.Cancel();
        await writer.WaitAsync(Timeout);
        await using (await filter.DrainAsync())
        {
            await CopyDirtyAsync().WaitAsync(Timeout);
            Assert.IsTrue(bitmap.IsEmpty);
        }

        // Pivot: the target replaces the source for the guest; the filter goes away.
        await dir.Graph.ReplaceNodeAsync(src, dst);
        await dir.Graph.RemoveFilterAsync(filter);
        Assert.AreSame(dst, guest.Node);
        var a = new byte[size];
        var b = new byte[size];
        await src.ReadAsync(0, a);
        await dst.ReadAsync(0, b);
        Assert.IsTrue(writes >= 300, $"the writer ran during the copy ({writes} writes)");
        Assert.IsTrue(a.AsSpan().SequenceEqual(b), "the target equals the source after the final drained pass");
    }

    /// <summary>
    /// A guest request in flight when a filter is inserted (here: held inside an interceptor) finishes before the
    /// insertion does, and a request arriving meanwhile waits and then goes through the new filter (QEMU's drained
    /// section; without it the held write could land below the new filter unseen).
    /// </summary>
    [TestMethod]
    public async Task Inserting_a_filter_drains_the_backend_requests_in_flight_first()
    {
        await using var dir = new GraphTestFolder();
        BlockNode src = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"raw","node-name":"src","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("src.raw", 65536))}}}}}"""));
        BlockBackend guest = dir.Graph.AttachBackend("guest", src);
        DirtyTrackingNode lower = await dir.Graph.InsertFilterAsync(src, (name, child) => new DirtyTrackingNode(name, child));
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lower.Interceptor = async (write, writeToChild, cancellationToken) =>
        {
            if (write.Offset == 0)
            {
                entered.SetResult();
                await release.Task.WaitAsync(cancellationToken);
            }

            await writeToChild();
        };

        Task held = Task.Run(async () => await guest.WriteAsync(0, new byte[] { 1 }));
        await entered.Task.WaitAsync(Timeout);

        var bitmap = new DirtyBitmap(src.Size, 4096);
        Task<DirtyTrackingNode> insert = dir.Graph.InsertFilterAsync(lower, (name, child) =>
        {
            var upper = new DirtyTrackingNode(name, child);
            upper.AttachBitmap(bitmap);
            return upper;
        }).AsTask();

        // A write issued while the insertion waits: held back by the drain, then sent through the new filter.
        Task later = Task.Run(async () => await guest.WriteAsync(8192, new byte[] { 2 }));

        // The insertion drains the guest's backend and must wait there for the write in flight; then let it go.
        var deadline = DateTime.UtcNow + Timeout;
        while (!guest.Gate.Draining && !insert.IsCompleted)
        {
            Assert.IsTrue(DateTime.UtcNow < deadline, "the insertion neither drained nor finished");
            await Task.Yield();
        }

        bool insertedWhileWriteInFlight = insert.IsCompleted;
        release.SetResult();
        await Task.WhenAll(held, insert, later).WaitAsync(Timeout);

        DirtyTrackingNode upperFilter = await insert;
        Assert.IsFalse(insertedWhileWriteInFlight, "the insertion waited for the write in flight");
        Assert.AreSame(upperFilter, guest.Node);
        Assert.IsFalse(bitmap.IsDirty(0), "the drained write went through before the new filter was in place");
        Assert.IsTrue(bitmap.IsDirty(8192), "the write held back by the drain went through the new filter");
    }

    /// <summary>The graph's drain holds new requests of the backends above a node until the scope ends; drains nest.</summary>
    [TestMethod]
    public async Task A_graph_drain_holds_new_backend_requests_until_it_ends()
    {
        await using var dir = new GraphTestFolder();
        BlockNode src = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"raw","node-name":"src","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("src.raw", 65536))}}}}}"""));
        BlockNode other = await dir.Graph.AddAsync(BlockdevOptions.Parse(
            $$$"""{"driver":"raw","node-name":"other","file":{"driver":"file","filename":{{{GraphTestFolder.Json(dir.Raw("other.raw", 65536))}}}}}"""));
        BlockBackend guest = dir.Graph.AttachBackend("guest", src);
        BlockBackend bystander = dir.Graph.AttachBackend("bystander", other);

        IAsyncDisposable outer = await dir.Graph.DrainAsync(src.File!);
        IAsyncDisposable inner = await dir.Graph.DrainAsync(src).AsTask().WaitAsync(Timeout);
        Task write = guest.WriteAsync(0, new byte[] { 3 }).AsTask();
        await bystander.WriteAsync(0, new byte[] { 4 }).AsTask().WaitAsync(Timeout); // not above the drained nodes
        await inner.DisposeAsync();
        Assert.IsFalse(write.IsCompleted, "still held by the outer drain");
        await outer.DisposeAsync();
        await write.WaitAsync(Timeout);
        var one = new byte[1];
        await src.ReadAsync(0, one);
        Assert.AreEqual(3, one[0]);
    }
}
