using Microsoft.Extensions.Logging;

namespace JobCore.Qmp;

/// <summary>The QMP server's log events.</summary>
internal static partial class QmpLog
{
    [LoggerMessage(1, LogLevel.Information, "QMP listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(2, LogLevel.Information, "QMP client {Client} connected")]
    public static partial void Connected(ILogger logger, string client);

    [LoggerMessage(3, LogLevel.Information, "QMP client {Client} disconnected")]
    public static partial void Disconnected(ILogger logger, string client);

    [LoggerMessage(4, LogLevel.Error, "QMP accept on {Endpoint} failed; no longer accepting there")]
    public static partial void AcceptFailed(ILogger logger, Exception exception, string endpoint);

    [LoggerMessage(5, LogLevel.Debug, "QMP client {Client}: connection ended ({Reason})")]
    public static partial void ConnectionEnded(ILogger logger, string client, string reason);

    [LoggerMessage(6, LogLevel.Warning, "QMP client {Client}: queued output not read within {Timeout}; closing")]
    public static partial void DrainTimedOut(ILogger logger, string client, TimeSpan timeout);

    [LoggerMessage(7, LogLevel.Warning, "QMP client {Client} dropped: {Reason}")]
    public static partial void Dropped(ILogger logger, string client, string reason);

    [LoggerMessage(8, LogLevel.Error, "QMP command {Command} from {Client} failed unexpectedly")]
    public static partial void CommandFailed(ILogger logger, Exception exception, string command, string client);

    [LoggerMessage(9, LogLevel.Information, "QMP client {Client} negotiated; it now receives events")]
    public static partial void Negotiated(ILogger logger, string client);

    [LoggerMessage(10, LogLevel.Error, "QMP client {Client}: internal error; closing the connection")]
    public static partial void SessionFailed(ILogger logger, Exception exception, string client);
}
