using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Graph;

/// <summary>
/// One sequence of <c>blockdev-add</c> / <c>blockdev-del</c> commands sent to qemu-system-x86_64 7.2 over QMP and
/// to JobCore's graph: every command must succeed or fail alike, with the same error text.
/// </summary>
[TestClass]
public sealed class QemuParityTests
{
    private static string[] Commands(GraphTestFolder dir)
    {
        string F(string name) => GraphTestFolder.Json(dir.File(name));
        string File(string name) => $$$"""{"driver":"file","filename":{{{F(name)}}}}""";
        string Add(string args) => $$$"""{"execute":"blockdev-add","arguments":{{{args}}}}""";
        string Del(string name) => $$$"""{"execute":"blockdev-del","arguments":{"node-name":"{{{name}}}"}}""";
        return
        [
            Add("{}"),
            Add("""{"driver":"file"}"""),
            Add("""{"driver":"foo"}"""),
            Add($$$"""{"driver":"raw","file":{{{File("a.raw")}}}}"""),
            Add($$$"""{"driver":"raw","node-name":"r0","file":{{{File("a.raw")}}}}"""),
            Add($$$"""{"driver":"raw","node-name":"r0","file":{{{File("a.raw")}}}}"""),
            Add("""{"driver":"raw","node-name":"r","file":"r0"}"""),
            Add("""{"driver":"raw","node-name":"r2","file":"nonode"}"""),
            Add("""{"driver":"raw","node-name":"r2","file":5}"""),
            Add($$$"""{"driver":"raw","node-name":"1bad","file":{{{File("a.raw")}}}}"""),
            Add($$$"""{"driver":"raw","node-name":"{{{new string('n', 32)}}}","file":{{{File("a.raw")}}}}"""),
            Add($$$"""{"driver":"file","node-name":"f","filename":{{{F("nope")}}}}"""),
            Add($$$"""{"driver":"file","node-name":"f","filename":{{{F("a.raw")}}},"bogus":true}"""),
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{{{File("top.qcow2")}}},"backing":5}"""),
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{{{File("top.qcow2")}}},"backing":"nonode"}"""),
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{{{File("top.qcow2")}}},"backing":"top"}"""),
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{{{File("top.qcow2")}}},"backing":{"driver":"qcow2","node-name":"top","file":{{{File("base.qcow2")}}}}}"""),
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{{{File("top.qcow2")}}}}"""),
            Add($$$"""{"driver":"qcow2","node-name":"dangling","file":{{{File("dangling.qcow2")}}}}"""),
            Add($$$"""{"driver":"qcow2","node-name":"notq","file":{{{File("a.raw")}}}}"""),
            Add($$$"""{"driver":"blkdebug","node-name":"d","image":{{{File("a.raw")}}},"inject-error":[{"event":"foo"}]}"""),
            Add($$$"""{"driver":"blkdebug","node-name":"d","image":{{{File("a.raw")}}},"inject-error":[{"event":"read_aio","once":"yes"}]}"""),
            Add($$$"""{"driver":"blkdebug","node-name":"d","image":{{{File("a.raw")}}},"inject-error":[{"event":"read_aio","errno":28,"sector":0}]}"""),
            Del("zz"),
            Del("r0"),
            Del("d"),
            Del("r"),
            Del("r0"),
            Del("top"),
            Del("top"),
        ];
    }

    [TestMethod]
    public async Task Blockdev_add_and_del_answer_like_qemu()
    {
        await using var dir = new GraphTestFolder();
        dir.Raw("a.raw", 1 << 20);
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", dir.File("base.qcow2"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.File("top.qcow2"));
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-u", "-b", "nope.qcow2", "-F", "qcow2", dir.File("dangling.qcow2"), "1M");
        string[] commands = Commands(dir);

        string[] qemu = await RunQemuAsync(commands);
        var ours = new List<string>();
        foreach (string command in commands)
        {
            using JsonDocument doc = JsonDocument.Parse(command);
            JsonElement args = doc.RootElement.GetProperty("arguments");
            try
            {
                if (doc.RootElement.GetProperty("execute").GetString() == "blockdev-add")
                {
                    await dir.Graph.AddAsync(args);
                }
                else
                {
                    await dir.Graph.RemoveAsync(args.GetProperty("node-name").GetString()!);
                }

                ours.Add("ok");
            }
            catch (BlockGraphException e)
            {
                ours.Add(e.Message);
            }
        }

        Assert.AreEqual(commands.Length, qemu.Length, string.Join("\n", qemu));
        for (int i = 0; i < commands.Length; i++)
        {
            Assert.AreEqual(qemu[i], ours[i], $"command {i}: {commands[i]}");
        }

        Assert.AreEqual(0, dir.Graph.Nodes.Count);
    }

    [TestMethod]
    public async Task Query_named_block_nodes_shows_what_qemu_shows()
    {
        await using var dir = new GraphTestFolder();
        dir.Raw("a.raw", 1 << 20);
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", dir.File("base.qcow2"), "1M");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.File("top.qcow2"));
        string[] commands =
        [
            """{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"r0","read-only":true,"file":{"driver":"file","filename":"""
                + GraphTestFolder.Json(dir.File("a.raw")) + "}}}",
            """{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"top","file":{"driver":"file","filename":"""
                + GraphTestFolder.Json(dir.File("top.qcow2")) + "}}}",
            """{"execute":"query-named-block-nodes"}""",
        ];
        string[] qemu = await RunQemuAsync(commands, keepReturns: true);
        using JsonDocument qemuNodes = JsonDocument.Parse(qemu[2]);
        foreach (string command in commands[..2])
        {
            using JsonDocument doc = JsonDocument.Parse(command);
            await dir.Graph.AddAsync(doc.RootElement.GetProperty("arguments"));
        }

        IReadOnlyList<BlockDeviceInfo> ours = dir.Graph.QueryNamedBlockNodes();
        Assert.AreEqual(qemuNodes.RootElement.GetArrayLength(), ours.Count);
        foreach (string name in new[] { "r0", "top" })
        {
            JsonElement expected = qemuNodes.RootElement.EnumerateArray().Single(n => n.GetProperty("node-name").GetString() == name);
            using JsonDocument actual = JsonDocument.Parse(JsonSerializer.Serialize(ours.Single(n => n.NodeName == name)));
            AssertSubset(expected, actual.RootElement, name);
            Assert.IsTrue(actual.RootElement.EnumerateObject().Count() >= 16, actual.RootElement.GetRawText());
        }

        using JsonDocument top = JsonDocument.Parse(JsonSerializer.Serialize(ours.Single(n => n.NodeName == "top")));
        Assert.AreEqual(dir.File("base.qcow2"), top.RootElement.GetProperty("image").GetProperty("backing-image").GetProperty("filename").GetString());
    }

    // Every member JobCore reports must be in QEMU's answer with the same value (QEMU reports more members).
    private static void AssertSubset(JsonElement expected, JsonElement actual, string path)
    {
        if (actual.ValueKind != JsonValueKind.Object)
        {
            Assert.AreEqual(expected.GetRawText(), actual.GetRawText(), path);
            return;
        }

        foreach (JsonProperty member in actual.EnumerateObject())
        {
            Assert.IsTrue(expected.TryGetProperty(member.Name, out JsonElement value), $"{path}.{member.Name} is not in QEMU's answer");
            AssertSubset(value, member.Value, $"{path}.{member.Name}");
        }
    }

    // Runs the commands through QMP on stdio; returns "ok" (or the raw return value) or the error text for each.
    private static async Task<string[]> RunQemuAsync(string[] commands, bool keepReturns = false)
    {
        var lines = new List<string> { """{"execute":"qmp_capabilities"}""" };
        lines.AddRange(commands);
        lines.Add("""{"execute":"quit"}""");
        string input = Path.Combine(Path.GetTempPath(), "jobcore-qmp-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllLinesAsync(input, lines);
        try
        {
            ToolResult result = await QemuImg.RunAsync("sh",
                ["-c", $"qemu-system-x86_64 -nodefaults -display none -machine none -qmp stdio < '{input}'"], TimeSpan.FromSeconds(60));
            var answers = new List<string>();
            foreach (string line in result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                using JsonDocument doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("return", out JsonElement value))
                {
                    answers.Add(keepReturns ? value.GetRawText() : "ok");
                }
                else if (doc.RootElement.TryGetProperty("error", out JsonElement error))
                {
                    answers.Add(error.GetProperty("desc").GetString()!);
                }
            }

            // Drop the answers to qmp_capabilities and quit.
            Assert.IsTrue(answers.Count >= 2, result.All);
            return [.. answers.Skip(1).Take(answers.Count - 2)];
        }
        finally
        {
            File.Delete(input);
        }
    }
}
