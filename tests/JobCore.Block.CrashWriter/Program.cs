using JobCore.Block.Nodes;

// Usage: JobCore.Block.CrashWriter <image.qcow2> <seed>
// Writes random data (and zeroes/discards) through Qcow2Node in groups of 1-6 requests, flushes after each group,
// and only then prints one line per acknowledged request:
//   W <dataSeed> <offset> <length>   (data = new Random(dataSeed).NextBytes)
//   Z <offset> <length>              (range reads as zeroes)
// Before each group it prints "G <n>" followed by the intended requests as "I ..." lines, so the parent knows
// which ranges may be half-written when it kills the process.
string image = args[0];
int seed = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
var rng = new Random(seed);
var output = Console.Out;
await using var file = await FileNode.OpenAsync("file", image, readOnly: false);
await using var node = await Qcow2Node.OpenAsync("qcow2", new SlowFile(file), readOnly: false);
int cluster = node.ClusterSize;
byte[] buffer = new byte[256 * 1024];
for (long group = 0; ; group++)
{
    int n = rng.Next(1, 7);
    var ops = new List<string>();
    for (int i = 0; i < n; i++)
    {
        int len = rng.Next(1, rng.Next(5) == 0 ? buffer.Length : 16384);
        long off = rng.NextInt64(node.Size - len);
        int kind = rng.Next(10);
        if (kind == 0)
        {
            ops.Add($"Z {off} {len} zero");
        }
        else if (kind == 1)
        {
            long first = (off + cluster - 1) / cluster * cluster;
            long last = (off + len) / cluster * cluster;
            ops.Add(last > first ? $"Z {first} {last - first} discard" : $"Z {off} {len} zero");
        }
        else
        {
            ops.Add($"W {rng.Next()} {off} {len}");
        }
    }

    output.WriteLine($"G {n}");
    foreach (string op in ops)
    {
        output.WriteLine("I " + op);
    }

    output.Flush();
    foreach (string op in ops)
    {
        string[] f = op.Split(' ');
        if (f[0] == "W")
        {
            int len = int.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture);
            new Random(int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture)).NextBytes(buffer.AsSpan(0, len));
            await node.WriteAsync(long.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), buffer.AsMemory(0, len));
        }
        else if (f[3] == "discard")
        {
            await node.DiscardAsync(long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            await node.WriteZeroesAsync(long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), mayUnmap: rng.Next(2) == 0);
        }
    }

    await node.FlushAsync();
    foreach (string op in ops)
    {
        output.WriteLine("A " + op);
    }

    output.Flush();
}
