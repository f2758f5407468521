using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;
using JobCore.Qmp.Tests.Jobs;

namespace JobCore.Qmp.Tests.Daemon;

/// <summary>
/// Generated hostile traffic against the real daemon (with the test plugin's job commands loaded) over one socket:
/// well-formed requests with random arguments, mutated requests, random bytes, deep nesting, odd strings.
/// The daemon must answer throughout, stay up, and keep serving other clients.
/// </summary>
[TestClass]
public sealed class QmpFuzzTests
{
    private const int Messages = 100_000;
    private const int Batch = 1_000;

    private static readonly string[] ArgumentNames =
        ["id", "device", "speed", "force", "job-id", "steps", "step-ms", "ready", "fail-at", "enable", "type", "copy-mode", "auto-finalize", "auto-dismiss", "x"];

    [TestMethod]
    public async Task A_hundred_thousand_generated_messages_cause_no_crash()
    {
        await using var daemon = Jobcored.StartWithTestPlugin(null, "--log-level", "Warning");
        await using var client = await daemon.ConnectAsync();
        var commands = (await client.ExecuteAsync("query-commands"))!.AsArray()
            .Select(c => c!["name"]!.GetValue<string>()).Where(n => n != "quit").ToArray();

        const int seed = 20261123;
        var random = new Random(seed);
        var stopwatch = Stopwatch.StartNew();
        var replies = 0;
        var errors = 0;
        var sent = 0;
        while (sent < Messages)
        {
            var batch = new MemoryStream();
            for (var i = 0; i < Batch; i++, sent++)
            {
                batch.Write(Generate(random, commands));
                batch.WriteByte((byte)'\n');
            }

            // The marker is preceded by 0xFF + newline, which ends any half-sent message the batch left behind.
            var answers = await RawConversation.SendAsync(client, batch.ToArray(), TimeSpan.FromSeconds(60), resync: true);
            replies += answers.Count;
            errors += answers.Count(a => a.ContainsKey("error"));
            Assert.IsFalse(daemon.Process.Process.HasExited, $"daemon died after {sent} messages (seed {seed}):\n{daemon.Process.Output}");
        }

        stopwatch.Stop();
        Console.WriteLine($"{sent} messages, {replies} replies ({errors} errors) in {stopwatch.Elapsed.TotalSeconds:F1} s, seed {seed}");
        Assert.IsTrue(replies >= Messages * 9 / 10, $"only {replies} replies to {sent} messages");
        Assert.IsTrue(errors > 0 && errors < replies, "the mix must contain both accepted and refused messages");
        Assert.IsTrue(stopwatch.Elapsed < TimeSpan.FromSeconds(60), $"took {stopwatch.Elapsed}");

        await using var fresh = await daemon.ConnectAsync();
        Assert.IsNotNull(await fresh.ExecuteAsync("query-version"));
        Assert.IsNotNull(await client.ExecuteAsync("query-jobs"));
        StringAssert.DoesNotMatch(daemon.Process.Output, new System.Text.RegularExpressions.Regex("failed unexpectedly|internal error|Unhandled exception"));
    }

    private static byte[] Generate(Random r, string[] commands)
    {
        var kind = r.Next(1000);
        return kind switch
        {
            < 450 => Encoding.UTF8.GetBytes(Request(r, commands).ToJsonString()),
            < 800 => Mutate(r, Encoding.UTF8.GetBytes(Request(r, commands).ToJsonString())),
            < 900 => RandomBytes(r, r.Next(1, 40)),
            < 902 => Nesting(r, r.Next(1, 1100)),
            _ => Encoding.UTF8.GetBytes(RandomValue(r, 3)?.ToJsonString() ?? "null"),
        };
    }

    private static JsonObject Request(Random r, string[] commands)
    {
        var request = new JsonObject
        {
            ["execute"] = r.Next(10) == 0 ? RandomString(r) : commands[r.Next(commands.Length)],
        };
        if (r.Next(3) > 0)
        {
            var args = new JsonObject();
            for (var i = r.Next(4); i > 0; i--)
            {
                args[ArgumentNames[r.Next(ArgumentNames.Length)]] = r.Next(3) == 0 ? RandomValue(r, 2) : PlausibleValue(r);
            }

            request["arguments"] = args;
        }

        if (r.Next(2) == 0)
        {
            request["id"] = RandomValue(r, 2);
        }

        if (r.Next(50) == 0)
        {
            request[RandomString(r)] = 1;
        }

        return request;
    }

    private static JsonNode? PlausibleValue(Random r) => r.Next(5) switch
    {
        0 => "j" + r.Next(5),
        1 => r.Next(-2, 50),
        2 => r.Next(2) == 0,
        3 => "write-blocking",
        _ => new JsonArray("oob"),
    };

    private static JsonNode? RandomValue(Random r, int depth) => r.Next(depth > 0 ? 9 : 7) switch
    {
        0 => null,
        1 => r.Next(2) == 0,
        2 => r.NextInt64(long.MinValue, long.MaxValue),
        3 => r.NextDouble() * Math.Pow(10, r.Next(-20, 300)),
        4 => RandomString(r),
        5 => (ulong)r.NextInt64() * 2 + 1,
        6 => string.Empty,
        7 => new JsonArray([.. Enumerable.Range(0, r.Next(4)).Select(_ => RandomValue(r, depth - 1))]),
        _ => new JsonObject(Enumerable.Range(0, r.Next(4)).Select(i => KeyValuePair.Create(RandomString(r) + i, RandomValue(r, depth - 1)))),
    };

    private static string RandomString(Random r)
    {
        var chars = new char[r.Next(0, 12)];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = r.Next(6) switch
            {
                0 => (char)r.Next(0, 0x20),
                1 => (char)r.Next(0x80, 0x800),
                2 => (char)r.Next(0x4E00, 0x9FFF),
                _ => (char)r.Next('a', 'z' + 1),
            };
        }

        return new string(chars);
    }

    private static byte[] Mutate(Random r, byte[] bytes)
    {
        var list = bytes.ToList();
        for (var n = r.Next(1, 4); n > 0 && list.Count > 0; n--)
        {
            var at = r.Next(list.Count);
            switch (r.Next(5))
            {
                case 0:
                    list[at] = (byte)r.Next(256);
                    break;
                case 1:
                    list.Insert(at, (byte)r.Next(256));
                    break;
                case 2:
                    list.RemoveAt(at);
                    break;
                case 3:
                    list.RemoveRange(at, list.Count - at);
                    break;
                default:
                    list.Insert(at, "{[\"'\\:,}]"[r.Next(9)] is var c ? (byte)c : (byte)0);
                    break;
            }
        }

        return [.. list];
    }

    private static byte[] RandomBytes(Random r, int length)
    {
        var bytes = new byte[length];
        r.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Nesting(Random r, int depth)
    {
        var open = r.Next(2) == 0 ? "[" : "{\"a\":";
        var close = open == "[" ? "]" : "}";
        return Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)));
    }
}
