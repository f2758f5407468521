using System.Diagnostics;
using System.Text;

namespace JobCore.Block.Tests.Interop;

/// <summary>
/// A QMP server process for the tests that compare JobCore with QEMU: qemu-system-x86_64 7.2 (<c>-machine none</c>,
/// the reference) or the real jobcored with the block plugin, each in its own temp directory with its QMP socket
/// there. Captures the process's output for failure messages; disposing waits for the exit (kills after 20 s) and
/// deletes the directory. How a test talks to the socket (a <c>QmpClient</c>, raw lines) is up to the peer types
/// built on this.
/// </summary>
internal sealed class QmpPeerProcess : IAsyncDisposable
{
    private const string Qemu = "/usr/bin/qemu-system-x86_64";
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private QmpPeerProcess(string name, string directory, Process process)
    {
        Name = name;
        Directory = directory;
        _process = process;
    }

    /// <summary><c>qemu</c> or <c>jobcored</c>.</summary>
    public string Name { get; }

    /// <summary>The peer's own temp directory (images and the socket live here).</summary>
    public string Directory { get; }

    /// <summary>The QMP socket's path (<c>unix:</c> + this is the address).</summary>
    public string Socket => Path.Combine(Directory, "qmp.sock");

    public bool HasExited => _process.HasExited;

    /// <summary>What the process printed so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Makes the directory, runs <paramref name="prepare"/> in it (images; its result is appended to the command line,
    /// e.g. QEMU's <c>-drive</c>), then starts the process listening on <see cref="Socket"/>.
    /// </summary>
    public static async Task<QmpPeerProcess> StartAsync(bool qemu, Func<string, Task<string[]>>? prepare = null)
    {
        string name = qemu ? "qemu" : "jobcored";
        string dir = Path.Combine(Path.GetTempPath(), $"jobcore-{name}-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        string[] extra = prepare is null ? [] : await prepare(dir);
        string sock = Path.Combine(dir, "qmp.sock");
        (string program, string[] arguments) = qemu ? QemuCommand(sock) : JobcoredCommand(dir, sock);
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (string a in arguments.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        var process = new Process { StartInfo = psi };
        var peer = new QmpPeerProcess(name, dir, process);
        process.OutputDataReceived += (_, e) => peer.Append(e.Data);
        process.ErrorDataReceived += (_, e) => peer.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return peer;
    }

    public async ValueTask DisposeAsync()
    {
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

    private static (string Program, string[] Arguments) QemuCommand(string sock)
    {
        Assert.IsTrue(File.Exists(Qemu), "qemu-system-x86_64 is required (apt-get install qemu-system-x86)");
        return (Qemu, ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{sock},server=on,wait=off"]);
    }

    private static (string Program, string[] Arguments) JobcoredCommand(string dir, string sock)
    {
        string daemon = Path.Combine(AppContext.BaseDirectory, "jobcored.dll");
        Assert.IsTrue(File.Exists(daemon), $"jobcored.dll not found next to the tests at {daemon}");
        string plugin = typeof(BlockPlugin).Assembly.Location;
        string plugins = Path.Combine(dir, "plugins");
        System.IO.Directory.CreateDirectory(plugins);
        File.Copy(plugin, Path.Combine(plugins, Path.GetFileName(plugin)));
        return ("dotnet", [daemon, "--qmp", $"unix:{sock},server=on,wait=off", "--plugins", plugins]);
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
}
