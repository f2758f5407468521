using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Jobs;

/// <summary>
/// The job commands of the real daemon, driven over a real socket against the test plugin's <c>x-test</c> jobs:
/// event order (spec §3.1 A, A', B, C, E, F), lookup errors, verb refusals and the extra checks of spec §2.
/// </summary>
[TestClass]
public sealed class JobCommandTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static Jobcored StartDaemon() => Jobcored.StartWithTestPlugin();

    private static Task<JsonNode?> StartJob(QmpClient client, string id, JsonObject? extra = null)
    {
        var args = new JsonObject { ["job-id"] = id };
        foreach (var (k, v) in extra ?? [])
        {
            args[k] = v?.DeepClone();
        }

        return client.ExecuteAsync("x-test-job-start", args);
    }

    private static async Task<QmpException> Refused(QmpClient client, string command, JsonObject args) =>
        await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync(command, args));

    [TestMethod]
    public async Task A_job_runs_with_QEMUs_event_order_and_created_running_precede_the_reply()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync(transcript: true);
        await using var other = await daemon.ConnectAsync();
        var reply = await client.RequestAsync(JsonNode.Parse("""{"execute": "x-test-job-start", "arguments": {"job-id": "j1", "steps": 5}, "id": "start"}""")!.AsObject());
        Assert.IsNotNull(reply["return"], reply.ToJsonString());

        var transcript = client.Transcript.ToList();
        var replyAt = transcript.FindIndex(m => m["id"]?.ToJsonString() == "\"start\"");
        var before = transcript.Take(replyAt).Where(m => m.ContainsKey("event")).Select(JobEventLog.Describe).ToList();
        CollectionAssert.AreEqual(new[] { "created", "running" }, before);

        string[] expected = ["created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null"];
        CollectionAssert.AreEqual(expected, await JobEventLog.ReadUntilAsync(client, "j1", "null"));
        CollectionAssert.AreEqual(expected, await JobEventLog.ReadUntilAsync(other, "j1", "null"), "every client sees the same events");
        Assert.AreEqual(0, (await client.ExecuteAsync("query-jobs"))!.AsArray().Count);
    }

    [TestMethod]
    public async Task Completed_event_carries_progress_and_timestamps_come_from_the_event()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        var before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        await StartJob(client, "j1", new JsonObject { ["steps"] = 3 });
        var completed = await client.WaitForEventAsync(e => e["event"]!.GetValue<string>() == "BLOCK_JOB_COMPLETED", Timeout);
        var data = completed["data"]!;
        Assert.AreEqual("x-test", data["type"]!.GetValue<string>());
        Assert.AreEqual("j1", data["device"]!.GetValue<string>());
        Assert.AreEqual(3, data["len"]!.GetValue<long>());
        Assert.AreEqual(3, data["offset"]!.GetValue<long>());
        Assert.AreEqual(0, data["speed"]!.GetValue<long>());
        Assert.IsNull(data["error"]);
        var seconds = completed["timestamp"]!["seconds"]!.GetValue<long>();
        var micros = completed["timestamp"]!["microseconds"]!.GetValue<long>();
        Assert.IsTrue(seconds >= before && seconds <= before + 60, $"seconds {seconds}");
        Assert.IsTrue(micros is >= 0 and < 1_000_000);
    }

    [TestMethod]
    public async Task A_failing_job_reports_its_error_in_COMPLETED()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "bad", new JsonObject { ["fail-at"] = 2, ["steps"] = 10, ["auto-dismiss"] = false });
        CollectionAssert.AreEqual(
            new[] { "created", "running", "aborting", "BLOCK_JOB_COMPLETED!error", "concluded" },
            await JobEventLog.ReadUntilAsync(client, "bad", "concluded"));
        var info = (await client.ExecuteAsync("query-jobs"))!.AsArray().Single()!;
        Assert.AreEqual("concluded", info["status"]!.GetValue<string>());
        Assert.AreEqual("Input/output error", info["error"]!.GetValue<string>());
        await client.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = "bad" });
    }

    [TestMethod]
    public async Task Job_cancel_of_a_paused_job_resumes_it_first_and_block_job_cancel_refuses_a_soft_cancel()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "j", new JsonObject { ["steps"] = 100000 });
        await client.ExecuteAsync("job-pause", new JsonObject { ["id"] = "j" });
        CollectionAssert.AreEqual(new[] { "created", "running", "paused" }, await JobEventLog.ReadUntilAsync(client, "j", "paused"));

        var again = await Refused(client, "job-pause", new JsonObject { ["id"] = "j" });
        Assert.AreEqual("Job is already paused", again.Message);
        var soft = await Refused(client, "block-job-cancel", new JsonObject { ["device"] = "j" });
        Assert.AreEqual(QmpErrorClass.GenericError, soft.ErrorClass);
        Assert.AreEqual("The block job for device 'j' is currently paused", soft.Message);

        await client.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "j" });
        CollectionAssert.AreEqual(
            new[] { "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null" },
            await JobEventLog.ReadUntilAsync(client, "j", "null"));
    }

    [TestMethod]
    public async Task Block_job_cancel_with_force_cancels_a_running_job()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "j", new JsonObject { ["steps"] = 100000 });
        await client.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = "j", ["force"] = true });
        CollectionAssert.AreEqual(
            new[] { "created", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null" },
            await JobEventLog.ReadUntilAsync(client, "j", "null"));
    }

    [TestMethod]
    public async Task Manual_finalize_and_dismiss_emit_their_events_before_the_reply()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync(transcript: true);
        await StartJob(client, "m", new JsonObject { ["steps"] = 3, ["auto-finalize"] = false, ["auto-dismiss"] = false });
        CollectionAssert.AreEqual(
            new[] { "created", "running", "waiting", "pending", "BLOCK_JOB_PENDING" },
            await JobEventLog.ReadUntilAsync(client, "m", "BLOCK_JOB_PENDING"));

        var pause = await Refused(client, "job-pause", new JsonObject { ["id"] = "m" });
        Assert.AreEqual("Job 'm' in state 'pending' cannot accept command verb 'pause'", pause.Message);
        var dismiss = await Refused(client, "job-dismiss", new JsonObject { ["id"] = "m" });
        Assert.AreEqual("Job 'm' in state 'pending' cannot accept command verb 'dismiss'", dismiss.Message);

        await client.ExecuteAsync("job-finalize", new JsonObject { ["id"] = "m" });
        var afterFinalize = client.Transcript;
        CollectionAssert.IsSubsetOf(new[] { "BLOCK_JOB_COMPLETED", "concluded" },
            afterFinalize.Where(m => m.ContainsKey("event")).Select(JobEventLog.Describe).ToList(), "finalize events precede its reply");
        var job = (await client.ExecuteAsync("query-block-jobs"))!.AsArray().Single()!.AsObject();
        Assert.AreEqual("concluded", job["status"]!.GetValue<string>());

        var finalizeAgain = await Refused(client, "block-job-finalize", new JsonObject { ["id"] = "m" });
        Assert.AreEqual("Job 'm' in state 'concluded' cannot accept command verb 'finalize'", finalizeAgain.Message);
        await client.ExecuteAsync("block-job-dismiss", new JsonObject { ["id"] = "m" });
        Assert.IsTrue(client.Transcript.Any(m => m["event"]?.GetValue<string>() == "JOB_STATUS_CHANGE" && m["data"]!["status"]!.GetValue<string>() == "null"),
            "null precedes the dismiss reply");
        Assert.AreEqual(0, (await client.ExecuteAsync("query-jobs"))!.AsArray().Count);
    }

    [TestMethod]
    public async Task A_ready_job_completes_on_job_complete_and_a_soft_cancel_completes_without_CANCELLED()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "r1", new JsonObject { ["steps"] = 3, ["ready"] = true });
        CollectionAssert.AreEqual(new[] { "created", "running", "ready", "BLOCK_JOB_READY" }, await JobEventLog.ReadUntilAsync(client, "r1", "BLOCK_JOB_READY"));
        await client.ExecuteAsync("job-complete", new JsonObject { ["id"] = "r1" });
        CollectionAssert.AreEqual(
            new[] { "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" },
            await JobEventLog.ReadUntilAsync(client, "r1", "null"));

        await StartJob(client, "r2", new JsonObject { ["steps"] = 3, ["ready"] = true });
        await JobEventLog.ReadUntilAsync(client, "r2", "BLOCK_JOB_READY");
        await client.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = "r2" });
        CollectionAssert.AreEqual(
            new[] { "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" },
            await JobEventLog.ReadUntilAsync(client, "r2", "null"));
    }

    [TestMethod]
    public async Task Lookup_errors_and_extra_checks_have_QEMUs_classes_and_texts()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        foreach (var verb in new[] { "job-pause", "job-resume", "job-cancel", "job-complete", "job-finalize", "job-dismiss" })
        {
            var e = await Refused(client, verb, new JsonObject { ["id"] = "nojob" });
            Assert.AreEqual(QmpErrorClass.GenericError, e.ErrorClass, verb);
            Assert.AreEqual("Job not found", e.Message, verb);
        }

        foreach (var (verb, member) in new[] { ("block-job-pause", "device"), ("block-job-resume", "device"), ("block-job-cancel", "device"), ("block-job-complete", "device"), ("block-job-finalize", "id"), ("block-job-dismiss", "id") })
        {
            var e = await Refused(client, verb, new JsonObject { [member] = "nojob" });
            Assert.AreEqual(QmpErrorClass.DeviceNotActive, e.ErrorClass, verb);
            Assert.AreEqual("Block job 'nojob' not found", e.Message, verb);
        }

        var setSpeed = await Refused(client, "block-job-set-speed", new JsonObject { ["device"] = "nojob", ["speed"] = 1 });
        Assert.AreEqual("Block job 'nojob' not found", setSpeed.Message);

        await StartJob(client, "j", new JsonObject { ["steps"] = 100000 });
        Assert.AreEqual("Can't resume a job that was not paused", (await Refused(client, "job-resume", new JsonObject { ["id"] = "j" })).Message);
        Assert.AreEqual("Job 'j' in state 'running' cannot accept command verb 'complete'", (await Refused(client, "block-job-complete", new JsonObject { ["device"] = "j" })).Message);
        Assert.AreEqual("Parameter 'speed' expects a non-negative value",
            (await Refused(client, "block-job-set-speed", new JsonObject { ["device"] = "j", ["speed"] = -1 })).Message);
        Assert.AreEqual("Parameter 'speed' is missing", (await Refused(client, "block-job-set-speed", new JsonObject { ["device"] = "j" })).Message);
        await client.ExecuteAsync("block-job-set-speed", new JsonObject { ["device"] = "j", ["speed"] = 1 << 20 });

        Assert.AreEqual("Job 'j' is 'x-test' job, not 'mirror'",
            (await Refused(client, "block-job-change", new JsonObject { ["id"] = "j", ["type"] = "mirror", ["copy-mode"] = "write-blocking" })).Message);
        Assert.AreEqual("Parameter 'copy-mode' is missing",
            (await Refused(client, "block-job-change", new JsonObject { ["id"] = "j", ["type"] = "x-test" })).Message);
        Assert.AreEqual("Parameter 'type' does not accept value 'nonsense'",
            (await Refused(client, "block-job-change", new JsonObject { ["id"] = "j", ["type"] = "nonsense" })).Message);
        await client.ExecuteAsync("block-job-change", new JsonObject { ["id"] = "j", ["type"] = "x-test", ["copy-mode"] = "write-blocking" });

        var info = (await client.ExecuteAsync("query-block-jobs"))!.AsArray().Single()!.AsObject();
        string[] keys = ["auto-finalize", "io-status", "device", "auto-dismiss", "busy", "len", "offset", "status", "paused", "speed", "ready", "type", "x-copy-mode"];
        CollectionAssert.AreEquivalent(keys, info.Select(p => p.Key).ToArray());
        Assert.AreEqual(1 << 20, info["speed"]!.GetValue<long>());
        Assert.AreEqual("write-blocking", info["x-copy-mode"]!.GetValue<string>());
        Assert.AreEqual("ok", info["io-status"]!.GetValue<string>());
        Assert.AreEqual("running", info["status"]!.GetValue<string>());

        var jobs = (await client.ExecuteAsync("query-jobs"))!.AsArray().Single()!.AsObject();
        CollectionAssert.AreEquivalent(new[] { "current-progress", "status", "total-progress", "type", "id" }, jobs.Select(p => p.Key).ToArray());
        await client.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "j" });
    }

    [TestMethod]
    public async Task Quit_force_cancels_running_jobs_in_QEMUs_order_and_exits_0()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "j", new JsonObject { ["steps"] = 100000 });
        await JobEventLog.ReadUntilAsync(client, "j", "running");
        await client.ExecuteAsync("quit");
        var rest = new List<string>();
        await foreach (var e in client.Events.ReadAllAsync())
        {
            rest.Add(e["event"]!.GetValue<string>() == "SHUTDOWN" ? "SHUTDOWN" : JobEventLog.Describe(e));
        }

        // QEMU 7.2 (qemu_cleanup): SHUTDOWN, the drain pauses every job, then each is cancelled (back to running first).
        CollectionAssert.AreEqual(new[] { "SHUTDOWN", "paused", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null" }, rest);
        Assert.AreEqual(0, await daemon.Process.WaitForExitAsync(Timeout));
    }

    [TestMethod]
    public async Task Block_job_verbs_pause_resume_and_complete_by_device()
    {
        await using var daemon = StartDaemon();
        await using var client = await daemon.ConnectAsync();
        await StartJob(client, "b", new JsonObject { ["steps"] = 40, ["ready"] = true });
        await client.ExecuteAsync("block-job-pause", new JsonObject { ["device"] = "b" });
        await JobEventLog.ReadUntilAsync(client, "b", "paused");
        var info = (await client.ExecuteAsync("query-block-jobs"))!.AsArray().Single()!;
        Assert.IsTrue(info["paused"]!.GetValue<bool>());
        Assert.AreEqual("paused", info["status"]!.GetValue<string>());
        await client.ExecuteAsync("block-job-resume", new JsonObject { ["device"] = "b" });
        CollectionAssert.AreEqual(new[] { "running", "ready", "BLOCK_JOB_READY" }, await JobEventLog.ReadUntilAsync(client, "b", "BLOCK_JOB_READY"));
        await client.ExecuteAsync("block-job-complete", new JsonObject { ["device"] = "b" });
        CollectionAssert.AreEqual(
            new[] { "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null" },
            await JobEventLog.ReadUntilAsync(client, "b", "null"));
    }

    [TestMethod]
    public async Task A_client_that_disconnects_while_its_command_runs_does_not_disturb_the_daemon()
    {
        await using var daemon = StartDaemon();
        await using var bystander = await daemon.ConnectAsync();
        for (var i = 0; i < 5; i++)
        {
            var leaver = await daemon.ConnectAsync();
            var pending = leaver.ExecuteAsync("x-test-sleep", new JsonObject { ["ms"] = 300 });
            await leaver.DisposeAsync();
            await Assert.ThrowsAsync<Exception>(() => pending);
        }

        Assert.AreEqual(250, (await bystander.ExecuteAsync("x-test-sleep", new JsonObject { ["ms"] = 250 }))!["slept"]!.GetValue<int>());
        Assert.IsNotNull(await bystander.ExecuteAsync("query-jobs"));
        Assert.IsFalse(daemon.Process.Process.HasExited);
    }
}
