using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>Wire shapes of jobs and job events (QEMU's <c>JobInfo</c>, <c>BlockJobInfo</c> and the job events).</summary>
internal static class QmpJobJson
{
    public const string JobStatusChange = "JOB_STATUS_CHANGE";

    /// <summary>A <c>query-jobs</c> entry.</summary>
    public static JsonObject JobInfo(JobInfo job)
    {
        var json = new JsonObject
        {
            ["current-progress"] = job.CurrentProgress,
            ["status"] = job.Status.WireName(),
            ["total-progress"] = job.TotalProgress,
            ["type"] = job.Type,
            ["id"] = job.Id,
        };
        if (job.Error is not null)
        {
            json["error"] = job.Error;
        }

        return json;
    }

    /// <summary>A <c>query-block-jobs</c> entry: QEMU 7.2's twelve keys, <c>error</c> when set, then type-specific fields.</summary>
    public static JsonObject BlockJobInfo(JobInfo job)
    {
        var json = new JsonObject
        {
            ["auto-finalize"] = job.AutoFinalize,
            ["io-status"] = job.IoStatus.WireName(),
            ["device"] = job.Id,
            ["auto-dismiss"] = job.AutoDismiss,
            ["busy"] = job.Busy,
            ["len"] = job.TotalProgress,
            ["offset"] = job.CurrentProgress,
            ["status"] = job.Status.WireName(),
            ["paused"] = job.Paused,
            ["speed"] = job.Speed,
            ["ready"] = job.Ready,
            ["type"] = job.Type,
        };
        if (job.Error is not null)
        {
            json["error"] = job.Error;
        }

        foreach (var (key, value) in job.Extra ?? new Dictionary<string, object?>())
        {
            json[key] = ToNode(value);
        }

        return json;
    }

    /// <summary>The QMP events one job event becomes (none for internal jobs).</summary>
    public static IEnumerable<QmpEvent> Events(JobEvent e, bool isBlockJob)
    {
        var job = e.Job;
        if (string.IsNullOrEmpty(job.Id))
        {
            yield break;
        }

        switch (e)
        {
            case JobStatusChangedEvent changed:
                yield return new QmpEvent(JobStatusChange, new JsonObject { ["status"] = changed.Status.WireName(), ["id"] = job.Id }, e.Timestamp);
                break;
            case JobReadyEvent when isBlockJob:
                yield return new QmpEvent("BLOCK_JOB_READY", Progress(job), e.Timestamp);
                break;
            case JobPendingEvent when isBlockJob:
                yield return new QmpEvent("BLOCK_JOB_PENDING", new JsonObject { ["type"] = job.Type, ["id"] = job.Id }, e.Timestamp);
                break;
            case JobCompletedEvent completed when isBlockJob:
                var data = Progress(job);
                if (completed.Error is not null)
                {
                    data["error"] = completed.Error;
                }

                yield return new QmpEvent("BLOCK_JOB_COMPLETED", data, e.Timestamp);
                break;
            case JobCancelledEvent when isBlockJob:
                yield return new QmpEvent("BLOCK_JOB_CANCELLED", Progress(job), e.Timestamp);
                break;
            case JobErrorEvent error when isBlockJob:
                yield return new QmpEvent(
                    "BLOCK_JOB_ERROR",
                    new JsonObject { ["device"] = job.Id, ["operation"] = error.Operation.WireName(), ["action"] = error.Action.WireName() },
                    e.Timestamp);
                break;
        }
    }

    private static JsonObject Progress(JobInfo job) => new()
    {
        ["device"] = job.Id,
        ["len"] = job.TotalProgress,
        ["offset"] = job.CurrentProgress,
        ["speed"] = job.Speed,
        ["type"] = job.Type,
    };

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        JsonNode node => node.DeepClone(),
        bool b => b,
        int i => i,
        long l => l,
        ulong u => u,
        double d => d,
        string s => s,
        Enum en => en.ToString().ToLowerInvariant(),
        _ => value.ToString(),
    };
}
