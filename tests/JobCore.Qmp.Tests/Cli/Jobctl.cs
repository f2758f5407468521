using JobCore.Qmp.Tests.Infrastructure;

namespace JobCore.Qmp.Tests.Cli;

/// <summary>Runs the real jobctl (the jobctl.dll next to the tests).</summary>
internal static class Jobctl
{
    public static async Task<(int Exit, string Output)> RunAsync(params string[] arguments)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "jobctl.dll");
        Assert.IsTrue(File.Exists(dll), $"jobctl.dll not found at {dll}");
        await using var process = ChildProcess.Start("dotnet", [dll, .. arguments], new Dictionary<string, string> { ["TERM"] = "dumb" });
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(120));
        return (exit, process.Output);
    }
}
