using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>
/// The protocol's own commands: <c>qmp_capabilities</c>, <c>query-version</c>, <c>query-status</c> (always running, as
/// QEMU with <c>-machine none</c>), <c>query-commands</c>, <c>quit</c>.
/// </summary>
public static class QmpBuiltinCommands
{
    /// <summary>The <c>SHUTDOWN</c> reason <c>quit</c> reports (QEMU's <c>host-qmp-quit</c>).</summary>
    public const string QuitReason = "host-qmp-quit";

    /// <summary>Adds the built-in commands to <paramref name="table"/>.</summary>
    public static QmpCommandTable AddBuiltinCommands(this QmpCommandTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        table.Add(QmpProtocol.CapabilitiesCommand, [QmpArgument.Opt("enable", QmpType.Array(QmpType.Enum("oob")))], Capabilities);
        table.Add("query-version", [], static (ctx, _, _) => ValueTask.FromResult<JsonNode?>(QmpDispatcher.VersionObject(ctx.Server.Options.Version)));
        // QEMU with '-machine none' runs from the start; management tools ask before anything else.
        table.Add("query-status", [], static (_, _, _) =>
            ValueTask.FromResult<JsonNode?>(new JsonObject { ["status"] = "running", ["singlestep"] = false, ["running"] = true }));
        table.Add("query-commands", [], static (ctx, _, _) =>
            ValueTask.FromResult<JsonNode?>(new JsonArray([.. ctx.Server.Commands.Names.Select(n => (JsonNode)new JsonObject { ["name"] = n })])));
        table.Add("quit", [], static async (ctx, _, ct) =>
        {
            // QEMU 7.2 sends SHUTDOWN and ends its jobs before the reply reaches the client; then it closes.
            await ctx.Server.RunShutdownStepsAsync(QuitReason, ct).ConfigureAwait(false);
            ctx.Session.AfterReply(() => ctx.Server.RequestShutdown(QuitReason));
            return null;
        });
        return table;
    }

    private static ValueTask<JsonNode?> Capabilities(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        if (context.Session.Negotiated)
        {
            throw new QmpException(QmpErrorClass.CommandNotFound, "Capabilities negotiation is already complete, command ignored");
        }

        if (arguments["enable"] is JsonArray { Count: > 0 } enable)
        {
            // The greeting offers no capability, so none can be enabled.
            throw new QmpException($"Capability '{enable[0]!.GetValue<string>()}' not available");
        }

        context.Session.Negotiated = true;
        QmpLog.Negotiated(context.Server.Logger, context.ClientName);
        return ValueTask.FromResult<JsonNode?>(null);
    }
}
