using System.CommandLine;
using System.Text.Json.Nodes;

namespace JobCore.Cli.Qmp;

/// <summary><c>jobctl pause|resume|cancel|complete|finalize|dismiss ID</c>: the <c>job-*</c> verbs.</summary>
internal static class JobVerbCommands
{
    /// <summary>Builds one command per verb.</summary>
    public static IEnumerable<Command> Create()
    {
        yield return Verb("pause", "job-pause", "pause a job at its next pause point");
        yield return Verb("resume", "job-resume", "resume a paused job");
        yield return Cancel();
        yield return Verb("complete", "job-complete", "finish a ready job (mirror/active commit: pivot to the target)");
        yield return Verb("finalize", "job-finalize", "finalize a pending job (auto-finalize off)");
        yield return Verb("dismiss", "job-dismiss", "remove a concluded job (auto-dismiss off)");
    }

    private static Command Verb(string name, string qmpCommand, string description)
    {
        var options = new QmpCliOptions();
        var id = new Argument<string>("ID") { Description = "the job id" };
        var command = options.AddTo(new Command(name, description) { id });
        command.SetAction((parse, ct) => options.RunAsync(parse, async (client, token) =>
        {
            await client.ExecuteAsync(qmpCommand, new JsonObject { ["id"] = parse.GetValue(id) }, token).ConfigureAwait(false);
            return 0;
        }, ct));
        return command;
    }

    private static Command Cancel()
    {
        var options = new QmpCliOptions();
        var id = new Argument<string>("ID") { Description = "the job id" };
        var soft = new Option<bool>("--soft")
        {
            Description = "block-job-cancel without force: a ready mirror finishes without pivot (the target keeps a copy)",
        };
        var command = options.AddTo(new Command("cancel", "cancel a job (force, like job-cancel; --soft for block-job-cancel)") { id, soft });
        command.SetAction((parse, ct) => options.RunAsync(parse, async (client, token) =>
        {
            var jobId = parse.GetValue(id)!;
            if (parse.GetValue(soft))
            {
                await client.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = jobId }, token).ConfigureAwait(false);
            }
            else
            {
                await client.ExecuteAsync("job-cancel", new JsonObject { ["id"] = jobId }, token).ConfigureAwait(false);
            }

            return 0;
        }, ct));
        return command;
    }
}
