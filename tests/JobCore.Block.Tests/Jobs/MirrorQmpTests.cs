using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Block.Tests.Interop;
using JobCore.Qmp;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// blockdev-mirror / drive-mirror over QMP: the same scripts against the real jobcored process and against
/// qemu-system-x86_64 7.2 (<c>-machine none</c>), compared event by event (names, statuses, data; no timestamps,
/// no timing-dependent offsets), plus QEMU's refusals.
/// </summary>
[TestClass]
public sealed class MirrorQmpTests
{
    private const string ImageSize = "4M";

    public static IEnumerable<object[]> Scenarios =>
    [
        ["complete"],
        ["soft-cancel"],
        ["force-cancel-before-ready"],
        ["force-cancel-after-ready"],
        ["size-mismatch"],
        ["drive-mirror-top"],
        ["target-error-report"],
        ["target-error-stop"],
        ["active-commit"],
        ["active-commit-soft-cancel"],
    ];

    [TestMethod]
    [DynamicData(nameof(Scenarios))]
    public async Task Event_sequence_matches_qemu(string scenario) => await SameOnBothAsync(peer => RunAsync(peer, scenario));

    // Runs the script on QEMU 7.2, then on jobcored, asserts both logs are equal and returns jobcored's.
    private static async Task<List<string>> SameOnBothAsync(Func<QmpJobPeer, Task<List<string>>> script)
    {
        List<string> qemu, ours;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync())
        {
            qemu = await script(peer);
        }

        await using (QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync())
        {
            ours = await script(peer);
        }

        CollectionAssert.AreEqual(qemu, ours, $"qemu:\n{string.Join("\n", qemu)}\njobcored:\n{string.Join("\n", ours)}");
        return ours;
    }

    [TestMethod]
    public async Task Jobcored_mirror_sends_ready_then_complete_events_and_the_target_equals_the_source()
    {
        await using QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync();
        await OpenAsync(peer, "src", "dst");
        await peer.Client.ExecuteAsync("blockdev-mirror", new JsonObject { ["job-id"] = "m", ["device"] = "src", ["target"] = "dst", ["sync"] = "full" });
        List<string> events = await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "BLOCK_JOB_READY");
        JsonNode? jobs = await peer.Client.ExecuteAsync("query-block-jobs");
        JsonObject info = jobs!.AsArray().Single()!.AsObject();
        Assert.AreEqual("ready", info["status"]!.GetValue<string>());
        Assert.IsFalse(info["actively-synced"]!.GetValue<bool>());
        await peer.Client.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
        events.AddRange(await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "null"));
        string len = "4194304"; // sync=full onto a target not known to be zero: the whole disk
        CollectionAssert.AreEqual(
            new[]
            {
                "created", "running", "ready",
                $"BLOCK_JOB_READY {{device=\"m\",len={len},offset={len},speed=0,type=\"mirror\"}}",
                "waiting", "pending",
                $"BLOCK_JOB_COMPLETED {{device=\"m\",len={len},offset={len},speed=0,type=\"mirror\"}}",
                "concluded", "null",
            },
            events,
            string.Join("\n", events));
        foreach (string node in new[] { "dst", "src", "base" })
        {
            await peer.Client.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = node });
        }

        ToolResult compare = await QemuImg.ImgAsync("compare", File(peer, "src.qcow2"), File(peer, "dst.qcow2"));
        Assert.AreEqual(0, compare.ExitCode, compare.All);
    }

    [TestMethod]
    public async Task Block_job_change_switches_a_jobcored_mirror_to_write_blocking()
    {
        await using QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync();
        await OpenAsync(peer, "src", "dst");
        await peer.Client.ExecuteAsync("blockdev-mirror", new JsonObject { ["job-id"] = "m", ["device"] = "src", ["target"] = "dst", ["sync"] = "full" });
        await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "BLOCK_JOB_READY");
        async Task<string> ChangeAsync(string mode)
        {
            JsonObject reply = await peer.Client.RequestAsync(new JsonObject
            {
                ["execute"] = "block-job-change",
                ["arguments"] = new JsonObject { ["id"] = "m", ["type"] = "mirror", ["copy-mode"] = mode },
            });
            return reply["error"] is JsonObject e ? $"{e["class"]}: {e["desc"]}" : "ok";
        }

        Assert.AreEqual("ok", await ChangeAsync("background"));
        Assert.AreEqual("ok", await ChangeAsync("write-blocking"));
        Assert.AreEqual("ok", await ChangeAsync("write-blocking"));
        Assert.AreEqual("GenericError: Change to copy mode 'background' is not implemented", await ChangeAsync("background"));
        JsonObject wrongType = await peer.Client.RequestAsync(JsonNode.Parse(
            """{"execute":"block-job-change","arguments":{"id":"m","type":"stream"}}""")!.AsObject());
        Assert.IsNotNull(wrongType["error"], wrongType.ToJsonString());

        // After the next idle pass of the loop the mirror reports that new writes go to both sides.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            JsonObject info = (await peer.Client.ExecuteAsync("query-block-jobs"))!.AsArray().Single()!.AsObject();
            if (info["actively-synced"]!.GetValue<bool>())
            {
                break;
            }

            await Task.Delay(20, deadline.Token);
        }

        await peer.Client.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
        List<string> tail = await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "null");
        Assert.AreEqual("null", tail[^1]);
        Assert.IsTrue(tail.Any(e => e.StartsWith("BLOCK_JOB_COMPLETED", StringComparison.Ordinal) && !e.Contains("error", StringComparison.Ordinal)), string.Join("\n", tail));
    }

    [TestMethod]
    public async Task Jobcored_drive_mirror_top_creates_a_target_backed_by_the_source_backing()
    {
        await using QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync();
        await OpenAsync(peer, "src", "unused");
        string target = File(peer, "new.qcow2");
        await peer.Client.ExecuteAsync("drive-mirror", new JsonObject
        {
            ["job-id"] = "m", ["device"] = "src", ["target"] = target, ["node-name"] = "new", ["sync"] = "top",
        });
        List<string> events = await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "BLOCK_JOB_READY");
        Assert.AreEqual("BLOCK_JOB_READY {device=\"m\",len=2097152,offset=2097152,speed=0,type=\"mirror\"}", events[^1], "only src's own 2 MiB");
        Assert.AreEqual(
            $"depth=0 backing-image=False backing-filename={File(peer, "base.qcow2")}",
            await DescribeNodeAsync(peer, "new"),
            "created with the base as backing file, opened without it");
        await peer.Client.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
        await QmpJobPeer.ReadJobEventsAsync(peer.Client, "m", "null");

        // Nothing uses the source, so nothing uses the target after the pivot: it is gone, as in QEMU.
        Assert.AreEqual("absent", await DescribeNodeAsync(peer, "new"));
        foreach (string name in new[] { "unused", "src", "base" })
        {
            await peer.Client.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = name });
        }

        ToolResult info = await QemuImg.ImgAsync("info", "--output=json", target);
        Assert.AreEqual(File(peer, "base.qcow2"), JsonNode.Parse(info.Output)!["backing-filename"]!.GetValue<string>());
        ToolResult compare = await QemuImg.ImgAsync("compare", File(peer, "src.qcow2"), target);
        Assert.AreEqual(0, compare.ExitCode, compare.All);
        ToolResult check = await QemuImg.ImgAsync("check", target);
        Assert.AreEqual(0, check.ExitCode, check.All);
    }

    /// <summary>
    /// drive-mirror mode=existing (sync=top into an image whose header names its own copy of the base): the target is
    /// opened without its backing while the job runs, the chain its header names is opened only when the job succeeds,
    /// the header is left as it was, and the target belongs to the job (blockdev-del says it is in use, and it is gone
    /// once nothing uses it). The same script on QEMU 7.2 and jobcored.
    /// </summary>
    [TestMethod]
    [DataRow("job-complete")]
    [DataRow("block-job-cancel")]
    public async Task Drive_mirror_existing_opens_the_target_backing_only_at_the_end_as_qemu(string finish)
    {
        List<string> ours = await SameOnBothAsync(peer => RunDriveMirrorExistingAsync(peer, finish));
        CollectionAssert.Contains(ours, "depth=0 backing-image=False backing-filename=tbase.qcow2", "opened without its backing while running");
    }

    private static async Task<List<string>> RunDriveMirrorExistingAsync(QmpJobPeer peer, string finish)
    {
        QmpClient c = peer.Client;
        await OpenAsync(peer, "src", "unused");
        System.IO.File.Copy(File(peer, "base.qcow2"), File(peer, "tbase.qcow2"));
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-b", "tbase.qcow2", "-F", "qcow2", File(peer, "tgt.qcow2"), ImageSize);
        var log = new List<string>();
        await c.ExecuteAsync("drive-mirror", new JsonObject
        {
            ["job-id"] = "m", ["device"] = "src", ["target"] = File(peer, "tgt.qcow2"), ["format"] = "qcow2",
            ["mode"] = "existing", ["sync"] = "top", ["node-name"] = "new",
        });
        log.Add(await DescribeNodeAsync(peer, "new"));
        log.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "BLOCK_JOB_READY"));
        log.Add(await DescribeNodeAsync(peer, "new"));
        log.Add(Reply(await c.RequestAsync(new JsonObject { ["execute"] = "blockdev-del", ["arguments"] = new JsonObject { ["node-name"] = "new" } })));
        await c.ExecuteAsync(finish, finish == "job-complete" ? new JsonObject { ["id"] = "m" } : new JsonObject { ["device"] = "m" });
        log.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "null"));
        log.Add(await DescribeNodeAsync(peer, "new"));
        log.Add(Reply(await c.RequestAsync(new JsonObject { ["execute"] = "blockdev-del", ["arguments"] = new JsonObject { ["node-name"] = "new" } })));
        foreach (string name in new[] { "unused", "src", "base" })
        {
            await c.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = name });
        }

        ToolResult info = await QemuImg.ImgAsync("info", "--output=json", File(peer, "tgt.qcow2"));
        JsonNode header = JsonNode.Parse(info.Output)!;
        log.Add($"header backing={header["backing-filename"]} format={header["backing-filename-format"]}");
        ToolResult compare = await QemuImg.ImgAsync("compare", File(peer, "src.qcow2"), File(peer, "tgt.qcow2"));
        log.Add($"compare={compare.ExitCode}");
        ToolResult check = await QemuImg.ImgAsync("check", File(peer, "tgt.qcow2"));
        log.Add($"check={check.ExitCode}");
        return log;
    }

    // The parts of a query-named-block-nodes entry that say how the node's backing stands.
    private static async Task<string> DescribeNodeAsync(QmpJobPeer peer, string nodeName)
    {
        JsonObject? node = (await peer.Client.ExecuteAsync("query-named-block-nodes"))!.AsArray()
            .SingleOrDefault(n => n!["node-name"]!.GetValue<string>() == nodeName)?.AsObject();
        if (node is null)
        {
            return "absent";
        }

        JsonObject image = node["image"]!.AsObject();
        return $"depth={node["backing_file_depth"]} backing-image={image["backing-image"] is not null} backing-filename={image["backing-filename"]}";
    }

    private static string Reply(JsonObject reply) => reply["error"] is JsonObject e ? $"{e["class"]}: {e["desc"]}" : "ok";

    [TestMethod]
    public async Task Refusals_match_qemu()
    {
        string[] commands =
        [
            """{"execute":"blockdev-mirror","arguments":{"device":"nope","target":"dst","sync":"full"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"nope","sync":"full"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"src","sync":"full"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"incremental"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full","granularity":3072}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full","granularity":256}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full","buf-size":-1}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"bogus"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full","granularity":-512}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"nope","target":"dst","sync":"full","granularity":4294967296}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"base","sync":"full"}}""",
            """{"execute":"drive-mirror","arguments":{"job-id":"m","device":"src","target":"new-bogus.qcow2","sync":"full","format":"bogus"}}""",
            """{"execute":"blockdev-mirror","arguments":{"device":"src","target":"dst","sync":"full"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full","speed":1}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m2","device":"src","target":"dst","sync":"full"}}""",
            """{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"src","target":"dst","sync":"full"}}""",
            """{"execute":"job-complete","arguments":{"id":"m"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"dst"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"src"}}""",
            """{"execute":"job-cancel","arguments":{"id":"m"}}""",
        ];

        List<string> qemu, ours;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync())
        {
            qemu = await AnswersAsync(peer, commands);
        }

        await using (QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync())
        {
            ours = await AnswersAsync(peer, commands);
        }

        for (int i = 0; i < commands.Length; i++)
        {
            Assert.AreEqual(qemu[i], ours[i], $"command {commands[i]}");
        }
    }

    private static async Task<List<string>> AnswersAsync(QmpJobPeer peer, string[] commands)
    {
        await OpenAsync(peer, "src", "dst");
        var answers = new List<string>();
        foreach (string command in commands)
        {
            JsonObject reply = await peer.Client.RequestAsync(JsonNode.Parse(command)!.AsObject());
            answers.Add(Reply(reply));
        }

        return answers;
    }

    // src: 4 MiB qcow2 with 3 MiB of data in two layers' worth of patterns; dst: an empty qcow2 of the same size (or
    // twice the size, or behind a blkdebug that fails the first write with EIO).
    private static async Task OpenAsync(QmpJobPeer peer, string source, string target, string targetSize = ImageSize, string? targetRule = null)
    {
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", File(peer, "base.qcow2"), ImageSize);
        await QemuImg.IoCommandsAsync(File(peer, "base.qcow2"), "qcow2", "write -P 0x11 0 1M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", File(peer, "src.qcow2"), ImageSize);
        await QemuImg.IoCommandsAsync(File(peer, "src.qcow2"), "qcow2", "write -P 0x22 1M 2M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", File(peer, "dst.qcow2"), targetSize);
        string F(string name) => JsonSerializer.Serialize(File(peer, name));
        await Add(peer, $$"""{"driver":"qcow2","node-name":"base","file":{"driver":"file","filename":{{F("base.qcow2")}}},"backing":null}""");
        await Add(peer, $$"""{"driver":"qcow2","node-name":"{{source}}","file":{"driver":"file","filename":{{F("src.qcow2")}}},"backing":"base"}""");
        string file = $$"""{"driver":"file","filename":{{F("dst.qcow2")}}}""";
        if (targetRule is not null)
        {
            file = $$"""{"driver":"blkdebug","inject-error":[{{targetRule}}],"image":{{file}}}""";
        }

        await Add(peer, $$"""{"driver":"qcow2","node-name":"{{target}}","file":{{file}}}""");
    }

    private static string File(QmpJobPeer peer, string name) => Path.Combine(peer.Directory, name);

    private static Task<JsonNode?> Add(QmpJobPeer peer, string json) => peer.Client.ExecuteAsync("blockdev-add", JsonNode.Parse(json)!.AsObject());

    private static async Task<List<string>> RunAsync(QmpJobPeer peer, string scenario)
    {
        QmpClient c = peer.Client;
        var mirror = new JsonObject { ["job-id"] = "m", ["device"] = "src", ["target"] = "dst", ["sync"] = "full" };
        var events = new List<string>();
        switch (scenario)
        {
            case "complete":
            case "soft-cancel":
            case "force-cancel-after-ready":
                await OpenAsync(peer, "src", "dst");
                await c.ExecuteAsync("blockdev-mirror", mirror);
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "BLOCK_JOB_READY"));
                await c.ExecuteAsync(
                    scenario == "complete" ? "job-complete" : scenario == "soft-cancel" ? "block-job-cancel" : "job-cancel",
                    scenario == "soft-cancel" ? new JsonObject { ["device"] = "m" } : new JsonObject { ["id"] = "m" });
                break;
            case "force-cancel-before-ready":
                await OpenAsync(peer, "src", "dst");
                mirror["speed"] = 1;
                await c.ExecuteAsync("blockdev-mirror", mirror);
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "running"));
                await c.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = "m" });
                break;
            case "size-mismatch":
                await OpenAsync(peer, "src", "dst", targetSize: "8M");
                await c.ExecuteAsync("blockdev-mirror", mirror);
                break;
            case "drive-mirror-top":
                await OpenAsync(peer, "src", "unused");
                await c.ExecuteAsync("drive-mirror", new JsonObject
                {
                    ["job-id"] = "m", ["device"] = "src", ["target"] = File(peer, "new.qcow2"), ["format"] = "qcow2", ["sync"] = "top",
                });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "BLOCK_JOB_READY"));
                await c.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
                break;
            case "target-error-report":
            case "target-error-stop":
                await OpenAsync(peer, "src", "dst", targetRule: """{"event":"write_aio","errno":5,"once":true}""");
                bool stop = scenario.EndsWith("stop", StringComparison.Ordinal);
                mirror["on-target-error"] = stop ? "stop" : "report";
                await c.ExecuteAsync("blockdev-mirror", mirror);
                if (stop)
                {
                    events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "paused"));
                    JsonObject job = (await c.ExecuteAsync("query-block-jobs"))!.AsArray().Single()!.AsObject();
                    events.Add($"io-status={job["io-status"]} paused={job["paused"]} status={job["status"]}");
                    await c.ExecuteAsync("job-resume", new JsonObject { ["id"] = "m" });
                    events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "BLOCK_JOB_READY"));
                    await c.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
                }

                break;
            case "active-commit":
            case "active-commit-soft-cancel":
                await OpenAsync(peer, "src", "dst");
                await c.ExecuteAsync("block-commit", new JsonObject { ["job-id"] = "m", ["device"] = "src" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "BLOCK_JOB_READY"));
                await c.ExecuteAsync(
                    scenario == "active-commit" ? "job-complete" : "block-job-cancel",
                    scenario == "active-commit" ? new JsonObject { ["id"] = "m" } : new JsonObject { ["device"] = "m" });
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(scenario));
        }

        events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "m", "null"));
        return events;
    }
}
