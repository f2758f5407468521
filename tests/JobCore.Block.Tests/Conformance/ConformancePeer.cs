using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Conformance;

/// <summary>
/// One QMP peer for the differential tests: qemu-system-x86_64 7.2 (the reference) or the real jobcored with the block
/// plugin, each in its own temp directory, reached over a UNIX socket. Messages are read as raw lines in wire order,
/// so the transcript shows exactly which events came before which reply.
/// </summary>
internal sealed class ConformancePeer : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly QmpPeerProcess _process;
    private readonly Channel<JsonObject> _messages = Channel.CreateUnbounded<JsonObject>();
    private Socket? _socket;
    private NetworkStream? _stream;
    private Task? _reader;

    private ConformancePeer(QmpPeerProcess process)
    {
        _process = process;
    }

    /// <summary><c>qemu</c> or <c>jobcored</c>.</summary>
    public string Name => _process.Name;

    /// <summary>The peer's own temp directory (its images live here; replaced by <c>$DIR</c> in transcripts).</summary>
    public string Directory => _process.Directory;

    public string Output => _process.Output;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts QEMU or jobcored after <paramref name="prepare"/> made the images in the peer's directory.</summary>
    public static async Task<ConformancePeer> StartAsync(bool qemu, Func<string, Task>? prepare = null)
    {
        Func<string, Task<string[]>>? images = prepare is null ? null : async dir =>
        {
            await prepare(dir);
            return [];
        };
        var peer = new ConformancePeer(await QmpPeerProcess.StartAsync(qemu, images));
        try
        {
            await peer.ConnectAsync(peer._process.Socket);
            JsonObject greeting = await peer.ReadAsync();
            Assert.IsNotNull(greeting["QMP"], $"{peer.Name}: no greeting: {greeting.ToJsonString()}");
            JsonObject reply = await peer.SendAsync("""{"execute":"qmp_capabilities"}""");
            Assert.IsNotNull(reply["return"], $"{peer.Name}: negotiation failed: {reply.ToJsonString()}");
            return peer;
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or AssertFailedException)
        {
            string output = peer.Output;
            await peer.DisposeAsync();
            throw new AssertFailedException($"cannot talk to {peer.Name}: {e.Message}\n{output}", e);
        }
    }

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

        await _process.DisposeAsync();
        _socket?.Dispose();
        if (_reader is not null)
        {
            await _reader;
        }
    }
}
