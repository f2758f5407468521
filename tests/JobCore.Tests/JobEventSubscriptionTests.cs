using JobCore.Tests.Support;

namespace JobCore.Tests;

[TestClass]
public sealed class JobEventSubscriptionTests
{
    [TestMethod]
    public async Task A_stalled_subscriber_is_cut_off_without_stalling_jobs_or_others()
    {
        await using var h = new EngineHarness();
        using var stalled = h.Engine.Subscribe(capacity: 4);
        var job = await h.StartAsync("s");
        // 3 events buffered so far in the stalled one (created, running); push it over with pause/resume pairs.
        for (var i = 0; i < 3; i++)
        {
            job.Pause();
            await h.ExpectAsync("s:paused");
            job.Resume();
            await h.ExpectAsync("s:running");
        }

        h.Driver("s").Send(new Step.Finish());
        await h.ExpectAsync("s:waiting", "s:pending", "s:COMPLETED", "s:concluded", "s:null");
        Assert.IsTrue(stalled.Overflowed);

        var delivered = new List<string>();
        var ex = await Assert.ThrowsExactlyAsync<JobEventOverflowException>(async () =>
        {
            await foreach (var e in stalled.Reader.ReadAllAsync())
            {
                delivered.Add(EngineHarness.Render(e));
            }
        });
        StringAssert.Contains(ex.Message, "4 events");
        CollectionAssert.AreEqual(new[] { "s:created", "s:running", "s:paused", "s:running" }, delivered,
            "the buffered prefix is delivered in order, then the overflow");
    }

    [TestMethod]
    public async Task A_throwing_consumer_does_not_affect_the_engine()
    {
        await using var h = new EngineHarness();
        using var faulty = h.Engine.Subscribe();
        var consumer = Task.Run(async () =>
        {
            await faulty.Reader.ReadAsync();
            throw new InvalidOperationException("subscriber bug");
        });
        var job = await h.StartAsync("f");
        await Assert.ThrowsExactlyAsync<InvalidOperationException>(() => consumer);
        h.Driver("f").Send(new Step.Finish());
        await h.ExpectAsync("f:waiting", "f:pending", "f:COMPLETED", "f:concluded", "f:null");
        Assert.AreEqual(JobStatus.Null, job.Status);
    }

    [TestMethod]
    public async Task Every_subscriber_sees_the_same_order_with_timestamps_from_the_engine_clock()
    {
        await using var h = new EngineHarness();
        using var second = h.Engine.Subscribe();
        await h.StartAsync("o");
        h.Time.Advance(TimeSpan.FromSeconds(3));
        h.Driver("o").Send(new Step.Finish());
        await h.ExpectAsync("o:waiting", "o:pending", "o:COMPLETED", "o:concluded", "o:null");
        var seen = new List<JobEvent>();
        while (second.Reader.TryRead(out var e))
        {
            seen.Add(e);
        }

        CollectionAssert.AreEqual(
            new[] { "o:created", "o:running", "o:waiting", "o:pending", "o:COMPLETED", "o:concluded", "o:null" },
            seen.Select(EngineHarness.Render).ToArray());
        Assert.AreEqual(h.Time.Start, seen[0].Timestamp);
        Assert.AreEqual(h.Time.Start + TimeSpan.FromSeconds(3), seen[^1].Timestamp);
    }

    [TestMethod]
    public async Task Dispose_stops_delivery()
    {
        await using var h = new EngineHarness();
        var sub = h.Engine.Subscribe();
        sub.Dispose();
        await h.StartAsync("d");
        Assert.IsTrue(sub.Reader.Completion.IsCompleted);
        Assert.IsFalse(sub.Reader.TryRead(out _));
    }
}
