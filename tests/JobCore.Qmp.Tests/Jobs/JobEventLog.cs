using System.Text.Json.Nodes;

namespace JobCore.Qmp.Tests.Jobs;

/// <summary>Short forms of QMP job events for order assertions: <c>created</c>, <c>BLOCK_JOB_COMPLETED</c>, ...</summary>
internal static class JobEventLog
{
    /// <summary><c>JOB_STATUS_CHANGE</c> becomes its status; other events their name (plus <c>!error</c> when they carry one).</summary>
    public static string Describe(JsonObject e)
    {
        var name = e["event"]!.GetValue<string>();
        if (name == "JOB_STATUS_CHANGE")
        {
            return e["data"]!["status"]!.GetValue<string>();
        }

        return e["data"]?["error"] is null ? name : name + "!error";
    }

    /// <summary>The job id an event is about (<c>id</c> or <c>device</c>), or null.</summary>
    public static string? JobId(JsonObject e) =>
        (e["data"]?["id"] ?? e["data"]?["device"])?.GetValue<string>();

    /// <summary>Reads events of <paramref name="jobId"/> until one whose short form is <paramref name="last"/>.</summary>
    public static async Task<List<string>> ReadUntilAsync(QmpClient client, string jobId, string last, TimeSpan? timeout = null)
    {
        var seen = new List<string>();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            while (true)
            {
                var e = await client.Events.ReadAsync(cts.Token);
                if (JobId(e) != jobId)
                {
                    continue;
                }

                seen.Add(Describe(e));
                if (seen[^1] == last)
                {
                    return seen;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new AssertFailedException($"job '{jobId}' never sent '{last}'; saw: {string.Join(", ", seen)}");
        }
    }
}
