using System.CommandLine;
using System.Text.Json.Nodes;

namespace JobCore.Cli.Qmp;

/// <summary>
/// <c>jobctl stream|commit|mirror</c>: start a block job with QEMU's commands (<c>block-stream</c>,
/// <c>block-commit</c>, <c>blockdev-mirror</c>/<c>drive-mirror</c>), optionally wait for it (<c>--wait</c>),
/// show progress (<c>--verbose</c>) and pivot when ready (<c>--pivot</c>), like <c>virsh blockpull/blockcommit/blockcopy</c>.
/// </summary>
internal static class BlockJobCommands
{
    /// <summary>Builds the three commands.</summary>
    public static IEnumerable<Command> Create()
    {
        yield return Stream();
        yield return Commit();
        yield return Mirror();
    }

    private static Command Stream()
    {
        var common = new Common();
        var baseNode = new Option<string?>("--base-node") { Description = "stop at this backing node (default: copy the whole chain into DEVICE)" };
        var command = common.Build("stream", "copy backing data into DEVICE (block-stream)", baseNode);
        command.SetAction((parse, ct) => common.RunAsync(parse, "block-stream", a => QmpCliOptions.Put(a, "base-node", parse.GetValue(baseNode)), ct));
        return command;
    }

    private static Command Commit()
    {
        var common = new Common();
        var top = new Option<string?>("--top-node") { Description = "the topmost node to commit (default: the active layer: an active commit that becomes ready)" };
        var baseNode = new Option<string?>("--base-node") { Description = "the node to commit into (default: the bottom of the chain)" };
        var command = common.Build("commit", "merge overlays down into a backing node (block-commit)", top, baseNode);
        command.SetAction((parse, ct) => common.RunAsync(parse, "block-commit", a =>
        {
            QmpCliOptions.Put(a, "top-node", parse.GetValue(top));
            QmpCliOptions.Put(a, "base-node", parse.GetValue(baseNode));
        }, ct));
        return command;
    }

    private static Command Mirror()
    {
        var common = new Common();
        var target = new Option<string?>("--target") { Description = "the target node (blockdev-mirror)" };
        var targetFile = new Option<string?>("--target-file") { Description = "a target image file instead of a node (drive-mirror)" };
        var format = new Option<string?>("--format") { Description = "format of --target-file (raw, qcow2)" };
        var existing = new Option<bool>("--reuse-external") { Description = "with --target-file: the file exists already (mode existing)" };
        var sync = new Option<string>("--sync")
        {
            Description = "what to copy: full (whole chain), top (top layer), none (new writes only)",
            DefaultValueFactory = _ => "full",
        };
        sync.AcceptOnlyFromAmong("full", "top", "none");
        var command = common.Build("mirror", "copy DEVICE to a target while it is in use (blockdev-mirror / drive-mirror)", target, targetFile, format, existing, sync);
        command.Validators.Add(r =>
        {
            if ((r.GetValue(target) is null) == (r.GetValue(targetFile) is null))
            {
                r.AddError("give exactly one of --target NODE and --target-file PATH");
            }
        });
        command.SetAction((parse, ct) =>
        {
            var file = parse.GetValue(targetFile);
            return common.RunAsync(parse, file is null ? "blockdev-mirror" : "drive-mirror", a =>
            {
                a["target"] = file ?? parse.GetValue(target);
                a["sync"] = parse.GetValue(sync);
                if (file is not null)
                {
                    QmpCliOptions.Put(a, "format", parse.GetValue(format));
                    a["mode"] = parse.GetValue(existing) ? "existing" : "absolute-paths";
                }
            }, ct);
        });
        return command;
    }

    /// <summary>The options every job-starting command shares.</summary>
    private sealed class Common
    {
        private readonly QmpCliOptions _connection = new();
        private readonly Argument<string> _device = new("DEVICE") { Description = "the node (or device) the job works on" };
        private readonly Option<string?> _jobId = new("--job-id") { Description = "the job id (default: DEVICE)" };
        private readonly Option<long?> _speed = new("--speed") { Description = "rate limit in bytes per second (0 = unlimited)" };
        private readonly Option<bool> _wait = new("--wait") { Description = "wait until the job completes (or, for a job that becomes ready, until ready)" };
        private readonly Option<bool> _verbose = new("--verbose", "-v") { Description = "show progress while waiting (a bar on a terminal, lines otherwise)" };
        private readonly Option<bool> _pivot = new("--pivot") { Description = "when the job is ready, complete it (pivot) and wait for the end" };
        private readonly Option<bool> _events = new("--events") { Description = "while waiting, print the job's QMP events as JSON lines" };

        public Command Build(string name, string description, params Option[] extra)
        {
            var command = new Command(name, description) { _device, _jobId, _speed, _wait, _verbose, _pivot, _events };
            foreach (var option in extra)
            {
                command.Options.Add(option);
            }

            return _connection.AddTo(command);
        }

        public Task<int> RunAsync(ParseResult parse, string qmpCommand, Action<JsonObject> addArguments, CancellationToken cancellationToken) =>
            _connection.RunAsync(parse, async (client, token) =>
            {
                var device = parse.GetValue(_device)!;
                var jobId = parse.GetValue(_jobId) ?? device;
                var args = new JsonObject { ["job-id"] = jobId, ["device"] = device };
                if (parse.GetValue(_speed) is { } speed)
                {
                    args["speed"] = speed;
                }

                addArguments(args);
                await client.ExecuteAsync(qmpCommand, args, token).ConfigureAwait(false);
                var pivot = parse.GetValue(_pivot);
                var wait = parse.GetValue(_wait);
                if (!wait && !pivot)
                {
                    await Console.Out.WriteLineAsync($"started {qmpCommand} job '{jobId}'").ConfigureAwait(false);
                    return 0;
                }

                var waiter = new JobWaiter(client, jobId, pivot, stopAtReady: !pivot, parse.GetValue(_verbose), parse.GetValue(_events));
                return await waiter.WaitAsync(token).ConfigureAwait(false);
            }, cancellationToken);
    }
}
