using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Block.Qmp;

/// <summary>
/// QEMU's mirror commands: <c>blockdev-mirror</c> (target = an existing node), <c>drive-mirror</c> (target = a file,
/// created unless <c>mode=existing</c>) and the <c>mirror</c> member of <c>block-job-change</c> (<c>copy-mode</c>).
/// The job is created and started inside the handler, so <c>created</c> and <c>running</c> precede the reply.
/// </summary>
internal sealed class MirrorCommands : QmpCommandModule
{
    private static readonly byte[] Qcow2Magic = [0x51, 0x46, 0x49, 0xfb];
    private static readonly QmpType SyncType = QmpType.Enum("top", "full", "none", "incremental", "bitmap");
    private static readonly QmpType CopyModeType = QmpType.Enum("background", "write-blocking");

    /// <summary>QAPI <c>blockdev-mirror</c>, in declaration order.</summary>
    private static readonly QmpArgument[] BlockdevMirrorArguments =
    [
        QmpArgument.Opt("job-id", QmpType.Str),
        QmpArgument.Required("device", QmpType.Str),
        QmpArgument.Required("target", QmpType.Str),
        QmpArgument.Opt("replaces", QmpType.Str),
        QmpArgument.Required("sync", SyncType),
        QmpArgument.Opt("speed", QmpType.WholeNumber),
        QmpArgument.Opt("granularity", QmpType.WholeNumber),
        QmpArgument.Opt("buf-size", QmpType.WholeNumber),
        QmpArgument.Opt("on-source-error", BlockCommands.OnErrorType),
        QmpArgument.Opt("on-target-error", BlockCommands.OnErrorType),
        QmpArgument.Opt("filter-node-name", QmpType.Str),
        QmpArgument.Opt("copy-mode", CopyModeType),
        QmpArgument.Opt("auto-finalize", QmpType.Bool),
        QmpArgument.Opt("auto-dismiss", QmpType.Bool),
        QmpArgument.Opt("target-is-zero", QmpType.Bool),
    ];

    /// <summary>QAPI <c>DriveMirror</c>, in declaration order.</summary>
    private static readonly QmpArgument[] DriveMirrorArguments =
    [
        QmpArgument.Opt("job-id", QmpType.Str),
        QmpArgument.Required("device", QmpType.Str),
        QmpArgument.Required("target", QmpType.Str),
        QmpArgument.Opt("format", QmpType.Str),
        QmpArgument.Opt("node-name", QmpType.Str),
        QmpArgument.Opt("replaces", QmpType.Str),
        QmpArgument.Required("sync", SyncType),
        QmpArgument.Opt("mode", QmpType.Enum("existing", "absolute-paths")),
        QmpArgument.Opt("speed", QmpType.WholeNumber),
        QmpArgument.Opt("granularity", QmpType.WholeNumber),
        QmpArgument.Opt("buf-size", QmpType.WholeNumber),
        QmpArgument.Opt("on-source-error", BlockCommands.OnErrorType),
        QmpArgument.Opt("on-target-error", BlockCommands.OnErrorType),
        QmpArgument.Opt("unmap", QmpType.Bool),
        QmpArgument.Opt("copy-mode", CopyModeType),
        QmpArgument.Opt("auto-finalize", QmpType.Bool),
        QmpArgument.Opt("auto-dismiss", QmpType.Bool),
    ];

    /// <inheritdoc />
    public override void Register(QmpModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        BlockGraph graph = context.Services.GetRequiredService<BlockGraph>();
        JobEngine engine = context.Jobs.Engine;
        context.Commands.Add("blockdev-mirror", BlockdevMirrorArguments, (_, args, ct) => BlockCommands.Guard(async () =>
        {
            CheckGranularityType(args);
            string device = args["device"]!.GetValue<string>();
            RequireRoot(graph, graph.Lookup(device, device));
            await StartAsync(engine, Options(graph, args, args["target"]!.GetValue<string>()) with
            {
                TargetIsZero = BlockCommands.Flag(args, "target-is-zero") ?? false,
            }, ct).ConfigureAwait(false);
            return null;
        }));
        context.Commands.Add("drive-mirror", DriveMirrorArguments, (_, args, ct) => BlockCommands.Guard(() => DriveMirrorAsync(engine, graph, args, ct)));
        context.Jobs.AddChangeVariant(
            MirrorJob.TypeName,
            [QmpArgument.Required("copy-mode", CopyModeType)],
            static args => new MirrorChangeOptions(ParseCopyMode(args["copy-mode"]!.GetValue<string>())));
    }

    // Created and running are announced before the reply; the reply waits until the filter sits above the source.
    private static async Task StartAsync(JobEngine engine, MirrorJobOptions options, CancellationToken cancellationToken)
    {
        Job job = await engine.CreateAsync(options, cancellationToken: cancellationToken).ConfigureAwait(false);
        job.Start();
        await MirrorSetUp.WhenSetUpAsync(options).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // The members blockdev-mirror and drive-mirror share. The job id defaults to the device (backend) name, which
    // a bare node does not have: QEMU then refuses with "Invalid job ID ''".
    private static MirrorJobOptions Options(BlockGraph graph, JsonObject args, string targetNode)
    {
        string device = args["device"]!.GetValue<string>();
        return new MirrorJobOptions
        {
            Id = BlockCommands.Str(args, "job-id") ?? (graph.FindBackend(device) is not null ? device : string.Empty),
            Device = device,
            Target = targetNode,
            Replaces = BlockCommands.Str(args, "replaces"),
            Sync = ParseSync(args["sync"]!.GetValue<string>()),
            Speed = args["speed"]?.GetValue<long>() ?? 0,
            Granularity = args["granularity"]?.GetValue<long>() ?? 0,
            BufferSize = args["buf-size"]?.GetValue<long>() ?? 0,
            OnSourceError = BlockJobCommon.ParseErrorPolicy(BlockCommands.Str(args, "on-source-error"), "on-source-error"),
            OnTargetError = BlockJobCommon.ParseErrorPolicy(BlockCommands.Str(args, "on-target-error"), "on-target-error"),
            FilterNodeName = BlockCommands.Str(args, "filter-node-name"),
            CopyMode = BlockCommands.Str(args, "copy-mode") is { } mode ? ParseCopyMode(mode) : MirrorCopyMode.Background,
            AutoFinalize = BlockCommands.Flag(args, "auto-finalize") ?? true,
            AutoDismiss = BlockCommands.Flag(args, "auto-dismiss") ?? true,
        };
    }

    // QEMU's qmp_drive_mirror: create the target image (unless mode=existing) with the source's size and, for
    // sync=top/none, the backing file the finished target will need; open it without its backing; then mirror into it
    // like blockdev-mirror. On success the job gives a created target the right backing node, and opens the chain an
    // existing target's header names (QEMU 7.2 does both in mirror_exit_common). The target belongs to the job, not
    // to the monitor: it stays only if the pivot gave it users.
    private static async ValueTask<JsonNode?> DriveMirrorAsync(JobEngine engine, BlockGraph graph, JsonObject args, CancellationToken cancellationToken)
    {
        CheckGranularityType(args);
        string device = args["device"]!.GetValue<string>();
        BlockNode source = graph.Lookup(device, device);
        RequireRoot(graph, source);

        string filename = args["target"]!.GetValue<string>();
        bool existing = BlockCommands.Str(args, "mode") == "existing";
        string? nodeName = BlockCommands.Str(args, "node-name");
        if (BlockCommands.Str(args, "replaces") is not null && nodeName is null)
        {
            throw new QmpException("a node-name must be provided when replacing a named node of the graph");
        }

        MirrorJobOptions options = Options(graph, args, filename);
        options.Validate();
        MirrorSyncMode sync = options.Sync;
        BlockNode? sourceBacking = BackingChain.Below(BackingChain.SkipFilters(source));
        if (sync == MirrorSyncMode.Top && sourceBacking is null)
        {
            sync = MirrorSyncMode.Full;
        }

        string format = BlockCommands.Str(args, "format") ?? (existing ? ProbeFormat(filename) : BackingChain.GetFormatName(source));
        if (!existing)
        {
            BlockNode? backing = sync switch
            {
                MirrorSyncMode.Top => sourceBacking,
                MirrorSyncMode.None => source,
                _ => null,
            };
            await CreateImageAsync(filename, format, source.Size, backing, cancellationToken).ConfigureAwait(false);
        }

        nodeName ??= "drive-mirror-target-" + Guid.NewGuid().ToString("N")[..8];
        var target = new JsonObject
        {
            ["driver"] = format,
            ["node-name"] = nodeName,
            ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = filename },
        };
        if (format == "qcow2")
        {
            target["backing"] = null;
        }

        using (JsonDocument doc = JsonDocument.Parse(target.ToJsonString()))
        {
            await graph.AddAsync(doc.RootElement, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await StartAsync(engine, options with
            {
                Target = nodeName,
                Sync = sync,
                Unmap = BlockCommands.Flag(args, "unmap") ?? true,
                TargetIsZero = !existing,
                TargetBacking = existing ? MirrorTargetBacking.OpenChain : MirrorTargetBacking.SourceChain,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await graph.RemoveAsync(nodeName, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        // The job holds the target now; without the monitor's reference it closes when nothing uses it any more.
        await graph.DisownAsync(graph.GetNode(nodeName), CancellationToken.None).ConfigureAwait(false);

        return null;
    }

    private static async ValueTask CreateImageAsync(string filename, string format, long size, BlockNode? backing, CancellationToken cancellationToken)
    {
        if (format == "qcow2")
        {
            await Qcow2Node.CreateAsync(filename, new Qcow2CreateOptions
            {
                Size = size,
                BackingFile = backing is null ? null : BackingChain.TryGetFilename(backing),
                BackingFormat = backing is null ? null : BackingChain.GetFormatName(backing),
            }, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (format != "raw")
        {
            throw new QmpException($"Unknown file format '{format}'");
        }

        if (backing is not null)
        {
            throw new QmpException("Backing file not supported for file format 'raw'");
        }

        await using var file = new FileStream(filename, FileMode.Create, FileAccess.Write);
        file.SetLength(size);
    }

    // The graph checks come before the job exists (and so before its id is checked), as in QEMU: a source under
    // another job's filter is not a root.
    private static void RequireRoot(BlockGraph graph, BlockNode source)
    {
        if (!graph.IsRoot(source))
        {
            throw new BlockGraphException("Need a root block node");
        }
    }

    // QAPI declares granularity uint32: QEMU's input visitor refuses a value out of that range before anything else.
    private static void CheckGranularityType(JsonObject args)
    {
        if (args["granularity"] is { } value && value.GetValue<long>() is < 0 or > uint.MaxValue)
        {
            throw new QmpException("Parameter 'granularity' expects uint32_t");
        }
    }

    // An existing image without 'format': qcow2 when it starts with the qcow2 magic, else raw (QEMU probes too).
    private static string ProbeFormat(string filename)
    {
        Span<byte> magic = stackalloc byte[4];
        try
        {
            using var file = File.OpenRead(filename);
            return file.Read(magic) == 4 && magic.SequenceEqual(Qcow2Magic) ? "qcow2" : "raw";
        }
        catch (IOException e)
        {
            throw new QmpException($"Could not open '{filename}': {e.Message}");
        }
    }

    private static MirrorSyncMode ParseSync(string name) =>
        MirrorWireNames.TryParseSyncMode(name, out MirrorSyncMode mode) ? mode : throw new QmpException("Invalid parameter 'sync'");

    private static MirrorCopyMode ParseCopyMode(string name) =>
        MirrorWireNames.TryParseCopyMode(name, out MirrorCopyMode mode) ? mode : throw new QmpException("Invalid parameter 'copy-mode'");
}
