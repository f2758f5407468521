using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using System.Text.Json;
using JobCore.Qmp.Json;

namespace JobCore.Qmp;

/// <summary>
/// A QMP client for jobcored and for QEMU's own monitor: connects, reads the greeting, negotiates, runs commands
/// (pipelined; QMP answers in request order) and delivers events through <see cref="Events"/>.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Queue<TaskCompletionSource<JsonObject>> _pending = new();
    private readonly Lock _sendLock = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Channel<JsonObject> _events = Channel.CreateUnbounded<JsonObject>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Channel<JsonObject> _unsolicited = Channel.CreateUnbounded<JsonObject>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly TaskCompletionSource<JsonObject> _greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<JsonObject>? _transcript;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _readLoop;

    private QmpClient(Socket socket, bool recordTranscript)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _transcript = recordTranscript ? [] : null;
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>The greeting the server sent on connect (<c>{"QMP": {...}}</c>).</summary>
    public JsonObject Greeting { get; private set; } = [];

    /// <summary>Events (<c>{"event", "data", "timestamp"}</c>) in arrival order. Completes when the connection ends.</summary>
    public ChannelReader<JsonObject> Events => _events.Reader;

    /// <summary>Replies that answered no command of this client (e.g. to bytes sent with <see cref="SendRawAsync"/>).</summary>
    public ChannelReader<JsonObject> UnsolicitedReplies => _unsolicited.Reader;

    /// <summary>Completes when the server closes the connection.</summary>
    public Task Completion => _readLoop;

    /// <summary>Every message received so far, in order, when the client was created with a transcript.</summary>
    public IReadOnlyList<JsonObject> Transcript
    {
        get
        {
            if (_transcript is null)
            {
                throw new InvalidOperationException("This client was connected without recordTranscript");
            }

            lock (_transcript)
            {
                return [.. _transcript];
            }
        }
    }

    /// <summary>
    /// Connects to <paramref name="endpoint"/> and waits for the greeting. Retries a refused or missing socket
    /// until <paramref name="retryFor"/> has passed (useful right after starting a server).
    /// </summary>
    /// <exception cref="SocketException">No server accepted within the retry period.</exception>
    public static async Task<QmpClient> ConnectAsync(QmpEndpoint endpoint, TimeSpan retryFor = default, bool recordTranscript = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var deadline = TimeProvider.System.GetTimestamp() + (long)(retryFor.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            var socket = endpoint.IsUnix
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(endpoint.ToEndPoint(), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException) when (TimeProvider.System.GetTimestamp() < deadline)
            {
                socket.Dispose();
                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            var client = new QmpClient(socket, recordTranscript);
            try
            {
                client.Greeting = await client._greeting.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await client.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            return client;
        }
    }

    /// <summary>Parses <paramref name="endpoint"/> (see <see cref="QmpEndpoint.Parse"/>) and connects.</summary>
    public static Task<QmpClient> ConnectAsync(string endpoint, TimeSpan retryFor = default, bool recordTranscript = false, CancellationToken cancellationToken = default) =>
        ConnectAsync(QmpEndpoint.Parse(endpoint), retryFor, recordTranscript, cancellationToken);

    /// <summary>Runs <c>qmp_capabilities</c>.</summary>
    /// <exception cref="QmpException">The server refused.</exception>
    public Task NegotiateAsync(CancellationToken cancellationToken = default) =>
        ExecuteAsync(QmpProtocol.CapabilitiesCommand, null, cancellationToken);

    /// <summary>Runs <paramref name="command"/> and returns its <c>return</c> value.</summary>
    /// <exception cref="QmpException">The server answered with an error (its class and text).</exception>
    /// <exception cref="IOException">The connection closed before the reply.</exception>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments = null, CancellationToken cancellationToken = default)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            request["arguments"] = arguments.DeepClone();
        }

        var reply = await RequestAsync(request, cancellationToken).ConfigureAwait(false);
        if (reply["error"] is JsonObject error)
        {
            throw new QmpException(error["class"]?.GetValue<string>() ?? QmpErrorClass.GenericError, error["desc"]?.GetValue<string>() ?? string.Empty);
        }

        return reply["return"];
    }

    /// <summary>Sends <paramref name="request"/> as is and returns the whole reply (<c>return</c> or <c>error</c>, and <c>id</c>).</summary>
    /// <exception cref="IOException">The connection closed before the reply.</exception>
    public Task<JsonObject> RequestAsync(JsonObject request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAndExpectReplyAsync(QmpJsonWriter.ToLine(request), cancellationToken);
    }

    /// <summary>Sends raw bytes; replies they cause arrive in <see cref="UnsolicitedReplies"/>.</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Waits for the next event satisfying <paramref name="predicate"/>, discarding others.</summary>
    /// <exception cref="TimeoutException">None arrived within <paramref name="timeout"/>.</exception>
    public async Task<JsonObject> WaitForEventAsync(Func<JsonObject, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await foreach (var e in _events.Reader.ReadAllAsync(cts.Token).ConfigureAwait(false))
            {
                if (predicate(e))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no matching QMP event within {timeout}");
        }

        throw new IOException("QMP connection closed while waiting for an event");
    }

    /// <summary>Closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }

        _writeLock.Dispose();
        _stop.Dispose();
    }

    private async Task<JsonObject> SendAndExpectReplyAsync(byte[] line, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_sendLock)
            {
                if (_readLoop.IsCompleted)
                {
                    throw new IOException("QMP connection is closed");
                }

                _pending.Enqueue(tcs);
            }

            await _stream.WriteAsync(line, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }

        return await tcs.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task ReadLoopAsync()
    {
        // QMP servers (QEMU and jobcored) write one message per line, so lines are parsed directly.
        var buffer = new byte[64 * 1024];
        var pending = new MemoryStream();
        try
        {
            while (true)
            {
                var n = await _stream.ReadAsync(buffer, _stop.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                var chunk = buffer.AsSpan(0, n);
                int newline;
                while ((newline = chunk.IndexOf((byte)'\n')) >= 0)
                {
                    if (pending.Length > 0)
                    {
                        pending.Write(chunk[..newline]);
                        DeliverLine(pending.GetBuffer().AsSpan(0, (int)pending.Length));
                        pending.SetLength(0);
                    }
                    else
                    {
                        DeliverLine(chunk[..newline]);
                    }

                    chunk = chunk[(newline + 1)..];
                }

                pending.Write(chunk);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // Closed.
        }
        finally
        {
            _events.Writer.TryComplete();
            _unsolicited.Writer.TryComplete();
            _greeting.TrySetException(new IOException("QMP connection closed before the greeting"));
            lock (_sendLock)
            {
                while (_pending.TryDequeue(out var tcs))
                {
                    tcs.TrySetException(new IOException("QMP connection closed before the reply"));
                }
            }
        }
    }

    private void DeliverLine(ReadOnlySpan<byte> line)
    {
        if (line.Trim(" \t\r"u8).IsEmpty)
        {
            return;
        }

        JsonNode? node;
        try
        {
            // Ids are echoed verbatim and may nest as deep as the server accepts (1024 for QEMU and jobcored).
            node = JsonNode.Parse(line, documentOptions: new JsonDocumentOptions { MaxDepth = 2048 });
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            // Not JSON (QEMU prints an id of 1e400 as "inf"): still answer the waiting request, with an error.
            node = new JsonObject
            {
                ["error"] = new JsonObject { ["class"] = QmpErrorClass.GenericError, ["desc"] = "unparsable message from the server: " + ex.Message },
            };
        }

        if (node is JsonObject message)
        {
            Deliver(message);
        }
    }

    private void Deliver(JsonObject message)
    {
        if (_transcript is not null)
        {
            lock (_transcript)
            {
                _transcript.Add(message);
            }
        }

        if (message.ContainsKey("QMP"))
        {
            _greeting.TrySetResult(message);
        }
        else if (message.ContainsKey("event"))
        {
            _events.Writer.TryWrite(message);
        }
        else
        {
            TaskCompletionSource<JsonObject>? waiter;
            lock (_sendLock)
            {
                _pending.TryDequeue(out waiter);
            }

            if (waiter is not null)
            {
                waiter.TrySetResult(message);
            }
            else
            {
                _unsolicited.Writer.TryWrite(message);
            }
        }
    }
}
