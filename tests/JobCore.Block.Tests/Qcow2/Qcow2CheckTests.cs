using System.Buffers.Binary;
using System.Text.Json;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary><see cref="Qcow2Check"/> agrees with <c>qemu-img check</c> on clean, leaking and corrupt images.</summary>
[TestClass]
public sealed class Qcow2CheckTests
{
    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public async Task Clean_images_report_the_same_figures_as_qemu(bool compressed)
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("a.qcow2");
        if (compressed)
        {
            string raw = scratch.File("a.raw");
            await File.WriteAllBytesAsync(raw, Qcow2NodeReadInteropTests.CompressibleData(1 << 20, 4));
            await QemuImg.ImgOkAsync("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", raw, image);
        }
        else
        {
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", "-o", "cluster_size=4096", image, "8M");
            await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 1 0 100000", "write -P 2 4000000 300000", "write -z 8192 8192", "write -P 3 20000 5000");
        }

        Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
        using JsonDocument theirs = JsonDocument.Parse((await QemuImg.ImgOkAsync("check", "--output", "json", image)).Output);
        JsonElement q = theirs.RootElement;
        Assert.IsTrue(ours.IsClean, string.Join('\n', ours.Messages));
        long Figure(string name) => q.TryGetProperty(name, out JsonElement v) ? v.GetInt64() : 0;
        Assert.AreEqual(Figure("total-clusters"), ours.TotalClusters);
        Assert.AreEqual(Figure("allocated-clusters"), ours.AllocatedClusters);
        Assert.AreEqual(Figure("fragmented-clusters"), ours.FragmentedClusters);
        Assert.AreEqual(Figure("compressed-clusters"), ours.CompressedClusters);
        Assert.AreEqual(Figure("image-end-offset"), ours.ImageEndOffset);
        Assert.IsTrue(ours.AllocatedClusters > 0);
    }

    [TestMethod]
    public async Task A_refcount_without_reference_is_a_leak_like_qemu_says()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("leak.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", image, "1M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 9 0 128k", "discard 0 128k");
        // Refcount block at cluster 2 (64 KiB clusters, 16-bit entries): claim the freed clusters 5 and 6 are used.
        await PatchAsync(image, (2 * 65536) + (5 * 2), [0, 1, 0, 1]);

        Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
        ToolResult theirs = await QemuImg.ImgAsync("check", image);
        Assert.AreEqual(3, theirs.ExitCode, theirs.All);
        StringAssert.Contains(theirs.All, "2 leaked clusters were found");
        Assert.AreEqual(0, ours.Corruptions, string.Join('\n', ours.Messages));
        Assert.AreEqual(2, ours.Leaks);
        CollectionAssert.Contains(ours.Messages.ToList(), "Leaked cluster 5 refcount=1 reference=0");
    }

    [TestMethod]
    public async Task Leaked_clusters_past_the_last_referenced_one_count_in_the_image_end_offset_like_qemu()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("tail.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", image, "4M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 1 0 1M");
        // Two more clusters at the end of the file with refcount 1 and no reference (refcount block at cluster 2).
        long clusters = new FileInfo(image).Length / 65536;
        await using (var fs = new FileStream(image, FileMode.Open, FileAccess.Write))
        {
            fs.SetLength((clusters + 2) * 65536);
        }

        await PatchAsync(image, (2 * 65536) + (clusters * 2), [0, 1, 0, 1]);

        Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
        ToolResult theirs = await QemuImg.ImgAsync("check", "--output", "json", image);
        Assert.AreEqual(3, theirs.ExitCode, theirs.All);
        using JsonDocument q = JsonDocument.Parse(theirs.Output);
        Assert.AreEqual(q.RootElement.GetProperty("leaks").GetInt64(), ours.Leaks);
        Assert.AreEqual((clusters + 2) * 65536, q.RootElement.GetProperty("image-end-offset").GetInt64(), theirs.Output);
        Assert.AreEqual(q.RootElement.GetProperty("image-end-offset").GetInt64(), ours.ImageEndOffset);
    }

    [TestMethod]
    public async Task A_referenced_cluster_with_refcount_zero_is_corruption_like_qemu_says()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("bad.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", image, "1M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 9 0 65536");
        // Cluster 4 is the L2 table, cluster 5 the data: drop the data cluster's refcount.
        await PatchAsync(image, (2 * 65536) + (5 * 2), [0, 0]);

        Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
        ToolResult theirs = await QemuImg.ImgAsync("check", image);
        Assert.AreEqual(2, theirs.ExitCode, theirs.All);
        StringAssert.Contains(theirs.All, "ERROR cluster 5 refcount=0 reference=1");
        CollectionAssert.Contains(ours.Messages.ToList(), "ERROR cluster 5 refcount=0 reference=1");
        Assert.IsTrue(ours.Corruptions >= 1);
        Assert.IsFalse(ours.IsClean);
    }

    [TestMethod]
    public async Task Invalid_l2_entries_and_references_past_the_end_are_corruptions()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("inv.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", image, "1M");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 9 0 131072");
        byte[] unaligned = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(unaligned, (1UL << 63) | 0x50200);
        await PatchAsync(image, 4 * 65536, unaligned);
        byte[] beyond = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(beyond, (1UL << 63) | (1UL << 40));
        await PatchAsync(image, (4 * 65536) + 8, beyond);

        Qcow2CheckResult ours = await Qcow2Check.CheckFileAsync(image);
        Assert.IsTrue(ours.Corruptions >= 2, string.Join('\n', ours.Messages));
        Assert.IsTrue(ours.Messages.Any(m => m.Contains("not properly aligned", StringComparison.Ordinal)), string.Join('\n', ours.Messages));
        Assert.IsTrue(ours.Messages.Any(m => m.Contains("beyond the end of the file", StringComparison.Ordinal)), string.Join('\n', ours.Messages));
        Assert.AreEqual(2, (await QemuImg.ImgAsync("check", image)).ExitCode);
    }

    [TestMethod]
    public async Task Check_does_not_modify_the_image()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("ro.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 1 << 20 });
        byte[] before = await File.ReadAllBytesAsync(image);
        File.SetAttributes(image, FileAttributes.ReadOnly);
        Qcow2CheckResult result = await Qcow2Check.CheckFileAsync(image);
        Assert.IsTrue(result.IsClean);
        CollectionAssert.AreEqual(before, await File.ReadAllBytesAsync(image));
    }

    [TestMethod]
    public async Task Persistent_bitmaps_are_counted_and_a_write_by_us_invalidates_them_like_qemu_expects()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("bm.qcow2");
        await QemuImg.ImgOkAsync("create", "-f", "qcow2", image, "64M");
        await QemuImg.ImgOkAsync("bitmap", "--add", image, "b0");
        await QemuImg.IoCommandsAsync(image, "qcow2", "write -P 2 8M 8M", "write -P 3 40M 1M");
        Qcow2CheckResult before = await Qcow2Check.CheckFileAsync(image);
        Assert.IsTrue(before.IsClean, string.Join('\n', before.Messages));
        Assert.AreEqual(0, (await QemuImg.ImgAsync("check", image)).ExitCode);

        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            await opened.Node.WriteAsync(0, new byte[4096]);
        }

        // We keep no bitmaps, so the first write cleared the autoclear bit: QEMU now ignores the bitmaps and both
        // checkers count their clusters as leaks (harmless), never as corruption.
        Qcow2CheckResult after = await Qcow2Check.CheckFileAsync(image);
        ToolResult theirs = await QemuImg.ImgAsync("check", image);
        Assert.AreEqual(3, theirs.ExitCode, theirs.All);
        StringAssert.Contains(theirs.All, $"{after.Leaks} leaked clusters were found");
        Assert.AreEqual(0, after.Corruptions);
        Assert.IsTrue(after.Leaks > 0);
        await QemuImg.IoCommandsAsync(image, "qcow2", "read -P 0 0 4096", "read -P 2 8M 8M");
    }

    internal static async Task PatchAsync(string image, long offset, byte[] bytes)
    {
        await using var fs = new FileStream(image, FileMode.Open, FileAccess.Write);
        fs.Position = offset;
        await fs.WriteAsync(bytes);
    }
}
