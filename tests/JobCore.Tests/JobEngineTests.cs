using JobCore.Tests.Support;

namespace JobCore.Tests;

[TestClass]
public sealed class JobEngineTests
{
    [TestMethod]
    [DataRow("1abc", "Invalid job ID '1abc'")]
    [DataRow("", "Invalid job ID ''")]
    [DataRow("a b", "Invalid job ID 'a b'")]
    [DataRow("é", "Invalid job ID 'é'")]
    [DataRow("job#1", "Invalid job ID 'job#1'")]
    public async Task Create_rejects_malformed_ids(string id, string message)
    {
        await using var h = new EngineHarness();
        var e = Assert.ThrowsExactly<JobException>(() => h.Engine.Create(new ScriptedOptions { Id = id }));
        Assert.AreEqual(message, e.Message);
        h.ExpectNoPendingEvent();
    }

    [TestMethod]
    [DataRow("a")]
    [DataRow("Stream-1.x_y")]
    public void Well_formed_ids(string id) => Assert.IsTrue(JobEngine.IsWellFormedId(id));

    [TestMethod]
    public async Task Create_rejects_duplicate_missing_and_internal_ids_and_bad_speed()
    {
        await using var h = new EngineHarness();
        await h.StartAsync("dup");
        Assert.AreEqual("Job ID 'dup' already in use",
            Assert.ThrowsExactly<JobException>(() => h.Engine.Create(new ScriptedOptions { Id = "dup" })).Message);
        Assert.AreEqual("An explicit job ID is required",
            Assert.ThrowsExactly<JobException>(() => h.Engine.Create(new ScriptedOptions())).Message);
        Assert.AreEqual("Cannot specify job ID for internal job",
            Assert.ThrowsExactly<JobException>(() => h.Engine.Create(new ScriptedOptions { Id = "x", Internal = true })).Message);
        Assert.AreEqual("Parameter 'speed' expects a non-negative value",
            Assert.ThrowsExactly<JobException>(() => h.Engine.Create(new ScriptedOptions { Id = "s", Speed = -1 })).Message);
        h.ExpectNoPendingEvent();
        Assert.AreEqual(1, h.Engine.QueryJobs().Count);
    }

    [TestMethod]
    public async Task CreateAsync_fails_a_negative_speed_after_created_and_null_and_cleans_the_driver()
    {
        await using var h = new EngineHarness();
        var error = await Assert.ThrowsExactlyAsync<JobException>(
            () => h.Engine.CreateAsync(new ScriptedOptions { Id = "s", Speed = -1, HookLog = h.HookLog }));
        Assert.AreEqual("Parameter 'speed' expects a non-negative value", error.Message);
        await h.ExpectAsync("s:created", "s:null");
        h.ExpectNoPendingEvent();
        CollectionAssert.AreEqual(new[] { "clean:s" }, h.HookLog.ToArray());
        Assert.IsFalse(h.Engine.TryGetJob("s", out _), "the id is free again");
        var job = await h.Engine.CreateAsync(new ScriptedOptions { Id = "s", Speed = 5 });
        Assert.AreEqual(JobStatus.Created, job.Status);
        Assert.AreEqual(5, job.Info.Speed);
    }

    [TestMethod]
    public async Task Internal_jobs_are_invisible_and_silent()
    {
        await using var h = new EngineHarness();
        var job = h.Engine.Create(new ScriptedOptions { Internal = true });
        job.Start();
        Assert.IsEmpty(h.Engine.QueryJobs());
        await job.CancelAsync(force: true);
        await job.Concluded.WaitAsync(EngineHarness.Timeout);
        h.ExpectNoPendingEvent();
    }

    [TestMethod]
    public async Task Query_lists_newest_first_with_qemu_fields()
    {
        await using var h = new EngineHarness();
        await h.StartAsync("first", new ScriptedOptions { Total = 500, Speed = 7 });
        await h.StartAsync("second", new ScriptedOptions { AutoDismiss = false });
        var jobs = h.Engine.QueryJobs();
        CollectionAssert.AreEqual(new[] { "second", "first" }, jobs.Select(j => j.Id).ToArray());
        var first = jobs[1];
        Assert.AreEqual("scripted", first.Type);
        Assert.AreEqual(JobStatus.Running, first.Status);
        Assert.AreEqual(7, first.Speed);
        Assert.AreEqual(IoStatus.Ok, first.IoStatus);
        Assert.IsTrue(first.AutoDismiss);
        Assert.IsFalse(jobs[0].AutoDismiss);
        Assert.IsNull(first.Error);
    }

    [TestMethod]
    public async Task Progress_is_monotonic_and_total_follows_remaining()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("p", new ScriptedOptions { Total = 100, Completable = true });
        var d = h.Driver("p");
        d.Send(new Step.Work(40));
        d.Send(new Step.Ready());
        await h.ExpectAsync("p:ready", "p:READY");
        Assert.AreEqual(40, job.Info.CurrentProgress);
        Assert.AreEqual(100, job.Info.TotalProgress);
        job.Context.ProgressSetRemaining(0);
        Assert.AreEqual(40, job.Info.TotalProgress, "total = current + remaining");
        job.Context.ProgressIncreaseRemaining(10);
        Assert.AreEqual(50, job.Info.TotalProgress);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => job.Context.ProgressWorkDone(-1));
        Assert.AreEqual(40, job.Info.CurrentProgress, "current never decreases");
    }

    [TestMethod]
    public async Task Pause_twice_and_resume_unpaused_are_refused_in_qemus_order()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("p");
        Assert.AreEqual("Can't resume a job that was not paused", Assert.ThrowsExactly<JobException>(job.Resume).Message);
        job.Pause();
        Assert.AreEqual("Job is already paused", Assert.ThrowsExactly<JobException>(job.Pause).Message);
        await h.ExpectAsync("p:paused");
        Assert.IsTrue(job.Info.Paused);
        Assert.IsFalse(job.Info.Busy, "a paused job is quiescent");
        job.Resume();
        await h.ExpectAsync("p:running");
        Assert.IsFalse(job.Info.Paused);
    }

    [TestMethod]
    public async Task Pause_while_created_pauses_right_after_running()
    {
        await using var h = new EngineHarness();
        var job = h.Engine.Create(new ScriptedOptions { Id = "c" });
        job.Pause();
        Assert.IsTrue(job.Info.Paused);
        job.Start();
        await h.ExpectAsync("c:created", "c:running", "c:paused");
        job.Resume();
        await h.ExpectAsync("c:running");
    }

    [TestMethod]
    public async Task Pause_freezes_progress()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("p");
        var d = h.Driver("p");
        d.Send(new Step.Work(5));
        job.Pause();
        await h.ExpectAsync("p:paused");
        var before = job.Info.CurrentProgress;
        d.Send(new Step.Work(5));
        d.Send(new Step.Work(5));
        Assert.AreEqual(before, job.Info.CurrentProgress, "no work while paused");
        job.Resume();
        await h.ExpectAsync("p:running");
        d.Send(new Step.Finish());
        await h.ExpectAsync("p:waiting");
        Assert.AreEqual(15, job.Info.CurrentProgress);
    }

    [TestMethod]
    public async Task Complete_is_refused_before_ready_and_after_a_cancel_request()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("m", new ScriptedOptions { Completable = true });
        Assert.AreEqual("Job 'm' in state 'running' cannot accept command verb 'complete'",
            Assert.ThrowsExactly<JobException>(job.Complete).Message);
        h.Driver("m").Send(new Step.Ready());
        await h.ExpectAsync("m:ready", "m:READY");
        job.Pause();
        await h.ExpectAsync("m:standby");
        await job.CancelAsync(force: false);
        // The soft cancel of a user-paused job un-pauses it first.
        await h.ExpectAsync("m:ready", "m:waiting", "m:pending", "m:COMPLETED", "m:concluded", "m:null");
    }

    [TestMethod]
    public async Task Complete_is_refused_for_types_without_complete()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("s");
        h.Driver("s").Send(new Step.Ready());
        await h.ExpectAsync("s:ready", "s:READY");
        Assert.AreEqual("The active block job 's' cannot be completed", Assert.ThrowsExactly<JobException>(job.Complete).Message);
    }

    [TestMethod]
    public async Task Change_reaches_the_driver_or_is_refused()
    {
        await using var h = new EngineHarness();
        var plain = await h.StartAsync("plain");
        Assert.AreEqual("Job type does not support change", Assert.ThrowsExactly<JobException>(() => plain.Change("x")).Message);
        var changeable = await h.StartAsync("ch", new ScriptedOptions { SupportsChange = true });
        changeable.Change("write-blocking");
        Assert.AreEqual("write-blocking", h.Driver("ch").LastChange);
    }

    [TestMethod]
    public async Task Illegal_internal_transition_is_a_programming_error()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("t");
        lock (h.Engine.Sync)
        {
            Assert.ThrowsExactly<InvalidOperationException>(() => h.Engine.TransitionLocked(job, JobStatus.Concluded));
        }

        Assert.AreEqual(JobStatus.Running, job.Status);
    }

    [TestMethod]
    public async Task Shutdown_force_cancels_everything_in_qemus_order()
    {
        var h = new EngineHarness();
        var job = await h.StartAsync("q");
        job.Pause();
        await h.ExpectAsync("q:paused");
        var done = h.Engine.Create(new ScriptedOptions { Id = "d", AutoDismiss = false });
        done.Start();
        await h.ExpectAsync("d:created", "d:running");
        h.Driver("d").Send(new Step.Finish());
        await h.ExpectAsync("d:waiting", "d:pending", "d:COMPLETED", "d:concluded");
        await h.Engine.ShutdownAsync();
        var rest = new List<string>();
        while (h.Events.Reader.TryRead(out var e))
        {
            rest.Add(EngineHarness.Render(e));
        }

        CollectionAssert.AreEqual(new[] { "d:null", "q:running", "q:aborting", "q:CANCELLED", "q:concluded", "q:null" }, rest,
            string.Join(", ", rest));
        await h.DisposeAsync();
    }
}

[TestClass]
public sealed class InternalPauseTests
{
    [TestMethod]
    public async Task Internal_pause_is_visible_but_not_resumable_by_the_user()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("i");
        var drain = job.InternalPause();
        await h.ExpectAsync("i:paused");
        Assert.IsTrue(job.Info.Paused);
        Assert.IsFalse(job.IsUserPaused);
        Assert.AreEqual("Can't resume a job that was not paused", Assert.ThrowsExactly<JobException>(job.Resume).Message);

        // A user pause on top, then a user resume: the internal pause still holds the job.
        job.Pause();
        job.Resume();
        h.ExpectNoPendingEvent();
        Assert.AreEqual(JobStatus.Paused, job.Status);

        drain.Dispose();
        drain.Dispose();
        await h.ExpectAsync("i:running");
        Assert.IsFalse(job.Info.Paused);
        h.Driver("i").Send(new Step.Finish());
        await h.ExpectAsync("i:waiting", "i:pending", "i:COMPLETED", "i:concluded", "i:null");
    }
}
