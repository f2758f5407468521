using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;
using JobCore.Qmp.Tests.Jobs;

namespace JobCore.Qmp.Tests.Cli;

/// <summary>jobctl's QMP commands against jobcored and against QEMU's own monitor.</summary>
[TestClass]
public sealed class JobctlTests
{
    private static Jobcored StartDaemonWithTestPlugin() => Jobcored.StartWithTestPlugin();

    [TestMethod]
    public async Task Jobs_table_and_verbs_drive_a_job()
    {
        await using var daemon = StartDaemonWithTestPlugin();
        await using var watcher = await daemon.ConnectAsync();
        var socket = daemon.SocketPath;

        var (none, empty) = await Jobctl.RunAsync("jobs", "--socket", socket);
        Assert.AreEqual(0, none, empty);
        StringAssert.Contains(empty, "no jobs");

        var (started, output) = await Jobctl.RunAsync("exec", "-s", socket, "x-test-job-start", "{\"job-id\": \"j1\", \"steps\": 100000}");
        Assert.AreEqual(0, started, output);
        Assert.AreEqual("{\"return\": {}}", output.Trim());

        Assert.AreEqual(0, (await Jobctl.RunAsync("pause", "-s", socket, "j1")).Exit);
        await JobEventLog.ReadUntilAsync(watcher, "j1", "paused");
        var (listed, table) = await Jobctl.RunAsync("jobs", "-s", socket);
        Assert.AreEqual(0, listed, table);
        var row = table.Split('\n').Single(l => l.StartsWith("j1 ", StringComparison.Ordinal));
        StringAssert.Contains(row, "x-test");
        StringAssert.Contains(row, "paused");
        StringAssert.Contains(table, "ID");

        Assert.AreEqual(0, (await Jobctl.RunAsync("resume", "-s", socket, "j1")).Exit);
        await JobEventLog.ReadUntilAsync(watcher, "j1", "running");
        var (cancelled, cancelOutput) = await Jobctl.RunAsync("cancel", "--connect", "unix:" + socket, "j1");
        Assert.AreEqual(0, cancelled, cancelOutput);
        await JobEventLog.ReadUntilAsync(watcher, "j1", "null");

        var (json, jsonOutput) = await Jobctl.RunAsync("jobs", "-s", socket, "--json");
        Assert.AreEqual(0, json, jsonOutput);
        Assert.AreEqual(0, JsonNode.Parse(jsonOutput)!.AsArray().Count);
    }

    [TestMethod]
    public async Task Events_prints_one_JSON_object_per_line()
    {
        await using var daemon = StartDaemonWithTestPlugin();
        await using var client = await daemon.ConnectAsync();
        var events = Jobctl.RunAsync("events", "-s", daemon.SocketPath, "--count", "7");

        // The daemon logs when jobctl's connection (its second client) has negotiated and so receives events.
        await daemon.Process.WaitForOutputAsync(@"QMP client unix#2 negotiated", TimeSpan.FromSeconds(60));
        await client.ExecuteAsync("x-test-job-start", new JsonObject { ["job-id"] = "e1", ["steps"] = 2 });
        var (exit, output) = await events;
        Assert.AreEqual(0, exit, output);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{')).ToList();
        Assert.AreEqual(7, lines.Count, output);
        var described = lines.Select(l => JobEventLog.Describe(JsonNode.Parse(l)!.AsObject())).ToArray();
        CollectionAssert.AreEqual(new[] { "created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" }, described);
    }

    [TestMethod]
    public async Task QMP_errors_exit_1_with_the_servers_text_on_QEMU_and_on_jobcored()
    {
        await using var qemu = QemuMonitor.Start();
        await using var daemon = Jobcored.Start();
        await WaitUntilListeningAsync(() => qemu.ConnectAsync());
        await WaitUntilListeningAsync(() => daemon.ConnectAsync());
        foreach (var socket in new[] { qemu.SocketPath, daemon.SocketPath })
        {
            var (exit, output) = await Jobctl.RunAsync("pause", "-s", socket, "nojob");
            Assert.AreEqual(1, exit, output);
            StringAssert.Contains(output, "jobctl: Job not found (GenericError)");

            var (raw, rawOutput) = await Jobctl.RunAsync("exec", "-s", socket, "{\"execute\": \"block-job-pause\", \"arguments\": {\"device\": \"nojob\"}}");
            Assert.AreEqual(1, raw, rawOutput);
            Assert.AreEqual("DeviceNotActive", JsonNode.Parse(rawOutput)!["error"]!["class"]!.GetValue<string>());

            var (version, versionOutput) = await Jobctl.RunAsync("exec", "-s", socket, "query-version");
            Assert.AreEqual(0, version, versionOutput);
            Assert.AreEqual(7, JsonNode.Parse(versionOutput)!["return"]!["qemu"]!["major"]!.GetValue<int>());

            var (jobs, jobsOutput) = await Jobctl.RunAsync("jobs", "-s", socket);
            Assert.AreEqual(0, jobs, jobsOutput);
            StringAssert.Contains(jobsOutput, "no jobs");
        }

        var (missing, missingOutput) = await Jobctl.RunAsync("jobs");
        Assert.AreEqual(2, missing, missingOutput);
        StringAssert.Contains(missingOutput, "--socket");
    }

    /// <summary>
    /// The same scripted session, driven only by jobctl (QEMU's monitor serves one client at a time), on QEMU and on
    /// jobcored: open a two-image chain bottom-up, stream it with <c>--wait --events</c>, compare the job's events.
    /// </summary>
    [TestMethod]
    public async Task A_stream_session_driven_by_jobctl_gives_the_same_events_on_QEMU_and_jobcored()
    {
        await using var qemu = QemuMonitor.Start();
        await using var daemon = Jobcored.Start();
        await WaitUntilListeningAsync(() => qemu.ConnectAsync());
        await WaitUntilListeningAsync(() => daemon.ConnectAsync());
        var onQemu = await RunStreamSessionAsync(qemu.Endpoint);
        var onJobcored = await RunStreamSessionAsync(daemon.Endpoint);
        CollectionAssert.AreEqual(new[] { "created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" }, onQemu);
        CollectionAssert.AreEqual(onQemu, onJobcored);
    }

    /// <summary>
    /// The scripted mirror session on both servers, driven by jobctl: mirror to a second image with
    /// <c>--pivot --events</c> (READY, then job-complete), compare the events, and check the copy is identical.
    /// </summary>
    [TestMethod]
    public async Task A_mirror_session_with_pivot_gives_the_same_events_on_QEMU_and_jobcored()
    {
        await using var qemu = QemuMonitor.Start();
        await using var daemon = Jobcored.Start();
        await WaitUntilListeningAsync(() => qemu.ConnectAsync());
        await WaitUntilListeningAsync(() => daemon.ConnectAsync());
        var onQemu = await RunMirrorSessionAsync(qemu.Endpoint);
        var onJobcored = await RunMirrorSessionAsync(daemon.Endpoint);
        CollectionAssert.AreEqual(
            new[] { "created", "running", "ready", "BLOCK_JOB_READY", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" },
            onQemu);
        CollectionAssert.AreEqual(onQemu, onJobcored);
    }

    private static async Task<List<string>> RunMirrorSessionAsync(string endpoint)
    {
        using var dir = new TempDirectory();
        await RunToolAsync("qemu-img", "create", "-q", "-f", "qcow2", dir.File("src.qcow2"), "16M");
        await RunToolAsync("qemu-io", "-c", "write -P 0x3c 1M 5M", dir.File("src.qcow2"));
        await RunToolAsync("qemu-img", "create", "-q", "-f", "qcow2", dir.File("dst.qcow2"), "16M");

        await ExpectSuccess("exec", "-c", endpoint, "blockdev-add", Qcow2Node("src", dir.File("src.qcow2"), null).ToJsonString());
        await ExpectSuccess("exec", "-c", endpoint, "blockdev-add", Qcow2Node("dst", dir.File("dst.qcow2"), null).ToJsonString());
        var output = await ExpectSuccess("mirror", "--connect", endpoint, "src", "--target", "dst", "--sync", "full", "--job-id", "m1", "--pivot", "--events");
        StringAssert.Contains(output, "m1: ready, pivoting");
        await RunToolAsync("qemu-img", "compare", "-U", dir.File("src.qcow2"), dir.File("dst.qcow2"));
        return [.. output.Split('\n').Where(l => l.StartsWith('{')).Select(l => JobEventLog.Describe(JsonNode.Parse(l)!.AsObject()))];
    }

    private static async Task<List<string>> RunStreamSessionAsync(string endpoint)
    {
        using var dir = new TempDirectory();
        await RunToolAsync("qemu-img", "create", "-q", "-f", "qcow2", dir.File("base.qcow2"), "16M");
        await RunToolAsync("qemu-io", "-c", "write -P 0x5a 0 4M", dir.File("base.qcow2"));
        await RunToolAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("top.qcow2"));

        await ExpectSuccess("exec", "-c", endpoint, "blockdev-add", Qcow2Node("base", dir.File("base.qcow2"), null).ToJsonString());
        await ExpectSuccess("exec", "-c", endpoint, "blockdev-add", Qcow2Node("top", dir.File("top.qcow2"), "base").ToJsonString());
        var output = await ExpectSuccess("stream", "--connect", endpoint, "top", "--job-id", "s1", "--wait", "--events");
        StringAssert.Contains(output, "BLOCK_JOB_COMPLETED");
        await ExpectSuccess("exec", "-c", endpoint, "blockdev-del", "{\"node-name\": \"top\"}");
        await ExpectSuccess("exec", "-c", endpoint, "blockdev-del", "{\"node-name\": \"base\"}");
        await RunToolAsync("qemu-img", "check", "-q", dir.File("top.qcow2"));
        return [.. output.Split('\n').Where(l => l.StartsWith('{')).Select(l => JobEventLog.Describe(JsonNode.Parse(l)!.AsObject()))];
    }

    private static async Task<string> ExpectSuccess(params string[] arguments)
    {
        var (exit, output) = await Jobctl.RunAsync(arguments);
        Assert.AreEqual(0, exit, $"jobctl {string.Join(' ', arguments)}:\n{output}");
        return output;
    }

    private static async Task WaitUntilListeningAsync(Func<Task<QmpClient>> connect)
    {
        await using var probe = await connect();
    }

    private static JsonObject Qcow2Node(string name, string file, string? backing) => new()
    {
        ["driver"] = "qcow2",
        ["node-name"] = name,
        ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = file },
        ["backing"] = backing,
    };

    private static async Task RunToolAsync(string tool, params string[] arguments)
    {
        await using var process = ChildProcess.Start(tool, arguments);
        Assert.AreEqual(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"{tool} failed:\n{process.Output}");
    }
}
