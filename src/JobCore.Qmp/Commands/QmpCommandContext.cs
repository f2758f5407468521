using Microsoft.Extensions.Logging;

namespace JobCore.Qmp;

/// <summary>What a command handler can reach: the server (events, shutdown), services, and the calling client.</summary>
public sealed class QmpCommandContext
{
    internal QmpCommandContext(QmpServer server, QmpSession session)
    {
        Server = server;
        Session = session;
    }

    /// <summary>The server running the command.</summary>
    public QmpServer Server { get; }

    /// <summary>Services of the host (the job engine, loggers, plugin services).</summary>
    public IServiceProvider Services => Server.Services;

    /// <summary>The server's logger factory.</summary>
    public ILoggerFactory LoggerFactory => Server.LoggerFactory;

    /// <summary>A short name of the calling client for logs, e.g. <c>unix#3</c>.</summary>
    public string ClientName => Session.Name;

    internal QmpSession Session { get; }
}
