using System.Buffers.Binary;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>
/// Deterministic seeded mutations of real images (header fields, L1/L2/refcount entries, extension lengths, random
/// bytes): every case opens and reads without a crash or hang, each refusal is a <see cref="BlockFormatException"/>
/// naming the image, run-time findings are EIO <see cref="BlockIOException"/>s, and a refused image is never written.
/// </summary>
[TestClass]
public sealed class Qcow2MutationTests
{
    private const int CasesPerSeedImage = 600;
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    // Offsets and widths of the header fields (qcow2.rst).
    private static readonly (int Offset, int Width)[] HeaderFields =
    [
        (0, 4), (4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4), (40, 8), (48, 8), (56, 4), (60, 4),
        (64, 8), (72, 8), (80, 8), (88, 8), (96, 4), (100, 4), (104, 1),
    ];

    [TestMethod]
    [DataRow("plain")]
    [DataRow("compressed")]
    public async Task Mutated_images_are_refused_cleanly_or_read_without_crash(string kind)
    {
        using var scratch = new ScratchFolder();
        string seedImage = scratch.File("seed.qcow2");
        if (kind == "plain")
        {
            await File.WriteAllBytesAsync(scratch.File("backing.raw"), new byte[2 << 20]);
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "backing.raw", "-F", "raw", seedImage, "2M");
            await QemuImg.IoCommandsAsync(seedImage, "qcow2", "write -P 0x11 0 300000", "write -z 8192 8192", "write -P 0x22 1500000 70000", "discard 1048576 65536");
        }
        else
        {
            string raw = scratch.File("src.raw");
            await File.WriteAllBytesAsync(raw, Qcow2NodeReadInteropTests.CompressibleData(1 << 20, 11));
            await QemuImg.ImgOkAsync("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", raw, seedImage);
        }

        byte[] original = await File.ReadAllBytesAsync(seedImage);
        var layout = Layout.Of(original);
        string image = scratch.File("mutated.qcow2");
        var rng = new Random(kind == "plain" ? 1 : 2);
        int refused = 0;
        int runtimeErrors = 0;
        for (int n = 0; n < CasesPerSeedImage; n++)
        {
            byte[] mutated = (byte[])original.Clone();
            string what = Mutate(mutated, layout, rng);
            await File.WriteAllBytesAsync(image, mutated);
            var outcome = await ExerciseAsync(image).WaitAsync(CaseTimeout);
            refused += outcome == Outcome.Refused ? 1 : 0;
            runtimeErrors += outcome == Outcome.RuntimeError ? 1 : 0;
            byte[] after = await File.ReadAllBytesAsync(image);
            if (outcome == Outcome.Refused)
            {
                Assert.IsTrue(after.AsSpan().SequenceEqual(mutated), $"case {n} ({what}): a refused image was modified");
            }
        }

        // The mutations must actually hit the validation paths, not only harmless bytes.
        Assert.IsTrue(refused > CasesPerSeedImage / 10, $"only {refused} of {CasesPerSeedImage} cases were refused");
        Console.WriteLine($"{kind}: {CasesPerSeedImage} cases, {refused} refused at open, {runtimeErrors} with run-time errors");
    }

    private enum Outcome
    {
        Accepted,
        Refused,
        RuntimeError,
    }

    /// <summary>Opens read-only (reads, block status, check) and read/write (a read, then close).</summary>
    private static async Task<Outcome> ExerciseAsync(string image)
    {
        Outcome outcome = Outcome.Accepted;
        try
        {
            await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: true, withBacking: false);
            outcome = await ReadAroundAsync(opened.Node);
        }
        catch (BlockFormatException e)
        {
            Assert.IsTrue(e.Message.Contains(image, StringComparison.Ordinal), $"refusal without the image name: {e.Message}");
            outcome = Outcome.Refused;
        }

        try
        {
            await Qcow2Check.CheckFileAsync(image);
        }
        catch (BlockFormatException)
        {
            Assert.AreEqual(Outcome.Refused, outcome, "check refused an image that opened");
        }

        byte[] before = await File.ReadAllBytesAsync(image);
        try
        {
            await using var opened = await OpenedQcow2.OpenAsync(image, readOnly: false, withBacking: false);
            byte[] buffer = new byte[Math.Min(opened.Node.Size, 65536)];
            try
            {
                await opened.Node.ReadAsync(0, buffer);
            }
            catch (BlockIOException e) when (e.Errno == BlockIOException.EIO)
            {
                outcome = Outcome.RuntimeError;
            }
        }
        catch (BlockFormatException)
        {
            CollectionAssert.AreEqual(before, await File.ReadAllBytesAsync(image), "a read/write open that was refused modified the image");
        }

        return outcome;
    }

    private static async Task<Outcome> ReadAroundAsync(Qcow2Node node)
    {
        Outcome outcome = Outcome.Accepted;
        byte[] buffer = new byte[256 * 1024];
        long size = node.Size;
        var offsets = new List<long> { 0, size / 2, Math.Max(0, size - buffer.Length) };
        for (long off = 0; off < Math.Min(size, 4L << 20); off += buffer.Length)
        {
            offsets.Add(off);
        }

        foreach (long off in offsets.Distinct())
        {
            int len = (int)Math.Min(buffer.Length, size - off);
            try
            {
                if (len > 0)
                {
                    await node.ReadAsync(off, buffer.AsMemory(0, len));
                }
            }
            catch (BlockIOException e) when (e.Errno == BlockIOException.EIO)
            {
                outcome = Outcome.RuntimeError;
            }
        }

        long pos = 0;
        for (int i = 0; i < 200 && pos < size; i++)
        {
            try
            {
                BlockStatus s = await node.GetBlockStatusAsync(pos, size - pos);
                Assert.IsTrue(s.Length > 0 && s.Offset == pos, $"bad extent {s}");
                pos += s.Length;
            }
            catch (BlockIOException e) when (e.Errno == BlockIOException.EIO)
            {
                outcome = Outcome.RuntimeError;
                pos += node.ClusterSize;
            }
        }

        return outcome;
    }

    private static string Mutate(byte[] image, Layout layout, Random rng)
    {
        switch (rng.Next(6))
        {
            case 0:
            {
                var (offset, width) = HeaderFields[rng.Next(HeaderFields.Length)];
                ulong value = Interesting(rng, layout);
                Write(image, offset, width, value);
                return $"header field at {offset} = {value:#x}";
            }

            case 1:
                return MutateEntry(image, layout.L1Offset, layout.L1Entries, rng, layout, "L1");
            case 2:
                return layout.L2Offsets.Count == 0 ? "nothing"
                    : MutateEntry(image, layout.L2Offsets[rng.Next(layout.L2Offsets.Count)], layout.ClusterSize / 8, rng, layout, "L2");
            case 3:
                return rng.Next(2) == 0
                    ? MutateEntry(image, layout.RefTableOffset, layout.ClusterSize / 8, rng, layout, "refcount table")
                    : MutateEntry(image, layout.RefBlockOffset, layout.ClusterSize / 8, rng, layout, "refcount block");
            case 4:
            {
                // Extension headers: type and length words.
                int ext = layout.ExtensionOffsets[rng.Next(layout.ExtensionOffsets.Count)];
                int field = rng.Next(2) * 4;
                ulong value = rng.Next(3) switch { 0 => (ulong)rng.Next(0, 70000), 1 => uint.MaxValue - (ulong)rng.Next(16), _ => (ulong)rng.Next(0, 64) };
                Write(image, ext + field, 4, value);
                return $"extension at {ext} word {field} = {value}";
            }

            default:
            {
                int flips = rng.Next(1, 8);
                int limit = Math.Min(image.Length, 4 * layout.ClusterSize);
                for (int i = 0; i < flips; i++)
                {
                    image[rng.Next(limit)] ^= (byte)(1 << rng.Next(8));
                }

                return $"{flips} bit flips in the first clusters";
            }
        }
    }

    private static string MutateEntry(byte[] image, long tableOffset, int entries, Random rng, Layout layout, string what)
    {
        int index = rng.Next(Math.Max(1, Math.Min(entries, 64)));
        long at = tableOffset + (index * 8L);
        if (at + 8 > image.Length || at < 0)
        {
            return "nothing";
        }

        ulong value = Interesting(rng, layout);
        if (rng.Next(3) == 0)
        {
            value |= 1UL << 63;
        }

        if (rng.Next(5) == 0)
        {
            value |= 1UL << 62;
        }

        Write(image, (int)at, 8, value);
        return $"{what} entry {index} = {value:#x}";
    }

    private static ulong Interesting(Random rng, Layout layout) => rng.Next(9) switch
    {
        0 => 0,
        1 => 1,
        2 => (ulong)rng.NextInt64(),
        3 => ulong.MaxValue,
        4 => (ulong)(layout.FileLength + (rng.Next(4) * layout.ClusterSize)),
        5 => (ulong)(rng.Next(0, (int)(layout.FileLength / layout.ClusterSize) + 2) * (long)layout.ClusterSize),
        6 => (ulong)rng.Next(0, 4096),
        7 => 1UL << rng.Next(64),
        _ => (ulong)rng.Next(0, (int)layout.FileLength),
    };

    private static void Write(byte[] image, int offset, int width, ulong value)
    {
        switch (width)
        {
            case 1:
                image[offset] = (byte)value;
                break;
            case 4:
                BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(offset), (uint)value);
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(offset), value);
                break;
        }
    }

    /// <summary>Where the metadata of the seed image lives.</summary>
    private sealed record Layout(int ClusterSize, long FileLength, long L1Offset, int L1Entries, List<long> L2Offsets,
        long RefTableOffset, long RefBlockOffset, List<int> ExtensionOffsets)
    {
        public static Layout Of(byte[] image)
        {
            int cs = 1 << (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(20));
            int l1Entries = (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(36));
            long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(40));
            long rt = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(48));
            var l2 = new List<long>();
            for (int i = 0; i < l1Entries; i++)
            {
                long e = (long)(BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)l1 + (i * 8))) & 0x00fffffffffffe00UL);
                if (e != 0)
                {
                    l2.Add(e);
                }
            }

            var extensions = new List<int>();
            int pos = (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(100));
            while (pos + 8 <= cs)
            {
                extensions.Add(pos);
                uint type = BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(pos));
                uint len = BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(pos + 4));
                if (type == 0)
                {
                    break;
                }

                pos += 8 + (int)((len + 7) & ~7u);
            }

            long rb = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)rt));
            return new Layout(cs, image.Length, l1, l1Entries, l2, rt, rb, extensions);
        }
    }
}
