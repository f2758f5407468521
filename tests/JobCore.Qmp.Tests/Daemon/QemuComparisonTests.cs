using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Daemon;

/// <summary>
/// The same bad-input script against QEMU 7.2's monitor (the reference) and against jobcored: every reply must
/// agree on error class and text (or both succeed), and on the echoed id.
/// </summary>
[TestClass]
public sealed class QemuComparisonTests
{
    /// <summary>Each entry is sent as one write; the replies it causes are compared.</summary>
    private static readonly string[] Script =
    [
        "[1,2]\n",
        "42\n",
        "\"str\"\n",
        "{\"execute\":1}\n",
        "{\"execute\":\"nonexistent\"}\n",
        "{\"execute\":\"query-version\",\"arguments\":[]}\n",
        "{\"execute\":\"query-version\",\"arguments\":null}\n",
        "{\"execute\":\"query-version\",\"arguments\":{\"x\":1}}\n",
        "{\"foo\":1}\n",
        "{}\n",
        "{\"id\":5}\n",
        "{\"arguments\":{}}\n",
        "{\"execute\":\"query-version\",\"id\":1,\"control\":{}}\n",
        "{\"exec-oob\":\"query-version\"}\n",
        "{\"execute\":\"query-version\",\"exec-oob\":\"query-version\"}\n",
        "{\"execute\":\"qmp_capabilities\"}\n",
        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":\"foo\"}}\n",
        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[1]}}\n",
        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"foo\"]}}\n",
        "{\"execute\":\"query-version\",\"id\":[1,{\"a\":null}]}\n",
        "{\"execute\":\"query-version\",\"id\":{\"b\":1.5,\"a\":[true,false,null]}}\n",
        "{\"execute\":\"query-version\",\"id\":\"\\u00e9\\ud83d\\ude00\"}\n",
        "{\"execute\":\"query-version\"}{\"execute\":\"query-version\",\"id\":2}\n",
        "{\"execute\":\"query-version\",}\n",
        "{\"a\":}\n",
        "{]\n",
        "}\n",
        "]\n",
        "[}\n",
        "[1]]\n",
        "nonsense\n",
        "tru\n",
        "{\"execute\":\"query-version\" \"id\":1}\n",
        "{'execute':'query-version','id':'sq'}\n",
        "\u00ff\n",
        "\u00ff\u00ff\n",
        "\u00ff\u0001x\n",
        "\u0000\n",
        "%d\n",
        "{\"execute\":\"query-version\",\"id\":\"\u00ff\"}\n",
        "{\"execute\":\"qu\u00c3\u00a9ry\"}\n",
        "{\"execute\":\"qu\u00c3ry\"}\n",
        "{\"execute\":\"q\u00ed\u00a0\u0080\"}\n",
        "{\"execute\":\"q\u00c0\u0080\"}\n",
        "{\"execute\":\"q\u00ef\u00bf\u00bf\"}\n",
        "{\"execute\":\"q\\u0000\"}\n",
        "{\"execute\":\"q\\ud800\"}\n",
        "{\"execute\":\"q\\ud800\\u0041\"}\n",
        "{\"execute\":\"q\\uffff\"}\n",
        "{\"execute\":\"q\\u12\"}\n",
        "{\"execute\":\"q\\x\"}\n",
        "{\"execute\":\"q\u0001\"}\n",
        "{\"execute\":\"q\",\"execute\":\"r\"}\n",
        "{1:2}\n",
        "{[1]:2}\n",
        "{\"a\" 1}\n",
        "[1 2]\n",
        "[1,]\n",
        "{\"a\":1,}\n",
        "{\"execute\":01}\n",
        "{\"execute\":-}\n",
        "{\"execute\":1.}\n",
        "{\"execute\":1e}\n",
        "{\"execute\":TRUE}\n",
        "{\"execute\":@}\n",
        "{\"execute\":\"query-version\"}\u00ff{\"execute\":\"query-version\"}\n",
        "{\"execute\":\"query-version\",\"id\":" + new string('[', 1030) + new string(']', 1030) + "}\n",
        new string('[', 1024) + new string(']', 1024) + "\n",
        "{\"a\":" + string.Concat(Enumerable.Repeat("{\"a\":", 1023)) + "1" + new string('}', 1024) + "\n",
        "{\"execute\":\"job-pause\"}\n",
        "{\"execute\":\"job-pause\",\"arguments\":{\"id\":1}}\n",
        "{\"execute\":\"job-pause\",\"arguments\":{\"id\":null}}\n",
        "{\"execute\":\"job-pause\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"job-pause\",\"arguments\":{\"id\":\"nojob\",\"x\":1}}\n",
        "{\"execute\":\"job-cancel\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"job-finalize\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"job-dismiss\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"query-jobs\"}\n",
        "{\"execute\":\"query-block-jobs\"}\n",
        "{\"execute\":\"block-job-pause\",\"arguments\":{\"device\":\"nojob\"}}\n",
        "{\"execute\":\"block-job-resume\",\"arguments\":{\"device\":\"nojob\"}}\n",
        "{\"execute\":\"block-job-complete\",\"arguments\":{\"device\":\"nojob\"}}\n",
        "{\"execute\":\"block-job-finalize\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"block-job-dismiss\",\"arguments\":{\"id\":\"nojob\"}}\n",
        "{\"execute\":\"block-job-cancel\",\"arguments\":{\"device\":\"x\",\"force\":\"yes\"}}\n",
        "{\"execute\":\"block-job-cancel\",\"arguments\":{\"device\":\"x\",\"force\":null}}\n",
        "{\"execute\":\"block-job-cancel\",\"arguments\":{\"device\":\"x\",\"force\":true}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\",\"speed\":\"1\"}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\",\"speed\":1.5}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\",\"speed\":1e3}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\",\"speed\":18446744073709551615}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\",\"speed\":-1}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"speed\":1,\"device\":2}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"x\":1,\"device\":\"x\",\"speed\":1}}\n",
        "{\"execute\":\"block-job-set-speed\",\"arguments\":{\"device\":\"x\"}}\n",
    ];

    [TestMethod]
    public async Task The_bad_input_script_gets_the_same_replies_from_QEMU_and_jobcored()
    {
        await using var qemu = QemuMonitor.Start();
        await using var daemon = Jobcored.Start();
        await using var reference = await qemu.ConnectAsync();
        await using var ours = await daemon.ConnectAsync();

        var differences = new List<string>();
        var compared = 0;
        foreach (var step in Script)
        {
            var bytes = Encoding.Latin1.GetBytes(step);
            var expected = (await RawConversation.SendAsync(reference, bytes)).Select(Normalize).ToList();
            var actual = (await RawConversation.SendAsync(ours, bytes)).Select(Normalize).ToList();
            compared += expected.Count;
            if (!expected.SequenceEqual(actual))
            {
                differences.Add($"{Shorten(step)}\n  qemu:     {string.Join(" | ", expected)}\n  jobcored: {string.Join(" | ", actual)}");
            }
        }

        Assert.IsTrue(compared > Script.Length, $"only {compared} replies compared");
        Assert.AreEqual(0, differences.Count, "replies differ:\n" + string.Join("\n", differences));
    }

    /// <summary>Error class and text, or "return"; plus the id when there is one. Version details are not compared.</summary>
    private static string Normalize(JsonObject reply)
    {
        var id = reply.TryGetPropertyValue("id", out var idNode) ? " id=" + Canonical(idNode) : string.Empty;
        return RawConversation.Describe(reply) + id;
    }

    /// <summary>Compact JSON with object members sorted (QEMU prints members in hash order).</summary>
    private static string Canonical(JsonNode? node) => node switch
    {
        JsonObject o => "{" + string.Join(",", o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"\"{p.Key}\":{Canonical(p.Value)}")) + "}",
        JsonArray a => "[" + string.Join(",", a.Select(Canonical)) + "]",
        null => "null",
        _ => node.ToJsonString(),
    };

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "..." : s.TrimEnd('\n');
}
