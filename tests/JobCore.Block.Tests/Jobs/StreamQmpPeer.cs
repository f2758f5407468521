using System.Text.Json.Nodes;
using JobCore.Block.Graph;
using JobCore.Block.Tests.Interop;
using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// A QMP peer process in its own temp directory with a connected, negotiated client: the real jobcored with the block
/// plugin (<c>--plugins</c>), or qemu-system-x86_64 7.2 as the reference. Plus helpers to read a job's events in a
/// comparable short form.
/// </summary>
internal sealed class QmpJobPeer : IAsyncDisposable
{
    private readonly QmpPeerProcess _process;

    private QmpJobPeer(QmpPeerProcess process)
    {
        _process = process;
    }

    public string Directory => _process.Directory;

    public QmpClient Client { get; private set; } = null!;

    public static Task<QmpJobPeer> StartQemuAsync() => StartQemuAsync(_ => Task.FromResult<string[]>([]));

    /// <summary>QEMU with more command-line arguments, made by <paramref name="prepare"/> in the peer's directory (e.g. images for <c>-drive</c>).</summary>
    public static Task<QmpJobPeer> StartQemuAsync(Func<string, Task<string[]>> prepare) => StartAsync(qemu: true, prepare, transcript: false);

    public static Task<QmpJobPeer> StartJobcoredAsync(bool transcript = false) => StartAsync(qemu: false, prepare: null, transcript);

    private static async Task<QmpJobPeer> StartAsync(bool qemu, Func<string, Task<string[]>>? prepare, bool transcript)
    {
        var peer = new QmpJobPeer(await QmpPeerProcess.StartAsync(qemu, prepare));
        try
        {
            peer.Client = await QmpClient.ConnectAsync("unix:" + peer._process.Socket, TimeSpan.FromSeconds(30), transcript);
            await peer.Client.NegotiateAsync();
            return peer;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            string output = peer._process.Output;
            await peer.DisposeAsync();
            throw new AssertFailedException($"cannot connect to {peer._process.Name}: {e.Message}\n{output}", e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Client is not null)
        {
            try
            {
                await Client.ExecuteAsync("quit");
            }
            catch (Exception e) when (e is IOException or QmpException or ObjectDisposedException)
            {
                // Already gone.
            }

            await Client.DisposeAsync();
        }

        await _process.DisposeAsync();
    }

    /// <summary>Reads events about <paramref name="job"/> up to one whose short name is <paramref name="last"/>.</summary>
    public static async Task<List<string>> ReadJobEventsAsync(QmpClient client, string job, string last)
    {
        var seen = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (true)
            {
                JsonObject e = await client.Events.ReadAsync(cts.Token);
                JsonObject data = e["data"]?.AsObject() ?? [];
                string? id = (data["id"] ?? data["device"])?.GetValue<string>();
                if (id != job)
                {
                    continue;
                }

                string name = e["event"]!.GetValue<string>();
                string shortName = name == "JOB_STATUS_CHANGE" ? data["status"]!.GetValue<string>() : name;
                var copy = data.DeepClone().AsObject();
                if (name is "BLOCK_JOB_CANCELLED" or "BLOCK_JOB_ERROR" || copy["error"] is not null)
                {
                    copy.Remove("offset"); // where a cancel or error lands depends on timing and request order
                }

                seen.Add(name == "JOB_STATUS_CHANGE" ? shortName : $"{name} {Canonical(copy)}");
                if (shortName == last)
                {
                    return seen;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new AssertFailedException($"job '{job}' never sent '{last}'; saw: {string.Join(", ", seen)}");
        }
    }

    public static string Canonical(JsonObject o) =>
        "{" + string.Join(",", o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value?.ToJsonString()}")) + "}";
}

/// <summary>
/// jobcored's QMP stack in-process (the block plugin, the command table, a QMP server on a unix socket in a temp
/// directory, a negotiated client), for what the daemon's command line cannot set up: a backend (QEMU's
/// <c>-drive if=none,id=...</c>) attached to a node of <see cref="Graph"/>.
/// </summary>
internal sealed class InProcessBlockDaemon : IAsyncDisposable
{
    private readonly ServiceProvider _provider;
    private readonly QmpServer _server;
    private readonly IDisposable _bridge;

    private InProcessBlockDaemon(string directory, ServiceProvider provider, QmpServer server, IDisposable bridge)
    {
        Directory = directory;
        _provider = provider;
        _server = server;
        _bridge = bridge;
        Graph = provider.GetRequiredService<BlockGraph>();
    }

    public string Directory { get; }

    public BlockGraph Graph { get; }

    public QmpClient Client { get; private set; } = null!;

    public static async Task<InProcessBlockDaemon> StartAsync()
    {
        string dir = Path.Combine(Path.GetTempPath(), "jobcore-qmpjob-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        var services = new ServiceCollection();
        services.AddJobCore(b => b.AddBlockJobs());
        var provider = services.BuildServiceProvider();
        var (commands, jobs) = provider.BuildQmpCommands();
        var options = new QmpServerOptions();
        string sock = Path.Combine(dir, "qmp.sock");
        options.Endpoints.Add(QmpEndpoint.Unix(sock));
        var server = new QmpServer(commands, options, provider);
        var daemon = new InProcessBlockDaemon(dir, provider, server, jobs.Attach(server));
        await server.StartAsync();
        daemon.Client = await QmpClient.ConnectAsync("unix:" + sock, TimeSpan.FromSeconds(30));
        await daemon.Client.NegotiateAsync();
        return daemon;
    }

    public async ValueTask DisposeAsync()
    {
        if (Client is not null)
        {
            await Client.DisposeAsync();
        }

        await _provider.GetRequiredService<JobEngine>().ShutdownAsync(CancellationToken.None);
        _bridge.Dispose();
        await _provider.DisposeAsync();
        await _server.StopAsync(CancellationToken.None);
        await _server.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
