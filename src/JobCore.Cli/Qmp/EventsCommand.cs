using System.CommandLine;
using JobCore.Qmp;
using JobCore.Qmp.Json;

namespace JobCore.Cli.Qmp;

/// <summary><c>jobctl events</c>: follows the event stream, one JSON object per line.</summary>
internal static class EventsCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var options = new QmpCliOptions();
        var count = new Option<int?>("--count", "-n") { Description = "exit after this many events" };
        var command = options.AddTo(new Command("events", "print events as they happen, one JSON per line (until the server closes)") { count });
        command.SetAction((parse, ct) => options.RunAsync(parse, async (client, token) =>
        {
            var remaining = parse.GetValue(count) ?? int.MaxValue;
            await foreach (var e in client.Events.ReadAllAsync(token).ConfigureAwait(false))
            {
                await Console.Out.WriteLineAsync(QmpJsonWriter.ToText(e)).ConfigureAwait(false);
                await Console.Out.FlushAsync(token).ConfigureAwait(false);
                if (--remaining == 0)
                {
                    break;
                }
            }

            return 0;
        }, ct));
        return command;
    }
}
