using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using JobCore.Tests.Support;

namespace JobCore.Tests;

// Listeners are process-wide: these tests filter by job id, and run one at a time.
[TestClass]
[DoNotParallelize]
public sealed class TelemetryTests
{
    [TestMethod]
    public async Task One_trace_per_job_linked_to_the_creator_with_phase_spans()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == JobCoreTelemetry.SourceName || s.Name == "Test",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        using var testSource = new ActivitySource("Test");

        await using var h = new EngineHarness();
        Job job;
        ActivityContext creator;
        using (var command = testSource.StartActivity("qmp block-stream"))
        {
            creator = command!.Context;
            job = await h.StartAsync("t1");
        }

        job.Pause();
        await h.ExpectAsync("t1:paused");
        job.Resume();
        await h.ExpectAsync("t1:running");
        h.Driver("t1").Send(new Step.Finish());
        await h.ExpectAsync("t1:waiting", "t1:pending", "t1:COMPLETED", "t1:concluded", "t1:null");

        var root = spans.Single(s => s.OperationName == "job" && (string?)s.GetTagItem("job.id") == "t1");
        Assert.AreEqual(default, root.ParentSpanId, "a job is its own trace");
        Assert.AreNotEqual(creator.TraceId, root.TraceId);
        Assert.AreEqual(creator.SpanId, root.Links.Single().Context.SpanId, "linked to the creating call");
        Assert.AreEqual(ActivityStatusCode.Unset, root.Status);
        Assert.AreEqual("completed", root.GetTagItem("job.outcome"));
        var children = spans.Where(s => s.ParentSpanId == root.SpanId).Select(s => s.OperationName).ToArray();
        CollectionAssert.AreEquivalent(new[] { "job.run", "job.paused", "job.prepare", "job.commit" }, children);
    }

    [TestMethod]
    public async Task Failure_sets_error_status_but_user_cancel_does_not()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == JobCoreTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var h = new EngineHarness();
        await h.StartAsync("bad");
        h.Driver("bad").Send(new Step.Fail("Input/output error"));
        await h.ExpectAsync("bad:aborting", "bad:COMPLETED:Input/output error", "bad:concluded", "bad:null");
        var cancelled = await h.StartAsync("cxl");
        await cancelled.CancelAsync(force: true);
        await h.ExpectAsync("cxl:aborting", "cxl:CANCELLED", "cxl:concluded", "cxl:null");

        var bad = spans.Single(s => s.OperationName == "job" && (string?)s.GetTagItem("job.id") == "bad");
        Assert.AreEqual(ActivityStatusCode.Error, bad.Status);
        Assert.AreEqual(typeof(JobFailedException).FullName, bad.GetTagItem("error.type"));
        var cxl = spans.Single(s => s.OperationName == "job" && (string?)s.GetTagItem("job.id") == "cxl");
        Assert.AreEqual(ActivityStatusCode.Unset, cxl.Status);
        Assert.AreEqual("cancelled", cxl.GetTagItem("job.outcome"));
        Assert.IsNull(cxl.GetTagItem("error.type"));
    }

    [TestMethod]
    public async Task Metrics_count_statuses_duration_errors_and_progress()
    {
        var longs = new ConcurrentQueue<(string Name, long Value, Dictionary<string, object?> Tags)>();
        var doubles = new ConcurrentQueue<(string Name, double Value)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == JobCoreTelemetry.SourceName)
                {
                    l.EnableMeasurementEvents(i);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            var d = new Dictionary<string, object?>();
            foreach (var t in tags)
            {
                d[t.Key] = t.Value;
            }

            if ((string?)d.GetValueOrDefault("job.type") == "metered")
            {
                longs.Enqueue((i.Name, v, d));
            }
        });
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) =>
        {
            foreach (var t in tags)
            {
                if (t.Key == "job.type" && (string?)t.Value == "metered")
                {
                    doubles.Enqueue((i.Name, v));
                }
            }
        });
        listener.Start();

        var registry = new JobTypeRegistry();
        ScriptedJob? driver = null;
        registry.Add<ScriptedJob, ScriptedOptions>("metered", (_, _) => driver = new ScriptedJob());
        await using var engine = new JobEngine(registry);
        using var events = engine.Subscribe();
        var job = engine.Create(new ScriptedOptions { Id = "m1" });
        job.Start();
        Assert.IsNotNull(driver, "the driver is built by Create");
        Assert.AreEqual(ErrorAction.Ignore, job.Context.HandleError(ErrorPolicy.Ignore, IoOperation.Write, noSpace: false));
        driver.Send(new Step.Work(42));
        driver.Send(new Step.Finish());
        await job.Concluded.WaitAsync(EngineHarness.Timeout);

        var statusSum = longs.Where(m => m.Name == JobCoreTelemetry.JobsMetric).GroupBy(m => (string)m.Tags["job.status"]!)
            .ToDictionary(g => g.Key, g => g.Sum(m => m.Value));
        Assert.IsTrue(statusSum.Values.All(v => v == 0), "every +1 has its -1 once the job is gone: " + string.Join(",", statusSum));
        CollectionAssert.IsSubsetOf(new[] { "created", "running", "waiting", "pending", "concluded" }, statusSum.Keys.ToArray());
        Assert.AreEqual(42, longs.Where(m => m.Name == JobCoreTelemetry.ProgressMetric).Sum(m => m.Value));
        var error = longs.Single(m => m.Name == JobCoreTelemetry.ErrorsMetric);
        Assert.AreEqual("ignore", error.Tags["error.action"]);
        Assert.AreEqual("write", error.Tags["io.operation"]);
        Assert.IsFalse(error.Tags.ContainsKey("job.id"), "no job ids as metric attributes");
        Assert.AreEqual(1, doubles.Count(d => d.Name == JobCoreTelemetry.DurationMetric));
    }
}
