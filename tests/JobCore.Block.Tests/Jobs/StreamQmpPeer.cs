using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using JobCore.Qmp;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// A QMP peer process in its own temp directory with a connected, negotiated client: the real jobcored with the block
/// plugin (<c>--plugins</c>), or qemu-system-x86_64 7.2 as the reference. Plus helpers to read a job's events in a
/// comparable short form.
/// </summary>
internal sealed class QmpJobPeer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private QmpJobPeer(string directory, Process process)
    {
        Directory = directory;
        _process = process;
    }

    public string Directory { get; }

    public QmpClient Client { get; private set; } = null!;

    public static Task<QmpJobPeer> StartQemuAsync()
    {
        const string qemu = "/usr/bin/qemu-system-x86_64";
        Assert.IsTrue(File.Exists(qemu), "qemu-system-x86_64 is required (apt-get install qemu-system-x86)");
        return StartAsync(qemu, sock => ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{sock},server=on,wait=off"], transcript: false);
    }

    public static Task<QmpJobPeer> StartJobcoredAsync(bool transcript = false)
    {
        string daemon = Path.Combine(AppContext.BaseDirectory, "jobcored.dll");
        Assert.IsTrue(File.Exists(daemon), $"jobcored.dll not found next to the tests at {daemon}");
        string plugin = typeof(JobCore.Block.BlockPlugin).Assembly.Location;
        return StartAsync("dotnet", sock =>
        {
            string plugins = Path.Combine(Path.GetDirectoryName(sock)!, "plugins");
            System.IO.Directory.CreateDirectory(plugins);
            File.Copy(plugin, Path.Combine(plugins, Path.GetFileName(plugin)));
            return [daemon, "--qmp", $"unix:{sock},server=on,wait=off", "--plugins", plugins];
        }, transcript);
    }

    private static async Task<QmpJobPeer> StartAsync(string program, Func<string, string[]> arguments, bool transcript)
    {
        string dir = Path.Combine(Path.GetTempPath(), "jobcore-qmpjob-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        string sock = Path.Combine(dir, "qmp.sock");
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (string a in arguments(sock))
        {
            psi.ArgumentList.Add(a);
        }

        var process = new Process { StartInfo = psi };
        var peer = new QmpJobPeer(dir, process);
        process.OutputDataReceived += (_, e) => peer.Append(e.Data);
        process.ErrorDataReceived += (_, e) => peer.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            peer.Client = await QmpClient.ConnectAsync("unix:" + sock, TimeSpan.FromSeconds(30), transcript);
            await peer.Client.NegotiateAsync();
            return peer;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            string output = peer.Output;
            await peer.DisposeAsync();
            throw new AssertFailedException($"cannot connect to {program}: {e.Message}\n{output}", e);
        }
    }

    private string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
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

        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
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
