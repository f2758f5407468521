using System.Text.Json;
using System.Text.Json.Nodes;
using JobCore.Block.Tests.Interop;
using JobCore.Qmp;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// block-stream and block-commit over QMP: the same scripts against the real jobcored process (block plugin loaded
/// with <c>--plugins</c>) and against qemu-system-x86_64 7.2, compared event by event (names, statuses and data;
/// timestamps and timing-dependent offsets left out), plus QEMU's argument refusals.
/// </summary>
[TestClass]
public sealed class StreamQmpTests
{
    // One scenario: the commands after the chain is open, and how to wind the job down.
    public static IEnumerable<object[]> Scenarios =>
    [
        ["stream"],
        ["stream-base-node"],
        ["stream-bottom"],
        ["stream-failed"],
        ["stream-ignored"],
        ["stream-cancelled"],
        ["stream-manual"],
        ["commit"],
        ["commit-failed"],
        ["commit-active"],
    ];

    [TestMethod]
    [DynamicData(nameof(Scenarios))]
    public async Task Event_sequence_matches_qemu(string scenario)
    {
        List<string> qemu;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync())
        {
            qemu = await RunScenarioAsync(peer, scenario);
        }

        List<string> ours;
        await using (QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync())
        {
            ours = await RunScenarioAsync(peer, scenario);
        }

        CollectionAssert.AreEqual(qemu, ours, $"qemu:\n{string.Join("\n", qemu)}\njobcored:\n{string.Join("\n", ours)}");
    }

    [TestMethod]
    public async Task Created_and_running_precede_the_reply_of_block_stream()
    {
        await using QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync(transcript: true);
        await OpenChainAsync(peer);
        JsonObject reply = await peer.Client.RequestAsync(new JsonObject
        {
            ["execute"] = "block-stream",
            ["arguments"] = new JsonObject { ["job-id"] = "s", ["device"] = "top" },
            ["id"] = "go",
        });
        Assert.IsNotNull(reply["return"], reply.ToJsonString());
        var transcript = peer.Client.Transcript.ToList();
        int at = transcript.FindIndex(m => m["id"]?.ToJsonString() == "\"go\"");
        var before = transcript.Take(at).Where(m => m["event"]?.GetValue<string>() == "JOB_STATUS_CHANGE")
            .Select(m => m["data"]!["status"]!.GetValue<string>()).ToList();
        CollectionAssert.AreEqual(new[] { "created", "running" }, before);
        await QmpJobPeer.ReadJobEventsAsync(peer.Client, "s", "null");
    }

    [TestMethod]
    public async Task Refusals_match_qemu()
    {
        string[] commands =
        [
            """{"execute":"blockdev-add","arguments":{}}""",
            """{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"x"}}""",
            """{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"top","file":"base"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"zz"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"base"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"mid"}}""",
            """{"execute":"block-stream","arguments":{"device":"nope"}}""",
            """{"execute":"block-stream","arguments":{"device":"top","base":"x","base-node":"base"}}""",
            """{"execute":"block-stream","arguments":{"device":"top","base-node":"nope"}}""",
            """{"execute":"block-stream","arguments":{"device":"mid","base-node":"top"}}""",
            """{"execute":"block-stream","arguments":{"device":"top","base":"nope.qcow2"}}""",
            """{"execute":"block-stream","arguments":{"device":"top","backing-file":"x"}}""",
            """{"execute":"block-stream","arguments":{"device":"top"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"1x","device":"top"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"s","device":"top","on-error":"bogus"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"s","device":"top","filter-node-name":"1bad"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"s","device":"top","filter-node-name":"mid"}}""",
            """{"execute":"block-commit","arguments":{"job-id":"c","device":"top","top-node":"mid","filter-node-name":"base"}}""",
            """{"execute":"block-commit","arguments":{"device":"nope"}}""",
            """{"execute":"block-commit","arguments":{"device":"mid"}}""",
            """{"execute":"block-commit","arguments":{"device":"top","top-node":"nonode"}}""",
            """{"execute":"block-commit","arguments":{"device":"top","top-node":"mid","top":"x"}}""",
            """{"execute":"block-commit","arguments":{"device":"top","top-node":"base","base-node":"base"}}""",
            """{"execute":"block-commit","arguments":{"device":"top","backing-file":"x"}}""",
            """{"execute":"block-commit","arguments":{"device":"top","top-node":"mid","base-node":"top"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"s","device":"top","speed":1}}""",
            """{"execute":"block-stream","arguments":{"job-id":"s2","device":"mid"}}""",
            """{"execute":"block-commit","arguments":{"job-id":"c","device":"top","top-node":"mid"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"top"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"mid"}}""",
            """{"execute":"block-job-cancel","arguments":{"device":"s"}}""",
        ];

        (List<string> qemu, List<string> ours) = await AnswersOfBothAsync(commands);
        for (int i = 0; i < commands.Length; i++)
        {
            Assert.AreEqual(qemu[i], ours[i], $"command {commands[i]}");
        }
    }

    [TestMethod]
    public async Task Commit_writes_zero_ranges_as_zero_clusters_and_data_as_data_as_qemu_10_does()
    {
        // mid: data, a zero range (zero clusters), and stored data that happens to be all zero.
        string[] midWrites = ["write -P 0x22 0 1M", "write -z 1M 1M", "write -P 0 2M 512K"];
        await using QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync();
        string Q(string n) => Path.Combine(peer.Directory, n);
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", Q("base.qcow2"), "4M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "base.qcow2", "-F", "qcow2", Q("mid.qcow2"));
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "mid.qcow2", "-F", "qcow2", Q("top.qcow2"));
        await QemuImg.IoCommandsAsync(Q("mid.qcow2"), "qcow2", midWrites);

        // What QEMU 10's commit_iteration leaves in the base: allocated zero ranges become write-zeroes with
        // BDRV_REQ_MAY_UNMAP, everything else allocated is read and written as data (qemu-io issues the same requests).
        // QEMU 7.2 (installed here) still copies zero ranges as data.
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", Q("expected.qcow2"), "4M");
        await QemuImg.IoCommandsAsync(Q("expected.qcow2"), "qcow2", "write -P 0x22 0 1M", "write -z -u 1M 1M", "write -P 0 2M 512K");

        string File(string name) => JsonSerializer.Serialize(Q(name));
        async Task Add(string json) => await peer.Client.ExecuteAsync("blockdev-add", JsonNode.Parse(json)!.AsObject());
        await Add($$"""{"driver":"qcow2","node-name":"base","file":{"driver":"file","filename":{{File("base.qcow2")}}},"backing":null}""");
        await Add($$"""{"driver":"qcow2","node-name":"mid","file":{"driver":"file","filename":{{File("mid.qcow2")}}},"backing":"base"}""");
        await Add($$"""{"driver":"qcow2","node-name":"top","file":{"driver":"file","filename":{{File("top.qcow2")}}},"backing":"mid"}""");
        await peer.Client.ExecuteAsync("block-commit", new JsonObject { ["job-id"] = "c", ["device"] = "top", ["top-node"] = "mid" });
        List<string> events = await QmpJobPeer.ReadJobEventsAsync(peer.Client, "c", "null");
        Assert.IsFalse(events.Any(e => e.Contains("error", StringComparison.Ordinal)), string.Join("\n", events));
        foreach (string node in new[] { "top", "mid", "base" })
        {
            await peer.Client.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = node });
        }

        Assert.AreEqual(await MapAsync(Q("expected.qcow2")), await MapAsync(Q("base.qcow2")));
        Assert.AreEqual(0, (await QemuImg.ImgAsync("check", "-f", "qcow2", Q("base.qcow2"))).ExitCode);
    }

    [TestMethod]
    public async Task Omitted_job_id_is_the_device_name_as_in_qemu()
    {
        // QEMU: -drive if=none,id=drive0 opens top (and its chain from the headers) under a backend named drive0.
        // jobcored: the same chain by blockdev-add, and a backend named drive0 attached to top.
        List<string> qemu, ours;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync(async dir =>
        {
            await MakeChainAsync(dir);
            return ["-drive", $"if=none,id=drive0,format=qcow2,file={Path.Combine(dir, "top.qcow2")},node-name=top,backing.node-name=mid,backing.backing.node-name=base"];
        }))
        {
            qemu = await JobIdScriptAsync(peer.Client);
        }

        await using (InProcessBlockDaemon daemon = await InProcessBlockDaemon.StartAsync())
        {
            await MakeChainAsync(daemon.Directory);
            string File(string name) => JsonSerializer.Serialize(Path.Combine(daemon.Directory, name));
            foreach ((string node, string backing) in new[] { ("base", "null"), ("mid", "\"base\""), ("top", "\"mid\"") })
            {
                await daemon.Client.ExecuteAsync("blockdev-add", JsonNode.Parse(
                    $$"""{"driver":"qcow2","node-name":"{{node}}","file":{"driver":"file","filename":{{File(node + ".qcow2")}}},"backing":{{backing}}}""")!.AsObject());
            }

            daemon.Graph.AttachBackend("drive0", daemon.Graph.GetNode("top"));
            ours = await JobIdScriptAsync(daemon.Client);
        }

        CollectionAssert.AreEqual(qemu, ours, $"qemu:\n{string.Join("\n", qemu)}\njobcored:\n{string.Join("\n", ours)}");
        CollectionAssert.Contains(ours, "block-stream {\"device\":\"drive0\",\"speed\":1} -> ok, jobs: drive0:stream");
    }

    [TestMethod]
    public async Task Query_block_and_query_status_answer_as_qemu()
    {
        // QEMU: one -drive if=none device; jobcored: the same image by blockdev-add plus a backend of that name.
        JsonArray qemu, ours;
        string qemuDir, ourDir;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync(async dir =>
        {
            await MakeChainAsync(dir);
            return ["-drive", $"if=none,id=drive0,format=qcow2,file={Path.Combine(dir, "base.qcow2")},node-name=base"];
        }))
        {
            qemu = [(await peer.Client.ExecuteAsync("query-block"))?.DeepClone(), (await peer.Client.ExecuteAsync("query-status"))?.DeepClone()];
            qemuDir = peer.Directory;
        }

        await using (InProcessBlockDaemon daemon = await InProcessBlockDaemon.StartAsync())
        {
            await MakeChainAsync(daemon.Directory);
            string file = JsonSerializer.Serialize(Path.Combine(daemon.Directory, "base.qcow2"));
            await daemon.Client.ExecuteAsync("blockdev-add", JsonNode.Parse(
                $$$"""{"driver":"qcow2","node-name":"base","file":{"driver":"file","filename":{{{file}}}}}""")!.AsObject());
            daemon.Graph.AttachBackend("drive0", daemon.Graph.GetNode("base"));
            ours = [(await daemon.Client.ExecuteAsync("query-block"))?.DeepClone(), (await daemon.Client.ExecuteAsync("query-status"))?.DeepClone()];
            ourDir = daemon.Directory;
        }

        string expected = Conformance.ConformanceScript.Canonical(qemu, qemuDir, ["actual-size"]);
        string actual = Conformance.ConformanceScript.Canonical(ours, ourDir, ["actual-size"]);
        Assert.AreEqual(expected, actual);
        StringAssert.Contains(actual, "\"device\":\"drive0\"");
    }

    // Starts jobs without a job-id on the backend's root (by device and by node name) and on a node below it, and tries
    // blockdev-del on the chain; each line: the command, its answer, and the jobs then running (cancelled before the next).
    private static async Task<List<string>> JobIdScriptAsync(QmpClient c)
    {
        string[] commands =
        [
            """{"execute":"block-stream","arguments":{"device":"mid","speed":1}}""",
            """{"execute":"block-stream","arguments":{"device":"drive0","speed":1}}""",
            """{"execute":"block-stream","arguments":{"device":"top","speed":1}}""",
            """{"execute":"block-commit","arguments":{"device":"top","top-node":"mid","speed":1}}""",
            """{"execute":"block-commit","arguments":{"device":"drive0","top-node":"mid","base-node":"base","speed":1}}""",
            """{"execute":"block-commit","arguments":{"device":"drive0","speed":1}}""",
            """{"execute":"block-stream","arguments":{"device":"mid","job-id":"x","speed":1}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"base"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"mid"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"top"}}""",
        ];
        var lines = new List<string>();
        foreach (string command in commands)
        {
            JsonObject request = JsonNode.Parse(command)!.AsObject();
            JsonObject reply = await c.RequestAsync(request);
            string answer = reply["error"] is JsonObject e ? $"{e["class"]}: {e["desc"]}" : "ok";
            var jobs = (await c.ExecuteAsync("query-jobs"))!.AsArray().Select(j => $"{j!["id"]}:{j["type"]}").ToList();
            lines.Add($"{request["execute"]} {request["arguments"]!.ToJsonString()} -> {answer}, jobs: {string.Join(",", jobs)}");
            foreach (string id in jobs.Select(j => j.Split(':')[0]))
            {
                await c.ExecuteAsync("job-cancel", new JsonObject { ["id"] = id });
                await QmpJobPeer.ReadJobEventsAsync(c, id, "null");
            }
        }

        return lines;
    }

    [TestMethod]
    public async Task Query_named_block_nodes_reports_format_specific_and_sector_sizes_as_qemu()
    {
        // Per node (by driver and node name, or file name for implicit nodes): the qcow2 facts and the virtual size (a
        // file node's in whole sectors). File names of nodes opened with a backing reference differ (conformance G2).
        async Task<List<string>> DescribeAsync(QmpJobPeer peer)
        {
            await OpenChainAsync(peer);
            return [.. (await peer.Client.ExecuteAsync("query-named-block-nodes"))!.AsArray()
                .Select(n => $"{n!["drv"]} {(n["node-name"]!.GetValue<string>() is ['#', ..] ? Path.GetFileName(n["image"]!["filename"]!.GetValue<string>()) : n["node-name"])}"
                    + $" size={n["image"]!["virtual-size"]}"
                    + $" specific={(n["image"]!["format-specific"] is JsonObject f ? QmpJobPeer.Canonical(f["data"]!.AsObject()) + "/" + f["type"] : "-")}")
                .Where(line => !line.StartsWith("blkdebug", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)];
        }

        List<string> qemu, ours;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync())
        {
            qemu = await DescribeAsync(peer);
        }

        await using (QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync())
        {
            ours = await DescribeAsync(peer);
        }

        CollectionAssert.AreEqual(qemu, ours, $"qemu:\n{string.Join("\n", qemu)}\njobcored:\n{string.Join("\n", ours)}");
    }

    // qemu-img map of one image without its host offsets: the extents with their present/zero/data flags.
    private static async Task<string> MapAsync(string image)
    {
        ToolResult map = await QemuImg.ImgOkAsync("map", "--output=json", "-f", "qcow2", image);
        return string.Join("\n", JsonNode.Parse(map.Output)!.AsArray().Select(e =>
            $"{e!["start"]}+{e["length"]} present={e["present"]} zero={e["zero"]} data={e["data"]}"));
    }

    [TestMethod]
    public async Task A_job_meeting_a_streams_filter_is_told_the_filter_is_busy_as_in_qemu()
    {
        // While mid streams, top's backing is the copy-on-read filter the stream job owns; its implicit name is masked.
        string[] commands =
        [
            """{"execute":"block-stream","arguments":{"job-id":"s","device":"mid","speed":1}}""",
            """{"execute":"block-stream","arguments":{"job-id":"t","device":"top"}}""",
            """{"execute":"block-commit","arguments":{"job-id":"c","device":"top"}}""",
            """{"execute":"block-commit","arguments":{"job-id":"c","device":"top","top-node":"mid"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"base"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"mid"}}""",
            """{"execute":"block-job-cancel","arguments":{"device":"s"}}""",
            """{"execute":"block-stream","arguments":{"job-id":"f","device":"top","speed":1,"filter-node-name":"fil"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"fil"}}""",
            """{"execute":"blockdev-del","arguments":{"node-name":"top"}}""",
            """{"execute":"block-job-cancel","arguments":{"device":"f"}}""",
        ];
        static string Mask(string answer) => System.Text.RegularExpressions.Regex.Replace(answer, "#block[0-9]+", "#blockN");
        (List<string> qemu, List<string> ours) = await AnswersOfBothAsync(commands);
        CollectionAssert.AreEqual(qemu.Select(Mask).ToList(), ours.Select(Mask).ToList(), $"qemu:\n{string.Join("\n", qemu)}\njobcored:\n{string.Join("\n", ours)}");
        CollectionAssert.Contains(ours.Select(Mask).ToList(), "GenericError: Node '#blockN' is busy: block device is in use by block job: stream");
    }

    // The answers of QEMU and of jobcored to the same commands, each on a fresh chain (see OpenChainAsync).
    private static async Task<(List<string> Qemu, List<string> Ours)> AnswersOfBothAsync(string[] commands)
    {
        List<string> qemu;
        await using (QmpJobPeer peer = await QmpJobPeer.StartQemuAsync())
        {
            qemu = await AnswersAsync(peer, commands);
        }

        await using (QmpJobPeer peer = await QmpJobPeer.StartJobcoredAsync())
        {
            return (qemu, await AnswersAsync(peer, commands));
        }
    }

    private static async Task<List<string>> AnswersAsync(QmpJobPeer peer, string[] commands)
    {
        await OpenChainAsync(peer);
        var answers = new List<string>();
        foreach (string command in commands)
        {
            JsonObject reply = await peer.Client.RequestAsync(JsonNode.Parse(command)!.AsObject());
            answers.Add(reply["error"] is JsonObject e ? $"{e["class"]}: {e["desc"]}" : "ok");
        }

        return answers;
    }

    // base ← mid ← top; with inject, mid's file fails every read of sector 1024 (inside mid's data) with EIO.
    private static async Task OpenChainAsync(QmpJobPeer peer, bool inject = false)
    {
        await MakeChainAsync(peer.Directory);
        string File(string name) => JsonSerializer.Serialize(Path.Combine(peer.Directory, name));
        async Task Add(string json) => await peer.Client.ExecuteAsync("blockdev-add", JsonNode.Parse(json)!.AsObject());
        string rules = inject ? ""","inject-error":[{"event":"read_aio","errno":5,"sector":1024}]""" : "";
        await Add($$"""{"driver":"qcow2","node-name":"base","file":{"driver":"file","filename":{{File("base.qcow2")}}},"backing":null}""");
        await Add($$"""{"driver":"qcow2","node-name":"mid","file":{"driver":"blkdebug","node-name":"midfile","image":{"driver":"file","filename":{{File("mid.qcow2")}}}{{rules}}},"backing":"base"}""");
        await Add($$"""{"driver":"qcow2","node-name":"top","file":{"driver":"file","filename":{{File("top.qcow2")}}},"backing":"mid"}""");
    }

    // A smaller StreamTestChain: mid's data [512K, 1.5M) lies around file offset 512 KiB (sector 1024).
    private static async Task MakeChainAsync(string dir)
    {
        string Q(string n) => Path.Combine(dir, n);
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", Q("base.qcow2"), "4M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "base.qcow2", "-F", "qcow2", Q("mid.qcow2"));
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "mid.qcow2", "-F", "qcow2", Q("top.qcow2"));
        await QemuImg.IoCommandsAsync(Q("base.qcow2"), "qcow2", "write -P 0x11 0 4M");
        await QemuImg.IoCommandsAsync(Q("mid.qcow2"), "qcow2", "write -P 0x22 512K 1M");
        await QemuImg.IoCommandsAsync(Q("top.qcow2"), "qcow2", "write -P 0x33 1M 256K");
    }

    private static async Task<List<string>> RunScenarioAsync(QmpJobPeer peer, string scenario)
    {
        await OpenChainAsync(peer, inject: scenario.EndsWith("failed", StringComparison.Ordinal) || scenario.EndsWith("ignored", StringComparison.Ordinal));
        QmpClient c = peer.Client;
        var events = new List<string>();
        switch (scenario)
        {
            case "stream":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-ignored":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top", ["on-error"] = "ignore" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-base-node":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top", ["base-node"] = "base" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-bottom":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top", ["bottom"] = "mid" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-failed":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-cancelled":
                await c.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s", ["device"] = "top", ["speed"] = 1 });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "running"));
                await c.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "s" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "stream-manual":
                await c.ExecuteAsync("block-stream", new JsonObject
                {
                    ["job-id"] = "s", ["device"] = "top", ["base-node"] = "base", ["auto-finalize"] = false, ["auto-dismiss"] = false,
                });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "BLOCK_JOB_PENDING"));
                events.Add(Query(await c.ExecuteAsync("query-block-jobs")));
                await c.ExecuteAsync("job-finalize", new JsonObject { ["id"] = "s" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "concluded"));
                await c.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = "s" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "s", "null"));
                break;
            case "commit":
                await c.ExecuteAsync("block-commit", new JsonObject { ["job-id"] = "c", ["device"] = "top", ["top-node"] = "mid" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "c", "null"));
                break;
            case "commit-failed":
                await c.ExecuteAsync("block-commit", new JsonObject { ["job-id"] = "c", ["device"] = "top", ["top-node"] = "mid" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "c", "null"));
                break;
            case "commit-active":
                // block-commit of the active layer runs on the mirror engine: READY, then complete.
                await c.ExecuteAsync("block-commit", new JsonObject { ["job-id"] = "a", ["device"] = "top" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "a", "BLOCK_JOB_READY"));
                await c.ExecuteAsync("job-complete", new JsonObject { ["id"] = "a" });
                events.AddRange(await QmpJobPeer.ReadJobEventsAsync(c, "a", "null"));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(scenario));
        }

        // Each node with the backing file name recorded in its header (what a stream/commit rewrites).
        events.Add("nodes: " + string.Join(",", (await c.ExecuteAsync("query-named-block-nodes"))!.AsArray()
            .Select(n => $"{n!["node-name"]}>{n!["image"]!["backing-filename"]?.GetValue<string>().Replace(peer.Directory + "/", "DIR/", StringComparison.Ordinal) ?? "-"}")
            .Where(s => !s.StartsWith('#')).Order(StringComparer.Ordinal)));
        return events;
    }

    // A query-block-jobs entry without the timing-dependent members.
    private static string Query(JsonNode? jobs)
    {
        var list = jobs!.AsArray().Select(j =>
        {
            var o = j!.AsObject().DeepClone().AsObject();
            o.Remove("busy");
            return QmpJobPeer.Canonical(o);
        });
        return "query: " + string.Join(";", list);
    }

}
