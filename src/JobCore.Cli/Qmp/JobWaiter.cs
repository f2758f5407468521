using System.Globalization;
using System.Text.Json.Nodes;
using JobCore.Qmp;
using JobCore.Qmp.Json;

namespace JobCore.Cli.Qmp;

/// <summary>
/// Follows one block job to its end (virsh blockjob habits): prints progress when asked (a bar on a terminal,
/// plain lines otherwise), pivots a ready job when asked, and turns the outcome into an exit code.
/// </summary>
internal sealed class JobWaiter(QmpClient client, string jobId, bool pivot, bool stopAtReady, bool verbose, bool printEvents)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);
    private int _lastPercent = -1;

    /// <summary>Waits; 0 = completed (or ready, when stopping there), 1 = failed or cancelled.</summary>
    public async Task<int> WaitAsync(CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var progress = verbose ? ShowProgressAsync(stop.Token) : Task.CompletedTask;
        int? outcome = null;
        try
        {
            await foreach (var e in client.Events.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                var data = e["data"] as JsonObject;
                if ((data?["device"] ?? data?["id"])?.GetValue<string>() != jobId)
                {
                    continue;
                }

                if (printEvents)
                {
                    await EndProgressLineAsync().ConfigureAwait(false);
                    await Console.Out.WriteLineAsync(QmpJsonWriter.ToText(e)).ConfigureAwait(false);
                }

                switch (e["event"]!.GetValue<string>())
                {
                    case "BLOCK_JOB_READY":
                        await EndProgressLineAsync().ConfigureAwait(false);
                        if (pivot)
                        {
                            await Note($"{jobId}: ready, pivoting").ConfigureAwait(false);
                            await client.ExecuteAsync("job-complete", new JsonObject { ["id"] = jobId }, cancellationToken).ConfigureAwait(false);
                        }
                        else if (stopAtReady)
                        {
                            await Note($"{jobId}: ready (the job keeps mirroring; complete it with 'jobctl complete {jobId}')").ConfigureAwait(false);
                            return 0;
                        }

                        break;
                    case "BLOCK_JOB_ERROR":
                        await Note($"{jobId}: I/O error on {data!["operation"]}, action {data["action"]}").ConfigureAwait(false);
                        break;
                    case "BLOCK_JOB_COMPLETED":
                        await EndProgressLineAsync().ConfigureAwait(false);
                        if (data!["error"] is { } error)
                        {
                            await Console.Error.WriteLineAsync($"jobctl: job {jobId} failed: {error.GetValue<string>()}").ConfigureAwait(false);
                            outcome = 1;
                        }
                        else
                        {
                            await Note($"{jobId}: completed ({data["offset"]}/{data["len"]})").ConfigureAwait(false);
                            outcome = 0;
                        }

                        break;
                    case "BLOCK_JOB_CANCELLED":
                        await EndProgressLineAsync().ConfigureAwait(false);
                        await Console.Error.WriteLineAsync($"jobctl: job {jobId} was cancelled").ConfigureAwait(false);
                        outcome = 1;
                        break;
                    case "JOB_STATUS_CHANGE" when outcome is not null && data!["status"]!.GetValue<string>() is "concluded" or "null":
                        // The job's record is gone (null) or parked until dismissed (concluded without auto-dismiss).
                        if (data["status"]!.GetValue<string>() == "null" || !printEvents)
                        {
                            return outcome.Value;
                        }

                        break;
                }
            }

            if (outcome is not null)
            {
                return outcome.Value;
            }

            await Console.Error.WriteLineAsync($"jobctl: the server closed the connection before job {jobId} ended").ConfigureAwait(false);
            return 1;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await progress.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task ShowProgressAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(PollInterval);
        do
        {
            JsonArray jobs;
            try
            {
                jobs = (await client.ExecuteAsync("query-block-jobs", null, cancellationToken).ConfigureAwait(false))!.AsArray();
            }
            catch (IOException)
            {
                return;
            }

            if (jobs.FirstOrDefault(j => j!["device"]!.GetValue<string>() == jobId) is JsonObject job)
            {
                await PrintAsync(job["offset"]!.GetValue<long>(), job["len"]!.GetValue<long>(), job["status"]!.GetValue<string>()).ConfigureAwait(false);
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
    }

    private async Task PrintAsync(long offset, long length, string status)
    {
        var percent = length > 0 ? (int)(100 * offset / length) : 0;
        if (!Console.IsOutputRedirected)
        {
            const int width = 30;
            var filled = width * percent / 100;
            await Console.Out.WriteAsync($"\r{jobId} [{new string('#', filled)}{new string(' ', width - filled)}] {percent,3}% {status,-9}").ConfigureAwait(false);
            _lastPercent = percent;
        }
        else if (percent != _lastPercent)
        {
            _lastPercent = percent;
            await Console.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{jobId}: {percent}% ({offset}/{length}) {status}")).ConfigureAwait(false);
        }
    }

    private async Task EndProgressLineAsync()
    {
        if (verbose && !Console.IsOutputRedirected && _lastPercent >= 0)
        {
            await Console.Out.WriteLineAsync().ConfigureAwait(false);
            _lastPercent = -1;
        }
    }

    private Task Note(string line) => verbose || pivot || stopAtReady ? Console.Out.WriteLineAsync(line) : Task.CompletedTask;
}
