using System.Diagnostics;

namespace JobCore.Block.Tests.Interop;

/// <summary>The outcome of one qemu-img / qemu-io run.</summary>
/// <param name="ExitCode">The process exit code.</param>
/// <param name="Output">Everything written to stdout.</param>
/// <param name="Error">Everything written to stderr.</param>
public sealed record ToolResult(int ExitCode, string Output, string Error)
{
    /// <summary>Stdout and stderr together, for assertion messages.</summary>
    public string All => Output + Error;
}

/// <summary>
/// Runs QEMU's image tools (<c>/usr/bin/qemu-img</c>, <c>/usr/bin/qemu-io</c>) with a timeout. A missing tool is a
/// test failure, never a skip.
/// </summary>
public static class QemuImg
{
    /// <summary>The default time a tool may run before it is killed.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Runs <c>qemu-img</c> with <paramref name="args"/>.</summary>
    public static Task<ToolResult> ImgAsync(params string[] args) => RunAsync("qemu-img", args, DefaultTimeout);

    /// <summary>Runs <c>qemu-io</c> with <paramref name="args"/>.</summary>
    public static Task<ToolResult> IoAsync(params string[] args) => RunAsync("qemu-io", args, DefaultTimeout);

    /// <summary>Runs <c>qemu-img</c> and fails the test unless it exits 0.</summary>
    public static async Task<ToolResult> ImgOkAsync(params string[] args) => Ok(await ImgAsync(args), "qemu-img", args);

    /// <summary>Runs <c>qemu-io</c> and fails the test unless it exits 0 and printed no error line.</summary>
    public static async Task<ToolResult> IoOkAsync(params string[] args)
    {
        ToolResult r = Ok(await IoAsync(args), "qemu-io", args);
        if (r.All.Contains("failed", StringComparison.OrdinalIgnoreCase) || r.All.Contains("error", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"qemu-io {string.Join(' ', args)} reported a failure:\n{r.All}");
        }

        return r;
    }

    /// <summary>Runs qemu-io commands (<c>-c</c> each) on an image of format <paramref name="format"/>.</summary>
    public static Task<ToolResult> IoCommandsAsync(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (string c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(image);
        return IoOkAsync([.. args]);
    }

    /// <summary>Runs <paramref name="tool"/> (looked up on PATH) and collects its output; kills it after <paramref name="timeout"/>.</summary>
    public static async Task<ToolResult> RunAsync(string tool, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"{tool} did not start");
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds} s");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    private static ToolResult Ok(ToolResult r, string tool, string[] args)
    {
        if (r.ExitCode != 0)
        {
            Assert.Fail($"{tool} {string.Join(' ', args)} exited {r.ExitCode}:\n{r.All}");
        }

        return r;
    }
}
