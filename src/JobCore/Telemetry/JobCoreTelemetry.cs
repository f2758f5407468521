using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace JobCore;

/// <summary>
/// The names of JobCore's traces and metrics. One trace per job (root span <c>job</c>, linked to the span that created
/// it), with a child span per phase: <c>job.run</c>, <c>job.paused</c>, <c>job.prepare</c>, <c>job.commit</c> /
/// <c>job.abort</c>. A failed job's root span has status Error and an <c>error.type</c> tag; a cancelled one does not.
/// </summary>
public static class JobCoreTelemetry
{
    /// <summary>The name of the <see cref="ActivitySource"/> and <see cref="Meter"/>: <c>JobCore</c>.</summary>
    public const string SourceName = "JobCore";

    /// <summary>Up-down counter of jobs by <c>job.type</c> and <c>job.status</c>.</summary>
    public const string JobsMetric = "jobcore.jobs";

    /// <summary>Histogram of job durations in seconds (start to concluded) by <c>job.type</c> and <c>job.outcome</c>.</summary>
    public const string DurationMetric = "jobcore.job.duration";

    /// <summary>Counter of I/O errors by <c>job.type</c>, <c>error.action</c> and <c>io.operation</c>.</summary>
    public const string ErrorsMetric = "jobcore.job.errors";

    /// <summary>Counter of progress units done by <c>job.type</c>.</summary>
    public const string ProgressMetric = "jobcore.job.progress";

    private static readonly ActivitySource Source = new(SourceName, typeof(JobCoreTelemetry).Assembly.GetName().Version?.ToString());
    private static readonly Meter Meter = new(SourceName, typeof(JobCoreTelemetry).Assembly.GetName().Version?.ToString());
    private static readonly UpDownCounter<long> Jobs = Meter.CreateUpDownCounter<long>(JobsMetric, "{job}", "Jobs by status");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>(DurationMetric, "s", "Job duration from start to concluded");
    private static readonly Counter<long> Errors = Meter.CreateCounter<long>(ErrorsMetric, "{error}", "I/O errors handled by error policies");
    private static readonly Counter<long> Progress = Meter.CreateCounter<long>(ProgressMetric, "{unit}", "Progress units done");

    internal static void JobCreated(Job job)
    {
        if (!Source.HasListeners())
        {
            return;
        }

        // One trace per job: a new root, linked (not parented) to whatever created it.
        var creator = Activity.Current;
        Activity.Current = null;
        try
        {
            ActivityLink[]? links = creator is null ? null : [new ActivityLink(creator.Context)];
            job.Activity = Source.StartActivity(ActivityKind.Internal, default, tags: null, links: links, name: "job");
            job.Activity?.SetTag("job.id", job.Id);
            job.Activity?.SetTag("job.type", job.Type);
        }
        finally
        {
            Activity.Current = creator;
        }
    }

    internal static void StatusChanged(Job job, JobStatus from, JobStatus to)
    {
        if (!Jobs.Enabled)
        {
            return;
        }

        if (from != JobStatus.Undefined)
        {
            Jobs.Add(-1, new("job.type", job.Type), new("job.status", from.WireName()));
        }

        if (to != JobStatus.Null)
        {
            Jobs.Add(1, new("job.type", job.Type), new("job.status", to.WireName()));
        }
    }

    internal static Activity? StartPhase(Job job, string phase)
    {
        var parent = job.Activity;
        if (parent is null)
        {
            return null;
        }

        var current = Activity.Current;
        var span = Source.StartActivity("job." + phase, ActivityKind.Internal, parent.Context);
        Activity.Current = current;
        return span;
    }

    internal static void EndPhase(Activity? span, Exception? failure)
    {
        if (span is null)
        {
            return;
        }

        if (failure is not null)
        {
            span.SetStatus(ActivityStatusCode.Error, failure.Message);
            span.SetTag("error.type", failure.GetType().FullName);
        }

        span.Stop();
    }

    internal static void JobConcluded(Job job, TimeSpan elapsed)
    {
        var cancelled = job.ForceCancelled;
        var outcome = !job.HasError ? "completed" : cancelled ? "cancelled" : "failed";
        if (job.Activity is { } activity)
        {
            activity.SetTag("job.outcome", outcome);
            if (outcome == "failed")
            {
                activity.SetStatus(ActivityStatusCode.Error, job.ErrorMessage);
                activity.SetTag("error.type", job.ErrorType ?? "error");
            }

            activity.Stop();
            job.Activity = null;
        }

        if (Duration.Enabled && job.Started)
        {
            Duration.Record(elapsed.TotalSeconds, new("job.type", job.Type), new("job.outcome", outcome));
        }
    }

    internal static void RecordError(Job job, IoOperation operation, ErrorAction action)
    {
        if (Errors.Enabled)
        {
            Errors.Add(1, new("job.type", job.Type), new("error.action", action.WireName()), new("io.operation", operation.WireName()));
        }
    }

    internal static void RecordProgress(Job job, long units)
    {
        if (Progress.Enabled && units > 0)
        {
            Progress.Add(units, new KeyValuePair<string, object?>("job.type", job.Type));
        }
    }
}
