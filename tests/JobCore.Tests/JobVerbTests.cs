using JobCore.Tests.Support;

namespace JobCore.Tests;

/// <summary>Every verb applied to a real job in every status a job can be observed in.</summary>
[TestClass]
public sealed class JobVerbTests
{
    private static readonly JobStatus[] Observable =
    [
        JobStatus.Created, JobStatus.Running, JobStatus.Paused, JobStatus.Ready, JobStatus.Standby,
        JobStatus.Waiting, JobStatus.Pending, JobStatus.Aborting, JobStatus.Concluded,
    ];

    public static IEnumerable<object[]> Pairs() =>
        from s in Observable from v in Enum.GetValues<JobVerb>() select new object[] { s, v };

    [TestMethod]
    [DynamicData(nameof(Pairs))]
    public async Task Verb_is_accepted_or_refused_with_qemus_text(JobStatus status, JobVerb verb)
    {
        await using var h = new EngineHarness();
        var abortGate = new TaskCompletionSource();
        var job = await BringToAsync(h, status, abortGate.Task);
        Assert.AreEqual(status, job.Status, "setup");
        try
        {
            var error = await ApplyAsync(job, verb);
            var refusal = $"Job 'j' in state '{status.WireName()}' cannot accept command verb '{verb.WireName()}'";
            if (verb == JobVerb.Resume && !job.IsUserPaused && error is not null)
            {
                // QEMU checks "was it user-paused" before the verb table.
                Assert.AreEqual("Can't resume a job that was not paused", error.Message);
            }
            else if (Lifecycle.Accepts(status, verb))
            {
                Assert.AreNotEqual(refusal, error?.Message, "verb accepted by the table must pass the verb check");
            }
            else
            {
                Assert.IsNotNull(error, $"{verb} must be refused in {status}");
                Assert.AreEqual(refusal, error.Message);
                Assert.AreEqual("GenericError", error.ErrorClass);
                Assert.AreEqual(status, job.Status, "a refused verb changes nothing");
            }
        }
        finally
        {
            abortGate.TrySetResult();
        }
    }

    internal static async Task<JobException?> ApplyAsync(Job job, JobVerb verb)
    {
        try
        {
            switch (verb)
            {
                case JobVerb.Cancel: await job.CancelAsync(force: true); break;
                case JobVerb.Pause: job.Pause(); break;
                case JobVerb.Resume: job.Resume(); break;
                case JobVerb.SetSpeed: job.SetSpeed(1000); break;
                case JobVerb.Complete: job.Complete(); break;
                case JobVerb.Finalize: await job.FinalizeAsync(); break;
                case JobVerb.Dismiss: job.Dismiss(); break;
                case JobVerb.Change: job.Change(new object()); break;
            }

            return null;
        }
        catch (JobException e)
        {
            return e;
        }
    }

    /// <summary>Drives a scripted job named "j" into <paramref name="status"/>.</summary>
    internal static async Task<Job> BringToAsync(EngineHarness h, JobStatus status, Task abortGate)
    {
        var options = new ScriptedOptions
        {
            Completable = true,
            AutoFinalize = status != JobStatus.Pending,
            AutoDismiss = status != JobStatus.Concluded,
            AbortGate = status == JobStatus.Aborting ? abortGate : null,
            SupportsChange = true,
        };
        if (status == JobStatus.Created)
        {
            var created = h.Engine.Create(options with { Id = "j", HookLog = h.HookLog });
            await h.ExpectAsync("j:created");
            return created;
        }

        JobTransaction? txn = status == JobStatus.Waiting ? JobEngine.CreateTransaction() : null;
        if (txn is not null)
        {
            await h.StartAsync("sibling", new ScriptedOptions(), txn);
        }

        var job = await h.StartAsync("j", options, txn);
        var d = h.Driver("j");
        switch (status)
        {
            case JobStatus.Running:
                break;
            case JobStatus.Paused:
                job.Pause();
                await h.ExpectAsync("j:paused");
                break;
            case JobStatus.Ready:
                d.Send(new Step.Ready());
                await h.ExpectAsync("j:ready", "j:READY");
                break;
            case JobStatus.Standby:
                d.Send(new Step.Ready());
                await h.ExpectAsync("j:ready", "j:READY");
                job.Pause();
                await h.ExpectAsync("j:standby");
                break;
            case JobStatus.Waiting:
                d.Send(new Step.Finish());
                await h.ExpectAsync("j:waiting");
                break;
            case JobStatus.Pending:
                d.Send(new Step.Finish());
                await h.ExpectAsync("j:waiting", "j:pending", "j:PENDING");
                break;
            case JobStatus.Aborting:
                d.Send(new Step.Fail("boom"));
                await h.ExpectAsync("j:aborting");
                break;
            case JobStatus.Concluded:
                d.Send(new Step.Finish());
                await h.ExpectAsync("j:waiting", "j:pending", "j:COMPLETED", "j:concluded");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(status));
        }

        return job;
    }
}
