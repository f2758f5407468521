using JobCore.Cli.Tests.Img;
using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests;

/// <summary>
/// jobctl ships as Native AOT (<c>dotnet publish src/JobCore.Cli -r linux-x64</c>): the publish is a whole-program
/// trim and AOT analysis that the ordinary build does not run, so it is checked here. The published executable must
/// come out without trim/AOT warnings and work on a real image as the JIT build does.
/// </summary>
[TestClass]
public sealed class NativePublishTests
{
    [TestMethod]
    [Timeout(600_000, CooperativeCancellation = true)]
    public async Task Jobctl_publishes_as_native_code_without_warnings_and_runs()
    {
        using var dir = new TempDirectory();
        string artifacts = dir.File("artifacts");
        string project = Path.Combine(RepoRoot(), "src", "JobCore.Cli");
        ToolResult publish = await Tool.RunAsync(
            "dotnet",
            dir.Path,
            TimeSpan.FromMinutes(9),
            "publish", project, "-c", "Release", "-r", "linux-x64", "--artifacts-path", artifacts,
            "-nologo", "--disable-build-servers", "-nodeReuse:false");
        Assert.AreEqual(0, publish.ExitCode, publish.ToString());
        string[] warnings = [.. publish.StdOut.Split('\n').Where(l => l.Contains(" warning ", StringComparison.Ordinal))];
        Assert.IsEmpty(warnings, "trim/AOT warnings:\n" + string.Join('\n', warnings));

        string jobctl = Path.Combine(artifacts, "publish", "JobCore.Cli", "release_linux-x64", "jobctl");
        Assert.IsTrue(File.Exists(jobctl), $"no native jobctl at {jobctl}");
        await QemuImages.MakeChainAsync(dir);
        string expected = await Tool.QemuImgOkAsync(dir.Path, "info", "--output", "json", "top.qcow2");
        ToolResult info = await Tool.RunAsync(jobctl, dir.Path, "img", "info", "--output", "json", "top.qcow2");
        Assert.AreEqual(0, info.ExitCode, info.ToString());
        Assert.AreEqual(expected, info.StdOut);
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "JobCore.sln")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException("JobCore.sln not found above " + AppContext.BaseDirectory);
    }
}
