using System.Diagnostics;
using System.Text.Json.Nodes;
using JobCore.Qmp.Tests.Infrastructure;
using JobCore.Qmp.Tests.Jobs;

namespace JobCore.Qmp.Tests.Daemon;

/// <summary>SIGTERM during a real block job: QEMU's cancel order, exit 0, and images other tools can open at once.</summary>
[TestClass]
public sealed class ShutdownTests
{
    [TestMethod]
    public async Task Sigterm_during_a_stream_cancels_it_in_QEMUs_order_and_leaves_the_images_consistent()
    {
        await using var daemon = Jobcored.Start();
        var dir = daemon.Directory;
        await Tool("qemu-img", "create", "-q", "-f", "qcow2", dir.File("base.qcow2"), "64M");
        await Tool("qemu-io", "-c", "write -P 0x77 0 32M", dir.File("base.qcow2"));
        await Tool("qemu-img", "create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("top.qcow2"));

        await using var client = await daemon.ConnectAsync();
        foreach (var (name, backing) in new[] { ("base", (string?)null), ("top", "base") })
        {
            await client.ExecuteAsync("blockdev-add", new JsonObject
            {
                ["driver"] = "qcow2",
                ["node-name"] = name,
                ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File(name + ".qcow2") },
                ["backing"] = backing,
            });
        }

        // 1 MiB/s over 32 MiB of data: still running when the signal arrives.
        await client.ExecuteAsync("block-stream", new JsonObject { ["job-id"] = "s1", ["device"] = "top", ["speed"] = 1 << 20 });
        await JobEventLog.ReadUntilAsync(client, "s1", "running");
        using (var kill = Process.Start("kill", ["-TERM", daemon.Process.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        var rest = new List<string>();
        await foreach (var e in client.Events.ReadAllAsync())
        {
            rest.Add(e["event"]!.GetValue<string>() == "SHUTDOWN" ? "SHUTDOWN" : JobEventLog.Describe(e));
        }

        // QEMU 7.2's order: SHUTDOWN, the drain pauses the job, the cancel runs it out (running, aborting, ...).
        CollectionAssert.AreEqual(new[] { "SHUTDOWN", "paused", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null" }, rest);
        Assert.AreEqual(0, await daemon.Process.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        // No lock left behind (no -U needed), no corruption, and the chain still reads the base's data.
        await Tool("qemu-img", "check", "-q", dir.File("top.qcow2"));
        await Tool("qemu-img", "check", "-q", dir.File("base.qcow2"));
        await Tool("qemu-img", "compare", "-q", dir.File("base.qcow2"), dir.File("top.qcow2"));
    }

    private static async Task Tool(string tool, params string[] arguments)
    {
        await using var process = ChildProcess.Start(tool, arguments);
        Assert.AreEqual(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"{tool} {string.Join(' ', arguments)}:\n{process.Output}");
    }
}
