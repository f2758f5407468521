using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Block.Qmp;

/// <summary>
/// The block layer's QMP commands: <c>blockdev-add</c>, <c>blockdev-del</c>, <c>query-named-block-nodes</c>.
/// Errors keep the block layer's QEMU texts and classes.
/// </summary>
internal sealed class BlockCommands : QmpCommandModule
{
    /// <inheritdoc />
    public override void Register(QmpModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        BlockGraph graph = context.Services.GetRequiredService<BlockGraph>();
        QmpCommandTable table = context.Commands;

        // blockdev-add is 'boxed' in QEMU: the block layer visits the whole BlockdevOptions object in schema order.
        table.Add(new QmpCommand("blockdev-add", [QmpArgument.Required("driver", QmpType.Str)], (_, args, ct) => Guard(async () =>
        {
            using JsonDocument doc = JsonDocument.Parse(args.ToJsonString());
            await graph.AddAsync(doc.RootElement, ct).ConfigureAwait(false);
            return null;
        }))
        {
            Boxed = true,
        });

        table.Add("blockdev-del", [QmpArgument.Required("node-name", QmpType.Str)], (_, args, ct) => Guard(async () =>
        {
            await graph.RemoveAsync(args["node-name"]!.GetValue<string>(), ct).ConfigureAwait(false);
            return null;
        }));

        table.Add("query-named-block-nodes", [QmpArgument.Opt("flat", QmpType.Bool)], (_, args, _) => Guard(() =>
        {
            bool flat = args["flat"]?.GetValue<bool>() ?? false;
            IEnumerable<BlockDeviceInfo> nodes = graph.QueryNamedBlockNodes();
            if (flat)
            {
                nodes = nodes.Select(n => n with { Image = n.Image with { BackingImage = null } });
            }

            return ValueTask.FromResult(JsonSerializer.SerializeToNode(nodes.ToList()));
        }));
    }

    /// <summary>Runs a handler, turning block-layer refusals into QMP errors with the same text and class.</summary>
    internal static async ValueTask<JsonNode?> Guard(Func<ValueTask<JsonNode?>> handler)
    {
        try
        {
            return await handler().ConfigureAwait(false);
        }
        catch (BlockGraphException e)
        {
            throw new QmpException(e.ErrorClass, e.Message);
        }
        catch (BlockIOException e)
        {
            throw new QmpException(e.Message);
        }
    }
}
