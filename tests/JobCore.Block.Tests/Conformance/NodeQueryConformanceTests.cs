using static JobCore.Block.Tests.Conformance.ConformanceImages;

namespace JobCore.Block.Tests.Conformance;

/// <summary>
/// blockdev-add / blockdev-del / query-named-block-nodes on QEMU 7.2 and jobcored, field by field: file, raw, qcow2 and
/// blkdebug nodes, read-only, chains opened from image headers and bottom-up by reference.
/// </summary>
[TestClass]
public sealed class NodeQueryConformanceTests
{
    private const string Query = """{"execute":"query-named-block-nodes"}""";

    private static string Del(string node) => $$$"""{"execute":"blockdev-del","arguments":{"node-name":"{{{node}}}"}}""";


    private static readonly Dictionary<string, string[]> Table = new()
    {
        ["file and raw"] =
        [
            Add($$"""{"driver":"file","node-name":"f","filename":"$DIR/raw.img"}"""),
            Query,
            Add("""{"driver":"raw","node-name":"r","file":"f"}"""),
            Query,
            Del("f"),
            Del("r"),
            Del("f"),
            Query,
        ],
        ["read-only raw over file"] =
        [
            Add($$"""{"driver":"raw","node-name":"r","read-only":true,"file":{{File("raw.img")}}}"""),
            Query,
        ],
        ["qcow2 chain from the headers"] =
        [
            Add($$"""{"driver":"qcow2","node-name":"top","file":{{File("top.qcow2")}}}"""),
            Query,
        ],
        ["qcow2 chain bottom-up by reference"] =
            [.. OpenChain(), Query, """{"execute":"query-block"}""", """{"execute":"query-status"}"""],
        ["detect-zeroes on and unmap"] =
        [
            Add($$"""{"driver":"qcow2","node-name":"top","detect-zeroes":"on","file":{{File("top.qcow2")}}}"""),
            Add($$"""{"driver":"raw","node-name":"r","detect-zeroes":"unmap","discard":"unmap","file":{{File("raw.img")}}}"""),
            Add($$"""{"driver":"raw","node-name":"bad","detect-zeroes":"unmap","file":{{File("raw.img")}}}"""),
            Query,
        ],
        ["blkdebug under qcow2"] =
        [
            Add($$$"""{"driver":"qcow2","node-name":"top","file":{"driver":"blkdebug","node-name":"dbg","inject-error":[{"event":"read_aio","errno":5,"once":true},{"event":"write_aio","iotype":"write","sector":8,"immediately":false}],"image":{{{File("top.qcow2")}}}}}"""),
            Query,
        ],
        ["chain bottom-up with a faulty file"] = [.. OpenChainWithFaultyFile("mid", """{"event":"read_aio","errno":28}"""), Query],
        ["qcow2 with backing null"] =
        [
            Add($$"""{"driver":"qcow2","node-name":"top","file":{{File("top.qcow2")}},"backing":null}"""),
            Query,
        ],
    };

    public static IEnumerable<string> Scenarios => Table.Keys;

    [TestMethod]
    [DynamicData(nameof(Scenarios))]
    public async Task Nodes_look_like_qemu(string scenario)
    {
        await Differential.AssertSameAsync(Table[scenario], ChainAsync);
    }
}
