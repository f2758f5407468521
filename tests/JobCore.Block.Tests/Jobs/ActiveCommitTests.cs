using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Jobs;

/// <summary>Active commit (the mirror engine with type commit) on a real base ← mid ← top chain.</summary>
[TestClass]
public sealed class ActiveCommitTests
{
    /// <summary>base (3 MiB, smaller than the rest) ← mid ← top, distinct patterns; returns the guest view as raw.</summary>
    private static async Task<string> MakeChainAsync(MirrorTestBed bed)
    {
        string basePath = await bed.CreateQcow2Async("base.qcow2", 3L << 20);
        await MirrorTestBed.WriteAsync(basePath, 0x11, (0, 2L << 20));
        string mid = await bed.CreateQcow2Async("mid.qcow2", 4L << 20, basePath);
        await MirrorTestBed.WriteAsync(mid, 0x22, (1L << 20, 2L << 20));
        string top = await bed.CreateQcow2Async("top.qcow2", 4L << 20, mid);
        await MirrorTestBed.WriteAsync(top, 0x33, ((5L << 20) / 2, 1L << 20), (3L << 20, 1L << 20));
        await MirrorTestBed.WriteAsync(top, null, (512 << 10, 64 << 10));
        string view = bed.File("view.raw");
        await QemuImg.ImgOkAsync("convert", "-O", "raw", top, view);
        await bed.OpenAsync("base", basePath, ""","read-only":true""");
        await bed.OpenAsync("mid", mid, ""","read-only":true,"backing":"base" """);
        await bed.OpenAsync("top", top, ""","backing":"mid" """);
        return view;
    }

    [TestMethod]
    public async Task Ready_then_complete_makes_the_base_the_active_node()
    {
        await using var bed = new MirrorTestBed();
        string view = await MakeChainAsync(bed);
        BlockBackend guest = bed.Graph.AttachBackend("guest", bed.Graph.GetNode("top"));

        Job job = await bed.StartAsync(new ActiveCommitOptions { Id = "c", Device = "top", BaseNode = "base" });
        Assert.AreEqual("commit", job.Type);
        await bed.ExpectAsync("c:ready", "c:READY");
        var refused = Assert.ThrowsExactly<BlockGraphException>(() => bed.Graph.AcquireJobLease("stream", [bed.Graph.GetNode("mid")]));
        Assert.AreEqual("Node 'mid' is busy: block device is in use by block job: commit", refused.Message);
        job.Complete();
        await bed.ExpectCompletedAsync("c");

        BlockNode @base = bed.Graph.GetNode("base");
        Assert.AreSame(@base, guest.Node, "the guest now writes to the base");
        Assert.IsFalse(@base.ReadOnly);
        Assert.AreEqual(4L << 20, @base.Size, "the base grew to the top's size");
        await bed.AssertSameContentAsync(view, bed.File("base.qcow2"));
        await bed.AssertCheckedAsync(bed.File("mid.qcow2"), bed.File("top.qcow2"));
    }

    [TestMethod]
    public async Task Soft_cancel_after_ready_leaves_the_chain_as_it_was()
    {
        await using var bed = new MirrorTestBed();
        string view = await MakeChainAsync(bed);
        BlockNode top = bed.Graph.GetNode("top");
        BlockBackend guest = bed.Graph.AttachBackend("guest", top);

        Job job = await bed.StartAsync(new ActiveCommitOptions { Id = "c", Device = "top", BaseNode = "base" });
        await bed.ExpectAsync("c:ready", "c:READY");
        await job.CancelAsync(force: false);
        await bed.ExpectCompletedAsync("c");

        Assert.AreSame(top, guest.Node);
        Assert.AreSame(bed.Graph.GetNode("mid"), top.Backing);
        Assert.IsTrue(bed.Graph.GetNode("base").ReadOnly, "the base is read-only again");
        await bed.AssertSameContentAsync(view, bed.File("top.qcow2"));
        await bed.AssertSameContentAsync(view, bed.File("base.qcow2"));
    }

    [TestMethod]
    public async Task Ignore_retries_a_failed_base_write_and_still_completes()
    {
        await using var bed = new MirrorTestBed();
        string basePath = await bed.CreateQcow2Async("base.qcow2", 2L << 20);
        string top = await bed.CreateQcow2Async("top.qcow2", 2L << 20, basePath);
        await MirrorTestBed.WriteAsync(top, 0x44, (0, 2L << 20));
        await bed.OpenBlkdebugAsync("base", basePath, "write_aio", 5);
        await bed.OpenAsync("top", top, ""","backing":"base" """);

        Job job = await bed.StartAsync(new ActiveCommitOptions { Id = "c", Device = "top", BaseNode = "base", OnError = ErrorPolicy.Ignore });
        await bed.ExpectAsync("c:ERROR:write:ignore", "c:ready", "c:READY");
        job.Complete();
        await bed.ExpectCompletedAsync("c");
        await bed.AssertSameContentAsync(top, basePath);
    }
}
