using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using JobCore.Qmp.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace JobCore.Qmp;

/// <summary>
/// A QMP server: listens on UNIX and TCP endpoints, serves any number of clients concurrently (each client's
/// commands run in order), and broadcasts events to every negotiated client in one global order.
/// </summary>
public sealed class QmpServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, QmpSession> _sessions = new();
    private readonly ConcurrentDictionary<int, Task> _sessionTasks = new();
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly List<QmpEndpoint> _listening = [];
    private readonly List<Action> _replyBarriers = [];
    private readonly List<Func<CancellationToken, Task<IDisposable>>> _commandScopes = [];
    private readonly List<Func<string, CancellationToken, Task>> _shutdownSteps = [];
    private Task? _shutdownRun;
    private readonly List<Func<Exception, QmpException?>> _exceptionMappers = [];
    private readonly Lock _broadcastLock = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource<string> _shutdownRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _nextClient;
    private int _stopped;

    /// <summary>Creates a server offering <paramref name="commands"/>; call <see cref="StartAsync"/> to listen.</summary>
    public QmpServer(QmpCommandTable commands, QmpServerOptions options, IServiceProvider? services = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(commands);
        ArgumentNullException.ThrowIfNull(options);
        Commands = commands;
        Options = options;
        Services = services ?? EmptyServices.Instance;
        LoggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        Logger = LoggerFactory.CreateLogger("JobCore.Qmp");
    }

    /// <summary>The command table (add commands before clients connect).</summary>
    public QmpCommandTable Commands { get; }

    /// <summary>The server's settings.</summary>
    public QmpServerOptions Options { get; }

    /// <summary>Services handlers may use.</summary>
    public IServiceProvider Services { get; }

    /// <summary>Logger factory for handlers and plugins.</summary>
    public ILoggerFactory LoggerFactory { get; }

    /// <summary>The endpoints actually bound (TCP port 0 resolved to the real port).</summary>
    public IReadOnlyList<QmpEndpoint> ListeningEndpoints => _listening;

    /// <summary>Number of connected clients.</summary>
    public int ClientCount => _sessions.Count;

    /// <summary>Completes with the reason (e.g. <c>host-qmp-quit</c>) once shutdown was requested.</summary>
    public Task<string> ShutdownRequested => _shutdownRequested.Task;

    internal ILogger Logger { get; }

    /// <summary>Binds every configured endpoint and starts accepting clients.</summary>
    /// <exception cref="IOException">A UNIX socket path is held by a live server, or cannot be replaced.</exception>
    /// <exception cref="SocketException">An endpoint cannot be bound.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        foreach (var endpoint in Options.Endpoints)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var listener = Bind(endpoint, out var bound);
            _listeners.Add(listener);
            _listening.Add(bound);
            QmpLog.Listening(Logger, bound.ToString());
            _acceptLoops.Add(Task.Run(() => AcceptLoopAsync(listener, bound), CancellationToken.None));
        }

        return Task.CompletedTask;
    }

    /// <summary>Sends <paramref name="qmpEvent"/> to every client that completed negotiation, in one global order.</summary>
    public void Broadcast(QmpEvent qmpEvent)
    {
        ArgumentNullException.ThrowIfNull(qmpEvent);
        var line = QmpJsonWriter.ToLine(qmpEvent.ToJson());
        lock (_broadcastLock)
        {
            foreach (var session in _sessions.Values)
            {
                if (session.Negotiated)
                {
                    session.Enqueue(line);
                }
            }
        }
    }

    /// <summary>
    /// Registers an action run before every reply is queued. The job event bridge uses it to send events that a
    /// command caused (e.g. <c>created</c>, <c>running</c>) before that command's reply, as QEMU does.
    /// </summary>
    public void AddReplyBarrier(Action flush)
    {
        ArgumentNullException.ThrowIfNull(flush);
        lock (_replyBarriers)
        {
            _replyBarriers.Add(flush);
        }
    }

    /// <summary>
    /// Registers a scope entered before each command is dispatched and left once its reply is queued. The job commands
    /// use it to hold back job completions meanwhile (QEMU completes jobs in the main loop, between commands).
    /// </summary>
    public void AddCommandScope(Func<CancellationToken, Task<IDisposable>> enter)
    {
        ArgumentNullException.ThrowIfNull(enter);
        lock (_commandScopes)
        {
            _commandScopes.Add(enter);
        }
    }

    internal async Task<IDisposable?> EnterCommandScopesAsync(CancellationToken cancellationToken)
    {
        Func<CancellationToken, Task<IDisposable>>[] scopes;
        lock (_commandScopes)
        {
            if (_commandScopes.Count == 0)
            {
                return null;
            }

            scopes = [.. _commandScopes];
        }

        var entered = new List<IDisposable>(scopes.Length);
        try
        {
            foreach (var enter in scopes)
            {
                entered.Add(await enter(cancellationToken).ConfigureAwait(false));
            }
        }
        catch
        {
            DisposeAll(entered);
            throw;
        }

        return new CommandScope(entered);
    }

    private static void DisposeAll(List<IDisposable> scopes)
    {
        for (int i = scopes.Count - 1; i >= 0; i--)
        {
            scopes[i].Dispose();
        }
    }

    private sealed class CommandScope(List<IDisposable> scopes) : IDisposable
    {
        public void Dispose() => DisposeAll(scopes);
    }

    /// <summary>Registers a translation of domain exceptions (e.g. job errors) into QMP errors; return null to pass.</summary>
    public void AddExceptionMapper(Func<Exception, QmpException?> mapper)
    {
        ArgumentNullException.ThrowIfNull(mapper);
        lock (_exceptionMappers)
        {
            _exceptionMappers.Add(mapper);
        }
    }

    /// <summary>
    /// Registers a step of the shutdown that runs before <c>quit</c> replies (QEMU emits <c>SHUTDOWN</c> and ends its
    /// jobs before the reply): the daemon announces the shutdown and cancels the jobs here. Steps run once, in order,
    /// with the reason; <see cref="RunShutdownStepsAsync"/> runs them.
    /// </summary>
    public void AddShutdownStep(Func<string, CancellationToken, Task> step)
    {
        ArgumentNullException.ThrowIfNull(step);
        lock (_shutdownSteps)
        {
            _shutdownSteps.Add(step);
        }
    }

    /// <summary>Runs the shutdown steps once (later calls return the first run); used by <c>quit</c> and by the host on a signal.</summary>
    public Task RunShutdownStepsAsync(string reason, CancellationToken cancellationToken = default)
    {
        lock (_shutdownSteps)
        {
            return _shutdownRun ??= RunStepsAsync([.. _shutdownSteps], reason, cancellationToken);
        }

        static async Task RunStepsAsync(List<Func<string, CancellationToken, Task>> steps, string reason, CancellationToken cancellationToken)
        {
            foreach (var step in steps)
            {
                await step(reason, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Asks the host to shut down (what <c>quit</c> does); the first reason wins.</summary>
    public void RequestShutdown(string reason) => _shutdownRequested.TrySetResult(reason);

    /// <summary>Serves one already-connected client over <paramref name="stream"/> until it disconnects.</summary>
    public Task ServeAsync(Stream stream, string clientName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return StartSession(stream, clientName, cancellationToken);
    }

    /// <summary>
    /// Stops accepting, stops reading commands, gives each client up to <see cref="QmpServerOptions.DrainTimeout"/>
    /// to receive what is queued for it, then closes every connection and removes UNIX socket files.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        await Task.WhenAll(_acceptLoops).WaitAsync(cancellationToken).ConfigureAwait(false);
        await Task.WhenAll(_sessionTasks.Values).WaitAsync(cancellationToken).ConfigureAwait(false);
        foreach (var endpoint in _listening.Where(e => e.IsUnix))
        {
            TryDelete(endpoint.Path!);
        }
    }

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    internal void FlushBeforeReply()
    {
        lock (_replyBarriers)
        {
            foreach (var flush in _replyBarriers)
            {
                flush();
            }
        }
    }

    internal bool TryMapException(Exception exception, out QmpException mapped)
    {
        lock (_exceptionMappers)
        {
            foreach (var mapper in _exceptionMappers)
            {
                if (mapper(exception) is { } result)
                {
                    mapped = result;
                    return true;
                }
            }
        }

        mapped = null!;
        return false;
    }

    private async Task RunSessionAsync(int id, QmpSession session, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        QmpLog.Connected(Logger, session.Name);
        try
        {
            await session.RunAsync(linked.Token).ConfigureAwait(false);
        }
        finally
        {
            _sessions.TryRemove(id, out _);
            QmpLog.Disconnected(Logger, session.Name);
        }
    }

    private async Task AcceptLoopAsync(Socket listener, QmpEndpoint endpoint)
    {
        var kind = endpoint.IsUnix ? "unix" : "tcp";
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (!_stopping.IsCancellationRequested)
                {
                    QmpLog.AcceptFailed(Logger, ex, endpoint.ToString());
                }

                return;
            }

            if (!endpoint.IsUnix)
            {
                client.NoDelay = true;
            }

            _ = StartSession(new NetworkStream(client, ownsSocket: true), kind, CancellationToken.None);
        }
    }

    private Task StartSession(Stream stream, string kind, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextClient);
        var session = new QmpSession(this, stream, kind + "#" + id, Logger);
        _sessions[id] = session;
        var task = RunSessionAsync(id, session, cancellationToken);
        _sessionTasks[id] = task;
        _ = task.ContinueWith(_ => _sessionTasks.TryRemove(id, out Task? _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    private static Socket Bind(QmpEndpoint endpoint, out QmpEndpoint bound)
    {
        if (endpoint.IsUnix)
        {
            var path = Path.GetFullPath(endpoint.Path!);
            ReplaceStaleSocket(path);
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Bind(new UnixDomainSocketEndPoint(path));

                // Restrict before listening, so nobody else can connect in between.
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                socket.Listen(128);
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            bound = QmpEndpoint.Unix(path);
            return socket;
        }

        var address = IPAddress.TryParse(endpoint.Host, out var ip)
            ? ip
            : Dns.GetHostAddresses(endpoint.Host!).OrderBy(a => a.AddressFamily == AddressFamily.InterNetworkV6).First();
        var tcp = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            tcp.Bind(new IPEndPoint(address, endpoint.Port));
            tcp.Listen(128);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }

        var local = (IPEndPoint)tcp.LocalEndPoint!;
        bound = QmpEndpoint.Tcp(local.Address.ToString(), local.Port);
        return tcp;
    }

    /// <summary>Removes a socket file left by a dead server; refuses to steal one a live server still answers on.</summary>
    private static void ReplaceStaleSocket(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new IOException($"QMP socket '{path}' is in use by a running server");
            }
            catch (SocketException)
            {
                // Nobody listens: stale.
            }
        }

        File.Delete(path);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private sealed class EmptyServices : IServiceProvider
    {
        public static readonly EmptyServices Instance = new();

        public object? GetService(Type serviceType) => null;
    }
}
