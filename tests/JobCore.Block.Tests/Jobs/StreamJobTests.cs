using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Graph;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// block-stream on a real qcow2 chain base ← mid ← top (see <see cref="StreamTestChain"/>): end states, op blockers,
/// pause, speed, cancel and the error-policy matrix. Every test checks the guest view with qemu-img compare and every
/// image with qemu-img check.
/// </summary>
[TestClass]
public sealed class StreamJobTests
{
    private const long Chunk = BlockJobCommon.ChunkSize;

    [TestMethod]
    public async Task Whole_stream_makes_the_top_standalone_with_the_same_guest_view()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top" });
        JobInfo info = await StreamTestChain.FinishAsync(job);

        Assert.IsNull(info.Error);
        Assert.AreEqual(StreamTestChain.Size, info.TotalProgress);
        Assert.AreEqual(StreamTestChain.Size, info.CurrentProgress);
        Assert.IsNull(chain.Graph.Find("top")!.Backing, "graph: top has no backing");
        CollectionAssert.AreEqual(
            new[] { "created", "running", "waiting", "pending", "completed", "concluded", "null" },
            chain.DrainEvents("s"));
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.IsNull(await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Partial_stream_to_base_node_makes_base_the_backing_in_graph_and_header()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", BaseNode = "base" });
        JobInfo info = await StreamTestChain.FinishAsync(job);

        Assert.IsNull(info.Error);
        Assert.AreSame(chain.Graph.Find("base"), chain.Graph.Find("top")!.Backing);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual(chain.BasePath, await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Partial_stream_by_file_name_records_the_given_name_or_backing_file()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Base = chain.BasePath, BackingFile = "base.qcow2" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual("base.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Stream_with_bottom_copies_down_to_bottom_and_gets_the_node_below_as_backing()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Bottom = "mid" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);
        Assert.AreSame(chain.Graph.Find("base"), chain.Graph.Find("top")!.Backing);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual(chain.BasePath, await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Stream_copies_only_what_is_allocated_above_the_base()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", BaseNode = "base" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);

        // Only mid's ranges were copied into top: top's own allocation is top's writes plus mid's.
        BlockNode top = chain.Graph.Find("top")!;
        long allocated = 0;
        for (long at = 0; at < StreamTestChain.Size;)
        {
            BlockStatus s = await top.GetBlockStatusAsync(at, StreamTestChain.Size - at);
            allocated += s.Allocated ? s.Length : 0;
            at += s.Length;
        }

        // [512K, 1536K) + [2816K, 3136K) + the zero range [3584K, 3712K)
        Assert.AreEqual(1472 * StreamTestChain.K, allocated, "top holds its own data plus mid's ranges, nothing of base");
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
    }

    [TestMethod]
    public async Task A_range_with_nothing_to_copy_is_skipped_whole_and_copies_stay_one_chunk()
    {
        const long size = 64L << 20;
        var @base = new MemoryNode("base", size);
        @base.Fill(0, 1 << 20, 0x11);
        var mid = new MemoryNode("mid", size, @base);
        mid.Fill(40L << 20, 2 << 20, 0x22);
        var top = new MemoryNode("top", size, mid);
        top.Fill(60L << 20, 1 << 20, 0x33);

        // Up to mid's data nothing lies above base: one step of 40 MiB, not 80 chunks (sparse images cost their data only).
        Assert.AreEqual((40L << 20, false), await StreamJob.NextExtentAsync(top, @base, 0, size, CancellationToken.None));
        Assert.AreEqual((Chunk, true), await StreamJob.NextExtentAsync(top, @base, 40L << 20, size, CancellationToken.None));
        Assert.AreEqual((18L << 20, false), await StreamJob.NextExtentAsync(top, @base, 42L << 20, size, CancellationToken.None));
        Assert.AreEqual((1L << 20, false), await StreamJob.NextExtentAsync(top, @base, 60L << 20, size, CancellationToken.None), "top's own data");
        Assert.AreEqual((Chunk, true), await StreamJob.NextExtentAsync(top, null, 0, size, CancellationToken.None), "base copied when streaming the whole chain");
        Assert.AreEqual((size - (1L << 20), false),
            await StreamJob.NextExtentAsync(new MemoryNode("t", size, new MemoryNode("short", 1 << 20)), null, 1L << 20, size, CancellationToken.None),
            "past the end of a short backing chain the rest is done");
    }

    [TestMethod]
    public async Task Stream_of_a_middle_node_leaves_the_top_above_it()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "mid" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);

        Assert.AreSame(chain.Graph.Find("mid"), chain.Graph.Find("top")!.Backing);
        Assert.IsNull(chain.Graph.Find("mid")!.Backing);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        await chain.VerifyAsync(chain.MidPath, StreamTestChain.MidView);
        Assert.IsNull(await StreamTestChain.BackingOfAsync(chain.MidPath));
        Assert.AreEqual("mid.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Stream_into_a_read_only_implicit_node_reopens_it_and_back()
    {
        await using var chain = await StreamTestChain.CreateAsync(topOnly: true);
        BlockNode mid = BackingChain.Layers(chain.Graph.Find("top")!).ElementAt(1);
        Assert.IsTrue(mid.ReadOnly, "implicit backing nodes open read-only");

        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = mid.NodeName });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);

        BlockNode after = chain.Graph.Find(mid.NodeName)!;
        Assert.IsTrue(after.ReadOnly, "reopened read-only at the end");
        Assert.IsNull(after.Backing);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        await chain.VerifyAsync(chain.MidPath, StreamTestChain.MidView);
    }

    [TestMethod]
    public async Task Disjoint_streams_run_in_parallel()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job lower = await chain.StreamAsync(new StreamJobOptions { Id = "lower", Device = "mid", Speed = 1 });

        // As QEMU 7.2: top's backing is now the lower job's copy-on-read filter, which that job holds, so a base
        // below it is refused; 'bottom' (iotest 030's parallel streams) names the range without the filter.
        var refused = await Assert.ThrowsExactlyAsync<BlockGraphException>(
            () => chain.StreamAsync(new StreamJobOptions { Id = "upper", Device = "top", BaseNode = "mid" }));
        StringAssert.Matches(refused.Message, new System.Text.RegularExpressions.Regex(
            "^Node '#block[0-9]+' is busy: block device is in use by block job: stream$"));
        Job upper = await chain.StreamAsync(new StreamJobOptions { Id = "upper", Device = "top", Bottom = "top" });
        Assert.IsNull((await StreamTestChain.FinishAsync(upper)).Error);
        Assert.AreEqual(JobStatus.Running, lower.Status, "the slow stream is still running");
        lower.SetSpeed(0);
        Assert.IsNull((await StreamTestChain.FinishAsync(lower)).Error);

        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        await chain.VerifyAsync(chain.MidPath, StreamTestChain.MidView);
        Assert.IsNull(await StreamTestChain.BackingOfAsync(chain.MidPath));
    }

    [TestMethod]
    public async Task Overlapping_stream_and_commit_are_refused_with_QEMUs_texts()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Speed = 1 });

        var busy = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.StreamAsync(new StreamJobOptions { Id = "s2", Device = "mid" }));
        Assert.AreEqual("Node 'mid' is busy: block device is in use by block job: stream", busy.Message);
        var root = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", TopNode = "mid" }));
        Assert.AreEqual("Need a root block node", root.Message);
        var del = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.Graph.RemoveAsync("top").AsTask());
        Assert.AreEqual("Node 'top' is busy: block device is in use by block job: stream", del.Message);

        await job.CancelAsync(force: true);
        Assert.AreEqual("Operation canceled", (await StreamTestChain.FinishAsync(job)).Error);
        Assert.AreSame(chain.Graph.Find("mid"), chain.Graph.Find("top")!.Backing, "chain unchanged");
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual("mid.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Argument_errors_use_QEMUs_texts_and_leave_the_graph_alone()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        async Task<string> Refused(StreamJobOptions o)
        {
            Exception e = await Assert.ThrowsAsync<Exception>(() => chain.StreamAsync(o));
            return e.Message;
        }

        Assert.AreEqual("Cannot find device='nope' nor node-name='nope'", await Refused(new() { Id = "s", Device = "nope" }));
        Assert.AreEqual("'base' and 'base-node' cannot be specified at the same time", await Refused(new() { Id = "s", Device = "top", Base = "x", BaseNode = "base" }));
        Assert.AreEqual("'base' and 'bottom' cannot be specified at the same time", await Refused(new() { Id = "s", Device = "top", Base = "x", Bottom = "mid" }));
        Assert.AreEqual("'bottom' and 'base-node' cannot be specified at the same time", await Refused(new() { Id = "s", Device = "top", Bottom = "mid", BaseNode = "base" }));
        Assert.AreEqual("Can't find 'x.qcow2' in the backing chain", await Refused(new() { Id = "s", Device = "top", Base = "x.qcow2" }));
        Assert.AreEqual("Node 'top' is not a backing image of 'mid'", await Refused(new() { Id = "s", Device = "mid", BaseNode = "top" }));
        Assert.AreEqual("Node 'top' is not in a chain starting from 'mid'", await Refused(new() { Id = "s", Device = "mid", Bottom = "top" }));
        Assert.AreEqual("backing file specified, but streaming the entire chain", await Refused(new() { Id = "s", Device = "top", BackingFile = "b" }));
        Assert.AreEqual("Invalid job ID ''", await Refused(new() { Device = "top" }));
        Assert.AreEqual("Invalid job ID '1x'", await Refused(new() { Id = "1x", Device = "top" }));
        Assert.AreEqual("Parameter 'speed' expects a non-negative value", await Refused(new() { Id = "s", Device = "top", Speed = -1 }));

        Assert.AreEqual(3, chain.Graph.Nodes.Count(n => n is Qcow2Node), "no filter left behind");
        Assert.IsFalse(chain.Graph.Nodes.Any(n => n is CopyOnReadNode));
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error, "nothing stayed blocked");
    }

    [TestMethod]
    public async Task Stream_onto_the_direct_backing_succeeds_at_once()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", BaseNode = "mid" });
        JobInfo info = await StreamTestChain.FinishAsync(job);
        Assert.IsNull(info.Error);
        Assert.AreEqual(0, info.CurrentProgress);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
    }

    [TestMethod]
    public async Task Pause_freezes_progress_until_resume()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Speed = 2 * Chunk });
        job.Pause();
        await chain.WaitForStatusAsync("s", JobStatus.Paused);
        long frozen = job.Info.CurrentProgress;
        Assert.IsTrue(job.Info.Paused);
        Assert.IsFalse(job.Info.Busy, "a paused job is parked at its pause point with no I/O in flight");
        // Not synchronisation (the paused event above is): an observation window in which a paused job must not copy.
        await Task.Delay(600);
        Assert.AreEqual(frozen, job.Info.CurrentProgress, "no progress while paused");
        Assert.IsTrue(frozen < StreamTestChain.Size);

        job.Resume();
        job.SetSpeed(0);
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
    }

    [TestMethod]
    public async Task Set_speed_lifts_the_limit_of_a_throttled_stream()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Speed = 1 });
        Assert.AreEqual(1, job.Info.Speed);
        // At 1 B/s the first chunk goes through, then the job sleeps for hours.
        await StreamTestChain.WaitUntilAsync(() => job.Info.CurrentProgress > 0);
        Assert.IsTrue(job.Info.CurrentProgress < StreamTestChain.Size);
        job.SetSpeed(0);
        JobInfo info = await StreamTestChain.FinishAsync(job, seconds: 30);
        Assert.IsNull(info.Error);
        Assert.AreEqual(0, info.Speed);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
    }

    [TestMethod]
    public async Task Cancel_leaves_the_chain_unchanged_and_a_new_stream_finishes_later()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", Speed = 1 });
        await job.CancelAsync(force: true);
        JobInfo info = await StreamTestChain.FinishAsync(job);
        Assert.AreEqual("Operation canceled", info.Error);
        Assert.IsTrue(info.CurrentProgress < info.TotalProgress);
        CollectionAssert.Contains(chain.DrainEvents("s"), "cancelled");
        Assert.AreSame(chain.Graph.Find("mid"), chain.Graph.Find("top")!.Backing);

        Job again = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top" });
        Assert.IsNull((await StreamTestChain.FinishAsync(again)).Error);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.IsNull(await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    // The error matrix: policy × errno × side. Read side: mid's file fails a read once; write side: top's file fails a
    // write once. Stream always reports 'read'.
    [TestMethod]
    [DataRow("report", 5, "read")]
    [DataRow("report", 28, "read")]
    [DataRow("report", 5, "write")]
    [DataRow("report", 28, "write")]
    [DataRow("ignore", 5, "read")]
    [DataRow("ignore", 28, "read")]
    [DataRow("ignore", 5, "write")]
    [DataRow("ignore", 28, "write")]
    [DataRow("stop", 5, "read")]
    [DataRow("stop", 28, "read")]
    [DataRow("stop", 5, "write")]
    [DataRow("stop", 28, "write")]
    [DataRow("enospc", 5, "read")]
    [DataRow("enospc", 28, "read")]
    [DataRow("enospc", 5, "write")]
    [DataRow("enospc", 28, "write")]
    public async Task Error_policy_matrix(string policy, int errno, string side)
    {
        string layer = side == "read" ? "mid" : "top";
        string @event = side == "read" ? "read_aio" : "write_aio";
        var inject = new Dictionary<string, string> { [layer] = $$"""[{"event":"{{@event}}","errno":{{errno}},"once":true}]""" };
        await using var chain = await StreamTestChain.CreateAsync(inject);
        ErrorPolicy onError = BlockJobCommon.ParseErrorPolicy(policy);
        ErrorAction action = ErrorPolicies.Decide(onError, errno == 28);
        string text = BlockIOException.StrError(errno);

        Job job = await chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top", OnError = onError });
        if (action == ErrorAction.Stop)
        {
            await chain.WaitForStatusAsync("s", JobStatus.Paused);
            Assert.AreEqual(errno == 28 ? IoStatus.NoSpace : IoStatus.Failed, job.Info.IoStatus);
            job.Resume();
        }

        JobInfo info = await StreamTestChain.FinishAsync(job);
        List<string> events = chain.DrainEvents("s");
        CollectionAssert.Contains(events, $"error:read:{action.WireName()}", string.Join(", ", events));
        switch (action)
        {
            case ErrorAction.Report:
                Assert.AreEqual(text, info.Error);
                Assert.IsTrue(info.CurrentProgress < info.TotalProgress, "stops where it failed");
                CollectionAssert.Contains(events, "aborting");
                break;
            case ErrorAction.Ignore:
                Assert.AreEqual(text, info.Error, "an ignored error still fails the stream at the end");
                Assert.AreEqual(info.TotalProgress, info.CurrentProgress);
                break;
            default:
                Assert.IsNull(info.Error, "the retried chunk succeeds after the resume");
                Assert.AreEqual(IoStatus.Ok, info.IoStatus);
                break;
        }

        bool succeeded = info.Error is null;
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual(succeeded ? null : "mid.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
    }
}
