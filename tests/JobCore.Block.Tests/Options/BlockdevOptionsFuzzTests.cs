using System.Text.Json.Nodes;
using JobCore.Block.Graph;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Options;

/// <summary>Random JSON built from the schema's own member names: the parser either accepts it or says why, never anything else.</summary>
[TestClass]
public sealed class BlockdevOptionsFuzzTests
{
    private static readonly string[] Keys =
    [
        "driver", "node-name", "read-only", "file", "filename", "backing", "image", "inject-error", "event", "errno",
        "sector", "once", "immediately", "iotype", "state", "cache", "direct", "no-flush", "discard", "detect-zeroes",
        "auto-read-only", "force-share", "locking", "aio", "config", "align", "x",
    ];

    private static readonly string[] Strings =
    [
        "file", "raw", "qcow2", "blkdebug", "vmdk", "read_aio", "write_aio", "flush_to_disk", "l2_load", "read",
        "write", "flush", "off", "on", "unmap", "ignore", "auto", "threads", "/tmp/x", "", "n1", "#block1",
    ];

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void Random_objects_parse_or_are_refused_with_a_message(int seed)
    {
        var random = new Random(seed);
        int accepted = 0;
        for (int i = 0; i < 3000; i++)
        {
            JsonNode? json = RandomObject(random, depth: 0);
            string text = json!.ToJsonString();
            try
            {
                BlockdevOptions options = BlockdevOptions.Parse(text);
                Assert.IsNotNull(options.Driver);
                accepted++;
            }
            catch (BlockGraphException e)
            {
                Assert.IsFalse(string.IsNullOrWhiteSpace(e.Message), text);
            }
        }

        Assert.IsTrue(accepted > 0, "some random objects are valid");
    }

    private static JsonObject RandomObject(Random random, int depth)
    {
        var obj = new JsonObject();
        string driver = Strings[random.Next(4)];
        if (random.Next(3) == 0)
        {
            // A well-formed object for the driver, so deeper checks (children, rules) are reached too.
            obj["driver"] = driver;
            obj["node-name"] = "n" + random.Next(100);
            switch (driver)
            {
                case "file":
                    obj["filename"] = "/tmp/x";
                    break;
                case "blkdebug":
                    obj["image"] = depth > 2 ? "i" : RandomObject(random, depth + 1);
                    obj["inject-error"] = new JsonArray(new JsonObject { ["event"] = Strings[5 + random.Next(3)], ["sector"] = random.Next(-1, 9) });
                    break;
                default:
                    obj["file"] = depth > 2 ? "f" : RandomObject(random, depth + 1);
                    break;
            }

            if (random.Next(2) == 0)
            {
                return obj;
            }
        }
        else if (random.Next(4) != 0)
        {
            obj["driver"] = driver;
        }

        int members = random.Next(5);
        for (int m = 0; m < members; m++)
        {
            obj[Keys[random.Next(Keys.Length)]] = RandomValue(random, depth + 1);
        }

        // Valid-looking mandatory members make deeper checks reachable.
        if (random.Next(2) == 0)
        {
            obj["filename"] = "/tmp/x";
            obj["file"] = random.Next(2) == 0 ? "f" : RandomObject(random, depth + 1);
            obj["image"] = "i";
        }

        return obj;
    }

    private static JsonNode? RandomValue(Random random, int depth) => random.Next(depth > 3 ? 6 : 8) switch
    {
        0 => null,
        1 => random.Next(2) == 0,
        2 => random.NextInt64(-10, 100),
        3 => random.NextDouble(),
        4 or 5 => Strings[random.Next(Strings.Length)],
        6 => RandomObject(random, depth),
        _ => new JsonArray([.. Enumerable.Range(0, random.Next(3)).Select(_ => RandomValue(random, depth + 1))]),
    };
}
