using System.Text;

namespace JobCore.Block.Tests.Conformance;

/// <summary>Runs a script on QEMU 7.2 and on jobcored (at the same time, each in its own directory) and compares the transcripts.</summary>
internal static class Differential
{
    public static async Task<(List<string> Qemu, List<string> Ours)> RunAsync(IReadOnlyList<string> steps, Func<string, Task>? prepare = null)
    {
        Task<List<string>> qemu = RunOneAsync(qemu: true, steps, prepare);
        Task<List<string>> ours = RunOneAsync(qemu: false, steps, prepare);
        await Task.WhenAll(qemu, ours);
        Dump(steps, qemu.Result, ours.Result);
        return (qemu.Result, ours.Result);
    }

    public static async Task AssertSameAsync(IReadOnlyList<string> steps, Func<string, Task>? prepare = null)
    {
        (List<string> qemu, List<string> ours) = await RunAsync(steps, prepare);
        Assert.IsGreaterThan(steps.Count - 1, qemu.Count, "every step leaves at least one line");
        AssertSame(qemu, ours);
    }

    public static void AssertSame(List<string> qemu, List<string> ours)
    {
        int first = 0;
        while (first < qemu.Count && first < ours.Count && qemu[first] == ours[first])
        {
            first++;
        }

        if (first == qemu.Count && first == ours.Count)
        {
            return;
        }

        var text = new StringBuilder();
        text.Append("transcripts differ at line ").Append(first + 1).AppendLine();
        text.AppendLine("qemu:     " + (first < qemu.Count ? qemu[first] : "<end>"));
        text.AppendLine("jobcored: " + (first < ours.Count ? ours[first] : "<end>"));
        text.AppendLine("--- qemu transcript:");
        text.AppendJoin('\n', qemu).AppendLine();
        text.AppendLine("--- jobcored transcript:");
        text.AppendJoin('\n', ours).AppendLine();
        Assert.Fail(text.ToString());
    }

    private static async Task<List<string>> RunOneAsync(bool qemu, IReadOnlyList<string> steps, Func<string, Task>? prepare)
    {
        await using ConformancePeer peer = await ConformancePeer.StartAsync(qemu, prepare);
        return await ConformanceScript.RunAsync(peer, steps);
    }

    // CONFORMANCE_DUMP=dir writes both transcripts side by side (for exploring, not used by CI).
    private static void Dump(IReadOnlyList<string> steps, List<string> qemu, List<string> ours)
    {
        string? dir = Environment.GetEnvironmentVariable("CONFORMANCE_DUMP");
        if (string.IsNullOrEmpty(dir))
        {
            return;
        }

        System.IO.Directory.CreateDirectory(dir);
        string name = Guid.NewGuid().ToString("N")[..8];
        File.WriteAllLines(Path.Combine(dir, name + ".qemu"), qemu);
        File.WriteAllLines(Path.Combine(dir, name + ".ours"), ours);
        File.WriteAllLines(Path.Combine(dir, name + ".steps"), steps);
    }
}
