using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Qmp;
using JobCore.Qmp.Json;

namespace JobCore.Cli.Qmp;

/// <summary><c>jobctl exec '{"execute": ...}'</c> or <c>jobctl exec COMMAND ['{args}']</c>: any QMP command, raw.</summary>
internal static class ExecCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var options = new QmpCliOptions();
        var request = new Argument<string>("REQUEST") { Description = "a QMP request object, or a command name" };
        var arguments = new Argument<string?>("ARGUMENTS") { Description = "the arguments object when REQUEST is a command name", Arity = ArgumentArity.ZeroOrOne };
        var command = options.AddTo(new Command("exec", "run one QMP command and print its reply as JSON (exit 1 on an error reply)") { request, arguments });
        command.SetAction((parse, ct) => options.RunAsync(parse, async (client, token) =>
        {
            JsonObject message;
            try
            {
                message = Build(parse.GetValue(request)!, parse.GetValue(arguments));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                await Console.Error.WriteLineAsync("jobctl: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            var reply = await client.RequestAsync(message, token).ConfigureAwait(false);
            await Console.Out.WriteLineAsync(QmpJsonWriter.ToText(reply)).ConfigureAwait(false);
            return reply.ContainsKey("error") ? 1 : 0;
        }, ct));
        return command;
    }

    /// <summary>Turns the command line into a request object.</summary>
    /// <exception cref="InvalidOperationException">The text is neither a request object nor a command name with an arguments object.</exception>
    internal static JsonObject Build(string request, string? arguments)
    {
        var trimmed = request.TrimStart();
        if (trimmed.StartsWith('{'))
        {
            if (arguments is not null)
            {
                throw new InvalidOperationException("give either a request object or a command name and its arguments, not both");
            }

            return JsonNode.Parse(trimmed) as JsonObject ?? throw new InvalidOperationException("the request must be a JSON object");
        }

        var message = new JsonObject { ["execute"] = request };
        if (arguments is not null)
        {
            message["arguments"] = JsonNode.Parse(arguments) as JsonObject
                ?? throw new InvalidOperationException("the arguments must be a JSON object");
        }

        return message;
    }
}
