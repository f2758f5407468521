using Microsoft.Extensions.Logging;

namespace JobCore.Daemon;

/// <summary>The daemon's own log events.</summary>
internal static partial class DaemonLog
{
    [LoggerMessage(100, LogLevel.Critical, "cannot listen: {Message}")]
    public static partial void CannotListen(ILogger logger, string message);

    [LoggerMessage(101, LogLevel.Information, "shutting down ({Reason})")]
    public static partial void ShuttingDown(ILogger logger, string reason);
}
