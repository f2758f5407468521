using JobCore.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace JobCore.Tests;

[TestClass]
public sealed class RateLimiterTests
{
    [TestMethod]
    public void Unlimited_never_delays()
    {
        var limiter = new RateLimiter(new FakeTimeProvider());
        limiter.SetSpeed(0);
        Assert.AreEqual(TimeSpan.Zero, limiter.CalculateDelay(long.MaxValue / 2));
    }

    [TestMethod]
    public void First_chunk_is_free_then_delay_grows_with_the_overshoot()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimiter(time);
        limiter.SetSpeed(1_000_000); // quota 100 000 per 100 ms slice
        Assert.AreEqual(TimeSpan.Zero, limiter.CalculateDelay(50_000), "under quota: no delay");
        var delay = limiter.CalculateDelay(250_000); // 300 000 dispatched = 3 slices
        Assert.AreEqual(300, delay.TotalMilliseconds, 0.5);
        time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.AreEqual(200, limiter.CalculateDelay(0).TotalMilliseconds, 0.5, "recomputed after an early wake-up");
        time.Advance(TimeSpan.FromMilliseconds(201));
        Assert.AreEqual(TimeSpan.Zero, limiter.CalculateDelay(0), "a finished slice resets the accounting");
    }

    [TestMethod]
    public void Tiny_speed_still_has_a_quota_of_one()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimiter(time);
        limiter.SetSpeed(1);
        Assert.AreEqual(100, limiter.CalculateDelay(1).TotalMilliseconds, 0.5, "one unit = one whole slice");
    }

    [TestMethod]
    public async Task Job_sleeps_for_the_overshoot_on_fake_time()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("r", new ScriptedOptions { Speed = 1000 }); // quota 100 per slice
        var d = h.Driver("r");
        d.Send(new Step.Work(500));
        d.Send(new Step.Work(1));
        await EngineHarness.WaitForAsync(job, i => i.CurrentProgress == 500 && !i.Busy);
        h.Time.Advance(TimeSpan.FromMilliseconds(400));
        Assert.AreEqual(500, job.Info.CurrentProgress, "still sleeping after 400 of 500 ms");
        h.Time.Advance(TimeSpan.FromMilliseconds(100));
        await EngineHarness.WaitForAsync(job, i => i.CurrentProgress == 501);
    }

    [TestMethod]
    public async Task Raising_the_speed_wakes_a_sleeping_job()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("r", new ScriptedOptions { Speed = 100 });
        var d = h.Driver("r");
        d.Send(new Step.Work(1000)); // 100 slices = 10 s of fake time
        await EngineHarness.WaitForAsync(job, i => i.CurrentProgress == 1000 && !i.Busy);
        job.SetSpeed(0);
        d.Send(new Step.Finish());
        await h.ExpectAsync("r:waiting", "r:pending", "r:COMPLETED", "r:concluded", "r:null");
        Assert.AreEqual(0, job.Info.Speed);
    }

    [TestMethod]
    public async Task Pause_interrupts_the_sleep_but_resume_serves_the_rest_of_the_delay()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("r", new ScriptedOptions { Speed = 1000 });
        var d = h.Driver("r");
        d.Send(new Step.Work(500));
        d.Send(new Step.Work(1));
        await EngineHarness.WaitForAsync(job, i => i.CurrentProgress == 500 && !i.Busy);
        job.Pause();
        await h.ExpectAsync("r:paused");
        job.Resume();
        await h.ExpectAsync("r:running");
        await EngineHarness.WaitForAsync(job, i => !i.Busy);
        Assert.AreEqual(500, job.Info.CurrentProgress, "the remaining delay is still served");
        h.Time.Advance(TimeSpan.FromMilliseconds(500));
        await EngineHarness.WaitForAsync(job, i => i.CurrentProgress == 501);
    }

    [TestMethod]
    public async Task Negative_speed_is_refused_and_speed_is_reported()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("r");
        Assert.AreEqual("Parameter 'speed' expects a non-negative value",
            Assert.ThrowsExactly<JobException>(() => job.SetSpeed(-1)).Message);
        job.SetSpeed(4096);
        Assert.AreEqual(4096, job.Info.Speed);
    }
}
