using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Jobs;

/// <summary>Mirror on real qcow2 images (made by qemu-img/qemu-io): sync modes, READY/complete, cancel, pause, speed, change.</summary>
[TestClass]
public sealed class MirrorJobTests
{
    private const long Size = 8L << 20;

    /// <summary>base ← src, distinct patterns per layer, a zero range in src; returns (base path, src path).</summary>
    private static async Task<(string Base, string Source)> MakeChainAsync(MirrorTestBed bed)
    {
        string basePath = await bed.CreateQcow2Async("base.qcow2", Size);
        await MirrorTestBed.WriteAsync(basePath, 0x11, (0, 2 << 20), (5L << 20, 1 << 20));
        string src = await bed.CreateQcow2Async("src.qcow2", Size, basePath);
        await MirrorTestBed.WriteAsync(src, 0x22, (1 << 20, 2 << 20), (7L << 20, 192 << 10));
        await MirrorTestBed.WriteAsync(src, null, (5L << 20, 256 << 10));
        return (basePath, src);
    }

    /// <summary>The chain of <see cref="MakeChainAsync"/> opened as base ← src, an empty dst, and a guest on src.</summary>
    private static async Task<(string Source, string Target, BlockNode SourceNode, BlockBackend Guest)> OpenPairAsync(MirrorTestBed bed)
    {
        (_, string src) = await MakeChainAsync(bed);
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size);
        await bed.OpenAsync("base", bed.File("base.qcow2"), ""","read-only":true""");
        BlockNode source = await bed.OpenAsync("src", src, ""","backing":"base" """);
        await bed.OpenAsync("dst", dst);
        return (src, dst, source, bed.Graph.AttachBackend("guest", source));
    }

    [TestMethod]
    [DataRow(MirrorSyncMode.Full, MirrorTargetBacking.Leave)]
    [DataRow(MirrorSyncMode.Top, MirrorTargetBacking.SourceChain)]
    [DataRow(MirrorSyncMode.None, MirrorTargetBacking.SourceChain)]
    public async Task Ready_then_complete_pivots_the_guest_to_a_target_equal_to_the_source(MirrorSyncMode sync, MirrorTargetBacking backing)
    {
        await using var bed = new MirrorTestBed();
        (string basePath, string src) = await MakeChainAsync(bed);
        string? targetBacking = sync switch { MirrorSyncMode.Top => basePath, MirrorSyncMode.None => src, _ => null };
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size, targetBacking);
        BlockNode baseNode = await bed.OpenAsync("base", basePath, ""","read-only":true""");
        BlockNode source = await bed.OpenAsync("src", src, ""","backing":"base" """);
        BlockNode target = await bed.OpenAsync("dst", dst, ""","backing":null""");
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);

        Job job = await bed.StartAsync(new MirrorJobOptions
        {
            Id = "m0", Device = "src", Target = "dst", Sync = sync, TargetBacking = backing, TargetIsZero = true,
        });
        await bed.ExpectAsync("m0:ready", "m0:READY");
        Assert.AreEqual(job.Info.TotalProgress, job.Info.CurrentProgress, "READY means nothing left to copy");
        Assert.AreEqual(JobStatus.Ready, job.Info.Status);

        // A write after READY is copied too (sync=none copies only such writes).
        await guest.WriteAsync(4L << 20, Enumerable.Repeat((byte)0x33, 128 << 10).ToArray());
        job.Complete();
        await bed.ExpectCompletedAsync("m0");

        Assert.AreSame(target, guest.Node, "the target replaced the source for the guest");
        Assert.IsFalse(bed.Graph.Nodes.Any(n => n is JobCore.Block.Bitmaps.DirtyTrackingNode), "the filter is gone");
        BlockNode? expectedBacking = sync switch { MirrorSyncMode.Top => baseNode, MirrorSyncMode.None => source, _ => null };
        Assert.AreSame(expectedBacking, target.Backing);
        await bed.AssertSameContentAsync(src, dst);
        await bed.AssertCheckedAsync(basePath);
    }

    [TestMethod]
    public async Task Blockdev_mirror_top_keeps_the_backing_the_user_configured()
    {
        await using var bed = new MirrorTestBed();
        (string basePath, string src) = await MakeChainAsync(bed);
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size, basePath);
        BlockNode baseNode = await bed.OpenAsync("base", basePath, ""","read-only":true""");
        await bed.OpenAsync("src", src, ""","backing":"base" """);
        BlockNode target = await bed.OpenAsync("dst", dst, ""","backing":"base" """);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m1", Device = "src", Target = "dst", Sync = MirrorSyncMode.Top });
        await bed.ExpectAsync("m1:ready", "m1:READY");
        Assert.AreEqual((2L << 20) + (448 << 10), job.Info.TotalProgress, "sync=top copies only what src has allocated: 2 MiB + 192 KiB + 256 KiB of zeroes");
        job.Complete();
        await bed.ExpectCompletedAsync("m1");
        Assert.AreSame(baseNode, target.Backing);
        await bed.AssertSameContentAsync(src, dst);
    }

    /// <summary>
    /// drive-mirror mode=existing semantics (<see cref="MirrorTargetBacking.OpenChain"/>): the target, opened without the
    /// backing its header names, gets that chain opened when the job succeeds (complete with pivot, or a soft cancel
    /// after READY), never when it is force-cancelled; the header stays as it was.
    /// </summary>
    [TestMethod]
    [DataRow("complete")]
    [DataRow("soft-cancel")]
    [DataRow("force-cancel")]
    public async Task An_existing_target_gets_the_backing_its_header_names_only_when_the_job_succeeds(string finish)
    {
        await using var bed = new MirrorTestBed();
        (string basePath, string src) = await MakeChainAsync(bed);
        string copyOfBase = bed.File("tbase.qcow2");
        System.IO.File.Copy(basePath, copyOfBase);
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size, copyOfBase);
        await bed.OpenAsync("base", basePath, ""","read-only":true""");
        BlockNode source = await bed.OpenAsync("src", src, ""","backing":"base" """);
        BlockNode target = await bed.OpenAsync("dst", dst, ""","backing":null""");
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);

        Job job = await bed.StartAsync(new MirrorJobOptions
        {
            Id = "e", Device = "src", Target = "dst", Sync = MirrorSyncMode.Top, TargetBacking = MirrorTargetBacking.OpenChain,
            Speed = finish == "force-cancel" ? 1 : 0,
        });
        if (finish == "force-cancel")
        {
            await MirrorTestBed.WaitForAsync(job, i => i.CurrentProgress > 0);
            await job.CancelAsync(force: true);
            await bed.ExpectAsync("e:aborting", "e:CANCELLED", "e:concluded", "e:null");
            Assert.IsNull(target.Backing, "a cancelled job opens nothing");
            Assert.AreSame(source, guest.Node);
            await bed.AssertCheckedAsync(dst);
            return;
        }

        await bed.ExpectAsync("e:ready", "e:READY");
        Assert.IsNull(target.Backing, "not opened while the job runs");
        if (finish == "complete")
        {
            job.Complete();
        }
        else
        {
            await job.CancelAsync(force: false);
        }

        await bed.ExpectCompletedAsync("e");
        Assert.AreSame(finish == "complete" ? target : source, guest.Node);
        var opened = target.Backing as Qcow2Node;
        Assert.IsNotNull(opened, "the header's backing chain was opened");
        Assert.AreEqual(copyOfBase, BackingChain.TryGetFilename(opened));
        Assert.IsTrue(opened.ReadOnly);

        // The guest view through the new chain equals the source's (base + src layers).
        var expected = new byte[Size];
        var actual = new byte[Size];
        await source.ReadAsync(0, expected);
        await target.ReadAsync(0, actual);
        CollectionAssert.AreEqual(expected, actual);
        await bed.AssertSameContentAsync(src, dst);
        Assert.AreEqual("tbase.qcow2", Path.GetFileName((await QemuImgInfoAsync(dst))["backing-filename"]!.GetValue<string>()), "the header is untouched");
    }

    private static async Task<System.Text.Json.Nodes.JsonNode> QemuImgInfoAsync(string image)
    {
        JobCore.Block.Tests.Interop.ToolResult info = await JobCore.Block.Tests.Interop.QemuImg.ImgAsync("info", "--output=json", image);
        Assert.AreEqual(0, info.ExitCode, info.All);
        return System.Text.Json.Nodes.JsonNode.Parse(info.Output)!;
    }

    [TestMethod]
    public async Task Soft_cancel_after_ready_completes_without_pivot_and_the_target_is_a_copy()
    {
        await using var bed = new MirrorTestBed();
        (string src, string dst, BlockNode source, BlockBackend guest) = await OpenPairAsync(bed);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m2", Device = "src", Target = "dst", Sync = MirrorSyncMode.Full });
        await bed.ExpectAsync("m2:ready", "m2:READY");
        await job.CancelAsync(force: false);
        await bed.ExpectCompletedAsync("m2");
        Assert.AreSame(source, guest.Node, "no pivot: the guest stays on the source");
        Assert.AreEqual(0, bed.Graph.GetParents(source).Count, "the filter is gone");
        await bed.AssertSameContentAsync(src, dst);
    }

    [TestMethod]
    public async Task Force_cancel_before_ready_is_cancelled_and_leaves_the_source_in_place()
    {
        await using var bed = new MirrorTestBed();
        (string src, string dst, BlockNode source, BlockBackend guest) = await OpenPairAsync(bed);

        // One byte per second with a 1 MiB buffer: the first iteration (1 MiB) goes through, then the job sleeps off its quota.
        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m3", Device = "src", Target = "dst", Speed = 1, BufferSize = 1 << 20 });
        await MirrorTestBed.WaitForAsync(job, i => i.CurrentProgress > 0);
        await job.CancelAsync(force: false);
        await bed.ExpectAsync("m3:aborting", "m3:CANCELLED", "m3:concluded", "m3:null");
        JobInfo info = job.Info;
        Assert.IsTrue(info.CurrentProgress < info.TotalProgress, $"cancelled before READY: {info}");
        Assert.AreEqual("Operation canceled", info.Error);
        Assert.AreSame(source, guest.Node);
        Assert.AreEqual(0, bed.Graph.GetParents(source).Count, "the filter is gone");
        Assert.IsNull(bed.Graph.GetBlockingJobType(source), "the lease is released");
        await bed.AssertCheckedAsync(src, dst);
    }

    /// <summary>
    /// QEMU 7.2's mirror_iteration under a rate limit: one iteration issues the whole contiguous dirty area (up to the
    /// buffer size) and only then sleeps for all of it, so with speed 1 the 8 MiB image is copied before the first sleep.
    /// </summary>
    [TestMethod]
    public async Task A_rate_limited_mirror_issues_a_whole_iteration_before_it_sleeps()
    {
        await using var bed = new MirrorTestBed();
        (string src, string dst, _, _) = await OpenPairAsync(bed);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "r", Device = "src", Target = "dst", Speed = 1 });
        await MirrorTestBed.WaitForAsync(job, i => i.CurrentProgress == Size);
        Assert.AreEqual(Size, job.Info.TotalProgress);
        Assert.AreEqual(JobStatus.Running, job.Info.Status, "still asleep on the rate limit: not READY yet");
        await job.CancelAsync(force: true);
        await bed.ExpectAsync("r:aborting", "r:CANCELLED", "r:concluded", "r:null");
        await bed.AssertSameContentAsync(src, dst);
    }

    /// <summary>
    /// QEMU's mirror_iteration asks the block status before reading: ranges the source's chain reads as zeroes
    /// (unallocated everywhere, or zero clusters) become write-zeroes on the target without a read. A blkdebug rule
    /// that fails every read at 4 MiB (unallocated) would fail the job if the copy read it.
    /// </summary>
    [TestMethod]
    public async Task Ranges_the_source_reads_as_zeroes_are_written_as_zeroes_without_reading()
    {
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", Size);
        await MirrorTestBed.WriteAsync(src, 0x5a, (0, 1 << 20), (6L << 20, 1 << 20));
        await MirrorTestBed.WriteAsync(src, null, (2L << 20, 1 << 20));
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size);
        await MirrorTestBed.WriteAsync(dst, 0x77, (0, Size));
        string json = $$$"""
            {"driver":"blkdebug","node-name":"src",
             "inject-error":[{"event":"read_aio","errno":5,"sector":{{{(4L << 20) / 512}}} }, {"event":"read_aio","errno":5,"sector":{{{(2L << 20) / 512}}} }],
             "image":{"driver":"qcow2","file":{"driver":"file","filename":{{{System.Text.Json.JsonSerializer.Serialize(src)}}} } } }
            """;
        await bed.Graph.AddAsync(System.Text.Json.JsonDocument.Parse(json).RootElement);
        await bed.OpenAsync("dst", dst);

        // Not known to read zeroes: every byte of the target is written, zero ranges as write-zeroes.
        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "z", Device = "src", Target = "dst" });
        await bed.ExpectAsync("z:ready", "z:READY");
        await job.CancelAsync(force: false);
        await bed.ExpectCompletedAsync("z");
        await bed.AssertSameContentAsync(src, dst);
    }

    [TestMethod]
    public async Task Pause_freezes_progress_and_set_speed_lets_it_finish()
    {
        await using var bed = new MirrorTestBed();
        (string src, string dst, BlockNode source, BlockBackend guest) = await OpenPairAsync(bed);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m4", Device = "src", Target = "dst", Speed = 1 << 20, BufferSize = 1 << 20 });
        await MirrorTestBed.WaitForAsync(job, i => i.CurrentProgress > 0);
        job.Pause();
        await bed.ExpectAsync("m4:paused");
        long frozen = job.Info.CurrentProgress;
        Assert.IsTrue(frozen < job.Info.TotalProgress, $"paused before the end: {job.Info}");
        Assert.IsFalse(job.Info.Busy, "a paused job is parked at its pause point with no I/O in flight");
        // Not synchronisation (the paused event above is): an observation window in which a paused job must not copy.
        await Task.Delay(300);
        Assert.AreEqual(frozen, job.Info.CurrentProgress, "no copy runs while paused");
        Assert.IsTrue(job.Info.Paused);

        job.Resume();
        await bed.ExpectAsync("m4:running");
        job.SetSpeed(0);
        await bed.ExpectAsync("m4:ready", "m4:READY");
        job.Complete();
        await bed.ExpectCompletedAsync("m4");
        await bed.AssertSameContentAsync(src, dst);
    }

    [TestMethod]
    public async Task Change_switches_background_to_write_blocking_only()
    {
        await using var bed = new MirrorTestBed();
        (string src, string dst, BlockNode source, BlockBackend guest) = await OpenPairAsync(bed);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m5", Device = "src", Target = "dst" });
        await bed.ExpectAsync("m5:ready", "m5:READY");
        Assert.IsFalse((bool)job.Info.Extra!["actively-synced"]!);
        job.Change(new MirrorChangeOptions(MirrorCopyMode.Background));
        job.Change(new MirrorChangeOptions(MirrorCopyMode.WriteBlocking));
        job.Change(new MirrorChangeOptions(MirrorCopyMode.WriteBlocking));
        var refused = Assert.ThrowsExactly<JobException>(() => job.Change(new MirrorChangeOptions(MirrorCopyMode.Background)));
        Assert.AreEqual("Change to copy mode 'background' is not implemented", refused.Message);
        await MirrorTestBed.WaitForAsync(job, i => (bool)i.Extra!["actively-synced"]!);

        // Write-blocking: the write reached the target before it completed, so nothing is dirty afterwards.
        BlockNode target = bed.Graph.GetNode("dst");
        byte[] written = Enumerable.Repeat((byte)0x44, 1 << 20).ToArray();
        await guest.WriteAsync(3L << 20, written);
        var onTarget = new byte[written.Length];
        await target.ReadAsync(3L << 20, onTarget);
        CollectionAssert.AreEqual(written, onTarget, "the write reached the target before it completed");
        job.Complete();
        await bed.ExpectCompletedAsync("m5");
        await bed.AssertSameContentAsync(src, dst);
    }

    [TestMethod]
    [DataRow(256L, "Parameter 'granularity' expects a value in range [512B, 64MB]", 0L)]
    [DataRow(128L << 20, "Parameter 'granularity' expects a value in range [512B, 64MB]", 0L)]
    [DataRow(3072L, "Parameter 'granularity' expects a power of 2", 0L)]
    [DataRow(0L, "Invalid parameter 'buf-size'", -1L)]
    public async Task Bad_sizes_are_refused_before_the_job_exists(long granularity, string message, long bufSize)
    {
        await using var bed = new MirrorTestBed();
        await bed.OpenAsync("src", await bed.CreateQcow2Async("src.qcow2", Size));
        await bed.OpenAsync("dst", await bed.CreateQcow2Async("dst.qcow2", Size));
        var error = Assert.ThrowsExactly<JobException>(() => bed.Engine.Create(new MirrorJobOptions
        {
            Id = "bad", Device = "src", Target = "dst", Granularity = granularity, BufferSize = bufSize,
        }));
        Assert.AreEqual(message, error.Message);
        Assert.IsFalse(bed.Events.Reader.TryRead(out _), "no job, no events");
    }

    [TestMethod]
    public async Task Mirror_into_itself_and_incremental_sync_are_refused()
    {
        await using var bed = new MirrorTestBed();
        await bed.OpenAsync("src", await bed.CreateQcow2Async("src.qcow2", Size));
        await bed.OpenAsync("dst", await bed.CreateQcow2Async("dst.qcow2", Size));
        var self = Assert.ThrowsExactly<BlockGraphException>(() => bed.Engine.Create(new MirrorJobOptions { Id = "a", Device = "src", Target = "src" }));
        Assert.AreEqual("Can't mirror node into itself", self.Message);
        var sync = Assert.ThrowsExactly<JobException>(() => bed.Engine.Create(new MirrorJobOptions
        {
            Id = "b", Device = "src", Target = "dst", Sync = MirrorSyncMode.Incremental,
        }));
        Assert.AreEqual("Sync mode 'incremental' not supported", sync.Message);
        var missing = Assert.ThrowsExactly<BlockGraphException>(() => bed.Engine.Create(new MirrorJobOptions { Id = "c", Device = "nope", Target = "dst" }));
        Assert.AreEqual("Cannot find device='nope' nor node-name='nope'", missing.Message);
        Assert.IsFalse(bed.Events.Reader.TryRead(out _), "no job, no events");
        Assert.IsNull(bed.Graph.GetBlockingJobType(bed.Graph.GetNode("src")), "nothing stays leased");
    }

    [TestMethod]
    public async Task A_size_mismatch_fails_the_job_after_it_started()
    {
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", Size);
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size * 2);
        BlockNode source = await bed.OpenAsync("src", src);
        await bed.OpenAsync("dst", dst);
        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "m6", Device = "src", Target = "dst" });
        await bed.ExpectAsync("m6:aborting");
        JobEvent completed = await bed.NextEventAsync();
        Assert.AreEqual("m6:COMPLETED:Source and target image have different sizes", MirrorTestBed.Render(completed));
        Assert.AreEqual(0, completed.Job.TotalProgress);
        Assert.AreEqual(0, completed.Job.CurrentProgress);
        await bed.ExpectAsync("m6:concluded", "m6:null");
        Assert.AreEqual(0, bed.Graph.GetParents(source).Count, "the filter is gone");
        _ = job;
    }
}
