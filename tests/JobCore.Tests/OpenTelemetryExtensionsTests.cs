using System.Diagnostics;
using JobCore.Tests.Support;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace JobCore.Tests;

[TestClass]
[DoNotParallelize]
public sealed class OpenTelemetryExtensionsTests
{
    [TestMethod]
    public async Task AddJobCoreInstrumentation_exports_job_spans_and_metrics_through_the_sdk()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        using (var tracer = Sdk.CreateTracerProviderBuilder()
                   .AddJobCoreInstrumentation()
                   .AddProcessor(new SimpleActivityExportProcessor(new ListExporter<Activity>(spans)))
                   .Build())
        using (var meter = Sdk.CreateMeterProviderBuilder()
                   .AddJobCoreInstrumentation()
                   .AddReader(new BaseExportingMetricReader(new ListExporter<Metric>(metrics)))
                   .Build())
        {
            await using var h = new EngineHarness();
            await h.StartAsync("otel");
            h.Driver("otel").Send(new Step.Work(9));
            h.Driver("otel").Send(new Step.Finish());
            await h.ExpectAsync("otel:waiting", "otel:pending", "otel:COMPLETED", "otel:concluded", "otel:null");
            Assert.IsTrue(tracer!.ForceFlush());
            Assert.IsTrue(meter!.ForceFlush());
        }

        lock (spans)
        {
            Assert.IsTrue(spans.Any(s => s.OperationName == "job" && (string?)s.GetTagItem("job.id") == "otel"));
            Assert.IsTrue(spans.Any(s => s.OperationName == "job.run"));
        }

        lock (metrics)
        {
            var names = metrics.Select(m => m.Name).ToHashSet();
            Assert.IsTrue(names.Contains(JobCoreTelemetry.JobsMetric), string.Join(",", names));
            Assert.IsTrue(names.Contains(JobCoreTelemetry.DurationMetric), string.Join(",", names));
            Assert.IsTrue(names.Contains(JobCoreTelemetry.ProgressMetric), string.Join(",", names));
        }
    }

    private sealed class ListExporter<T>(List<T> sink) : BaseExporter<T>
        where T : class
    {
        public override ExportResult Export(in Batch<T> batch)
        {
            lock (sink)
            {
                foreach (var item in batch)
                {
                    sink.Add(item);
                }
            }

            return ExportResult.Success;
        }
    }
}
