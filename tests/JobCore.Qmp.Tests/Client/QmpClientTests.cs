using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Client;

/// <summary>The client against a scripted fake server: odd framing, events between replies, QEMU's invalid "inf".</summary>
[TestClass]
public sealed class QmpClientTests
{
    private static async Task<(QmpClient Client, Socket Server)> ConnectToFakeAsync(TempDirectory dir, string greeting)
    {
        var path = dir.File("fake.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var accept = listener.AcceptAsync();
        var connecting = QmpClient.ConnectAsync("unix:" + path);
        var server = await accept;
        await server.SendAsync(Encoding.ASCII.GetBytes(greeting));
        return (await connecting, server);
    }

    private static async Task<string> ReadLineAsync(Socket socket)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (await socket.ReceiveAsync(one) == 1 && one[0] != '\n')
        {
            sb.Append((char)one[0]);
        }

        return sb.ToString();
    }

    [TestMethod]
    public async Task Replies_split_across_writes_and_events_in_between_are_delivered_in_order()
    {
        using var dir = new TempDirectory();
        var (client, server) = await ConnectToFakeAsync(dir, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"x\"}, \"capabilities\": []}}\r\n");
        await using var _ = client;
        using var __ = server;
        Assert.AreEqual("x", client.Greeting["QMP"]!["version"]!["package"]!.GetValue<string>());

        var pending = client.ExecuteAsync("query-jobs");
        StringAssert.Contains(await ReadLineAsync(server), "\"query-jobs\"");
        await server.SendAsync(Encoding.ASCII.GetBytes("{\"event\": \"E1\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n{\"ret"));
        await server.SendAsync(Encoding.ASCII.GetBytes("urn\": [1, 2]}\r\n"));
        Assert.AreEqual("[1,2]", (await pending)!.ToJsonString());
        Assert.AreEqual("E1", (await client.Events.ReadAsync())["event"]!.GetValue<string>());
    }

    [TestMethod]
    public async Task An_unparsable_reply_fails_its_request_instead_of_hanging()
    {
        using var dir = new TempDirectory();
        var (client, server) = await ConnectToFakeAsync(dir, "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\n");
        await using var _ = client;
        using var __ = server;
        var first = client.RequestAsync(new JsonObject { ["execute"] = "query-version", ["id"] = 1 });
        var second = client.ExecuteAsync("query-version");
        await ReadLineAsync(server);
        await ReadLineAsync(server);

        // What QEMU 7.2 really prints for an id of 1e400.
        await server.SendAsync(Encoding.ASCII.GetBytes("{\"return\": {}, \"id\": inf}\r\n{\"return\": {\"ok\": true}}\r\n"));
        var reply = await first;
        StringAssert.StartsWith(reply["error"]!["desc"]!.GetValue<string>(), "unparsable message from the server");
        Assert.IsTrue((await second)!["ok"]!.GetValue<bool>());

        server.Shutdown(SocketShutdown.Both);
        await client.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsExactlyAsync<IOException>(() => client.ExecuteAsync("query-version"));
    }
}
