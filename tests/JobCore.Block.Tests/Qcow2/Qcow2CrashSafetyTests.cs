using System.Diagnostics;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>
/// A child process (tests/JobCore.Block.CrashWriter) writes through <see cref="Qcow2Node"/> and is killed with SIGKILL
/// at random moments; after every kill the image has no corruption (leaks are allowed) and every write acknowledged
/// after a flush reads back.
/// </summary>
[TestClass]
public sealed class Qcow2CrashSafetyTests
{
    private const int Kills = 50;
    private const long ImageSize = 16L << 20;

    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task Killing_the_writer_at_random_moments_never_corrupts_the_image()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("crash.qcow2");
        // 512-byte clusters: the writer soon needs new refcount blocks and a larger refcount table.
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = ImageSize, ClusterSize = 512 });
        byte[] expected = new byte[ImageSize];
        bool[] known = new bool[ImageSize];
        Array.Fill(known, true);
        var rng = new Random(20261123);
        // Fill the image close to what one refcount table cluster covers (8 MiB of 512-byte clusters), so the
        // children have to grow the refcount table while they are being killed.
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            rng.NextBytes(expected.AsSpan(0, 7 << 20));
            await opened.Node.WriteAsync(0, expected.AsMemory(0, 7 << 20));
        }

        string writer = Path.Combine(AppContext.BaseDirectory, "JobCore.Block.CrashWriter.dll");
        Assert.IsTrue(File.Exists(writer), $"{writer} is missing (the test project references the CrashWriter project)");
        int acknowledged = 0;
        int leakyRuns = 0;
        for (int kill = 0; kill < Kills; kill++)
        {
            string output = await RunAndKillAsync(writer, image, seed: kill + 1, killAfterMs: rng.Next(0, 400));
            acknowledged += ApplyAcknowledged(output, expected, known);

            ToolResult check = await QemuImg.ImgAsync("check", image);
            Assert.IsTrue(check.ExitCode is 0 or 3, $"kill {kill}: qemu-img check exited {check.ExitCode}:\n{check.All}");
            Assert.IsFalse(check.All.Contains("ERROR", StringComparison.Ordinal), $"kill {kill}: {check.All}");
            leakyRuns += check.ExitCode == 3 ? 1 : 0;
            Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
            Assert.AreEqual(0, ours.Corruptions, $"kill {kill}: {string.Join('\n', ours.Messages.Take(5))}");

            byte[] actual = await ImageData.QemuRawAsync(image, scratch);
            for (int i = 0; i < expected.Length; i++)
            {
                if (known[i] && actual[i] != expected[i])
                {
                    Assert.Fail($"kill {kill}: byte {i} is {actual[i]}, but an acknowledged flushed write left {expected[i]}");
                }
            }
        }

        Assert.IsTrue(acknowledged >= Kills, $"only {acknowledged} writes were acknowledged over {Kills} runs");
        byte[] header = new byte[64];
        await using (var fs = File.OpenRead(image))
        {
            await fs.ReadExactlyAsync(header);
        }

        Assert.IsTrue(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(56)) > 1, "the run should have grown the refcount table");
        Console.WriteLine($"{Kills} kills, {acknowledged} acknowledged requests, {leakyRuns} checks with leaks");
    }

    private static async Task<string> RunAndKillAsync(string writer, string image, int seed, int killAfterMs)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(writer);
        psi.ArgumentList.Add(image);
        psi.ArgumentList.Add(seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var process = Process.Start(psi)!;
        var firstGroup = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var text = new System.Text.StringBuilder();
        var stdout = Task.Run(async () =>
        {
            char[] chunk = new char[8192];
            int n;
            while ((n = await process.StandardOutput.ReadAsync(chunk)) > 0)
            {
                lock (text)
                {
                    text.Append(chunk, 0, n);
                }

                firstGroup.TrySetResult();
            }

            firstGroup.TrySetResult();
        });
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        // The image is open once the first group is announced; kill somewhere in the next 0-400 ms.
        await firstGroup.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(killAfterMs);
        Assert.IsFalse(process.HasExited, $"the writer exited by itself: {await stderr}");
        process.Kill();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await stdout;
        lock (text)
        {
            return text.ToString();
        }
    }

    /// <summary>Applies the requests of every flushed group to the model; ranges of an unflushed group become unknown.</summary>
    private static int ApplyAcknowledged(string output, byte[] expected, bool[] known)
    {
        string[] lines = output.Split('\n');
        // The last element is empty or a line cut by the kill.
        var group = new List<string[]>();
        bool flushed = false;
        int acknowledged = 0;
        void Close()
        {
            foreach (string[] op in group)
            {
                long off = long.Parse(op[op[0] == "W" ? 2 : 1], System.Globalization.CultureInfo.InvariantCulture);
                int len = int.Parse(op[op[0] == "W" ? 3 : 2], System.Globalization.CultureInfo.InvariantCulture);
                if (!flushed)
                {
                    known.AsSpan((int)off, len).Clear();
                }
                else if (op[0] == "W")
                {
                    new Random(int.Parse(op[1], System.Globalization.CultureInfo.InvariantCulture)).NextBytes(expected.AsSpan((int)off, len));
                    known.AsSpan((int)off, len).Fill(true);
                }
                else
                {
                    expected.AsSpan((int)off, len).Clear();
                    known.AsSpan((int)off, len).Fill(true);
                }
            }

            acknowledged += flushed ? group.Count : 0;
            group.Clear();
            flushed = false;
        }

        foreach (string line in lines[..^1])
        {
            if (line.StartsWith("G ", StringComparison.Ordinal))
            {
                Close();
            }
            else if (line.StartsWith("I ", StringComparison.Ordinal))
            {
                group.Add(line[2..].Split(' '));
            }
            else if (line.StartsWith("A ", StringComparison.Ordinal))
            {
                // One acknowledgement means the group's flush returned: all of its requests are stable.
                flushed = true;
            }
        }

        Close();
        return acknowledged;
    }
}
