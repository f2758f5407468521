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

    // Runs the commands through QMP on stdio; returns "ok" or the error text for each, in order.
    private static async Task<string[]> RunQemuAsync(string[] commands)
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
                if (doc.RootElement.TryGetProperty("return", out _))
                {
                    answers.Add("ok");
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
