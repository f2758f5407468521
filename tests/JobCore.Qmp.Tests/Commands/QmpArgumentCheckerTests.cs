using System.Text.Json.Nodes;

namespace JobCore.Qmp.Tests.Commands;

/// <summary>Argument checks in QEMU's order and wording (texts recorded from QEMU 7.2).</summary>
[TestClass]
public sealed class QmpArgumentCheckerTests
{
    private static readonly QmpArgument[] SetSpeed =
        [QmpArgument.Required("device", QmpType.Str), QmpArgument.Required("speed", QmpType.WholeNumber)];

    private static readonly QmpArgument[] Cancel =
        [QmpArgument.Required("device", QmpType.Str), QmpArgument.Opt("force", QmpType.Bool)];

    private static string? Check(QmpArgument[] schema, string json) => QmpArgumentChecker.Check(schema, JsonNode.Parse(json)!.AsObject());

    [TestMethod]
    [DataRow("{\"device\":\"x\",\"speed\":1}", null)]
    [DataRow("{\"device\":\"x\"}", "Parameter 'speed' is missing")]
    [DataRow("{}", "Parameter 'device' is missing")]
    [DataRow("{\"device\":\"x\",\"speed\":\"1\"}", "Invalid parameter type for 'speed', expected: integer")]
    [DataRow("{\"device\":\"x\",\"speed\":1.5}", "Invalid parameter type for 'speed', expected: integer")]
    [DataRow("{\"device\":\"x\",\"speed\":18446744073709551615}", "Invalid parameter type for 'speed', expected: integer")]
    [DataRow("{\"speed\":1,\"device\":2}", "Invalid parameter type for 'device', expected: string")]
    [DataRow("{\"device\":null,\"speed\":1}", "Invalid parameter type for 'device', expected: string")]
    [DataRow("{\"x\":1,\"device\":\"x\",\"speed\":1}", "Parameter 'x' is unexpected")]
    [DataRow("{\"x\":1,\"device\":\"x\"}", "Parameter 'speed' is missing")]
    public void Set_speed_schema(string args, string? error) => Assert.AreEqual(error, Check(SetSpeed, args));

    [TestMethod]
    [DataRow("{\"device\":\"x\"}", null)]
    [DataRow("{\"device\":\"x\",\"force\":true}", null)]
    [DataRow("{\"device\":\"x\",\"force\":\"yes\"}", "Invalid parameter type for 'force', expected: boolean")]
    [DataRow("{\"device\":\"x\",\"force\":null}", "Invalid parameter type for 'force', expected: boolean")]
    public void Optional_members_are_typed_when_present(string args, string? error) => Assert.AreEqual(error, Check(Cancel, args));

    [TestMethod]
    public void Nested_members_and_list_elements_are_named_by_path()
    {
        QmpArgument[] schema =
        [
            QmpArgument.Required("opts", QmpType.Struct(QmpArgument.Required("size", QmpType.Size))),
            QmpArgument.Opt("enable", QmpType.Array(QmpType.Enum("oob"))),
            QmpArgument.Opt("ref", QmpType.Alternate("BlockdevRefOrNull", QmpType.Str, QmpType.Null, QmpType.AnyObject)),
            QmpArgument.Opt("n", QmpType.Number),
            QmpArgument.Opt("v", QmpType.Any),
        ];
        Assert.AreEqual("Parameter 'opts.size' is missing", Check(schema, "{\"opts\":{}}"));
        Assert.AreEqual("Invalid parameter type for 'opts.size', expected: integer", Check(schema, "{\"opts\":{\"size\":-1}}"));
        Assert.AreEqual("Parameter 'opts.x' is unexpected", Check(schema, "{\"opts\":{\"size\":1,\"x\":2}}"));
        Assert.AreEqual("Invalid parameter type for 'enable[0]', expected: string", Check(schema, "{\"opts\":{\"size\":1},\"enable\":[1]}"));
        Assert.AreEqual("Parameter 'null' does not accept value 'foo'", Check(schema, "{\"opts\":{\"size\":1},\"enable\":[\"oob\",\"foo\"]}"));
        Assert.AreEqual("Invalid parameter type for 'ref', expected: BlockdevRefOrNull", Check(schema, "{\"opts\":{\"size\":1},\"ref\":1}"));
        Assert.AreEqual("Invalid parameter type for 'n', expected: number", Check(schema, "{\"opts\":{\"size\":1},\"n\":\"1\"}"));
        Assert.IsNull(Check(schema, "{\"opts\":{\"size\":18446744073709551615},\"ref\":null,\"n\":1.5,\"v\":[{}]}"));
        Assert.IsNull(Check(schema, "{\"opts\":{\"size\":0},\"ref\":{\"driver\":\"file\"}}"));
    }

    [TestMethod]
    [DataRow("1.0")]
    [DataRow("1e3")]
    [DataRow("-0.0")]
    public void A_float_token_is_not_an_integer_even_when_whole(string speed)
    {
        var streamer = new JobCore.Qmp.Json.QmpJsonStreamer(new QmpLimits());
        var message = streamer.Feed(System.Text.Encoding.ASCII.GetBytes("{\"device\":\"x\",\"speed\":" + speed + "}\n")).Single();
        Assert.AreEqual(
            "Invalid parameter type for 'speed', expected: integer",
            QmpArgumentChecker.Check(SetSpeed, message.Value!.AsObject()));
    }
}
