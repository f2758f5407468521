using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JobCore.Daemon;

/// <summary>
/// Wires the daemon: services, the QMP server and its commands, signal handling, and QEMU's shutdown order
/// (reply to <c>quit</c>, <c>SHUTDOWN</c> event, force-cancel jobs, flush clients, exit 0).
/// </summary>
internal static class DaemonHost
{
    /// <summary>Runs until <c>quit</c>, SIGTERM or SIGINT; returns the process exit code.</summary>
    public static async Task<int> RunAsync(DaemonOptions options, CancellationToken cancellationToken)
    {
        if (!Enum.TryParse<LogLevel>(options.LogLevel, ignoreCase: true, out var level))
        {
            await Console.Error.WriteLineAsync($"jobcored: unknown log level '{options.LogLevel}'").ConfigureAwait(false);
            return 2;
        }

        var endpoints = new List<QmpEndpoint>();
        foreach (var text in options.Qmp)
        {
            try
            {
                endpoints.Add(QmpEndpoint.Parse(text));
            }
            catch (FormatException ex)
            {
                await Console.Error.WriteLineAsync("jobcored: " + ex.Message).ConfigureAwait(false);
                return 2;
            }
        }

        var services = new ServiceCollection();
        services.AddLogging(b => b
            .SetMinimumLevel(level)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        await using var provider = services.BuildServiceProvider();
        var loggerFactory = provider.GetRequiredService<ILoggerFactory>();
        var logger = loggerFactory.CreateLogger("jobcored");

        var serverOptions = new QmpServerOptions();
        foreach (var endpoint in endpoints)
        {
            serverOptions.Endpoints.Add(endpoint);
        }

        var commands = new QmpCommandTable().AddBuiltinCommands();
        await using var server = new QmpServer(commands, serverOptions, provider, loggerFactory);
        try
        {
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            DaemonLog.CannotListen(logger, ex.Message);
            return 1;
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => Stop(ctx, server, "host-signal"));
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => Stop(ctx, server, "host-signal"));
        using var cancelled = cancellationToken.Register(() => server.RequestShutdown("host-signal"));

        var reason = await server.ShutdownRequested.ConfigureAwait(false);
        DaemonLog.ShuttingDown(logger, reason);
        server.Broadcast(new QmpEvent(
            QmpProtocol.ShutdownEvent,
            new JsonObject { ["guest"] = false, ["reason"] = reason },
            TimeProvider.System.GetUtcNow()));
        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
        return 0;
    }

    private static void Stop(PosixSignalContext context, QmpServer server, string reason)
    {
        context.Cancel = true;
        server.RequestShutdown(reason);
    }
}
