using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// Intermediate block-commit on a real qcow2 chain base ← mid ← top (see <see cref="StreamTestChain"/>): end states,
/// QEMU's refusals, cancel, and the error-policy matrix; guest views checked with qemu-img compare, images with check.
/// </summary>
[TestClass]
public sealed class CommitJobTests
{
    [TestMethod]
    public async Task Intermediate_commit_merges_mid_into_base_and_drops_mid_from_the_chain()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", TopNode = "mid", BaseNode = "base" });
        JobInfo info = await StreamTestChain.FinishAsync(job);

        Assert.IsNull(info.Error);
        Assert.AreEqual(StreamTestChain.Size, info.TotalProgress);
        Assert.AreEqual(StreamTestChain.Size, info.CurrentProgress);
        Assert.AreEqual("commit", job.Type);
        Assert.AreSame(chain.Graph.Find("base"), chain.Graph.Find("top")!.Backing);
        Assert.IsFalse(chain.Graph.Nodes.Any(n => n is CommitTopNode), "the commit_top filter is gone");
        CollectionAssert.AreEqual(
            new[] { "created", "running", "waiting", "pending", "completed", "concluded", "null" },
            chain.DrainEvents("c"));
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        await chain.VerifyAsync(chain.BasePath, StreamTestChain.MidView);
        Assert.AreEqual(chain.BasePath, await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Commit_defaults_to_the_bottom_base_and_records_backing_file()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", Top = chain.MidPath, BackingFile = "base.qcow2" });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual("base.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
    }

    [TestMethod]
    public async Task Commit_into_a_read_only_implicit_base_reopens_it_and_back()
    {
        await using var chain = await StreamTestChain.CreateAsync(topOnly: true);
        BlockNode[] layers = [.. BackingChain.Layers(chain.Graph.Find("top")!)];
        Assert.IsTrue(layers[2].ReadOnly);
        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", TopNode = layers[1].NodeName });
        Assert.IsNull((await StreamTestChain.FinishAsync(job)).Error);
        Assert.IsTrue(chain.Graph.Find(layers[2].NodeName)!.ReadOnly, "base is read-only again");
        Assert.IsNull(chain.Graph.Find(layers[1].NodeName), "the dropped implicit mid node is closed");
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        await chain.VerifyAsync(chain.BasePath, StreamTestChain.MidView);
    }

    [TestMethod]
    public async Task Commit_of_the_active_layer_runs_on_the_mirror_engine_and_completes_into_the_base()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "a", Device = "top" });
        Assert.AreEqual("commit", job.Type);
        await chain.WaitForEventAsync("a", e => e is JobReadyEvent);
        job.Complete();
        JobInfo info = await StreamTestChain.FinishAsync(job);
        Assert.IsNull(info.Error);
        await chain.VerifyAsync(chain.BasePath, StreamTestChain.TopView);
    }

    [TestMethod]
    public async Task Refusals_follow_QEMUs_order_and_texts()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        async Task<BlockGraphException> Refused(CommitJobOptions o) =>
            await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.CommitAsync(o with { Id = "c" }));

        BlockGraphException notFound = await Refused(new() { Device = "nope" });
        Assert.AreEqual("Device 'nope' not found", notFound.Message);
        Assert.AreEqual(BlockGraphException.DeviceNotFound, notFound.ErrorClass);
        Assert.AreEqual("Need a root block node", (await Refused(new() { Device = "mid" })).Message);
        Assert.AreEqual("'top-node' and 'top' are mutually exclusive", (await Refused(new() { Device = "top", TopNode = "mid", Top = "x" })).Message);
        Assert.AreEqual("Cannot find device='' nor node-name='nonode'", (await Refused(new() { Device = "top", TopNode = "nonode" })).Message);
        Assert.AreEqual("Top image file x.qcow2 not found", (await Refused(new() { Device = "top", Top = "x.qcow2" })).Message);
        Assert.AreEqual("'base-node' and 'base' are mutually exclusive", (await Refused(new() { Device = "top", BaseNode = "base", Base = "x" })).Message);
        Assert.AreEqual("'top' is not in this backing file chain", (await Refused(new() { Device = "top", TopNode = "mid", BaseNode = "top" })).Message);
        Assert.AreEqual("Can't find 'x.qcow2' in the backing chain", (await Refused(new() { Device = "top", TopNode = "mid", Base = "x.qcow2" })).Message);
        Assert.AreEqual("cannot commit an image into itself", (await Refused(new() { Device = "top", TopNode = "base", BaseNode = "base" })).Message);
        Assert.AreEqual("'backing-file' specified, but 'top' is the active layer", (await Refused(new() { Device = "top", BackingFile = "b" })).Message);

        CommitTarget active = CommitPlan.Resolve(chain.Graph, new CommitJobOptions { Device = "top" });
        Assert.IsTrue(active.IsActive);
        Assert.AreSame(chain.Graph.Find("base"), active.Base);
        Assert.IsFalse(chain.Graph.Nodes.Any(n => n is CommitTopNode));
    }

    [TestMethod]
    public async Task Nodes_of_a_running_commit_are_held()
    {
        await using var chain = await StreamTestChain.CreateAsync();
        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", TopNode = "mid", Speed = 1 });

        foreach (string node in new[] { "base", "mid", "top" })
        {
            var del = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.Graph.RemoveAsync(node).AsTask());
            Assert.AreEqual($"Node {node} is in use", del.Message);
        }

        var stream = await Assert.ThrowsExactlyAsync<BlockGraphException>(() => chain.StreamAsync(new StreamJobOptions { Id = "s", Device = "top" }));
        Assert.AreEqual("Node 'top' is busy: block device is in use by block job: commit", stream.Message);

        await job.CancelAsync(force: true);
        JobInfo info = await StreamTestChain.FinishAsync(job);
        Assert.AreEqual("Operation canceled", info.Error);
        Assert.AreSame(chain.Graph.Find("mid"), chain.Graph.Find("top")!.Backing, "chain unchanged");
        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual("mid.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
        Assert.AreEqual("base.qcow2", await StreamTestChain.BackingOfAsync(chain.MidPath));
    }

    // The error matrix: policy × errno × side. Read side: mid's file fails a read once; write side: base's file fails a
    // write once. Commit's 'ignore' retries the chunk, so it succeeds like a resumed 'stop'.
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
        string layer = side == "read" ? "mid" : "base";
        string @event = side == "read" ? "read_aio" : "write_aio";
        var inject = new Dictionary<string, string> { [layer] = $$"""[{"event":"{{@event}}","errno":{{errno}},"once":true}]""" };
        await using var chain = await StreamTestChain.CreateAsync(inject);
        ErrorPolicy onError = BlockJobCommon.ParseErrorPolicy(policy);
        ErrorAction action = ErrorPolicies.Decide(onError, errno == 28);

        Job job = await chain.CommitAsync(new CommitJobOptions { Id = "c", Device = "top", TopNode = "mid", OnError = onError });
        if (action == ErrorAction.Stop)
        {
            await chain.WaitForStatusAsync("c", JobStatus.Paused);
            Assert.AreEqual(errno == 28 ? IoStatus.NoSpace : IoStatus.Failed, job.Info.IoStatus);
            job.Resume();
        }

        JobInfo info = await StreamTestChain.FinishAsync(job);
        List<string> events = chain.DrainEvents("c");
        CollectionAssert.Contains(events, $"error:{side}:{action.WireName()}", string.Join(", ", events));
        if (action == ErrorAction.Report)
        {
            Assert.AreEqual(BlockIOException.StrError(errno), info.Error);
            Assert.IsTrue(info.CurrentProgress < info.TotalProgress);
        }
        else
        {
            Assert.IsNull(info.Error, "the retried chunk succeeds");
            Assert.AreEqual(info.TotalProgress, info.CurrentProgress);
        }

        await chain.VerifyAsync(chain.TopPath, StreamTestChain.TopView);
        Assert.AreEqual(info.Error is null ? chain.BasePath : "mid.qcow2", await StreamTestChain.BackingOfAsync(chain.TopPath));
        if (info.Error is null)
        {
            await chain.VerifyAsync(chain.BasePath, StreamTestChain.MidView);
        }
    }
}
