using static JobCore.Block.Tests.Conformance.ConformanceImages;

namespace JobCore.Block.Tests.Conformance;

/// <summary>
/// Argument errors of block-stream, block-commit, blockdev-mirror and drive-mirror (missing, unexpected, wrong type,
/// out of range, unknown nodes, chain relations, job ids, busy nodes) on QEMU 7.2 and jobcored: same class and text.
/// Commands that start a job are rate limited and cancelled right after, so each refusal is tried on the same graph.
/// </summary>
[TestClass]
public sealed class ArgumentConformanceTests
{
    private static string Cmd(string command, string args) => $$"""{"execute":"{{command}}","arguments":{{args}}}""";

    private static string[] Stream(string args) => [Cmd("block-stream", args)];

    private static readonly Dictionary<string, string[]> Table = new()
    {
        ["block-stream"] =
        [
            .. OpenChain(),
            .. Stream("{}"),
            .. Stream("""{"device":1}"""),
            .. Stream("""{"device":"top","bogus":1}"""),
            .. Stream("""{"device":"nope"}"""),
            .. Stream("""{"job-id":"1x","device":"top"}"""),
            .. Stream("""{"job-id":"","device":"top"}"""),
            .. Stream("""{"job-id":"a b","device":"top"}"""),
            .. Stream("""{"job-id":"j","device":"top","speed":"1"}"""),
            .. Stream("""{"job-id":"j","device":"top","base-node":"nope"}"""),
            .. Stream("""{"job-id":"j","device":"top","base-node":"top"}"""),
            .. Stream("""{"job-id":"j","device":"top","base-node":"dst"}"""),
            .. Stream("""{"job-id":"j","device":"mid","base-node":"top"}"""),
            .. Stream("""{"job-id":"j","device":"top","base":"nope.qcow2"}"""),
            .. Stream("""{"job-id":"j","device":"top","base":"$DIR/base.qcow2","base-node":"base"}"""),
            .. Stream("""{"job-id":"j","device":"top","bottom":"mid","base-node":"base"}"""),
            .. Stream("""{"job-id":"j","device":"top","bottom":"mid","base":"$DIR/base.qcow2"}"""),
            .. Stream("""{"job-id":"j","device":"top","bottom":"nope"}"""),
            .. Stream("""{"job-id":"j","device":"top","bottom":"dst"}"""),
            .. Stream("""{"job-id":"j","device":"top","backing-file":"x"}"""),
            .. Stream("""{"job-id":"j","device":"top","on-error":"bogus"}"""),
            .. Stream("""{"job-id":"j","device":"top","on-error":1}"""),
            .. Stream("""{"job-id":"j","device":"top","auto-finalize":"yes"}"""),
        ],
        ["block-commit"] =
        [
            .. OpenChain(),
            Cmd("block-commit", "{}"),
            Cmd("block-commit", """{"device":"nope"}"""),
            Cmd("block-commit", """{"device":"top","bogus":true}"""),
            Cmd("block-commit", """{"job-id":"1x","device":"top"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"mid"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"base"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"dst"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"nope"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","base-node":"nope"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"mid","top":"mid.qcow2"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","base-node":"base","base":"base.qcow2"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top":"nope.qcow2"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","base":"nope.qcow2"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"base"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"mid","base-node":"mid"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"base","base-node":"mid"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"dst"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","base-node":"dst"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","base-node":"top"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","backing-file":"x"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","on-error":"bogus"}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","filter-node-name":"mid"}"""),
        ],
        ["blockdev-mirror"] =
        [
            .. OpenChain(),
            Add($$"""{"driver":"qcow2","node-name":"small","file":{{File("small.qcow2")}}}"""),
            Cmd("blockdev-mirror", "{}"),
            Cmd("blockdev-mirror", """{"device":"top","target":"dst"}"""),
            Cmd("blockdev-mirror", """{"device":"top","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"nope","target":"dst","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"nope","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"top","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"mid","target":"dst","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"1x","device":"top","target":"dst","sync":"full"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"bitmap"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"incremental"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","granularity":1000}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","granularity":256}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","granularity":134217728}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","buf-size":-1}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","copy-mode":"bogus"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","on-source-error":"bogus"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","on-target-error":"enospc","on-source-error":"x"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","replaces":"nope"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","replaces":"small"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","filter-node-name":"mid"}"""),
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","granularity":0,"speed":1}"""),
            Cmd("blockdev-mirror", """{"job-id":"m2","device":"top","target":"dst","sync":"full"}"""),
            Cmd("job-cancel", """{"id":"m"}"""),
            "wait m null",
        ],
        ["drive-mirror"] =
        [
            .. OpenChain(target: false),
            Cmd("drive-mirror", "{}"),
            Cmd("drive-mirror", """{"device":"top","target":"$DIR/new.qcow2"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"nope","target":"$DIR/new.qcow2","sync":"full"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"full","mode":"bogus"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/none/new.qcow2","sync":"full","format":"qcow2","mode":"existing"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"full","format":"qcow2","replaces":"mid"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"full","format":"qcow2","node-name":"mid"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"full","format":"qcow2","granularity":1000}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"incremental","format":"qcow2"}"""),
            Cmd("drive-mirror", """{"job-id":"m","device":"top","target":"$DIR/new.qcow2","sync":"full","format":"qcow2","unmap":"no"}"""),
        ],
        // QEMU registers the job before it sets the speed: created, then null, then the error; the nodes are free again.
        ["negative speed"] =
        [
            .. OpenChain(),
            Cmd("block-stream", """{"job-id":"j","device":"top","speed":-1}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","top-node":"mid","base-node":"base","speed":-1}"""),
            Cmd("block-commit", """{"job-id":"j","device":"top","speed":-1}"""),
            Cmd("blockdev-mirror", """{"job-id":"j","device":"top","target":"dst","sync":"full","speed":-1}"""),
            Cmd("query-jobs", "{}"),

            // New ids: a wait must not be met by the null events above.
            Cmd("block-stream", """{"job-id":"k","device":"top","speed":1}"""),
            "settle k",
            Cmd("job-cancel", """{"id":"k"}"""),
            "wait k null",
            Cmd("blockdev-mirror", """{"job-id":"m","device":"top","target":"dst","sync":"full","speed":1}"""),
            "settle m",
            Cmd("job-cancel", """{"id":"m"}"""),
            "wait m null",
            Cmd("blockdev-del", """{"node-name":"dst"}"""),
        ],
        ["busy nodes and duplicate ids"] =
        [
            .. OpenChain(),
            Cmd("block-stream", """{"job-id":"s","device":"top","base-node":"base","speed":1}"""),
            "settle s",
            Cmd("block-stream", """{"job-id":"s","device":"mid","speed":1}"""),
            Cmd("block-stream", """{"job-id":"t","device":"mid","speed":1}"""),
            Cmd("block-commit", """{"job-id":"t","device":"top","speed":1}"""),
            Cmd("block-commit", """{"job-id":"t","device":"top","top-node":"mid","base-node":"base","speed":1}"""),
            Cmd("blockdev-del", """{"node-name":"top"}"""),
            Cmd("blockdev-del", """{"node-name":"nope"}"""),
            Cmd("job-cancel", """{"id":"s"}"""),
            "wait s null",
            Cmd("blockdev-mirror", """{"job-id":"t","device":"top","target":"dst","sync":"full","speed":1}"""),
            Cmd("blockdev-mirror", """{"job-id":"t2","device":"top","target":"dst","sync":"full","speed":1}"""),
            Cmd("block-stream", """{"job-id":"t2","device":"top","speed":1}"""),
            Cmd("block-commit", """{"job-id":"t2","device":"top","speed":1}"""),
            Cmd("blockdev-del", """{"node-name":"dst"}"""),
            Cmd("blockdev-del", """{"node-name":"top"}"""),
            Cmd("job-cancel", """{"id":"t"}"""),
            "wait t null",
            Cmd("blockdev-del", """{"node-name":"dst"}"""),
            Cmd("blockdev-del", """{"node-name":"top"}"""),
            Cmd("blockdev-del", """{"node-name":"mid"}"""),
            Cmd("blockdev-del", """{"node-name":"base"}"""),
            Cmd("query-named-block-nodes", "{}"),
        ],
    };

    public static IEnumerable<string> Scenarios => Table.Keys;

    [TestMethod]
    [DynamicData(nameof(Scenarios))]
    public async Task Refusals_match_qemu(string scenario)
    {
        await Differential.AssertSameAsync(Table[scenario], ChainAsync);
    }
}
