using System.CommandLine;
using System.Text.Json.Nodes;
using JobCore.Qmp;

namespace JobCore.Cli.Qmp;

/// <summary>Options shared by the commands that talk to a QMP server (jobcored or QEMU), and their error handling.</summary>
internal sealed class QmpCliOptions
{
    public Option<string?> Socket { get; } = new("--socket", "-s")
    {
        Description = "UNIX socket of the QMP server (jobcored --qmp unix:PATH, or QEMU -qmp unix:PATH,server=on,wait=off)",
    };

    public Option<string?> Connect { get; } = new("--connect", "-c")
    {
        Description = "QMP endpoint instead of --socket: unix:PATH or tcp:HOST:PORT",
    };

    /// <summary>Adds the connection options to <paramref name="command"/>.</summary>
    public Command AddTo(Command command)
    {
        command.Options.Add(Socket);
        command.Options.Add(Connect);
        return command;
    }

    /// <summary>
    /// Connects and negotiates, runs <paramref name="body"/>, and turns failures into a message on stderr and exit
    /// code 1 (QMP errors print their text, like virsh does).
    /// </summary>
    public async Task<int> RunAsync(ParseResult parse, Func<QmpClient, CancellationToken, Task<int>> body, CancellationToken cancellationToken)
    {
        var endpoint = parse.GetValue(Connect) ?? (parse.GetValue(Socket) is { } path ? "unix:" + path : Environment.GetEnvironmentVariable("JOBCTL_QMP"));
        if (endpoint is null)
        {
            await Console.Error.WriteLineAsync("jobctl: no QMP server named: use --socket PATH or --connect unix:PATH|tcp:HOST:PORT (or set JOBCTL_QMP)").ConfigureAwait(false);
            return 2;
        }

        try
        {
            await using var client = await QmpClient.ConnectAsync(endpoint, cancellationToken: cancellationToken).ConfigureAwait(false);
            await client.NegotiateAsync(cancellationToken).ConfigureAwait(false);
            return await body(client, cancellationToken).ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            await Console.Error.WriteLineAsync($"jobctl: {ex.Message} ({ex.ErrorClass})").ConfigureAwait(false);
            return 1;
        }
        catch (FormatException ex)
        {
            await Console.Error.WriteLineAsync("jobctl: " + ex.Message).ConfigureAwait(false);
            return 2;
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            await Console.Error.WriteLineAsync($"jobctl: cannot talk to {endpoint}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (TimeoutException)
        {
            await Console.Error.WriteLineAsync(
                $"jobctl: {endpoint} accepted the connection but sent no greeting (QEMU serves one QMP client at a time: is another one connected?)").ConfigureAwait(false);
            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 130;
        }
    }

    /// <summary>Adds <paramref name="name"/> to <paramref name="args"/> when the option has a value.</summary>
    public static void Put(JsonObject args, string name, JsonNode? value)
    {
        if (value is not null)
        {
            args[name] = value;
        }
    }
}
