using System.Text.Json.Nodes;

namespace JobCore.Qmp.Tests.Infrastructure;

/// <summary>The real jobcored process (the jobcored.dll next to the tests), listening on a UNIX socket in a fresh temp dir.</summary>
internal sealed class Jobcored : IAsyncDisposable
{
    private readonly TempDirectory _dir;

    private Jobcored(TempDirectory dir, ChildProcess process, string socket)
    {
        _dir = dir;
        Process = process;
        SocketPath = socket;
    }

    public ChildProcess Process { get; }

    public string SocketPath { get; }

    public string Endpoint => "unix:" + SocketPath;

    public TempDirectory Directory => _dir;

    public static string DllPath
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "jobcored.dll");
            Assert.IsTrue(File.Exists(path), $"jobcored.dll not found next to the tests at {path}");
            return path;
        }
    }

    /// <summary>Starts jobcored with <c>--qmp unix:DIR/qmp.sock</c> plus <paramref name="extraArguments"/>.</summary>
    public static Jobcored Start(params string[] extraArguments) => Start(null, extraArguments);

    /// <summary>Starts jobcored after <paramref name="prepare"/> ran on its fresh directory; its working directory is that directory.</summary>
    public static Jobcored Start(Action<TempDirectory>? prepare, params string[] extraArguments) =>
        Start(prepare, null, extraArguments);

    /// <summary>Starts jobcored with the test assembly as a plugin (<c>--plugins</c>): job type <c>x-test</c>, command <c>x-test-job-start</c>.</summary>
    public static Jobcored StartWithTestPlugin(IDictionary<string, string>? environment = null, params string[] extraArguments) =>
        Start(
            dir =>
            {
                var assembly = typeof(Jobs.TestJobPlugin).Assembly.Location;
                var plugins = System.IO.Directory.CreateDirectory(dir.File("plugins")).FullName;
                File.Copy(assembly, Path.Combine(plugins, Path.GetFileName(assembly)));
            },
            environment,
            ["--plugins", "plugins", .. extraArguments]);

    /// <summary>Starts jobcored with extra environment variables.</summary>
    public static Jobcored Start(Action<TempDirectory>? prepare, IDictionary<string, string>? environment, params string[] extraArguments)
    {
        var dir = new TempDirectory();
        prepare?.Invoke(dir);
        var socket = dir.File("qmp.sock");
        string[] args = [DllPath, "--qmp", "unix:" + socket + ",server=on,wait=off", .. extraArguments];
        return new Jobcored(dir, ChildProcess.Start("dotnet", args, environment, dir.Path), socket);
    }

    /// <summary>Connects (waiting for the socket to appear) and, unless told otherwise, negotiates.</summary>
    public Task<QmpClient> ConnectAsync(bool negotiate = true, bool transcript = false) =>
        ConnectAsync(Endpoint, Process, negotiate, transcript);

    /// <summary>Connects to a server this test started, failing with the server's output when it cannot.</summary>
    internal static async Task<QmpClient> ConnectAsync(string endpoint, ChildProcess server, bool negotiate, bool transcript)
    {
        QmpClient client;
        try
        {
            client = await QmpClient.ConnectAsync(endpoint, TimeSpan.FromSeconds(30), transcript);
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or TimeoutException)
        {
            throw new AssertFailedException($"cannot connect to {endpoint}: {ex.Message}; server output:\n{server.Output}", ex);
        }

        if (negotiate)
        {
            await client.NegotiateAsync();
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>QEMU 7.2's monitor as the reference peer: <c>qemu-system-x86_64 -machine none -nodefaults -display none -qmp unix:...</c>.</summary>
internal sealed class QemuMonitor : IAsyncDisposable
{
    private readonly TempDirectory _dir = new();

    private QemuMonitor() => SocketPath = _dir.File("qemu.sock");

    public string SocketPath { get; }

    public string Endpoint => "unix:" + SocketPath;

    public ChildProcess Process { get; private set; } = null!;

    public static QemuMonitor Start()
    {
        const string qemu = "/usr/bin/qemu-system-x86_64";
        Assert.IsTrue(File.Exists(qemu), "qemu-system-x86_64 is required (apt-get install qemu-system-x86)");
        var m = new QemuMonitor();
        m.Process = ChildProcess.Start(qemu, ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", "unix:" + m.SocketPath + ",server=on,wait=off"]);
        return m;
    }

    public Task<QmpClient> ConnectAsync(bool negotiate = true) => Jobcored.ConnectAsync(Endpoint, Process, negotiate, transcript: false);

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>Helpers for raw-byte conversations.</summary>
internal static class RawConversation
{
    private static int s_sync;

    /// <summary>
    /// Sends <paramref name="bytes"/>, then a marker command, and returns the replies that came before the marker's
    /// reply (exactly the replies the bytes caused, since QMP answers in order).
    /// </summary>
    /// <param name="resync">Precede the marker with 0xFF and a newline, which ends whatever state the bytes left the
    /// peer's parser in (its replies are then part of the result).</param>
    public static async Task<List<JsonObject>> SendAsync(QmpClient client, byte[] bytes, TimeSpan? timeout = null, bool resync = false)
    {
        var id = "sync-" + Interlocked.Increment(ref s_sync);
        await client.SendRawAsync(bytes);
        var marker = System.Text.Encoding.ASCII.GetBytes("\n{\"execute\":\"query-version\",\"id\":\"" + id + "\"}\n");
        await client.SendRawAsync(resync ? [0xFF, (byte)'\n', .. marker] : marker);
        var replies = new List<JsonObject>();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var reply = await client.UnsolicitedReplies.ReadAsync(cts.Token);
            if (reply["id"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && reply["id"]!.GetValue<string>() == id)
            {
                Assert.IsNotNull(reply["return"], "the marker command failed: " + reply.ToJsonString());
                return replies;
            }

            replies.Add(reply);
        }
    }

    /// <summary>"class: desc" of an error reply, or "return" for a success.</summary>
    public static string Describe(JsonObject reply) =>
        reply["error"] is JsonObject e ? $"{e["class"]}: {e["desc"]}" : "return";
}
