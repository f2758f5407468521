using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>A fresh temporary folder per test, deleted on dispose.</summary>
internal sealed class ScratchFolder : IDisposable
{
    public ScratchFolder()
    {
        Folder = Directory.CreateTempSubdirectory("jobcore-qcow2-").FullName;
    }

    public string Folder { get; }

    public string File(string name) => Path.Combine(Folder, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // A child process may still hold a file for a moment; the OS temp cleaner takes the rest.
        }
    }
}

/// <summary>An opened qcow2 image: its file node, its qcow2 node and (optionally) the backing chain below it.</summary>
internal sealed class OpenedQcow2 : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    private OpenedQcow2(Qcow2Node node)
    {
        Node = node;
    }

    public Qcow2Node Node { get; }

    /// <summary>Opens <paramref name="path"/>; with <paramref name="withBacking"/> the backing chain from the headers too (read-only).</summary>
    public static async Task<OpenedQcow2> OpenAsync(string path, bool readOnly, bool withBacking = true)
    {
        FileNode file = await FileNode.OpenAsync("file", path, readOnly);
        Qcow2Node node;
        try
        {
            node = await Qcow2Node.OpenAsync("qcow2", file, readOnly);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }

        var opened = new OpenedQcow2(node);
        opened._owned.Add(node);
        opened._owned.Add(file);
        if (withBacking && node.BackingFileName is not null)
        {
            string backingPath = Path.IsPathRooted(node.BackingFileName) ? node.BackingFileName
                : Path.Combine(Path.GetDirectoryName(path)!, node.BackingFileName);
            FileNode backingFile = await FileNode.OpenAsync("backing-file", backingPath, readOnly: true);
            opened._owned.Add(backingFile);
            if (node.BackingFormat == "raw")
            {
                var raw = await RawNode.OpenAsync("backing", backingFile, readOnly: true);
                opened._owned.Insert(0, raw);
                node.SetBackingNode(raw);
            }
            else
            {
                OpenedQcow2 below = await OpenAsync(backingPath, readOnly: true);
                opened._owned.Insert(0, below);
                node.SetBackingNode(below.Node);
            }
        }

        return opened;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var d in _owned)
        {
            await d.DisposeAsync();
        }
    }
}

internal static class ImageData
{
    /// <summary>Reads a whole node in 1 MiB requests.</summary>
    public static async Task<byte[]> ReadAllAsync(BlockNode node)
    {
        byte[] data = new byte[node.Size];
        for (long off = 0; off < data.Length; off += 1 << 20)
        {
            int n = (int)Math.Min(1 << 20, data.Length - off);
            await node.ReadAsync(off, data.AsMemory((int)off, n));
        }

        return data;
    }

    /// <summary>The guest data of <paramref name="image"/> as qemu-img sees it (<c>convert -O raw</c>).</summary>
    public static async Task<byte[]> QemuRawAsync(string image, ScratchFolder scratch)
    {
        string raw = scratch.File(Guid.NewGuid().ToString("N") + ".raw");
        await QemuImg.ImgOkAsync("convert", "-O", "raw", image, raw);
        byte[] data = await File.ReadAllBytesAsync(raw);
        File.Delete(raw);
        return data;
    }

    /// <summary>Asserts that <paramref name="actual"/> equals <paramref name="expected"/>, naming the first differing offset.</summary>
    public static void AssertSame(byte[] expected, byte[] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        int diff = expected.AsSpan().CommonPrefixLength(actual);
        Assert.AreEqual(expected.Length, diff, $"{what}: first difference at byte {diff}");
    }

    /// <summary>Asserts <c>qemu-img check</c> is clean and <c>qemu-img compare</c> finds the image equal to <paramref name="expected"/>.</summary>
    public static async Task AssertCleanAndEqualAsync(string image, byte[] expected, ScratchFolder scratch)
    {
        string raw = scratch.File(Guid.NewGuid().ToString("N") + ".raw");
        await File.WriteAllBytesAsync(raw, expected);
        await AssertQemuCheckCleanAsync(image);
        ToolResult compare = await QemuImg.ImgAsync("compare", "-F", "raw", image, raw);
        Assert.AreEqual(0, compare.ExitCode, compare.All);
    }

    /// <summary>Runs <c>qemu-img check</c> and asserts no errors and no leaks.</summary>
    public static async Task AssertQemuCheckCleanAsync(string image)
    {
        ToolResult r = await QemuImg.ImgAsync("check", image);
        Assert.AreEqual(0, r.ExitCode, $"qemu-img check {image}:\n{r.All}");
        StringAssert.Contains(r.Output, "No errors were found on the image.");
    }
}
