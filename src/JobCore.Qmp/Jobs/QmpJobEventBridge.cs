using Microsoft.Extensions.Logging;

namespace JobCore.Qmp;

/// <summary>
/// Forwards engine events to QMP clients. The engine writes events into this bridge's subscription while it
/// changes state, so when a command's handler returns, every event it caused is already buffered; the server's
/// reply barrier (<see cref="Flush"/>) broadcasts them before the reply, which gives QEMU's order
/// (<c>created</c>, <c>running</c>, then the creating command's return; finalize/dismiss events before their return).
/// </summary>
internal sealed partial class QmpJobEventBridge : IDisposable
{
    private readonly QmpJobCommands _jobs;
    private readonly QmpServer _server;
    private readonly ILogger _logger;
    private readonly Lock _pump = new();
    private readonly CancellationTokenSource _stop = new();
    private JobEventSubscription _subscription;

    public QmpJobEventBridge(QmpJobCommands jobs, QmpServer server)
    {
        _jobs = jobs;
        _server = server;
        _logger = server.LoggerFactory.CreateLogger("JobCore.Qmp.Events");
        _subscription = jobs.Engine.Subscribe();
        server.AddReplyBarrier(Flush);
        _ = Task.Run(PumpAsync);
    }

    /// <summary>Broadcasts every buffered event, in order (safe from any thread).</summary>
    public void Flush()
    {
        lock (_pump)
        {
            while (_subscription.Reader.TryRead(out var e))
            {
                foreach (var qmpEvent in QmpJobJson.Events(e, _jobs.IsBlockJobType(e.Job.Type)))
                {
                    _server.Broadcast(qmpEvent);
                }
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        Flush();
        _subscription.Dispose();
    }

    private async Task PumpAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (!await _subscription.Reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
                {
                    Flush();
                    return;
                }

                Flush();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (JobEventOverflowException ex)
            {
                // Cannot happen while broadcasting never blocks; if it does, say so and carry on with a fresh stream.
                LogOverflow(_logger, ex);
                lock (_pump)
                {
                    _subscription.Dispose();
                    _subscription = _jobs.Engine.Subscribe();
                }
            }
        }
    }

    [LoggerMessage(20, LogLevel.Critical, "QMP event bridge fell behind the job engine; events were lost")]
    private static partial void LogOverflow(ILogger logger, Exception exception);
}
