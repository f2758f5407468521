using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;
using JobCore.Qmp.Tests.Jobs;

namespace JobCore.Qmp.Tests.Daemon;

/// <summary>jobcored exports traces and metrics over OTLP/HTTP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.</summary>
[TestClass]
public sealed class TelemetryExportTests
{
    [TestMethod]
    public async Task Traces_and_metrics_reach_the_OTLP_endpoint()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var received = new List<(string Path, string ContentType, byte[] Body)>();
        var collector = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                lock (received)
                {
                    received.Add((context.Request.Url!.AbsolutePath, context.Request.ContentType ?? string.Empty, body.ToArray()));
                }

                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });

        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
        };
        await using (var daemon = Jobcored.StartWithTestPlugin(environment))
        {
            await using var client = await daemon.ConnectAsync();
            await client.ExecuteAsync("query-version");
            await client.ExecuteAsync("x-test-job-start", new JsonObject { ["job-id"] = "t1", ["steps"] = 3 });
            await JobEventLog.ReadUntilAsync(client, "t1", "null");
            await client.ExecuteAsync("quit");
            Assert.AreEqual(0, await daemon.Process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }

        listener.Stop();
        await collector;
        List<(string Path, string ContentType, byte[] Body)> posts;
        lock (received)
        {
            posts = [.. received];
        }

        var traces = posts.Where(p => p.Path == "/v1/traces").ToList();
        Assert.IsTrue(traces.Count > 0, "no trace export; paths seen: " + string.Join(", ", posts.Select(p => p.Path)));
        Assert.IsTrue(traces.All(t => t.ContentType == "application/x-protobuf"));
        var traceBytes = traces.SelectMany(t => t.Body).ToArray();
        Assert.IsTrue(Contains(traceBytes, "qmp x-test-job-start"), "the command span is exported");
        Assert.IsTrue(Contains(traceBytes, "JobCore"), "the engine's spans are exported");
        Assert.IsTrue(posts.Any(p => p.Path == "/v1/metrics" && Contains(p.Body, "JobCore")), "JobCore metrics are exported");
    }

    private static bool Contains(byte[] haystack, string needle) =>
        haystack.AsSpan().IndexOf(Encoding.UTF8.GetBytes(needle)) >= 0;
}
