using System.Text;
using JobCore.Qmp.Json;

namespace JobCore.Qmp.Tests.Json;

/// <summary>
/// Framing and parse errors. Every expected text below was recorded from QEMU 7.2's monitor
/// (qemu-system-x86_64 -machine none -qmp unix:...) fed the same bytes.
/// </summary>
[TestClass]
public sealed class QmpJsonStreamerTests
{
    private const string Prefix = "JSON parse error, ";

    private static List<string> Run(QmpLimits limits, params byte[][] feeds)
    {
        var streamer = new QmpJsonStreamer(limits);
        var results = new List<string>();
        foreach (var feed in feeds)
        {
            foreach (var m in streamer.Feed(feed))
            {
                results.Add(m.Error is not null ? "E:" + m.Error : "V:" + QmpJsonWriter.ToText(m.Value));
            }
        }

        return results;
    }

    private static List<string> Run(string text) => Run(new QmpLimits(), Encoding.Latin1.GetBytes(text));

    [TestMethod]
    [DataRow("{\"a\":1}{\"b\":2}\n", new[] { "V:{\"a\": 1}", "V:{\"b\": 2}" })]
    [DataRow("[1,2]\n", new[] { "V:[1, 2]" })]
    [DataRow("42\n\"s\"\n", new[] { "V:42", "V:\"s\"" })]
    [DataRow("'x\"y'\n", new[] { "V:\"x\\\"y\"" })]
    [DataRow("{\"a\": [true, false, null], \"b\": {}}\n", new[] { "V:{\"a\": [true, false, null], \"b\": {}}" })]
    [DataRow("[1, -0, 1.5, 18446744073709551615, 18446744073709551616, 1e400]\n",
        new[] { "V:[1, 0, 1.5, 18446744073709551615, 1.8446744073709552E+19, 1e400]" })]
    [DataRow("  \r\n\t\n", new string[0])]
    [DataRow("{\"a\":\"q\u00c0\u0080\"}\n", new[] { "V:{\"a\": \"q\\u0000\"}" })]
    [DataRow("{\"a\":\"\\u00e9\\ud83d\\ude00\"}\n", new[] { "V:{\"a\": \"\\u00E9\\uD83D\\uDE00\"}" })]
    [DataRow("{\"a\":\"qu\u00c3\u00a9ry\"}\n", new[] { "V:{\"a\": \"qu\\u00E9ry\"}" })]
    public void Values_are_framed_and_parsed(string input, string[] expected) =>
        CollectionAssert.AreEqual(expected, Run(input));

    [TestMethod]
    [DataRow("{\"a\":}\n", "expecting value")]
    [DataRow("{\"execute\":\"query-version\",}\n", "expecting value")]
    [DataRow("{]\n", "expecting value")]
    [DataRow("}\n", "expecting value")]
    [DataRow("]\n", "expecting value")]
    [DataRow("[}\n", "expecting value")]
    [DataRow("[1,]\n", "expecting value")]
    [DataRow("nonsense\n", "invalid keyword 'nonsense'")]
    [DataRow("tru\n", "invalid keyword 'tru'")]
    [DataRow("{\"a\" 1}\n", "missing : in object pair")]
    [DataRow("{\"execute\":\"query-version\" \"id\":1}\n", "expected separator in dict")]
    [DataRow("[1 2]\n", "expected separator in list")]
    [DataRow("{1:2}\n", "key is not a string in object")]
    [DataRow("{[1]:2}\n", "key is not a string in object")]
    [DataRow("{\"a\":1,\"a\":2}\n", "duplicate key")]
    [DataRow("{\"a\":\"qu\u00c3ry\"}\n", "invalid UTF-8 sequence in string")]
    [DataRow("{\"a\":\"q\u00ed\u00a0\u0080\"}\n", "invalid UTF-8 sequence in string")]
    [DataRow("{\"a\":\"q\u00ef\u00bf\u00bf\"}\n", "invalid UTF-8 sequence in string")]
    [DataRow("{\"a\":\"q\\x\"}\n", "invalid escape sequence in string")]
    [DataRow("{\"a\":\"q\\ud800\"}\n", "\\ud800 is not a valid Unicode character")]
    [DataRow("{\"a\":\"q\\ud800\\u0041\"}\n", "\\ud800 is not a valid Unicode character")]
    [DataRow("{\"a\":\"q\\uffff\"}\n", "\\uffff is not a valid Unicode character")]
    [DataRow("{\"a\":\"q\\u12\"}\n", "\\u12\" is not a valid Unicode character")]
    [DataRow("{\"a\":-}\n", "stray '-}'")]
    [DataRow("{\"a\":1.}\n", "stray '1.}'")]
    [DataRow("{\"a\":1e}\n", "stray '1e}'")]
    [DataRow("%d\n", "stray '%'")]
    [DataRow("\u0000\n", "stray ''")]
    [DataRow("\u00ff\n", "stray '\ufffd'")]
    public void A_bad_message_gets_QEMUs_error(string input, string error) =>
        CollectionAssert.AreEqual(new[] { "E:" + Prefix + error }, Run(input));

    [TestMethod]
    [DataRow("{\"a\":01}\n", new[] { "stray '01'", "expecting value" })]
    [DataRow("{\"a\":TRUE}\n", new[] { "stray 'T'", "expecting value" })]
    [DataRow("{\"a\":@}\n", new[] { "stray '@'", "expecting value" })]
    [DataRow("{\"id\":\"\u00ff\"}\n", new[] { "stray '\"\ufffd'", "expecting value" })]
    [DataRow("{\"a\":\"q\u0001\"}\n", new[] { "stray '\"q\u0001'", "expecting value" })]
    [DataRow("\u00ff\u00ff\n", new[] { "stray '\ufffd'", "stray '\ufffd'" })]
    [DataRow("\u00ff\u0001x\n", new[] { "stray '\ufffd'", "stray '\u0001'" })]
    public void After_a_stray_byte_the_stream_resynchronises_like_QEMU(string input, string[] errors) =>
        CollectionAssert.AreEqual(errors.Select(e => "E:" + Prefix + e).ToArray(), Run(input));

    [TestMethod]
    public void A_good_message_after_garbage_on_the_same_line_is_served()
    {
        var r = Run("{\"a\":1}\u00ff{\"b\":2}\n");
        CollectionAssert.AreEqual(new[] { "V:{\"a\": 1}", "E:" + Prefix + "stray '\ufffd'", "V:{\"b\": 2}" }, r);
    }

    [TestMethod]
    public void An_object_split_over_many_reads_is_one_message()
    {
        var bytes = Encoding.UTF8.GetBytes("{\"execute\": \"query-version\", \"id\": [1, \"x\u00e9\"]}\n");
        var feeds = bytes.Select(b => new[] { b }).ToArray();
        CollectionAssert.AreEqual(new[] { "V:{\"execute\": \"query-version\", \"id\": [1, \"x\\u00E9\"]}" }, Run(new QmpLimits(), feeds));
    }

    [TestMethod]
    public void Nesting_1024_is_accepted_and_1025_refused_like_QEMU()
    {
        var ok = Run(new string('[', 1024) + new string(']', 1024) + "\n");
        Assert.AreEqual(1, ok.Count);
        StringAssert.StartsWith(ok[0], "V:[[");

        // QEMU refuses at the 1025th opener, forgets the message, then sees 1025 lone closers.
        var bad = Run(new string('[', 1025) + new string(']', 1025) + "\n");
        Assert.AreEqual("E:JSON nesting depth limit exceeded", bad[0]);
        Assert.AreEqual(1026, bad.Count);
        Assert.IsTrue(bad.Skip(1).All(e => e == "E:" + Prefix + "expecting value"));
    }

    [TestMethod]
    public void An_oversized_token_is_refused_and_the_stream_continues()
    {
        var limits = new QmpLimits { MaxMessageBytes = 1000 };
        var input = "{\"execute\":\"x\",\"id\":\"" + new string('a', 2000) + "\"}\n{\"b\":2}\n";
        var r = Run(limits, Encoding.ASCII.GetBytes(input));
        Assert.AreEqual("E:JSON token size limit exceeded", r[0]);
        Assert.AreEqual("V:{\"b\": 2}", r[^1]);
    }

    [TestMethod]
    public void Too_many_tokens_are_refused()
    {
        var limits = new QmpLimits { MaxTokens = 100 };
        var input = "[" + string.Join(",", Enumerable.Repeat("1", 100)) + "]\n[1]\n";
        var r = Run(limits, Encoding.ASCII.GetBytes(input));
        Assert.AreEqual("E:JSON token count limit exceeded", r[0]);
        Assert.AreEqual("V:[1]", r[^1]);
    }
}
