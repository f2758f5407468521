using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Daemon;

/// <summary>The real jobcored process over real sockets: greeting, negotiation, ids, bad input, endpoints, shutdown.</summary>
[TestClass]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class JobcoredProtocolTests
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    [TestMethod]
    public async Task Greeting_has_QEMUs_shape_with_JobCore_as_package()
    {
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync(negotiate: false);
        var qmp = client.Greeting["QMP"]!.AsObject();
        Assert.AreEqual(7, qmp["version"]!["qemu"]!["major"]!.GetValue<long>());
        Assert.AreEqual(2, qmp["version"]!["qemu"]!["minor"]!.GetValue<long>());
        Assert.AreEqual(0, qmp["version"]!["qemu"]!["micro"]!.GetValue<long>());
        Assert.AreEqual("JobCore 0.1.0", qmp["version"]!["package"]!.GetValue<string>());
        Assert.AreEqual(0, qmp["capabilities"]!.AsArray().Count);
    }

    [TestMethod]
    public async Task Commands_before_qmp_capabilities_are_refused_with_QEMUs_text()
    {
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync(negotiate: false);
        var refused = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("query-version"));
        Assert.AreEqual(QmpErrorClass.CommandNotFound, refused.ErrorClass);
        Assert.AreEqual("Expecting capabilities negotiation with 'qmp_capabilities'", refused.Message);
        var unknown = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("no-such-command"));
        Assert.AreEqual("Expecting capabilities negotiation with 'qmp_capabilities'", unknown.Message);

        await client.NegotiateAsync();
        var again = await Assert.ThrowsExactlyAsync<QmpException>(() => client.NegotiateAsync());
        Assert.AreEqual(QmpErrorClass.CommandNotFound, again.ErrorClass);
        Assert.AreEqual("Capabilities negotiation is already complete, command ignored", again.Message);

        var version = await client.ExecuteAsync("query-version");
        Assert.AreEqual(7, version!["qemu"]!["major"]!.GetValue<long>());
        var names = (await client.ExecuteAsync("query-commands"))!.AsArray().Select(c => c!["name"]!.GetValue<string>()).ToList();
        CollectionAssert.IsSubsetOf(new[] { "qmp_capabilities", "query-version", "query-commands", "quit" }, names);
        var notFound = await Assert.ThrowsExactlyAsync<QmpException>(() => client.ExecuteAsync("no-such-command"));
        Assert.AreEqual("The command no-such-command has not been found", notFound.Message);
    }

    [TestMethod]
    public async Task Capabilities_that_were_not_offered_cannot_be_enabled()
    {
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync(negotiate: false);
        var ex = await Assert.ThrowsExactlyAsync<QmpException>(() =>
            client.ExecuteAsync("qmp_capabilities", new JsonObject { ["enable"] = new JsonArray("oob") }));
        Assert.AreEqual("Capability 'oob' not available", ex.Message);
        await client.NegotiateAsync();
    }

    [TestMethod]
    public async Task The_id_is_echoed_verbatim_for_every_JSON_type()
    {
        string[] ids = ["1", "-7", "1.5", "18446744073709551615", "\"x\"", "\"\\u00e9\"", "null", "true", "[]", "{}", "[1, {\"a\": null}]", "{\"b\": [true, \"s\"]}",
            new string('[', 1000) + new string(']', 1000)];
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync();
        foreach (var id in ids)
        {
            var ok = await RawConversation.SendAsync(client, Encoding.UTF8.GetBytes("{\"execute\": \"query-version\", \"id\": " + id + "}"));
            Assert.AreEqual(1, ok.Count, id);
            Assert.IsTrue(JsonNode.DeepEquals(Parse(id), ok[0]["id"]), $"id {id} came back as {ok[0]["id"]?.ToJsonString()}");
            Assert.IsTrue(ok[0].ContainsKey("return"));

            var failed = await RawConversation.SendAsync(client, Encoding.UTF8.GetBytes("{\"execute\": \"nope\", \"id\": " + id + "}"));
            Assert.IsTrue(failed[0].ContainsKey("id"), id);
            Assert.IsTrue(JsonNode.DeepEquals(Parse(id), failed[0]["id"]), id);
        }
    }

    private static JsonNode? Parse(string json) => JsonNode.Parse(json, documentOptions: new System.Text.Json.JsonDocumentOptions { MaxDepth = 2048 });

    public static IEnumerable<object[]> BadInputs =>
    [
        ["malformed JSON", "{\"execute\": \"query-version\",}\n", new[] { "GenericError: JSON parse error, expecting value" }],
        ["not an object", "[1, 2]\n", new[] { "GenericError: QMP input must be a JSON object" }],
        ["a scalar", "42\n", new[] { "GenericError: QMP input must be a JSON object" }],
        ["execute not a string", "{\"execute\": 1}\n", new[] { "GenericError: QMP input member 'execute' must be a string" }],
        ["arguments not an object", "{\"execute\": \"query-version\", \"arguments\": []}\n", new[] { "GenericError: QMP input member 'arguments' must be an object" }],
        ["no execute", "{\"id\": 5}\n", new[] { "GenericError: QMP input lacks member 'execute'" }],
        ["unexpected member", "{\"execute\": \"query-version\", \"foo\": 1}\n", new[] { "GenericError: QMP input member 'foo' is unexpected" }],
        ["unknown command", "{\"execute\": \"frobnicate\"}\n", new[] { "CommandNotFound: The command frobnicate has not been found" }],
        ["unexpected argument", "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}\n", new[] { "GenericError: Parameter 'x' is unexpected" }],
        ["wrong argument type", "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": \"oob\"}}\n", new[] { "GenericError: Invalid parameter type for 'enable', expected: array" }],
        ["invalid UTF-8 in a string", "{\"execute\": \"qu\u00c3ry\"}\n", new[] { "GenericError: JSON parse error, invalid UTF-8 sequence in string" }],
        ["a stray byte", "\u00ff\n", new[] { "GenericError: JSON parse error, stray '\ufffd'" }],
        ["deep nesting", new string('[', 1025) + new string(']', 1024) + "\n",
            new[] { "GenericError: JSON nesting depth limit exceeded" }.Concat(Enumerable.Repeat("GenericError: JSON parse error, expecting value", 1024)).ToArray()],
    ];

    [TestMethod]
    [DynamicData(nameof(BadInputs))]
    public async Task Bad_input_gets_a_QMP_error_and_every_client_keeps_being_served(string kind, string input, string[] expected)
    {
        await using var daemon = Jobcored.Start();
        await using var bystander = await daemon.ConnectAsync();
        await using var client = await daemon.ConnectAsync();
        var replies = await RawConversation.SendAsync(client, Encoding.Latin1.GetBytes(input));
        CollectionAssert.AreEqual(expected, replies.Select(RawConversation.Describe).ToArray(), kind);
        Assert.IsNotNull(await client.ExecuteAsync("query-version"), kind);
        Assert.IsNotNull(await bystander.ExecuteAsync("query-version"), kind);
    }

    [TestMethod]
    public async Task A_64_MiB_line_is_refused_without_disturbing_other_clients()
    {
        await using var daemon = Jobcored.Start();
        await using var bystander = await daemon.ConnectAsync();
        await using var client = await daemon.ConnectAsync();
        // The same bytes QEMU 7.2 was fed: a 64 MiB string value (QEMU took 261 s and gave the two errors below).
        var head = Encoding.ASCII.GetBytes("{\"execute\": \"query-version\", \"id\": \"");
        var line = new byte[head.Length + (64 << 20) + 3];
        head.CopyTo(line, 0);
        line.AsSpan(head.Length).Fill((byte)'a');
        "\"}\n"u8.CopyTo(line.AsSpan(line.Length - 3));

        var stopwatch = Stopwatch.StartNew();
        var sending = RawConversation.SendAsync(client, line, TimeSpan.FromSeconds(120));

        // While the big line streams in, another client is answered at once.
        Assert.IsNotNull(await bystander.ExecuteAsync("query-version").WaitAsync(TimeSpan.FromSeconds(10)));
        var replies = await sending;
        stopwatch.Stop();
        CollectionAssert.AreEqual(
            new[] { "GenericError: JSON token size limit exceeded", "GenericError: JSON parse error, stray '\"}\n'" },
            replies.Select(RawConversation.Describe).ToArray());
        Assert.IsNotNull(await client.ExecuteAsync("query-version"));
        Console.WriteLine($"64 MiB line refused in {stopwatch.Elapsed.TotalSeconds:F2} s");
    }

    [TestMethod]
    public async Task Clients_that_disconnect_mid_message_or_mid_command_do_not_disturb_the_daemon()
    {
        await using var daemon = Jobcored.Start();
        await using var bystander = await daemon.ConnectAsync();
        for (var i = 0; i < 20; i++)
        {
            using var raw = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await raw.ConnectAsync(new UnixDomainSocketEndPoint(daemon.SocketPath));
            var text = (i % 4) switch
            {
                0 => "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-",
                1 => "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-commands\"}\n{\"execute\": \"query-version\"}\n",
                2 => "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-version\", \"id\": \"" + new string('x', 1 << 20),
                _ => new string('[', 1000),
            };
            await raw.SendAsync(Encoding.ASCII.GetBytes(text));
            raw.Close();
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.IsNotNull(await bystander.ExecuteAsync("query-version", null, cts.Token));
        await using var fresh = await daemon.ConnectAsync();
        Assert.IsNotNull(await fresh.ExecuteAsync("query-commands", null, cts.Token));
        Assert.IsFalse(daemon.Process.Process.HasExited);
    }

    [TestMethod]
    public async Task Quit_replies_sends_SHUTDOWN_to_every_client_and_exits_0()
    {
        await using var daemon = Jobcored.Start();
        await using var other = await daemon.ConnectAsync();
        await using var client = await daemon.ConnectAsync(transcript: true);
        var result = await client.ExecuteAsync("quit");
        Assert.AreEqual("{}", result!.ToJsonString());
        var shutdown = await client.WaitForEventAsync(e => e["event"]!.GetValue<string>() == "SHUTDOWN", TimeSpan.FromSeconds(30));
        Assert.AreEqual("host-qmp-quit", shutdown["data"]!["reason"]!.GetValue<string>());
        Assert.IsFalse(shutdown["data"]!["guest"]!.GetValue<bool>());
        Assert.IsTrue(shutdown["timestamp"]!["seconds"]!.GetValue<long>() > 1_600_000_000);
        await other.WaitForEventAsync(e => e["event"]!.GetValue<string>() == "SHUTDOWN", TimeSpan.FromSeconds(30));

        // QEMU 7.2's order (seen on its monitor): SHUTDOWN and the end of every job come before quit's return.
        var transcript = client.Transcript.ToList();
        var quitIndex = transcript.FindLastIndex(m => m.ContainsKey("return"));
        var shutdownIndex = transcript.FindIndex(m => m["event"]?.GetValue<string>() == "SHUTDOWN");
        Assert.IsTrue(shutdownIndex >= 0 && shutdownIndex < quitIndex, "SHUTDOWN must precede quit's return");

        Assert.AreEqual(0, await daemon.Process.WaitForExitAsync(ExitTimeout));
        Assert.IsFalse(File.Exists(daemon.SocketPath), "the socket file is removed at exit");
    }

    [TestMethod]
    public async Task Sigterm_shuts_down_like_quit_and_exits_0()
    {
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync();
        using (var kill = Process.Start("kill", ["-TERM", daemon.Process.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
            Assert.AreEqual(0, kill.ExitCode);
        }

        var shutdown = await client.WaitForEventAsync(e => e["event"]!.GetValue<string>() == "SHUTDOWN", TimeSpan.FromSeconds(30));
        Assert.AreEqual("host-signal", shutdown["data"]!["reason"]!.GetValue<string>());
        Assert.AreEqual(0, await daemon.Process.WaitForExitAsync(ExitTimeout));
    }

    [TestMethod]
    public async Task The_unix_socket_is_private_and_a_stale_one_is_replaced()
    {
        await using var daemon = Jobcored.Start(dir =>
        {
            // A socket file left behind by a dead server: bound, never unlinked.
            using var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            stale.Bind(new UnixDomainSocketEndPoint(dir.File("qmp.sock")));
        });
        await using var client = await daemon.ConnectAsync();
        Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(daemon.SocketPath));
    }

    [TestMethod]
    public async Task A_second_daemon_does_not_steal_a_live_socket()
    {
        await using var daemon = Jobcored.Start();
        await using var client = await daemon.ConnectAsync();
        await using var second = ChildProcess.Start("dotnet", [Jobcored.DllPath, "--qmp", daemon.Endpoint]);
        Assert.AreEqual(1, await second.WaitForExitAsync(ExitTimeout));
        StringAssert.Contains(second.Output, "in use by a running server");
        Assert.IsNotNull(await client.ExecuteAsync("query-version"));
    }

    [TestMethod]
    public async Task Several_endpoints_including_tcp_serve_at_once()
    {
        await using var daemon = Jobcored.Start("--qmp", "tcp::0", "--qmp", "tcp:127.0.0.1:0,server=on,wait=off");
        await using var unix = await daemon.ConnectAsync();
        var line = await daemon.Process.WaitForOutputAsync(@"QMP listening on tcp:127\.0\.0\.1:\d+", TimeSpan.FromSeconds(30));
        var endpoint = line[line.IndexOf("tcp:", StringComparison.Ordinal)..].Trim();
        await using var tcp = await QmpClient.ConnectAsync(endpoint, TimeSpan.FromSeconds(10));
        await tcp.NegotiateAsync();
        Assert.IsNotNull(await tcp.ExecuteAsync("query-version"));
        Assert.IsNotNull(await unix.ExecuteAsync("query-version"));
    }

    [TestMethod]
    [DataRow("bogus:x")]
    [DataRow("unix:/tmp/x.sock,server=on,telnet=on")]
    [DataRow("tcp:localhost")]
    public async Task A_bad_endpoint_is_refused_with_a_clear_message(string endpoint)
    {
        await using var daemon = ChildProcess.Start("dotnet", [Jobcored.DllPath, "--qmp", endpoint]);
        Assert.AreEqual(2, await daemon.WaitForExitAsync(ExitTimeout));
        StringAssert.Contains(daemon.Output, endpoint.Split(',')[0]);
    }

    [TestMethod]
    public async Task A_missing_plugin_directory_is_refused_with_a_clear_message()
    {
        await using var daemon = ChildProcess.Start("dotnet", [Jobcored.DllPath, "--qmp", "unix:/tmp/jcq-never.sock", "--plugins", "/nonexistent/plugins"]);
        Assert.AreEqual(2, await daemon.WaitForExitAsync(ExitTimeout));
        StringAssert.Contains(daemon.Output, "Plugin directory '/nonexistent/plugins' does not exist");
    }
}
