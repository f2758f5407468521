using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace JobCore.Daemon;

/// <summary>
/// Wires the daemon: services and plugins, the QMP server with the built-in, job and plugin commands, telemetry,
/// signal handling, and QEMU's shutdown order (reply to <c>quit</c>, <c>SHUTDOWN</c>, force-cancel jobs, close
/// images, flush clients, exit 0).
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

        var serverOptions = new QmpServerOptions();
        foreach (var text in options.Qmp)
        {
            try
            {
                serverOptions.Endpoints.Add(QmpEndpoint.Parse(text));
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
        try
        {
            services.AddJobCore(b =>
            {
                // The block layer is built in; --plugins adds more (a block plugin found there again is applied once).
                b.AddBlockJobs();
                if (options.PluginDirectory is not null)
                {
                    b.AddPluginsFromDirectory(options.PluginDirectory.FullName);
                }
            },
            // QEMU 7.2's rate limiter, the release jobcored is compared with: an early wake-up ends a delay.
            engine => engine.ServeWholeRateLimitDelay = false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or BadImageFormatException or TypeLoadException)
        {
            await Console.Error.WriteLineAsync("jobcored: cannot load plugins: " + ex.Message).ConfigureAwait(false);
            return 2;
        }

        var provider = services.BuildServiceProvider();
        await using var providerScope = provider.ConfigureAwait(false);
        var loggerFactory = provider.GetRequiredService<ILoggerFactory>();
        var logger = loggerFactory.CreateLogger("jobcored");
        using var telemetry = Telemetry.StartIfConfigured();

        var (commands, jobs) = provider.BuildQmpCommands();
        var server = new QmpServer(commands, serverOptions, provider, loggerFactory);
        await using var serverScope = server.ConfigureAwait(false);
        using var bridge = jobs.Attach(server);
        server.AddShutdownStep(async (reason, ct) =>
        {
            // QEMU's order: SHUTDOWN, then every job paused by the drain, then cancelled newest first.
            server.Broadcast(new QmpEvent(
                QmpProtocol.ShutdownEvent,
                new JsonObject { ["guest"] = false, ["reason"] = reason },
                TimeProvider.System.GetUtcNow()));
            await jobs.Engine.DrainAndCancelAllAsync(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        });
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

        // After quit these already ran (before its reply); after a signal they run now.
        await server.RunShutdownStepsAsync(reason, CancellationToken.None).ConfigureAwait(false);

        // Force-cancel every job (clients see aborting, BLOCK_JOB_CANCELLED, concluded, null), then release the
        // plugins' resources (images are flushed and closed) before clients see the connection close.
        await provider.GetRequiredService<JobEngine>().ShutdownAsync(CancellationToken.None).ConfigureAwait(false);
        bridge.Dispose();
        await provider.DisposeAsync().ConfigureAwait(false);
        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
        return 0;
    }

    private static void Stop(PosixSignalContext context, QmpServer server, string reason)
    {
        context.Cancel = true;
        server.RequestShutdown(reason);
    }

    /// <summary>OTLP export of traces and metrics, when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.</summary>
    private sealed class Telemetry : IDisposable
    {
        private readonly TracerProvider _tracer;
        private readonly MeterProvider _meter;

        private Telemetry(TracerProvider tracer, MeterProvider meter)
        {
            _tracer = tracer;
            _meter = meter;
        }

        public static Telemetry? StartIfConfigured()
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
            {
                return null;
            }

            var tracer = Sdk.CreateTracerProviderBuilder()
                .AddJobCoreInstrumentation()
                .AddSource(QmpProtocol.ActivitySourceName, "JobCore.*")
                .AddOtlpExporter()
                .Build();
            var meter = Sdk.CreateMeterProviderBuilder()
                .AddJobCoreInstrumentation()
                .AddMeter("JobCore.*")
                .AddOtlpExporter()
                .Build();
            return new Telemetry(tracer, meter);
        }

        public void Dispose()
        {
            _tracer.ForceFlush();
            _meter.ForceFlush();
            _tracer.Dispose();
            _meter.Dispose();
        }
    }
}
