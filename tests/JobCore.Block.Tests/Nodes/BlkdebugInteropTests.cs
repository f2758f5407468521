using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Graph;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Nodes;

/// <summary>
/// The same blkdebug rules and request sequence run through qemu-io (QEMU's own blkdebug under qcow2) and through
/// JobCore's graph; every request must succeed or fail alike, with the same error text.
/// </summary>
[TestClass]
public sealed class BlkdebugInteropTests
{
    public static IEnumerable<object[]> Scenarios =>
    [
        ["""{"event":"read_aio","once":true}""", new[] { "read 0 4096", "read 0 4096", "read 65536 4096" }],
        ["""{"event":"read_aio"}""", new[] { "read 0 4096", "read 4096 4096", "write 0 4096" }],
        ["""{"event":"read_aio","iotype":"write"}""", new[] { "read 0 4096", "write 0 4096", "read 0 4096" }],
        ["""{"event":"read_aio","errno":28,"sector":1}""", new[] { "read 65536 4096", "read 0 4096" }],
        ["""{"event":"write_aio","errno":28,"once":true}""", new[] { "write 0 4096", "write 0 4096", "read 0 4096" }],
        ["""{"event":"read_aio","errno":0}""", new[] { "read 0 4096", "write 0 4096" }],
        // qcow2 raises read_aio/write_aio for data I/O only: its metadata I/O (L2 table and refcount block loads of an
        // allocating write) arms nothing, but is failed like any request once a data event armed a rule.
        ["""{"event":"read_aio"}""", new[] { "write 131072 4096", "read 0 4096", "write 262144 4096" }],
        ["""{"event":"write_aio","once":true}""", new[] { "read 0 4096", "write 131072 4096", "write 196608 4096", "read 131072 4096" }],
        ["""{"event":"read_aio","once":true}""", new[] { "write 131072 70000", "read 65536 4096", "read 0 4096" }],
    ];

    [TestMethod]
    [DynamicData(nameof(Scenarios))]
    public async Task Requests_fail_as_they_do_in_qemu(string rule, string[] requests)
    {
        await using var dir = new GraphTestFolder();
        string qemuImage = dir.File("qemu.qcow2");
        string ourImage = dir.File("ours.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", qemuImage, "1M");
        await QemuImg.IoCommandsAsync(qemuImage, "qcow2", "write -P 0x11 0 64k");
        File.Copy(qemuImage, ourImage);

        string Spec(string path) =>
            """{"driver":"qcow2","node-name":"q","file":{"driver":"blkdebug","inject-error":[""" + rule +
            """],"image":{"driver":"file","filename":""" + GraphTestFolder.Json(path) + "}}}";

        var args = new List<string>();
        foreach (string request in requests)
        {
            args.Add("-c");
            args.Add(request);
        }

        args.Add("json:" + Spec(qemuImage));
        ToolResult qemu = await QemuImg.IoAsync([.. args]);
        string[] qemuOutcomes = [.. qemu.All.Split('\n')
            .Where(l => l.StartsWith("read ", StringComparison.Ordinal) || l.StartsWith("wrote ", StringComparison.Ordinal) ||
                        l.StartsWith("write failed", StringComparison.Ordinal))
            .Select(l => l.Contains("failed: ", StringComparison.Ordinal) ? l[(l.IndexOf("failed: ", StringComparison.Ordinal) + 8)..].Trim() : "ok")];

        BlockNode node = await dir.Graph.AddAsync(BlockdevOptions.Parse(Spec(ourImage)));
        var ours = new List<string>();
        foreach (string request in requests)
        {
            string[] parts = request.Split(' ');
            long offset = long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            int length = int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture);
            try
            {
                if (parts[0] == "read")
                {
                    await node.ReadAsync(offset, new byte[length]);
                }
                else
                {
                    await node.WriteAsync(offset, new byte[length]);
                }

                ours.Add("ok");
            }
            catch (BlockIOException e)
            {
                ours.Add(e.Message);
            }
        }

        CollectionAssert.AreEqual(qemuOutcomes, ours.ToArray(),
            $"qemu-io: [{string.Join(", ", qemuOutcomes)}]; JobCore: [{string.Join(", ", ours)}]\n{qemu.All}");
    }
}
