using System.Diagnostics;
using System.Text.Json.Nodes;
using JobCore.Qmp.Json;

namespace JobCore.Qmp;

/// <summary>
/// Turns one parsed message into one reply, with the checks and texts of QEMU's <c>qapi/qmp-dispatch.c</c> and
/// <c>monitor/qmp.c</c>, in their order: JSON errors, non-object input, request members, negotiation state,
/// command lookup, argument schema, handler.
/// </summary>
internal static class QmpDispatcher
{
    /// <summary>Traces one span per executed command (name <c>qmp COMMAND</c>); job traces link to it.</summary>
    public static readonly ActivitySource Source = new(QmpProtocol.ActivitySourceName);

    public static JsonObject Greeting(QmpVersion version) => new()
    {
        ["QMP"] = new JsonObject
        {
            ["version"] = VersionObject(version),
            ["capabilities"] = new JsonArray(),
        },
    };

    public static JsonObject VersionObject(QmpVersion version) => new()
    {
        ["qemu"] = new JsonObject { ["micro"] = version.Micro, ["minor"] = version.Minor, ["major"] = version.Major },
        ["package"] = version.Package,
    };

    public static async ValueTask<JsonObject> DispatchAsync(QmpServer server, QmpSession session, QmpParsedMessage message, CancellationToken cancellationToken)
    {
        if (message.Error is not null)
        {
            return Error(QmpErrorClass.GenericError, message.Error, null);
        }

        if (message.Value is not JsonObject request)
        {
            return Error(QmpErrorClass.GenericError, "QMP input must be a JSON object", null);
        }

        var id = request.TryGetPropertyValue("id", out var idNode) ? new Id(idNode) : null;
        string? name = null;
        JsonObject? arguments = null;
        foreach (var (key, value) in request)
        {
            switch (key)
            {
                case "execute":
                    if (value is not JsonValue v || !v.TryGetValue<string>(out name))
                    {
                        return Error(QmpErrorClass.GenericError, "QMP input member 'execute' must be a string", id);
                    }

                    break;
                case "arguments":
                    arguments = value as JsonObject;
                    if (arguments is null)
                    {
                        return Error(QmpErrorClass.GenericError, "QMP input member 'arguments' must be an object", id);
                    }

                    break;
                case "id":
                    break;
                default:
                    // "exec-oob" lands here too: this server does not offer the oob capability.
                    return Error(QmpErrorClass.GenericError, $"QMP input member '{key}' is unexpected", id);
            }
        }

        if (name is null)
        {
            return Error(QmpErrorClass.GenericError, "QMP input lacks member 'execute'", id);
        }

        var negotiating = !session.Negotiated;
        if ((negotiating && name != QmpProtocol.CapabilitiesCommand) || !server.Commands.TryGet(name, out var command))
        {
            return Error(
                QmpErrorClass.CommandNotFound,
                negotiating ? "Expecting capabilities negotiation with 'qmp_capabilities'" : $"The command {name} has not been found",
                id);
        }

        arguments ??= [];
        var invalid = command.Boxed ? null : QmpArgumentChecker.Check(command.Arguments, arguments, string.Empty, command.Variants);
        if (invalid is not null)
        {
            return Error(QmpErrorClass.GenericError, invalid, id);
        }

        using var activity = Source.StartActivity("qmp " + name, ActivityKind.Server);
        activity?.SetTag("rpc.system", "qmp");
        activity?.SetTag("rpc.method", name);
        var response = await InvokeAsync(server, session, command, arguments, id, cancellationToken).ConfigureAwait(false);
        if (activity is not null && response["error"] is JsonObject error)
        {
            activity.SetStatus(ActivityStatusCode.Error, error["desc"]!.GetValue<string>());
            activity.SetTag("error.type", error["class"]!.GetValue<string>());
        }

        return response;
    }

    private static async ValueTask<JsonObject> InvokeAsync(QmpServer server, QmpSession session, QmpCommand command, JsonObject arguments, Id? id, CancellationToken cancellationToken)
    {
        try
        {
            var result = await command.Handler(new QmpCommandContext(server, session), arguments, cancellationToken).ConfigureAwait(false);
            var reply = new JsonObject { ["return"] = result ?? new JsonObject() };
            id?.AddTo(reply);
            return reply;
        }
        catch (QmpException ex)
        {
            return Error(ex.ErrorClass, ex.Message, id);
        }
        catch (Exception ex) when (server.TryMapException(ex, out var mapped))
        {
            return Error(mapped.ErrorClass, mapped.Message, id);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Error(QmpErrorClass.GenericError, "The server is shutting down", id);
        }
        catch (Exception ex)
        {
            QmpLog.CommandFailed(server.Logger, ex, command.Name, session.Name);
            return Error(QmpErrorClass.GenericError, ex.Message, id);
        }
    }

    private static JsonObject Error(string errorClass, string description, Id? id)
    {
        var reply = new JsonObject
        {
            ["error"] = new JsonObject { ["class"] = errorClass, ["desc"] = description },
        };
        id?.AddTo(reply);
        return reply;
    }

    /// <summary>The request's <c>id</c>, which may be any JSON value including null.</summary>
    private sealed record Id(JsonNode? Value)
    {
        public void AddTo(JsonObject reply) => reply["id"] = Value?.DeepClone();
    }
}
