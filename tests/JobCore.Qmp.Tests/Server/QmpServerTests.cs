using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Server;

/// <summary>The server in-process: broadcast order, slow clients, negotiation gating, reply barriers, pipelining.</summary>
[TestClass]
public sealed class QmpServerTests
{
    private static async Task<(QmpServer Server, TempDirectory Dir, string Endpoint)> StartAsync(QmpCommandTable commands, QmpLimits? limits = null)
    {
        var dir = new TempDirectory();
        var options = new QmpServerOptions { Limits = limits ?? new QmpLimits(), DrainTimeout = TimeSpan.FromSeconds(2) };
        options.Endpoints.Add(QmpEndpoint.Unix(dir.File("s")));
        var server = new QmpServer(commands, options);
        await server.StartAsync();
        return (server, dir, "unix:" + dir.File("s"));
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        while (!condition())
        {
            Assert.IsTrue(Stopwatch.GetTimestamp() < deadline, $"condition not met within {timeout}");
            await timer.WaitForNextTickAsync();
        }
    }

    [TestMethod]
    public async Task A_client_that_stops_reading_is_dropped_and_never_blocks_broadcasts_or_other_clients()
    {
        var (server, dir, endpoint) = await StartAsync(new QmpCommandTable().AddBuiltinCommands(), new QmpLimits { OutgoingQueueCapacity = 1_000 });
        using var _ = dir;
        await using var __ = server;
        await using var reader = await QmpClient.ConnectAsync(endpoint);
        await reader.NegotiateAsync();

        // A client that negotiates and then never reads again, with a tiny receive buffer.
        using var stalled = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveBufferSize = 4096 };
        await stalled.ConnectAsync(new UnixDomainSocketEndPoint(dir.File("s")));
        await stalled.SendAsync(Encoding.ASCII.GetBytes("{\"execute\": \"qmp_capabilities\"}\n"));
        await WaitUntilAsync(() => server.ClientCount == 2, TimeSpan.FromSeconds(10));

        // Bursts the reading client keeps up with; the stalled one falls behind by more than its queue and is dropped.
        const int bursts = 40;
        const int perBurst = 500;
        var payload = new string('x', 1000);
        var stopwatch = Stopwatch.StartNew();
        var n = 0;
        for (var b = 0; b < bursts; b++)
        {
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < perBurst; i++)
            {
                server.Broadcast(new QmpEvent("TEST", new JsonObject { ["n"] = n + i, ["pad"] = payload }, DateTimeOffset.UnixEpoch));
            }

            Assert.IsTrue(Stopwatch.GetElapsedTime(start) < TimeSpan.FromSeconds(5), "a broadcast burst blocked");
            for (var i = 0; i < perBurst; i++, n++)
            {
                var e = await reader.Events.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.AreEqual(n, e["data"]!["n"]!.GetValue<int>(), "events arrive complete and in order");
            }
        }

        stopwatch.Stop();
        await WaitUntilAsync(() => server.ClientCount == 1, TimeSpan.FromSeconds(10));
        Assert.IsNotNull(await reader.ExecuteAsync("query-version"));
    }

    [TestMethod]
    public async Task Events_reach_only_clients_that_negotiated()
    {
        var (server, dir, endpoint) = await StartAsync(new QmpCommandTable().AddBuiltinCommands());
        using var _ = dir;
        await using var __ = server;
        await using var negotiated = await QmpClient.ConnectAsync(endpoint);
        await negotiated.NegotiateAsync();
        await using var fresh = await QmpClient.ConnectAsync(endpoint);
        await WaitUntilAsync(() => server.ClientCount == 2, TimeSpan.FromSeconds(10));

        server.Broadcast(new QmpEvent("BEFORE", null, DateTimeOffset.UnixEpoch));
        await fresh.NegotiateAsync();
        server.Broadcast(new QmpEvent("AFTER", new JsonObject { ["k"] = 1 }, DateTimeOffset.FromUnixTimeMilliseconds(1_500)));

        Assert.AreEqual("BEFORE", (await negotiated.Events.ReadAsync())["event"]!.GetValue<string>());
        var after = await fresh.Events.ReadAsync();
        Assert.AreEqual("AFTER", after["event"]!.GetValue<string>(), "the event sent before negotiation must not arrive");
        Assert.AreEqual(1, after["timestamp"]!["seconds"]!.GetValue<long>());
        Assert.AreEqual(500_000, after["timestamp"]!["microseconds"]!.GetValue<long>());
        Assert.IsNull(((JsonObject)(await negotiated.Events.ReadAsync()))["data"]!["missing"]);
    }

    [TestMethod]
    public async Task Events_buffered_by_a_command_are_sent_before_its_reply()
    {
        var pending = Channel.CreateUnbounded<QmpEvent>();
        var commands = new QmpCommandTable().AddBuiltinCommands();
        commands.Add("x-emit", [QmpArgument.Required("n", QmpType.WholeNumber)], (_, args, _) =>
        {
            // Like the job engine: events are buffered while the command runs, not broadcast directly.
            for (var i = 0; i < args["n"]!.GetValue<long>(); i++)
            {
                pending.Writer.TryWrite(new QmpEvent("X", new JsonObject { ["i"] = i }, DateTimeOffset.UnixEpoch));
            }

            return ValueTask.FromResult<JsonNode?>(new JsonObject { ["emitted"] = args["n"]!.DeepClone() });
        });
        var (server, dir, endpoint) = await StartAsync(commands);
        using var _ = dir;
        await using var __ = server;
        server.AddReplyBarrier(() =>
        {
            while (pending.Reader.TryRead(out var e))
            {
                server.Broadcast(e);
            }
        });

        await using var client = await QmpClient.ConnectAsync(endpoint, recordTranscript: true);
        await client.NegotiateAsync();
        var result = await client.ExecuteAsync("x-emit", new JsonObject { ["n"] = 3 });
        Assert.AreEqual(3, result!["emitted"]!.GetValue<int>());
        var tail = client.Transcript.TakeLast(4).Select(m => m.ContainsKey("event") ? "event" : "reply").ToArray();
        CollectionAssert.AreEqual(new[] { "event", "event", "event", "reply" }, tail);
    }

    [TestMethod]
    public async Task Pipelined_requests_are_answered_in_order_with_their_ids()
    {
        var (server, dir, endpoint) = await StartAsync(new QmpCommandTable().AddBuiltinCommands());
        using var _ = dir;
        await using var __ = server;
        await using var client = await QmpClient.ConnectAsync(endpoint);
        await client.NegotiateAsync();
        var tasks = Enumerable.Range(0, 500)
            .Select(i => client.RequestAsync(new JsonObject { ["execute"] = i % 2 == 0 ? "query-version" : "nope", ["id"] = i }))
            .ToArray();
        var replies = await Task.WhenAll(tasks);
        for (var i = 0; i < replies.Length; i++)
        {
            Assert.AreEqual(i, replies[i]["id"]!.GetValue<int>());
            Assert.AreEqual(i % 2 == 0, replies[i].ContainsKey("return"));
        }
    }

    [TestMethod]
    public async Task A_handler_exception_becomes_a_GenericError_and_mapped_exceptions_keep_their_class()
    {
        var commands = new QmpCommandTable().AddBuiltinCommands();
        commands.Add("x-throw", [QmpArgument.Required("kind", QmpType.Str)], (_, args, _) => args["kind"]!.GetValue<string>() switch
        {
            "job" => throw new JobException("Block job 'z' not found", JobException.DeviceNotActive),
            "qmp" => throw new QmpException(QmpErrorClass.DeviceNotFound, "Cannot find device='x' nor node-name='x'"),
            _ => throw new InvalidOperationException("boom"),
        });
        var (server, dir, endpoint) = await StartAsync(commands);
        using var _ = dir;
        await using var __ = server;
        server.AddExceptionMapper(ex => ex is JobException je ? new QmpException(je.ErrorClass, je.Message) : null);
        await using var client = await QmpClient.ConnectAsync(endpoint);
        await client.NegotiateAsync();

        var job = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("x-throw", new JsonObject { ["kind"] = "job" }));
        Assert.AreEqual("DeviceNotActive", job.ErrorClass);
        var qmp = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("x-throw", new JsonObject { ["kind"] = "qmp" }));
        Assert.AreEqual("DeviceNotFound", qmp.ErrorClass);
        var other = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("x-throw", new JsonObject { ["kind"] = "x" }));
        Assert.AreEqual(("GenericError", "boom"), (other.ErrorClass, other.Message));
        Assert.IsNotNull(await client.ExecuteAsync("query-version"));
    }

    [TestMethod]
    public void A_command_name_can_be_registered_once()
    {
        var table = new QmpCommandTable().AddBuiltinCommands();
        Assert.ThrowsExactly<ArgumentException>(() => table.Add("quit", [], (_, _, _) => ValueTask.FromResult<JsonNode?>(null)));
        CollectionAssert.AreEqual(new[] { "qmp_capabilities", "query-commands", "query-status", "query-version", "quit" }, table.Names.ToArray());
    }
}
