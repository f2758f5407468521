using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Demo;

/// <summary>The README's first command: `jobctl demo` runs end to end against a real jobcored process.</summary>
[TestClass]
public sealed class DemoCommandTests
{
    [TestMethod]
    public async Task Demo_streams_commits_mirrors_pivots_and_verifies_the_copy()
    {
        var dir = Directory.CreateTempSubdirectory("jobctl-demo-test-");
        try
        {
            var result = await Tool.JobctlAsync(dir.FullName, "demo");
            Assert.AreEqual(0, result.ExitCode, result.ToString());
            var lines = result.StdOut.Split('\n');
            // The event order of each job, as QEMU emits it.
            string[] streamEvents =
            [
                "JOB_STATUS_CHANGE {\"status\":\"created\",\"id\":\"stream0\"}",
                "JOB_STATUS_CHANGE {\"status\":\"running\",\"id\":\"stream0\"}",
                "JOB_STATUS_CHANGE {\"status\":\"waiting\",\"id\":\"stream0\"}",
                "JOB_STATUS_CHANGE {\"status\":\"pending\",\"id\":\"stream0\"}",
                "BLOCK_JOB_COMPLETED",
                "JOB_STATUS_CHANGE {\"status\":\"concluded\",\"id\":\"stream0\"}",
                "JOB_STATUS_CHANGE {\"status\":\"null\",\"id\":\"stream0\"}",
            ];
            var events = lines.Where(l => l.StartsWith("  event ", StringComparison.Ordinal)).Select(l => l[8..]).ToList();
            var firstStream = events.FindIndex(e => e.Contains("stream0", StringComparison.Ordinal));
            for (var i = 0; i < streamEvents.Length; i++)
            {
                StringAssert.StartsWith(events[firstStream + i], streamEvents[i]);
            }

            Assert.IsTrue(events.Any(e => e.StartsWith("BLOCK_JOB_READY", StringComparison.Ordinal) && e.Contains("mirror0", StringComparison.Ordinal)));
            Assert.IsFalse(events.Any(e => e.Contains("\"error\"", StringComparison.Ordinal)), "no job failed");
            CollectionAssert.Contains(lines, "copy.qcow2 holds exactly the guest view of the original chain");
            CollectionAssert.Contains(lines, "jobcored exited with code 0");
            var demoFolder = lines.Single(l => l.StartsWith("demo folder: ", StringComparison.Ordinal))["demo folder: ".Length..];
            Assert.IsFalse(Directory.Exists(demoFolder), "the demo folder is removed afterwards");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
