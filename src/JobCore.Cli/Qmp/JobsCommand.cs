using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp;
using JobCore.Qmp.Json;

namespace JobCore.Cli.Qmp;

/// <summary><c>jobctl jobs</c>: a table of every job (query-jobs, with block-job details where there are any).</summary>
internal static class JobsCommand
{
    private static readonly string[] Header = ["ID", "TYPE", "STATUS", "PROGRESS", "SPEED", "FLAGS", "ERROR"];

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var options = new QmpCliOptions();
        var json = new Option<bool>("--json") { Description = "print query-jobs as JSON instead of a table" };
        var command = options.AddTo(new Command("jobs", "list jobs: id, type, status, progress, speed") { json });
        command.SetAction((parse, ct) => options.RunAsync(parse, async (client, token) =>
        {
            var jobs = (await client.ExecuteAsync("query-jobs", null, token).ConfigureAwait(false))!.AsArray();
            if (parse.GetValue(json))
            {
                await Console.Out.WriteLineAsync(QmpJsonWriter.ToText(jobs)).ConfigureAwait(false);
                return 0;
            }

            var blockJobs = (await client.ExecuteAsync("query-block-jobs", null, token).ConfigureAwait(false))!.AsArray()
                .ToDictionary(b => b!["device"]!.GetValue<string>(), b => b!.AsObject());
            await Console.Out.WriteAsync(Render(jobs, blockJobs)).ConfigureAwait(false);
            return 0;
        }, ct));
        return command;
    }

    /// <summary>Renders an aligned plain-text table (no colours: it is read by people and by scripts alike).</summary>
    internal static string Render(JsonArray jobs, IReadOnlyDictionary<string, JsonObject> blockJobs)
    {
        var rows = new List<string[]> { Header };
        foreach (var job in jobs.Select(j => j!.AsObject()))
        {
            var id = job["id"]!.GetValue<string>();
            var current = job["current-progress"]!.GetValue<long>();
            var total = job["total-progress"]!.GetValue<long>();
            var percent = total > 0 ? (100.0 * current / total).ToString("F1", CultureInfo.InvariantCulture) + "%" : "-";
            var speed = "-";
            var flags = new List<string>();
            if (blockJobs.TryGetValue(id, out var block))
            {
                var s = block["speed"]!.GetValue<long>();
                speed = s == 0 ? "unlimited" : s.ToString(CultureInfo.InvariantCulture);
                if (block["paused"]!.GetValue<bool>())
                {
                    flags.Add("paused");
                }

                if (block["ready"]!.GetValue<bool>())
                {
                    flags.Add("ready");
                }

                if (block["io-status"]!.GetValue<string>() != "ok")
                {
                    flags.Add("io-" + block["io-status"]!.GetValue<string>());
                }
            }

            rows.Add(
            [
                id,
                job["type"]!.GetValue<string>(),
                job["status"]!.GetValue<string>(),
                $"{percent} ({current}/{total})",
                speed,
                flags.Count == 0 ? "-" : string.Join(",", flags),
                job["error"]?.GetValue<string>() ?? string.Empty,
            ]);
        }

        if (rows.Count == 1)
        {
            return "no jobs\n";
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            sb.AppendJoin("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).Append('\n');
        }

        return string.Join('\n', sb.ToString().Split('\n').Select(l => l.TrimEnd()));
    }
}
