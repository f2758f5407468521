using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>qcow2's part of <c>qemu-img info</c> (<c>format-specific.data</c>); version 2 images have only compat, compression type and refcount bits.</summary>
internal sealed record Qcow2InfoData(string Compat, bool LazyRefcounts, int RefcountBits, bool Corrupt, bool ExtendedL2)
{
    /// <summary>The compat string of version 2 images.</summary>
    public const string CompatV2 = "0.10";

    /// <summary>Whether the version 3 fields (lazy refcounts, corrupt, extended L2) are shown.</summary>
    public bool IsV3 => Compat != CompatV2;

    /// <summary>The compression type: only deflate (zlib) images open.</summary>
    public const string CompressionType = "zlib";
}

/// <summary>
/// <c>qemu-img info</c> of one image (its backing chain is not opened): the fields and both output formats of
/// qemu-img 7.2.
/// </summary>
internal sealed record ImageInfo(
    string Filename,
    string Format,
    long VirtualSize,
    long ActualSize,
    int? ClusterSize,
    bool DirtyFlag,
    string? BackingFilename,
    string? FullBackingFilename,
    string? BackingFormat,
    Qcow2InfoData? Qcow2)
{
    /// <summary>Opens <paramref name="filename"/> read-only (without its backing chain) and collects its information.</summary>
    public static async Task<ImageInfo> ReadAsync(string filename, string? format, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        await using var chain = await ImageChain.OpenAsync(filename, format, readOnly: true, withBacking: false, cancellationToken).ConfigureAwait(false);
        var top = chain.Top;
        var actual = HostFileStat.Of(filename).AllocatedBytes;
        if (top is not Qcow2Node { File: FileNode file } qcow2)
        {
            return new ImageInfo(filename, top.DriverName, top.Size, actual, null, false, null, null, null, null);
        }

        var header = await ReadQcow2HeaderAsync(file, filename, cancellationToken).ConfigureAwait(false);
        var data = new Qcow2InfoData(
            header.Version >= 3 ? "1.1" : Qcow2InfoData.CompatV2,
            (header.CompatibleFeatures & Qcow2Header.CompatLazyRefcounts) != 0,
            header.RefcountBits,
            (header.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0,
            (header.IncompatibleFeatures & Qcow2Header.IncompatExtendedL2) != 0);
        var backing = qcow2.BackingFileName;
        return new ImageInfo(filename, "qcow2", qcow2.Size, actual, qcow2.ClusterSize,
            (header.IncompatibleFeatures & Qcow2Header.IncompatDirty) != 0,
            backing, backing is null ? null : BackingChain.ResolveRelativeTo(filename, backing), qcow2.BackingFormat, data);
    }

    private static async Task<Qcow2Header> ReadQcow2HeaderAsync(FileNode file, string filename, CancellationToken cancellationToken)
    {
        // Cluster 0 holds the header, its extensions and the backing name; clusters are at most 2 MiB.
        var bytes = new byte[(int)Math.Min(file.Size, 2 << 20)];
        await file.ReadAsync(0, bytes, cancellationToken).ConfigureAwait(false);
        return Qcow2Header.Parse(bytes, file.Size, filename);
    }

    /// <summary>
    /// <c>qemu-img info --backing-chain</c>: the information of <paramref name="filename"/> and of every image below
    /// it, following each header's backing file (relative to the image naming it) and backing format.
    /// </summary>
    /// <exception cref="ImageToolException">The chain loops.</exception>
    public static async Task<IReadOnlyList<ImageInfo>> ReadChainAsync(string filename, string? format, CancellationToken cancellationToken = default)
    {
        var chain = new List<ImageInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (string? name = filename; name is not null;)
        {
            if (!seen.Add(name))
            {
                throw new ImageToolException($"Backing file '{name}' creates an infinite loop.");
            }

            var info = await ReadAsync(name, format, cancellationToken).ConfigureAwait(false);
            chain.Add(info);
            name = info.FullBackingFilename;
            format = info.BackingFormat;
        }

        return chain;
    }

    /// <summary>qemu-img's <c>--output json</c> text, keys in qemu-img 7.2's order (ends with a newline).</summary>
    public string ToJson() => Json(WriteJson);

    /// <summary>qemu-img's <c>--output json --backing-chain</c> text: an array of the images' objects.</summary>
    public static string ToJson(IReadOnlyList<ImageInfo> chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        return Json(w =>
        {
            w.WriteStartArray();
            foreach (var info in chain)
            {
                info.WriteJson(w);
            }

            w.WriteEndArray();
        });
    }

    /// <summary>qemu-img's human text for a chain: one block per image, separated by blank lines.</summary>
    public static string ToHuman(IReadOnlyList<ImageInfo> chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        return string.Join("\n", chain.Select(i => i.ToHuman()));
    }

    private static string Json(Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            IndentSize = 4,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            write(w);
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (BackingFormat is not null)
        {
            w.WriteString("backing-filename-format", BackingFormat);
        }

        w.WriteNumber("virtual-size", VirtualSize);
        w.WriteString("filename", Filename);
        if (ClusterSize is { } clusterSize)
        {
            w.WriteNumber("cluster-size", clusterSize);
        }

        w.WriteString("format", Format);
        w.WriteNumber("actual-size", ActualSize);
        if (Qcow2 is { } q)
        {
            w.WriteStartObject("format-specific");
            w.WriteString("type", "qcow2");
            w.WriteStartObject("data");
            w.WriteString("compat", q.Compat);
            w.WriteString("compression-type", Qcow2InfoData.CompressionType);
            if (q.IsV3)
            {
                w.WriteBoolean("lazy-refcounts", q.LazyRefcounts);
            }

            w.WriteNumber("refcount-bits", q.RefcountBits);
            if (q.IsV3)
            {
                w.WriteBoolean("corrupt", q.Corrupt);
                w.WriteBoolean("extended-l2", q.ExtendedL2);
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }

        if (FullBackingFilename is not null)
        {
            w.WriteString("full-backing-filename", FullBackingFilename);
        }

        if (BackingFilename is not null)
        {
            w.WriteString("backing-filename", BackingFilename);
        }

        w.WriteBoolean("dirty-flag", DirtyFlag);
        w.WriteEndObject();
    }

    /// <summary>qemu-img 7.2's human output (ends with a newline).</summary>
    public string ToHuman()
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        sb.Append(c, $"image: {Filename}\n");
        sb.Append(c, $"file format: {Format}\n");
        sb.Append(c, $"virtual size: {ImageSize.ToHuman(VirtualSize)} ({VirtualSize} bytes)\n");
        sb.Append(c, $"disk size: {ImageSize.ToHuman(ActualSize)}\n");
        if (ClusterSize is { } clusterSize)
        {
            sb.Append(c, $"cluster_size: {clusterSize}\n");
        }

        if (DirtyFlag)
        {
            sb.Append("cleanly shut down: no\n");
        }

        if (BackingFilename is not null)
        {
            sb.Append(c, $"backing file: {BackingFilename}");
            if (FullBackingFilename != BackingFilename)
            {
                sb.Append(c, $" (actual path: {FullBackingFilename})");
            }

            sb.Append('\n');
        }

        if (BackingFormat is not null)
        {
            sb.Append(c, $"backing file format: {BackingFormat}\n");
        }

        if (Qcow2 is { } q)
        {
            sb.Append("Format specific information:\n");
            sb.Append(c, $"    compat: {q.Compat}\n");
            sb.Append(c, $"    compression type: {Qcow2InfoData.CompressionType}\n");
            if (q.IsV3)
            {
                sb.Append(c, $"    lazy refcounts: {Bool(q.LazyRefcounts)}\n");
            }

            sb.Append(c, $"    refcount bits: {q.RefcountBits}\n");
            if (q.IsV3)
            {
                sb.Append(c, $"    corrupt: {Bool(q.Corrupt)}\n");
                sb.Append(c, $"    extended l2: {Bool(q.ExtendedL2)}\n");
            }
        }

        return sb.ToString();
    }

    private static string Bool(bool value) => value ? "true" : "false";
}
