using System.Net.Sockets;
using System.Threading.Channels;
using JobCore.Qmp.Json;
using Microsoft.Extensions.Logging;

namespace JobCore.Qmp;

/// <summary>
/// One connected client: reads and dispatches its commands one at a time (QEMU's order), and writes replies and
/// events from a bounded queue of its own, so a client that stops reading is dropped instead of slowing anyone.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Plain CancellationTokenSources (no timer, not linked) own nothing to release.")]
internal sealed class QmpSession
{
    private readonly QmpServer _server;
    private readonly Stream _stream;
    private readonly ILogger _logger;
    private readonly Channel<byte[]> _outgoing;
    private readonly CancellationTokenSource _stopReading = new();
    private readonly CancellationTokenSource _stopWriting = new();
    private readonly QmpJsonStreamer _streamer;
    private List<Action>? _afterReply;
    private int _dropped;
    private volatile bool _outputClosed;

    public QmpSession(QmpServer server, Stream stream, string name, ILogger logger)
    {
        _server = server;
        _stream = stream;
        Name = name;
        _logger = logger;
        _streamer = new QmpJsonStreamer(server.Options.Limits);
        _outgoing = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(server.Options.Limits.OutgoingQueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Name for logs, e.g. <c>unix#3</c>.</summary>
    public string Name { get; }

    /// <summary>Whether the client completed <c>qmp_capabilities</c> (and so receives events).</summary>
    public volatile bool Negotiated;

    /// <summary>Runs an action once the reply to the current command is queued (e.g. <c>quit</c>'s shutdown).</summary>
    public void AfterReply(Action action) => (_afterReply ??= []).Add(action);

    /// <summary>Queues one serialized line; a full queue means the client is not reading, so it is dropped.</summary>
    public void Enqueue(byte[] line)
    {
        if (!_outgoing.Writer.TryWrite(line) && !_outputClosed)
        {
            Drop($"its outgoing queue is full ({_server.Options.Limits.OutgoingQueueCapacity} messages): it does not read");
        }
    }

    /// <summary>Serves the client until it disconnects, is dropped, or the server stops.</summary>
    public async Task RunAsync(CancellationToken serverStopping)
    {
        var writer = Task.Run(() => WriteLoopAsync(_stopWriting.Token), CancellationToken.None);
        var reg = serverStopping.Register(() => _stopReading.Cancel());
        Enqueue(QmpJsonWriter.ToLine(QmpDispatcher.Greeting(_server.Options.Version)));
        var buffer = new byte[64 * 1024];
        try
        {
            while (!_stopReading.IsCancellationRequested)
            {
                var n = await _stream.ReadAsync(buffer, _stopReading.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                foreach (var message in _streamer.Feed(buffer.AsSpan(0, n)))
                {
                    using (await _server.EnterCommandScopesAsync(serverStopping).ConfigureAwait(false))
                    {
                        var reply = await QmpDispatcher.DispatchAsync(_server, this, message, serverStopping).ConfigureAwait(false);
                        _server.FlushBeforeReply();
                        Enqueue(QmpJsonWriter.ToLine(reply));
                    }

                    RunAfterReply();
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            QmpLog.ConnectionEnded(_logger, Name, ex.GetType().Name);
        }
        catch (Exception ex)
        {
            // A bug must cost this one connection, never the daemon.
            QmpLog.SessionFailed(_logger, ex, Name);
        }
        finally
        {
            await reg.DisposeAsync().ConfigureAwait(false);

            // Let queued replies and events reach a client that only half-closed (e.g. socat after its input ends).
            _outputClosed = true;
            _outgoing.Writer.TryComplete();
            await FinishWritingAsync(writer).ConfigureAwait(false);
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void RunAfterReply()
    {
        var actions = _afterReply;
        _afterReply = null;
        foreach (var action in actions ?? [])
        {
            action();
        }
    }

    private async Task FinishWritingAsync(Task writer)
    {
        try
        {
            await writer.WaitAsync(_server.Options.DrainTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            QmpLog.DrainTimedOut(_logger, Name, _server.Options.DrainTimeout);
        }
        finally
        {
            await _stopWriting.CancelAsync().ConfigureAwait(false);
        }
    }

    private async Task WriteLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            var reader = _outgoing.Reader;
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var line))
                {
                    await _stream.WriteAsync(line, cancellationToken).ConfigureAwait(false);
                }

                await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // The peer went away or the session was dropped; stop reading too.
            await _stopReading.CancelAsync().ConfigureAwait(false);
        }
    }

    private void Drop(string reason)
    {
        if (Interlocked.Exchange(ref _dropped, 1) != 0)
        {
            return;
        }

        QmpLog.Dropped(_logger, Name, reason);
        _outputClosed = true;
        _outgoing.Writer.TryComplete();
        _stopReading.Cancel();
        _stopWriting.Cancel();
        _stream.Dispose();
    }
}
