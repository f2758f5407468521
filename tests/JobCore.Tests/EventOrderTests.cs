using JobCore.Tests.Support;

namespace JobCore.Tests;

/// <summary>The reference event orderings of spec §3.1, driven through the scripted job.</summary>
[TestClass]
public sealed class EventOrderTests
{
    [TestMethod]
    public async Task A_normal_run()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("a");
        h.Driver("a").Send(new Step.Work(100));
        h.Driver("a").Send(new Step.Finish());
        await h.ExpectAsync("a:waiting", "a:pending", "a:COMPLETED", "a:concluded", "a:null");
        Assert.AreEqual(JobStatus.Null, job.Status);
        Assert.IsFalse(h.Engine.TryGetJob("a", out _), "auto-dismissed job is gone");
        CollectionAssert.AreEqual(new[] { "prepare:a", "commit:a", "clean:a" }, h.HookLog.ToArray());
    }

    [TestMethod]
    public async Task A_prime_manual_finalize_and_dismiss()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("a", new ScriptedOptions { AutoFinalize = false, AutoDismiss = false });
        h.Driver("a").Send(new Step.Finish());
        await h.ExpectAsync("a:waiting", "a:pending", "a:PENDING");
        Assert.AreEqual(JobStatus.Pending, job.Status);
        Assert.IsEmpty(h.HookLog, "nothing is prepared before job-finalize");

        await job.FinalizeAsync();
        // Finalize is synchronous: the events are out before it returns.
        await h.ExpectAsync("a:COMPLETED", "a:concluded");
        h.ExpectNoPendingEvent();
        Assert.AreEqual(JobStatus.Concluded, job.Status);
        Assert.IsNull(h.Engine.QueryJobs().Single().Error);

        job.Dismiss();
        await h.ExpectAsync("a:null");
        Assert.IsEmpty(h.Engine.QueryJobs());
    }

    [TestMethod]
    public async Task A_auto_finalize_manual_dismiss_stops_at_concluded()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("a", new ScriptedOptions { AutoDismiss = false });
        h.Driver("a").Send(new Step.Finish());
        await h.ExpectAsync("a:waiting", "a:pending", "a:COMPLETED", "a:concluded");
        await job.Concluded.WaitAsync(EngineHarness.Timeout);
        h.ExpectNoPendingEvent();
        Assert.AreEqual(JobStatus.Concluded, h.Engine.QueryJobs().Single().Status);
    }

    [TestMethod]
    public async Task B_force_cancel_while_running()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("b");
        h.Driver("b").Send(new Step.Work(10));
        await job.CancelAsync(force: true);
        await h.ExpectAsync("b:aborting", "b:CANCELLED", "b:concluded", "b:null");
        CollectionAssert.AreEqual(new[] { "abort:b", "clean:b" }, h.HookLog.ToArray());
    }

    [TestMethod]
    public async Task B_cancel_of_paused_job_shows_running_before_aborting()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("b");
        job.Pause();
        await h.ExpectAsync("b:paused");
        await job.CancelAsync(force: true);
        await h.ExpectAsync("b:running", "b:aborting", "b:CANCELLED", "b:concluded", "b:null");
    }

    [TestMethod]
    public async Task B_cancel_of_standby_job_shows_ready_before_aborting()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("b", new ScriptedOptions { Completable = true });
        h.Driver("b").Send(new Step.Ready());
        await h.ExpectAsync("b:ready", "b:READY");
        job.Pause();
        await h.ExpectAsync("b:standby");
        await job.CancelAsync(force: true);
        await h.ExpectAsync("b:ready", "b:aborting", "b:CANCELLED", "b:concluded", "b:null");
    }

    [TestMethod]
    public async Task B_cancel_before_start_emits_status_events_only()
    {
        await using var h = new EngineHarness();
        var job = h.Engine.Create(new ScriptedOptions { Id = "c", HookLog = h.HookLog });
        await job.CancelAsync(force: false);
        await h.ExpectAsync("c:created", "c:aborting", "c:concluded", "c:null");
        Assert.IsTrue(job.Concluded.IsCompleted);
        CollectionAssert.AreEqual(new[] { "abort:c", "clean:c" }, h.HookLog.ToArray());
    }

    [TestMethod]
    public async Task C_failed_run_with_report_policy()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("c", new ScriptedOptions { AutoDismiss = false });
        h.Driver("c").Send(new Step.IoError(ErrorPolicy.Report, IoOperation.Read, NoSpace: false));
        await h.ExpectAsync("c:ERROR:read:report", "c:aborting", "c:COMPLETED:Input/output error", "c:concluded");
        Assert.AreEqual("Input/output error", job.Info.Error);
        CollectionAssert.AreEqual(new[] { "abort:c", "clean:c" }, h.HookLog.ToArray());
    }

    [TestMethod]
    public async Task C_failure_outside_the_copy_loop_has_no_error_event()
    {
        await using var h = new EngineHarness();
        await h.StartAsync("c");
        h.Driver("c").Send(new Step.Fail("Source and target image have different sizes"));
        await h.ExpectAsync("c:aborting", "c:COMPLETED:Source and target image have different sizes", "c:concluded", "c:null");
    }

    [TestMethod]
    public async Task D_stop_policy_pauses_and_resume_retries()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("d");
        var d = h.Driver("d");
        d.Send(new Step.IoError(ErrorPolicy.Stop, IoOperation.Write, NoSpace: false));
        await h.ExpectAsync("d:ERROR:write:stop", "d:paused");
        var info = job.Info;
        Assert.IsTrue(info.Paused);
        Assert.AreEqual(IoStatus.Failed, info.IoStatus);
        Assert.AreEqual(JobStatus.Paused, info.Status);
        Assert.IsTrue(job.IsUserPaused, "an error stop is a user pause");

        job.Resume();
        await h.ExpectAsync("d:running");
        Assert.AreEqual(IoStatus.Ok, job.Info.IoStatus, "resume resets the I/O status");
        d.Send(new Step.Finish());
        await h.ExpectAsync("d:waiting", "d:pending", "d:COMPLETED", "d:concluded", "d:null");
        Assert.AreEqual(1, d.Retries);
    }

    [TestMethod]
    public async Task D_stop_when_ready_goes_to_standby_and_back_without_second_ready_event()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("d", new ScriptedOptions { Completable = true });
        var d = h.Driver("d");
        d.Send(new Step.Ready());
        await h.ExpectAsync("d:ready", "d:READY");
        d.Send(new Step.IoError(ErrorPolicy.Enospc, IoOperation.Write, NoSpace: true));
        await h.ExpectAsync("d:ERROR:write:stop", "d:standby");
        Assert.AreEqual(IoStatus.NoSpace, job.Info.IoStatus);
        job.Resume();
        await h.ExpectAsync("d:ready");
        job.Complete();
        await h.ExpectAsync("d:waiting", "d:pending", "d:COMPLETED", "d:concluded", "d:null");
    }

    [TestMethod]
    public async Task E_ready_then_complete()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("e", new ScriptedOptions { Completable = true });
        var d = h.Driver("e");
        d.Send(new Step.Work(100));
        d.Send(new Step.Ready());
        await h.ExpectAsync("e:ready", "e:READY");
        job.Complete();
        await h.ExpectAsync("e:waiting", "e:pending", "e:COMPLETED", "e:concluded", "e:null");
        Assert.IsTrue(d.Pivoted);
    }

    [TestMethod]
    public async Task E_complete_is_accepted_in_standby_and_finishes_after_resume()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("e", new ScriptedOptions { Completable = true });
        h.Driver("e").Send(new Step.Ready());
        await h.ExpectAsync("e:ready", "e:READY");
        job.Pause();
        await h.ExpectAsync("e:standby");
        job.Complete();
        h.ExpectNoPendingEvent();
        Assert.AreEqual(JobStatus.Standby, job.Status, "stays on standby until resumed");
        job.Resume();
        await h.ExpectAsync("e:ready", "e:waiting", "e:pending", "e:COMPLETED", "e:concluded", "e:null");
    }

    [TestMethod]
    public async Task F_soft_cancel_after_ready_completes_without_pivot()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("f", new ScriptedOptions { Completable = true });
        h.Driver("f").Send(new Step.Ready());
        await h.ExpectAsync("f:ready", "f:READY");
        await job.CancelAsync(force: false);
        await h.ExpectAsync("f:waiting", "f:pending", "f:COMPLETED", "f:concluded", "f:null");
        Assert.IsFalse(h.Driver("f").Pivoted);
    }

    [TestMethod]
    public async Task F_soft_cancel_before_ready_is_a_force_cancel()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("f", new ScriptedOptions { Completable = true });
        await job.CancelAsync(force: false);
        await h.ExpectAsync("f:aborting", "f:CANCELLED", "f:concluded", "f:null");
    }

    [TestMethod]
    public async Task G_force_cancel_after_ready()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("g", new ScriptedOptions { Completable = true, AutoDismiss = false });
        h.Driver("g").Send(new Step.Ready());
        await h.ExpectAsync("g:ready", "g:READY");
        await job.CancelAsync(force: true);
        await h.ExpectAsync("g:aborting", "g:CANCELLED", "g:concluded");
        Assert.AreEqual("Operation canceled", job.Info.Error);
    }

    [TestMethod]
    public async Task H_grouped_transaction_succeeds_together()
    {
        await using var h = new EngineHarness();
        var txn = JobEngine.CreateTransaction();
        await h.StartAsync("x", txn: txn);
        await h.StartAsync("y", new ScriptedOptions { AutoFinalize = false }, txn);
        h.Driver("x").Send(new Step.Finish());
        await h.ExpectAsync("x:waiting");
        h.ExpectNoPendingEvent();
        h.Driver("y").Send(new Step.Finish());
        // Members in transaction order (newest first); PENDING only for the manual-finalize member.
        await h.ExpectAsync("y:waiting", "y:pending", "y:PENDING", "x:pending");
        Assert.IsEmpty(h.HookLog);

        Assert.IsTrue(h.Engine.TryGetJob("x", out var x));
        await x.FinalizeAsync();
        await h.ExpectAsync("y:COMPLETED", "y:concluded", "y:null", "x:COMPLETED", "x:concluded", "x:null");
        CollectionAssert.AreEqual(
            new[] { "prepare:y", "prepare:x", "commit:y", "clean:y", "commit:x", "clean:x" }, h.HookLog.ToArray());
    }

    [TestMethod]
    public async Task H_failure_force_cancels_siblings_and_aborts_all()
    {
        await using var h = new EngineHarness();
        var txn = JobEngine.CreateTransaction();
        await h.StartAsync("x", txn: txn);
        await h.StartAsync("y", txn: txn);
        await h.StartAsync("z", txn: txn);
        h.Driver("x").Send(new Step.Finish());
        await h.ExpectAsync("x:waiting");
        h.Driver("y").Send(new Step.Fail("boom"));
        await h.ExpectAsync(
            "y:aborting",
            "z:aborting",
            "z:CANCELLED", "z:concluded", "z:null",
            "y:COMPLETED:boom", "y:concluded", "y:null",
            "x:aborting", "x:CANCELLED", "x:concluded", "x:null");
        Assert.IsFalse(h.HookLog.Any(e => e.StartsWith("commit", StringComparison.Ordinal)), "nothing commits");
        Assert.AreEqual(3, h.HookLog.Count(e => e.StartsWith("abort", StringComparison.Ordinal)));
    }

    [TestMethod]
    public async Task H_failing_prepare_aborts_the_transaction()
    {
        await using var h = new EngineHarness();
        var txn = JobEngine.CreateTransaction();
        await h.StartAsync("x", new ScriptedOptions { PrepareFailure = "cannot switch backing file" }, txn);
        await h.StartAsync("y", txn: txn);
        h.Driver("x").Send(new Step.Finish());
        await h.ExpectAsync("x:waiting");
        h.Driver("y").Send(new Step.Finish());
        await h.ExpectAsync("y:waiting", "y:pending", "x:pending", "x:aborting");
        // The failed member reports its error; every other member is cancelled (all or nothing).
        await h.ExpectAsync(
            "y:aborting", "y:CANCELLED", "y:concluded", "y:null",
            "x:COMPLETED:cannot switch backing file", "x:concluded", "x:null");
        Assert.IsFalse(h.HookLog.Any(e => e.StartsWith("commit", StringComparison.Ordinal)));
    }

    /// <summary>
    /// An error handled with HandleErrorAsync waits while a command holds completions (a QMP session runs one), so its
    /// event follows that command's reply, as QEMU's main loop reports I/O errors between commands.
    /// </summary>
    [TestMethod]
    public async Task An_error_handled_between_commands_waits_for_the_running_command()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("e");
        IDisposable command = await h.Engine.HoldCompletionsAsync();
        h.Driver("e").Send(new Step.IoError(ErrorPolicy.Stop, IoOperation.Read, NoSpace: false, BetweenCommands: true));
        await WaitingForTheCommandAsync(h);
        h.ExpectNoPendingEvent();
        Assert.AreEqual(IoStatus.Ok, job.Info.IoStatus);

        command.Dispose();
        await h.ExpectAsync("e:ERROR:read:stop", "e:paused");
        Assert.AreEqual(IoStatus.Failed, job.Info.IoStatus);
    }

    /// <summary>READY declared with TransitionToReadyAsync waits for the running command's reply too.</summary>
    [TestMethod]
    public async Task Ready_declared_between_commands_waits_for_the_running_command()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("r", new ScriptedOptions { Completable = true });
        IDisposable command = await h.Engine.HoldCompletionsAsync();
        h.Driver("r").Send(new Step.Ready(BetweenCommands: true));
        await WaitingForTheCommandAsync(h);
        h.ExpectNoPendingEvent();
        Assert.AreEqual(JobStatus.Running, job.Status);

        command.Dispose();
        await h.ExpectAsync("r:ready", "r:READY");
    }

    /// <summary>
    /// CompleteWhenWorkEndsAsync completes a job whose work ended even while completions are held: waiting ... null
    /// are out before the command that started a job with nothing to do replies.
    /// </summary>
    [TestMethod]
    public async Task A_job_with_nothing_to_do_completes_inside_the_command()
    {
        await using var h = new EngineHarness();
        using (await h.Engine.HoldCompletionsAsync())
        {
            var job = await h.StartAsync("n");
            h.Driver("n").Send(new Step.Finish());
            Assert.IsTrue(await job.CompleteWhenWorkEndsAsync(EngineHarness.Timeout));
            await h.ExpectAsync("n:waiting", "n:pending", "n:COMPLETED", "n:concluded", "n:null");
        }

        h.ExpectNoPendingEvent();
    }

    /// <summary>CompleteWhenWorkEndsAsync gives up after its timeout when the work goes on, without touching the job.</summary>
    [TestMethod]
    public async Task Completing_a_job_whose_work_goes_on_times_out()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("b");
        Task<bool> attempt = job.CompleteWhenWorkEndsAsync(TimeSpan.FromMilliseconds(50));
        h.Time.Advance(TimeSpan.FromMilliseconds(60)); // the engine's clock bounds the wait
        Assert.IsFalse(await attempt.WaitAsync(EngineHarness.Timeout));
        Assert.AreEqual(JobStatus.Running, job.Status);
        h.Driver("b").Send(new Step.Finish());
        await h.ExpectAsync("b:waiting", "b:pending", "b:COMPLETED", "b:concluded", "b:null");
    }

    // Until the job has entered the engine's wait for the running command (the step was taken, the action held back).
    private static async Task WaitingForTheCommandAsync(EngineHarness h)
    {
        var deadline = DateTime.UtcNow + EngineHarness.Timeout;
        while (h.Engine.WaitingBetweenCommands == 0)
        {
            Assert.IsTrue(DateTime.UtcNow < deadline, "the job never reached the wait for the command");
            await Task.Yield();
        }
    }
}
