using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Block.Qmp;

/// <summary>
/// The block layer's QMP commands: <c>blockdev-add</c>, <c>blockdev-del</c>, <c>query-named-block-nodes</c>,
/// <c>block-stream</c> and <c>block-commit</c>. Errors keep the block layer's QEMU texts and classes; job-creating
/// commands create and start the job inside the handler, so <c>created</c> and <c>running</c> precede the reply.
/// </summary>
internal sealed class BlockCommands : QmpCommandModule
{
    /// <summary>QAPI <c>BlockdevOnError</c>.</summary>
    internal static readonly QmpType OnErrorType = QmpType.Enum("report", "ignore", "enospc", "stop", "auto");

    /// <inheritdoc />
    public override void Register(QmpModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        BlockGraph graph = context.Services.GetRequiredService<BlockGraph>();
        JobEngine engine = context.Jobs.Engine;
        QmpCommandTable table = context.Commands;
        foreach (string type in new[] { "stream", "commit", "mirror" })
        {
            context.Jobs.AddBlockJobType(type); // query-block-jobs, block-job-*, BLOCK_JOB_* events
        }

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

        // QEMU's BlockInfo per device, as for '-drive if=none' (no guest device model: removable, no io-status); nodes
        // added with blockdev-add are no devices (QEMU answers [] then too).
        table.Add("query-block", [], (_, _, _) => Guard(() => ValueTask.FromResult<JsonNode?>(new JsonArray([.. graph.Backends.Select(b =>
            (JsonNode)new JsonObject
            {
                ["device"] = b.Name,
                ["locked"] = false,
                ["removable"] = true,
                ["inserted"] = JsonSerializer.SerializeToNode(BlockGraph.Describe(b.Node)),
                ["type"] = "unknown",
            })]))));

        table.Add("block-stream", StreamArguments, (_, args, ct) => Guard(() => BlockStreamAsync(engine, graph, args, ct)));
        table.Add("block-commit", CommitArguments, (_, args, ct) => Guard(() => BlockCommitAsync(engine, graph, args, ct)));
    }

    /// <summary>QEMU's <c>block-stream</c> argument object, in declaration order.</summary>
    private static readonly QmpArgument[] StreamArguments =
    [
        QmpArgument.Opt("job-id", QmpType.Str),
        QmpArgument.Required("device", QmpType.Str),
        QmpArgument.Opt("base", QmpType.Str),
        QmpArgument.Opt("base-node", QmpType.Str),
        QmpArgument.Opt("backing-file", QmpType.Str),
        QmpArgument.Opt("backing-mask-protocol", QmpType.Bool),
        QmpArgument.Opt("bottom", QmpType.Str),
        QmpArgument.Opt("speed", QmpType.WholeNumber),
        QmpArgument.Opt("on-error", OnErrorType),
        QmpArgument.Opt("filter-node-name", QmpType.Str),
        QmpArgument.Opt("auto-finalize", QmpType.Bool),
        QmpArgument.Opt("auto-dismiss", QmpType.Bool),
    ];

    /// <summary>QEMU's <c>block-commit</c> argument object, in declaration order.</summary>
    private static readonly QmpArgument[] CommitArguments =
    [
        QmpArgument.Opt("job-id", QmpType.Str),
        QmpArgument.Required("device", QmpType.Str),
        QmpArgument.Opt("base-node", QmpType.Str),
        QmpArgument.Opt("base", QmpType.Str),
        QmpArgument.Opt("top-node", QmpType.Str),
        QmpArgument.Opt("top", QmpType.Str),
        QmpArgument.Opt("backing-file", QmpType.Str),
        QmpArgument.Opt("backing-mask-protocol", QmpType.Bool),
        QmpArgument.Opt("speed", QmpType.WholeNumber),
        QmpArgument.Opt("on-error", OnErrorType),
        QmpArgument.Opt("filter-node-name", QmpType.Str),
        QmpArgument.Opt("auto-finalize", QmpType.Bool),
        QmpArgument.Opt("auto-dismiss", QmpType.Bool),
    ];

    /// <summary>Fills the members every block job shares from checked QMP arguments.</summary>
    internal static T WithCommonArguments<T>(T options, JsonObject args)
        where T : BlockJobOptions => options with
        {
            Id = Str(args, "job-id"),
            Device = Str(args, "device") ?? string.Empty,
            Speed = args["speed"]?.GetValue<long>() ?? 0,
            OnError = BlockJobCommon.ParseErrorPolicy(Str(args, "on-error")),
            FilterNodeName = Str(args, "filter-node-name"),
            AutoFinalize = Flag(args, "auto-finalize") ?? true,
            AutoDismiss = Flag(args, "auto-dismiss") ?? true,
        };

    /// <summary>An optional string argument.</summary>
    internal static string? Str(JsonObject args, string name) => args[name]?.GetValue<string>();

    /// <summary>An optional boolean argument.</summary>
    internal static bool? Flag(JsonObject args, string name) => args[name]?.GetValue<bool>();

    private static async ValueTask<JsonNode?> BlockStreamAsync(JobEngine engine, BlockGraph graph, JsonObject args, CancellationToken cancellationToken)
    {
        StreamJobOptions options = WithCommonArguments(new StreamJobOptions(), args) with
        {
            Base = Str(args, "base"),
            BaseNode = Str(args, "base-node"),
            Bottom = Str(args, "bottom"),
            BackingFile = Str(args, "backing-file"),
            BackingMaskProtocol = Flag(args, "backing-mask-protocol") ?? false,
        };
        await StreamJob.StartAsync(engine, graph, options, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> BlockCommitAsync(JobEngine engine, BlockGraph graph, JsonObject args, CancellationToken cancellationToken)
    {
        CommitJobOptions options = WithCommonArguments(new CommitJobOptions(), args) with
        {
            BaseNode = Str(args, "base-node"),
            Base = Str(args, "base"),
            TopNode = Str(args, "top-node"),
            Top = Str(args, "top"),
            BackingFile = Str(args, "backing-file"),
            BackingMaskProtocol = Flag(args, "backing-mask-protocol") ?? false,
        };
        await CommitJob.StartAsync(engine, graph, options, cancellationToken).ConfigureAwait(false);
        return null;
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
