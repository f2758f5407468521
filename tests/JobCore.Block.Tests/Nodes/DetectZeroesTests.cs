using System.Text.Json;
using System.Text.RegularExpressions;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Block.Tests.Graph;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Nodes;

/// <summary>
/// <c>detect-zeroes</c> on a qcow2 node: the same writes through JobCore and through qemu-io with the same option
/// leave images that qemu-img maps identically (all-zero writes stored as zero clusters, not data).
/// </summary>
[TestClass]
public sealed partial class DetectZeroesTests
{
    // (offset, length, pattern): zero writes over data, over nothing, unaligned, and one data write.
    private static readonly (long Offset, int Length, byte Pattern)[] Writes =
        [(0, 65536, 0), (196608, 70000, 0), (524288, 65536, 0), (655360, 4096, 7), (720896, 131072, 0)];

    [TestMethod]
    [DataRow("on")]
    [DataRow("unmap")]
    public async Task Zero_writes_map_as_with_qemu(string mode)
    {
        await using var dir = new GraphTestFolder();
        string ours = dir.File("ours.qcow2");
        string qemu = dir.File("qemu.qcow2");
        foreach (string image in new[] { ours, qemu })
        {
            await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", image, "1M");
            await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 0x11 0 262144");
        }

        string discard = mode == "unmap" ? ",discard=unmap" : string.Empty;
        await QemuImg.IoOkAsync([
            "--image-opts", $"driver=qcow2,file.filename={qemu},detect-zeroes={mode}{discard}",
            .. Writes.SelectMany(w => new[] { "-c", $"write -P {w.Pattern} {w.Offset} {w.Length}" })]);

        string unmap = mode == "unmap" ? ",\"discard\":\"unmap\"" : string.Empty;
        string json = $$$"""{"driver":"qcow2","node-name":"n","detect-zeroes":"{{{mode}}}"{{{unmap}}},"file":{"driver":"file","filename":{{{JsonSerializer.Serialize(ours)}}}}}""";
        BlockNode node = await dir.Graph.AddAsync(BlockdevOptions.Parse(json));
        Assert.AreEqual(mode == "on" ? DetectZeroes.On : DetectZeroes.Unmap, node.DetectZeroes);
        Assert.AreEqual(mode, BlockGraph.Describe(node).DetectZeroes);
        foreach ((long offset, int length, byte pattern) in Writes)
        {
            var data = new byte[length];
            Array.Fill(data, pattern);
            await node.WriteAsync(offset, data);
        }

        await dir.Graph.RemoveAsync("n");
        await QemuImg.ImgOkAsync("check", ours);
        // Host offsets aside: QEMU reuses a cluster freed by an unmap at once, JobCore once the L2 change is on disk.
        string expected = HostOffsets().Replace((await QemuImg.ImgOkAsync("map", "--output", "json", qemu)).Output, string.Empty);
        string actual = HostOffsets().Replace((await QemuImg.ImgOkAsync("map", "--output", "json", ours)).Output, string.Empty);
        Assert.AreEqual(expected, actual, $"qemu-io:\n{expected}\njobcore:\n{actual}");
        StringAssert.Contains(actual, "\"zero\": true, \"data\": false", "the zero writes left no data clusters");
    }

    [GeneratedRegex(@", ""offset"": \d+")]
    private static partial Regex HostOffsets();
}
