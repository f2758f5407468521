using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using JobCore.Block.Nodes;
using JobCore.Qmp;

namespace JobCore.Cli.Demo;

/// <summary>
/// <c>jobctl demo</c>: starts a real jobcored process on a UNIX socket, makes a four-layer qcow2 chain, then over QMP
/// runs a stream, an intermediate commit and a mirror with live progress, pivots to the copy, prints every event,
/// checks the copy byte by byte against the expected guest view, and quits the daemon.
/// </summary>
internal static class DemoCommand
{
    private const long Size = 64L << 20;
    private const int Mi = 1 << 20;

    // Layer → (offset, length, byte): what each layer of the chain holds; the guest sees the topmost.
    private static readonly (string Layer, long Offset, int Length, byte Pattern)[] Writes =
    [
        ("base", 0, 32 * Mi, 0x11),
        ("mid1", 8L * Mi, 8 * Mi, 0x22),
        ("mid2", 20L * Mi, 8 * Mi, 0x33),
        ("top", 40L * Mi, 4 * Mi, 0x44),
    ];

    public static Command Create()
    {
        var keep = new Option<bool>("--keep") { Description = "keep the images and the daemon log afterwards" };
        var cmd = new Command("demo", "Start jobcored, run a stream, a commit and a mirror (with pivot) over QMP on small images, show the events") { keep };
        cmd.SetAction((parse, ct) => RunAsync(parse.GetValue(keep), ct));
        return cmd;
    }

    private static async Task<int> RunAsync(bool keep, CancellationToken cancellationToken)
    {
        var dir = Directory.CreateTempSubdirectory("jobcore-demo-").FullName;
        Console.WriteLine($"demo folder: {dir}");
        Process? daemon = null;
        try
        {
            await MakeChainAsync(dir, cancellationToken).ConfigureAwait(false);
            var socket = Path.Combine(dir, "qmp.sock");
            daemon = StartDaemon(dir, socket);
            await using var client = await QmpClient.ConnectAsync("unix:" + socket, TimeSpan.FromSeconds(30), cancellationToken: cancellationToken).ConfigureAwait(false);
            await client.NegotiateAsync(cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"connected to {(string?)client.Greeting["QMP"]?["version"]?["package"]} at {socket}");

            foreach (var layer in new[] { "base", "mid1", "mid2", "top" })
            {
                var backing = layer switch { "base" => null, "mid1" => "base", "mid2" => "mid1", _ => "mid2" };
                await client.ExecuteAsync("blockdev-add", Qcow2(dir, layer, backing), cancellationToken).ConfigureAwait(false);
            }

            Console.WriteLine("chain: base <- mid1 <- mid2 <- top");
            await RunJobAsync(client, "block-stream", new JsonObject { ["job-id"] = "stream0", ["device"] = "top", ["base-node"] = "mid1" }, pivot: false, cancellationToken).ConfigureAwait(false);
            Console.WriteLine("chain: base <- mid1 <- top (mid2's data now lives in top)");
            await RunJobAsync(client, "block-commit", new JsonObject { ["job-id"] = "commit0", ["device"] = "top", ["top-node"] = "mid1", ["base-node"] = "base" }, pivot: false, cancellationToken).ConfigureAwait(false);
            Console.WriteLine("chain: base <- top (mid1's data now lives in base)");

            await Qcow2CreateAsync(Path.Combine(dir, "copy.qcow2"), null, cancellationToken).ConfigureAwait(false);
            await client.ExecuteAsync("blockdev-add", Qcow2(dir, "copy", null), cancellationToken).ConfigureAwait(false);
            await RunJobAsync(client, "blockdev-mirror", new JsonObject { ["job-id"] = "mirror0", ["device"] = "top", ["target"] = "copy", ["sync"] = "full" }, pivot: true, cancellationToken).ConfigureAwait(false);
            Console.WriteLine("pivoted: the guest now uses copy.qcow2");

            await client.ExecuteAsync("quit", cancellationToken: cancellationToken).ConfigureAwait(false);
            await daemon.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"jobcored exited with code {daemon.ExitCode}");

            var mismatch = await VerifyCopyAsync(Path.Combine(dir, "copy.qcow2"), cancellationToken).ConfigureAwait(false);
            Console.WriteLine(mismatch is null ? "copy.qcow2 holds exactly the guest view of the original chain" : $"copy.qcow2 differs: {mismatch}");
            return mismatch is null && daemon.ExitCode == 0 ? 0 : 1;
        }
        catch (Exception ex) when (ex is QmpException or IOException or TimeoutException or BlockFormatException)
        {
            await Console.Error.WriteLineAsync($"jobctl: demo failed: {ex.Message} (daemon log: {Path.Combine(dir, "jobcored.log")})").ConfigureAwait(false);
            keep = true;
            return 1;
        }
        finally
        {
            if (daemon is { HasExited: false })
            {
                daemon.Kill(entireProcessTree: true);
            }

            daemon?.Dispose();
            if (!keep)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static JsonObject Qcow2(string dir, string name, string? backing) => new()
    {
        ["driver"] = "qcow2",
        ["node-name"] = name,
        ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = Path.Combine(dir, name + ".qcow2") },
        ["backing"] = backing is null ? null : JsonValue.Create(backing),
    };

    private static Process StartDaemon(string dir, string socket)
    {
        var jobcored = Path.Combine(AppContext.BaseDirectory, "jobcored.dll");
        if (!File.Exists(jobcored))
        {
            throw new IOException($"{jobcored} not found (build src/JobCore.Daemon)");
        }

        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(jobcored);
        start.ArgumentList.Add("--qmp");
        start.ArgumentList.Add("unix:" + socket);
        var process = Process.Start(start) ?? throw new IOException("could not start jobcored");
        var log = new StreamWriter(Path.Combine(dir, "jobcored.log")) { AutoFlush = true };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        Console.WriteLine($"started jobcored (pid {process.Id})");
        return process;
    }

    /// <summary>Starts a job, prints its events and progress until it is gone; pivots at READY when asked.</summary>
    private static async Task RunJobAsync(QmpClient client, string command, JsonObject args, bool pivot, CancellationToken cancellationToken)
    {
        var id = (string)args["job-id"]!;
        Console.WriteLine($"> {command} {args.ToJsonString()}");
        await client.ExecuteAsync(command, args, cancellationToken).ConfigureAwait(false);
        var lastPercent = -1L;
        string? error = null;
        while (true)
        {
            using var tick = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            tick.CancelAfter(TimeSpan.FromMilliseconds(100));
            JsonObject? e = null;
            try
            {
                if (!await client.Events.WaitToReadAsync(tick.Token).ConfigureAwait(false))
                {
                    throw new IOException("jobcored closed the connection");
                }

                client.Events.TryRead(out e);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                var jobs = await client.ExecuteAsync("query-jobs", cancellationToken: cancellationToken).ConfigureAwait(false) as JsonArray;
                var job = jobs?.OfType<JsonObject>().FirstOrDefault(j => (string?)j["id"] == id);
                if (job is not null && (long?)job["total-progress"] is > 0 and var total)
                {
                    var percent = ((long?)job["current-progress"] ?? 0) * 100 / total;
                    if (percent / 10 != lastPercent / 10)
                    {
                        lastPercent = percent;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {id}: {job["status"]} {percent}%"));
                    }
                }

                continue;
            }

            if (e is null)
            {
                continue;
            }

            var name = (string?)e["event"];
            var data = e["data"] as JsonObject;
            Console.WriteLine($"  event {name} {data?.ToJsonString()}");
            if ((string?)data?["id"] != id && (string?)data?["device"] != id)
            {
                continue;
            }

            if (name == "BLOCK_JOB_COMPLETED")
            {
                error = (string?)data!["error"];
            }
            else if (name == "BLOCK_JOB_READY" && pivot)
            {
                Console.WriteLine($"> job-complete {id}");
                await client.ExecuteAsync("job-complete", new JsonObject { ["id"] = id }, cancellationToken).ConfigureAwait(false);
            }
            else if (name == "JOB_STATUS_CHANGE" && (string?)data!["status"] == "null")
            {
                if (error is not null)
                {
                    throw new IOException($"{id} failed: {error}");
                }

                return;
            }
        }
    }

    private static async Task MakeChainAsync(string dir, CancellationToken cancellationToken)
    {
        string? below = null;
        foreach (var layer in new[] { "base", "mid1", "mid2", "top" })
        {
            var path = Path.Combine(dir, layer + ".qcow2");
            await Qcow2CreateAsync(path, below, cancellationToken).ConfigureAwait(false);
            await using var file = await FileNode.OpenAsync(layer + "-file", path, readOnly: false, cancellationToken).ConfigureAwait(false);
            await using var node = await Qcow2Node.OpenAsync(layer, file, readOnly: false, cancellationToken).ConfigureAwait(false);
            foreach (var w in Writes.Where(w => w.Layer == layer))
            {
                var data = new byte[w.Length];
                Array.Fill(data, w.Pattern);
                await node.WriteAsync(w.Offset, data, cancellationToken).ConfigureAwait(false);
            }

            await node.FlushAsync(cancellationToken).ConfigureAwait(false);
            below = layer + ".qcow2";
        }

        Console.WriteLine($"made base.qcow2, mid1.qcow2, mid2.qcow2, top.qcow2 ({Size >> 20} MiB each, distinct byte patterns per layer)");
    }

    private static ValueTask Qcow2CreateAsync(string path, string? backing, CancellationToken cancellationToken) =>
        Qcow2Node.CreateAsync(path, new Qcow2CreateOptions { Size = Size, BackingFile = backing, BackingFormat = backing is null ? null : "qcow2" }, cancellationToken);

    private static async Task<string?> VerifyCopyAsync(string path, CancellationToken cancellationToken)
    {
        var expected = new byte[Size];
        foreach (var w in Writes)
        {
            expected.AsSpan((int)w.Offset, w.Length).Fill(w.Pattern);
        }

        await using var file = await FileNode.OpenAsync("verify-file", path, readOnly: true, cancellationToken).ConfigureAwait(false);
        await using var node = await Qcow2Node.OpenAsync("verify", file, readOnly: true, cancellationToken).ConfigureAwait(false);
        if (node.BackingFileName is not null)
        {
            return $"it still has a backing file ({node.BackingFileName})";
        }

        var buffer = new byte[Mi];
        for (long offset = 0; offset < Size; offset += Mi)
        {
            await node.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            if (!buffer.AsSpan().SequenceEqual(expected.AsSpan((int)offset, Mi)))
            {
                return $"content mismatch in the MiB at offset {offset}";
            }
        }

        return null;
    }
}
