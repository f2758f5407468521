using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace JobCore.Block.Tests.Conformance;

/// <summary>
/// One QMP peer for the differential tests: qemu-system-x86_64 7.2 (the reference) or the real jobcored with the block
/// plugin, each in its own temp directory, reached over a UNIX socket. Messages are read as raw lines in wire order,
/// so the transcript shows exactly which events came before which reply.
/// </summary>
internal sealed class ConformancePeer : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Channel<JsonObject> _messages = Channel.CreateUnbounded<JsonObject>();
    private Socket? _socket;
    private NetworkStream? _stream;
    private Task? _reader;

    private ConformancePeer(string name, string directory, Process process)
    {
        Name = name;
        Directory = directory;
        _process = process;
    }

    /// <summary><c>qemu</c> or <c>jobcored</c>.</summary>
    public string Name { get; }

    /// <summary>The peer's own temp directory (its images live here; replaced by <c>$DIR</c> in transcripts).</summary>
    public string Directory { get; }

    public static Task<ConformancePeer> StartAsync(bool qemu, Func<string, Task>? prepare = null) =>
        qemu ? StartQemuAsync(prepare) : StartJobcoredAsync(prepare);

    public static Task<ConformancePeer> StartQemuAsync(Func<string, Task>? prepare = null)
    {
        const string qemu = "/usr/bin/qemu-system-x86_64";
        Assert.IsTrue(File.Exists(qemu), "qemu-system-x86_64 is required (apt-get install qemu-system-x86)");
        return StartAsync("qemu", qemu, (dir, sock) => ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{sock},server=on,wait=off"], prepare);
    }

    public static Task<ConformancePeer> StartJobcoredAsync(Func<string, Task>? prepare = null)
    {
        string daemon = Path.Combine(AppContext.BaseDirectory, "jobcored.dll");
        Assert.IsTrue(File.Exists(daemon), $"jobcored.dll not found next to the tests at {daemon}");
        string plugin = typeof(JobCore.Block.BlockPlugin).Assembly.Location;
        return StartAsync("jobcored", "dotnet", (dir, sock) =>
        {
            string plugins = Path.Combine(dir, "plugins");
            System.IO.Directory.CreateDirectory(plugins);
            File.Copy(plugin, Path.Combine(plugins, Path.GetFileName(plugin)));
            return [daemon, "--qmp", $"unix:{sock},server=on,wait=off", "--plugins", plugins];
        }, prepare);
    }

    private static async Task<ConformancePeer> StartAsync(string name, string program, Func<string, string, string[]> arguments, Func<string, Task>? prepare)
    {
        string dir = Path.Combine(Path.GetTempPath(), "jobcore-conf-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        if (prepare is not null)
        {
            await prepare(dir);
        }

        string sock = Path.Combine(dir, "qmp.sock");
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (string a in arguments(dir, sock))
        {
            psi.ArgumentList.Add(a);
        }

        var process = new Process { StartInfo = psi };
        var peer = new ConformancePeer(name, dir, process);
        process.OutputDataReceived += (_, e) => peer.Append(e.Data);
        process.ErrorDataReceived += (_, e) => peer.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await peer.ConnectAsync(sock);
            JsonObject greeting = await peer.ReadAsync();
            Assert.IsNotNull(greeting["QMP"], $"{name}: no greeting: {greeting.ToJsonString()}");
            JsonObject reply = await peer.SendAsync("""{"execute":"qmp_capabilities"}""");
            Assert.IsNotNull(reply["return"], $"{name}: negotiation failed: {reply.ToJsonString()}");
            return peer;
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or AssertFailedException)
        {
            string output = peer.Output;
            await peer.DisposeAsync();
            throw new AssertFailedException($"cannot talk to {name}: {e.Message}\n{output}", e);
        }
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    private async Task ConnectAsync(string sock)
    {
        long deadline = Environment.TickCount64 + 30_000;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(sock));
                _socket = socket;
                _stream = new NetworkStream(socket, ownsSocket: true);
                _reader = Task.Run(ReadLoopAsync);
                return;
            }
            catch (SocketException) when (Environment.TickCount64 < deadline && !_process.HasExited)
            {
                socket.Dispose();
                await Task.Delay(20);
            }
        }
    }

    private async Task ReadLoopAsync()
    {
        var pending = new List<byte>();
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                int n = await _stream!.ReadAsync(buffer);
                if (n == 0)
                {
                    break;
                }

                for (int i = 0; i < n; i++)
                {
                    if (buffer[i] == (byte)'\n')
                    {
                        string line = Encoding.UTF8.GetString([.. pending]).TrimEnd('\r');
                        pending.Clear();
                        if (line.Length > 0)
                        {
                            await _messages.Writer.WriteAsync(JsonNode.Parse(line)!.AsObject());
                        }
                    }
                    else
                    {
                        pending.Add(buffer[i]);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            // Connection gone.
        }
        finally
        {
            _messages.Writer.TryComplete();
        }
    }

    /// <summary>Next message in wire order (event or reply).</summary>
    /// <exception cref="IOException">The peer closed the connection.</exception>
    /// <exception cref="TimeoutException">Nothing arrived in time.</exception>
    public async Task<JsonObject> ReadAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        try
        {
            if (!await _messages.Reader.WaitToReadAsync(cts.Token))
            {
                throw new IOException($"{Name} closed the connection");
            }

            return await _messages.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} sent nothing within {timeout ?? Timeout}");
        }
    }

    /// <summary>Whether a message is already waiting (no blocking).</summary>
    public bool TryRead(out JsonObject? message) => _messages.Reader.TryRead(out message);

    /// <summary>Sends one command line and returns its reply; events before it are left for the caller via <paramref name="before"/>.</summary>
    public async Task<JsonObject> SendAsync(string json, List<JsonObject>? before = null)
    {
        await WriteAsync(json + "\n");
        while (true)
        {
            JsonObject m = await ReadAsync();
            if (m["event"] is null)
            {
                return m;
            }

            before?.Add(m);
        }
    }

    public async Task WriteAsync(string text)
    {
        await _stream!.WriteAsync(Encoding.UTF8.GetBytes(text));
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream is not null && !_process.HasExited)
        {
            try
            {
                await WriteAsync("{\"execute\":\"quit\"}\n");
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
                // Already gone.
            }
        }

        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _socket?.Dispose();
        if (_reader is not null)
        {
            await _reader;
        }

        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }
}
