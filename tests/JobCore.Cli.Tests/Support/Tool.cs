using System.Diagnostics;

namespace JobCore.Cli.Tests.Support;

/// <summary>The result of a finished child process.</summary>
internal sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
}

/// <summary>Runs qemu-img / qemu-io / jobctl (as <c>dotnet jobctl.dll</c>) as real processes.</summary>
internal static class Tool
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    public static string JobctlDll => Path.Combine(AppContext.BaseDirectory, "jobctl.dll");

    public static Task<ToolResult> QemuImgAsync(string workingDirectory, params string[] args) =>
        RunAsync("qemu-img", workingDirectory, args);

    public static Task<ToolResult> QemuIoAsync(string workingDirectory, params string[] args) =>
        RunAsync("qemu-io", workingDirectory, args);

    public static Task<ToolResult> JobctlAsync(string workingDirectory, params string[] args) =>
        RunAsync("dotnet", workingDirectory, [JobctlDll, .. args]);

    /// <summary>Runs qemu-img and fails the test unless it exits 0.</summary>
    public static async Task<string> QemuImgOkAsync(string workingDirectory, params string[] args)
    {
        var r = await QemuImgAsync(workingDirectory, args);
        Assert.AreEqual(0, r.ExitCode, $"qemu-img {string.Join(' ', args)}: {r}");
        return r.StdOut;
    }

    /// <summary>Runs qemu-io commands on an image and fails the test unless it succeeds.</summary>
    public static async Task QemuIoOkAsync(string workingDirectory, string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(image);
        var r = await QemuIoAsync(workingDirectory, [.. args]);
        Assert.AreEqual(0, r.ExitCode, $"qemu-io {string.Join(' ', args)}: {r}");
        Assert.DoesNotContain("failed", r.StdOut + r.StdErr, $"qemu-io {string.Join(' ', args)}: {r}");
    }

    /// <summary>Runs <c>qemu-img ARGS</c> and <c>jobctl img ARGS</c> and asserts that both succeed with the same stdout.</summary>
    public static async Task<string> AssertSameAsQemuImgAsync(string workingDirectory, params string[] args)
    {
        var expected = await QemuImgOkAsync(workingDirectory, args);
        var actual = await JobctlAsync(workingDirectory, ["img", .. args]);
        Assert.AreEqual(0, actual.ExitCode, actual.ToString());
        Assert.AreEqual(expected, actual.StdOut);
        return actual.StdOut;
    }

    /// <summary>Asserts that <c>qemu-img check</c> finds neither errors nor leaks.</summary>
    public static async Task AssertQemuCheckCleanAsync(string workingDirectory, string image)
    {
        var check = await QemuImgAsync(workingDirectory, "check", image);
        Assert.AreEqual(0, check.ExitCode, check.ToString());
        StringAssert.Contains(check.StdOut, "No errors were found on the image.");
    }

    public static Task<ToolResult> RunAsync(string fileName, string workingDirectory, params string[] args) =>
        RunAsync(fileName, workingDirectory, Timeout, args);

    /// <summary>Runs a process to its end (killed after <paramref name="timeout"/>, which fails the test).</summary>
    public static async Task<ToolResult> RunAsync(string fileName, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{fileName} {string.Join(' ', args)} did not finish within {timeout}");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }
}
